"""The two PNG decoders: libspng for canvas exports, Pillow for everything else, with one result.

``shared.decode.read_ink`` decodes 8-bit grey/RGB/RGBA PNGs without a transparency key or EXIF with
libspng (pyspng) and reduces the pixels itself (luma as Pillow's ``convert("L")``); every other image,
and any PNG libspng refuses, goes through Pillow. These tests hold the fast path to Pillow's result bit
for bit, check which files take which path, and that broken files still get their own error code.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from shared import decode, errors, kernels
from tests.shared.imaging import encode, png_chunk, png_with_header

DIGIT = np.zeros((120, 90), dtype=bool)
DIGIT[20:100, 40:52] = True  # a "1"
DIGIT[20:32, 25:52] = True


def _pillow_ink(png: bytes) -> decode.InkSource:
    """What the Pillow path makes of ``png``."""
    raw = decode._raw_bytes(png, decode.DEFAULT_LIMITS)
    return decode.ink_source(
        decode._load(raw, decode._open_checked(raw, decode.DEFAULT_LIMITS), decode.DEFAULT_LIMITS)
    )


def _assert_same_ink(png: bytes) -> None:
    fast, slow = decode.read_ink(png), _pillow_ink(png)
    assert isinstance(fast, tuple) and isinstance(slow, tuple)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])


def _scheme(mode: str, ink: tuple[int, ...], background: tuple[int, ...]) -> bytes:
    pixels = np.empty((*DIGIT.shape, len(background)), dtype=np.uint8)
    pixels[...] = background
    pixels[DIGIT] = ink
    image = Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels)
    assert image.mode == mode
    return encode(image)


@pytest.mark.parametrize(
    ("mode", "ink", "background"),
    [
        ("RGBA", (0, 0, 0, 255), (255, 255, 255, 255)),  # the page's canvas
        ("RGBA", (0, 0, 0, 255), (0, 0, 0, 0)),  # black on transparent
        ("RGBA", (255, 255, 255, 255), (255, 255, 255, 0)),  # white on transparent
        ("RGBA", (230, 230, 230, 255), (30, 30, 40, 255)),  # dark mode
        ("RGBA", (20, 20, 200, 255), (250, 250, 240, 90)),  # translucent canvas
        ("RGB", (20, 20, 200), (250, 250, 240)),
        ("L", (0,), (255,)),
    ],
)
def test_canvas_pngs_take_libspng_and_match_pillow(
    mode: str, ink: tuple[int, ...], background: tuple[int, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    png = _scheme(mode, ink, background)
    calls: list[int] = []
    real_load = decode.pyspng.load
    monkeypatch.setattr(decode.pyspng, "load", lambda raw: calls.append(1) or real_load(raw))
    _assert_same_ink(png)
    assert calls, "a canvas PNG should be decoded by libspng"


@hsettings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([3, 4]))),
)
def test_any_rgb_or_rgba_png_matches_pillow(pixels: np.ndarray) -> None:
    """Random pixels, any alpha: the same levels and table as Pillow (luma, border, transparency rule)."""
    _assert_same_ink(encode(Image.fromarray(pixels)))


@hsettings(max_examples=100, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30), st.integers(3, 4))))
def test_luma_is_pillows_convert_l(pixels: np.ndarray) -> None:
    want = np.asarray(Image.fromarray(pixels).convert("L"))
    np.testing.assert_array_equal(kernels.luma(pixels), want)
    np.testing.assert_array_equal(kernels.numpy_luma(pixels), want)


def _other_pngs() -> dict[str, bytes]:
    rgb = np.zeros((30, 30, 3), dtype=np.uint8)
    rgb[10:20, 10:20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    text = PngInfo()  # EXIF as ImageMagick stores it, which Pillow applies too
    text.add_text("Raw profile type exif", f"\nexif\n{len(exif.tobytes()):8d}\n{exif.tobytes().hex()}")
    return {
        "16-bit grey": encode(Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)),
        "palette": encode(Image.fromarray(rgb).convert("P")),
        "grey + alpha": encode(Image.fromarray(np.ascontiguousarray(rgb[..., :2]))),
        "transparency key": encode(Image.fromarray(rgb), transparency=(0, 0, 0)),
        "EXIF orientation": encode(Image.fromarray(rgb), exif=exif),
        "EXIF as text": encode(Image.fromarray(rgb[:, :20]), pnginfo=text),
        "over 1024 px": encode(Image.new("L", (1100, 20), 255)),
        "XMP orientation": _insert_before_idat(
            encode(Image.fromarray(rgb[:, :20])),
            png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP_ROTATED),
        ),
        "APNG": _insert_before_idat(
            encode(Image.fromarray(rgb)),
            png_chunk(b"acTL", struct.pack(">II", 1, 0))
            + png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, 20, 30, 5, 0, 1, 10, 0, 0)),
        ),
    }


XMP_ROTATED = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


def _insert_before_idat(png: bytes, chunks: bytes) -> bytes:
    at = png.index(b"IDAT") - 4
    return png[:at] + chunks + png[at:]


@pytest.mark.parametrize("name", list(_other_pngs()))
def test_other_pngs_go_through_pillow(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    png = _other_pngs()[name]

    def refuse(raw: bytes) -> np.ndarray:
        raise AssertionError("libspng must not see this file")

    monkeypatch.setattr(decode.pyspng, "load", refuse)
    ink = decode.decode_image(png)  # Pillow's path, with its own rules (EXIF, palette, 16-bit, ...)
    if name in ("EXIF as text", "XMP orientation"):
        assert ink.shape == (20, 30), "orientation 6 turns the 30x20 image upright"


def _cut_chunk_after_idat(png: bytes) -> bytes:
    """The image data whole, then a chunk that declares 16 bytes and holds 2 (no IEND)."""
    end = png.index(b"IEND") - 4
    return png[:end] + b"\x00\x00\x00\x10tEXtab"


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        (lambda png: png[: len(png) // 2], errors.TruncatedImage),  # cut inside the image data
        (_cut_chunk_after_idat, errors.TruncatedImage),  # libspng stops reading before it
        (lambda png: png[:60] + bytes(b ^ 0x5A for b in png[60:-12]) + png[-12:], errors.InvalidImage),
    ],
)
def test_broken_canvas_pngs_keep_their_error_codes(damage: object, code: type[errors.ClientError]) -> None:
    """libspng refuses them; Pillow then names the fault, as before the fast path existed."""
    png = _scheme("RGBA", (0, 0, 0, 255), (255, 255, 255, 255))
    broken = damage(png)  # type: ignore[operator]
    with pytest.raises(code):
        decode.read_ink(broken)


def _outcome(png: bytes, monkeypatch: pytest.MonkeyPatch | None = None) -> object:
    """The error code, or the ink, that ``read_ink`` gives (with libspng switched off if patched)."""
    try:
        source = decode.read_ink(png)
    except errors.ClientError as exc:
        return exc.code
    assert isinstance(source, tuple)
    return (source[0].tobytes(), source[1].tobytes())


def test_cut_canvas_pngs_end_as_pillow_ends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A canvas PNG cut at each of its last 40 bytes (CRCs, zlib checksum, IEND): the same outcome as
    the Pillow path, error code or pixels (libspng stops reading after the last scanline)."""
    png = _scheme("RGBA", (0, 0, 0, 255), (255, 255, 255, 255))
    cuts = [png[:n] for n in range(len(png) - 40, len(png))]
    fast = [_outcome(c) for c in cuts]

    def off(raw: bytes) -> np.ndarray:
        raise RuntimeError("libspng switched off")

    monkeypatch.setattr(decode.pyspng, "load", off)
    assert fast == [_outcome(c) for c in cuts]


@pytest.mark.parametrize("rows", [1, 100, 279])
def test_a_canvas_png_whose_image_data_ends_early_is_truncated(rows: int) -> None:
    """A whole zlib stream holding fewer rows than IHDR declares: refused, not read with rows missing."""
    grey = np.zeros((280, 280), np.uint8)
    grey[40:240, 130:150] = 255
    scanlines = [b"\x00" + row.tobytes() for row in grey]  # filter type 0, then the row
    with pytest.raises(errors.TruncatedImage):
        decode.decode_image(png_with_header(280, 280, zlib.compress(b"".join(scanlines[:rows]))))
    assert decode.decode_image(png_with_header(280, 280, zlib.compress(b"".join(scanlines)))) is not None


def test_corrupt_exif_in_a_clients_image_prints_nothing() -> None:
    """Pillow's warnings about a client's bad EXIF tags would be plain-text stderr lines, unbounded."""
    import subprocess
    import sys

    from shared.settings import REPO_ROOT

    code = """
import io, struct
from PIL import Image
from shared.preprocess import ImageFrame, preprocess
from tests.shared.imaging import png_chunk
buf = io.BytesIO()
Image.new("L", (28, 28), 255).save(buf, "PNG")
png = buf.getvalue()
at = png.index(b"IDAT") - 4
for tag in (256, 257, 258):  # each entry claims more data than the file holds: a warning per tag
    entry = struct.pack("<HHII", tag, 2, 5000, 0x7FFF0000)
    ifd = b"II*\\x00\\x08\\x00\\x00\\x00\\x01\\x00" + entry + bytes(4)
    preprocess(ImageFrame(png[:at] + png_chunk(b"eXIf", ifd) + png[at:]))
"""
    run = [sys.executable, "-W", "default", "-c", code]
    result = subprocess.run(run, check=False, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stderr == ""
