"""Every accepted encoding of the same canvas gives the same tensor.

Lossless encodings must match the 8-bit grey PNG reference to 1e-6; lossy ones (JPEG, lossy WebP) to a
mean absolute difference of 0.02. 16-bit PNGs are rescaled (not clipped to white), EXIF orientation is
applied before normalization, CMYK JPEGs work.
"""

from __future__ import annotations

import base64
import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared.decode import decode_image
from shared.preprocess import ImageFrame, preprocess
from tests.shared.imaging import encode, png_chunk

LOSSY_MAD = 0.02


def _digit_l(size: int = 280) -> Image.Image:
    """An asymmetric "4"-like glyph, black on white, 8-bit grey."""
    img = Image.new("L", (size, size), 255)
    d = ImageDraw.Draw(img)
    k = size / 280
    w = round(16 * k)
    d.line([(170 * k, 40 * k), (70 * k, 170 * k), (210 * k, 170 * k)], fill=0, width=w, joint="curve")
    d.line([(170 * k, 40 * k), (170 * k, 250 * k)], fill=0, width=w)
    return img


REF_IMG = _digit_l()
REF = preprocess(ImageFrame(encode(REF_IMG)))


def _mad(data: bytes | str) -> float:
    got = preprocess(ImageFrame(data))
    assert got is not None
    assert REF is not None
    return float(np.abs(got - REF).mean())


def _max(data: bytes | str) -> float:
    got = preprocess(ImageFrame(data))
    assert got is not None
    assert REF is not None
    return float(np.abs(got - REF).max())


def _rgba(ink: tuple[int, int, int], bg: tuple[int, int, int, int]) -> Image.Image:
    mask = REF_IMG.point(lambda v: 255 - v)
    img = Image.new("RGBA", REF_IMG.size, bg)
    img.paste(Image.new("RGBA", REF_IMG.size, (*ink, 255)), (0, 0), mask)
    if bg[3] == 0:
        img.putalpha(mask)
    return img


def _raw_png(a: np.ndarray, colour_type: int, bit_depth: int) -> bytes:
    """Encode ``(H, W, C)`` big-endian samples as a PNG by hand (Pillow cannot write 16-bit RGB/LA)."""
    h = a.shape[0]
    rows = a.reshape(h, -1)
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)
    ihdr = a.shape[1].to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([bit_depth, colour_type, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


GREY = np.asarray(REF_IMG)


def _palette_transparent() -> bytes:
    """Palette PNG (white index 0 transparent via tRNS, black index 1): ink only in alpha terms."""
    p = Image.fromarray((GREY < 128).astype(np.uint8), mode="P")
    p.putpalette([255, 255, 255, 0, 0, 0])
    return encode(p, transparency=0)


LOSSLESS = {
    "PNG L": encode(REF_IMG),
    "PNG RGB": encode(REF_IMG.convert("RGB")),
    "PNG RGBA opaque": encode(REF_IMG.convert("RGBA")),
    "PNG LA opaque": encode(REF_IMG.convert("LA")),
    "PNG LA transparent": encode(_rgba((0, 0, 0), (0, 0, 0, 0)).convert("LA")),
    "PNG RGBA black on transparent": encode(_rgba((0, 0, 0), (0, 0, 0, 0))),
    "PNG RGBA white on transparent": encode(_rgba((255, 255, 255), (255, 255, 255, 0))),
    "PNG RGBA white on black": encode(_rgba((255, 255, 255), (0, 0, 0, 255))),
    "PNG palette": encode(REF_IMG.convert("P")),
    "PNG palette with transparency": _palette_transparent(),
    "PNG 1-bit": encode(REF_IMG.point(lambda v: 255 if v > 127 else 0).convert("1")),
    "PNG 16-bit grey": encode(Image.fromarray(GREY.astype(np.uint16) * 257)),
    "PNG 16-bit RGB": _raw_png(np.repeat(GREY[..., None].astype(">u2") * 257, 3, axis=2), 2, 16),
    "PNG 16-bit grey+alpha": _raw_png(
        np.stack([GREY.astype(">u2") * 257, np.full_like(GREY, 65535, dtype=">u2")], axis=2), 4, 16
    ),
    "GIF": encode(REF_IMG, "GIF"),
    "BMP": encode(REF_IMG, "BMP"),
    "BMP RGB": encode(REF_IMG.convert("RGB"), "BMP"),
    "WebP lossless": encode(REF_IMG.convert("RGB"), "WEBP", lossless=True),
    "WebP lossless transparent": encode(_rgba((0, 0, 0), (0, 0, 0, 0)), "WEBP", lossless=True),
}
LOSSY = {
    "JPEG grey": encode(REF_IMG, "JPEG", quality=85),
    "JPEG RGB": encode(REF_IMG.convert("RGB"), "JPEG", quality=85),
    "JPEG RGB dark mode": encode(_rgba((240, 240, 240), (20, 20, 30, 255)).convert("RGB"), "JPEG"),
    "JPEG CMYK": encode(REF_IMG.convert("CMYK"), "JPEG", quality=85),
    "JPEG progressive": encode(REF_IMG.convert("RGB"), "JPEG", quality=85, progressive=True),
    "WebP lossy": encode(REF_IMG.convert("RGB"), "WEBP", quality=90),
}


def test_reference_is_a_digit() -> None:
    assert REF is not None
    assert REF.shape == (1, 1, 28, 28)
    assert REF.dtype == np.float32
    assert float(REF.min()) >= 0.0
    assert float(REF.max()) > 0.9


@pytest.mark.parametrize("name", sorted(LOSSLESS))
def test_lossless_formats_match_exactly(name: str) -> None:
    assert _max(LOSSLESS[name]) <= 1e-6


@pytest.mark.parametrize("name", sorted(LOSSY))
def test_lossy_formats_match_closely(name: str) -> None:
    assert _mad(LOSSY[name]) <= LOSSY_MAD


@pytest.mark.parametrize(
    "prefix", ["", "data:image/png;base64,", "data:image/png;base64,\n", "data:image/jpeg;base64,"]
)
@pytest.mark.parametrize("wrap", [0, 60, 76])
def test_base64_forms(prefix: str, wrap: int) -> None:
    text = base64.b64encode(LOSSLESS["PNG L"]).decode()
    if wrap:
        text = "\r\n".join(text[i : i + wrap] for i in range(0, len(text), wrap))
    assert _max(prefix + text) <= 1e-6
    assert _max(bytearray(LOSSLESS["PNG L"])) <= 1e-6  # raw bytes (any bytes-like)


def test_16_bit_grey_is_rescaled_not_clipped() -> None:
    """Mid-grey ink (32768/65535) on white: clipping to 8 bits would make everything white (blank)."""
    a = np.full((280, 280), 65535, dtype=np.uint16)
    b = np.asarray(REF_IMG) < 128
    a[b] = 32768
    ink = decode_image(encode(Image.fromarray(a)))
    assert float(ink.max()) == pytest.approx(1 - 32768 / 65535, abs=1e-4)
    assert float(ink.min()) == 0.0
    assert preprocess(ImageFrame(encode(Image.fromarray(a)))) is not None
    # and low 16-bit values (below 256) are not read as 8-bit white
    low = np.where(b, 0, 255).astype(np.uint16)
    assert float(decode_image(encode(Image.fromarray(low))).max()) < 0.01


_INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", sorted(_INVERSE))
def test_exif_rotated_jpeg_is_upright(orientation: int) -> None:
    stored = REF_IMG.convert("RGB").transpose(_INVERSE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    with_tag = encode(stored, "JPEG", quality=90, exif=exif.tobytes())
    without_tag = encode(stored, "JPEG", quality=90)
    assert _mad(with_tag) <= LOSSY_MAD
    assert _mad(without_tag) > 3 * LOSSY_MAD  # the tag is what made it upright


def test_cmyk_jpeg_decodes_like_rgb() -> None:
    img = Image.open(io.BytesIO(LOSSY["JPEG CMYK"]))
    assert img.mode == "CMYK"
    assert _mad(LOSSY["JPEG CMYK"]) <= LOSSY_MAD


def test_gif_first_frame_is_used() -> None:
    other = Image.new("L", REF_IMG.size, 255)
    ImageDraw.Draw(other).ellipse((60, 60, 220, 220), outline=0, width=16)
    buf = io.BytesIO()
    REF_IMG.convert("P").save(buf, "GIF", save_all=True, append_images=[other.convert("P")], duration=100)
    assert Image.open(io.BytesIO(buf.getvalue())).n_frames == 2
    assert _max(buf.getvalue()) <= 1e-6


def test_polarity_from_border_not_mean() -> None:
    """A heavy dark glyph covering most of a light canvas is still dark ink on light paper."""
    img = Image.new("L", (100, 100), 255)
    ImageDraw.Draw(img).rectangle((5, 5, 94, 94), fill=0)  # 81% dark: mean says "dark background"
    ink = decode_image(encode(img))
    assert float(ink[50, 50]) == 1.0
    assert float(ink[0, 0]) == 0.0


@pytest.mark.parametrize("bg_alpha", [0, 1, 60, 100, 127])
@pytest.mark.parametrize("ink", [(0, 0, 0), (255, 255, 255), (200, 30, 30)])
def test_translucent_canvas_reads_alpha_contrast(bg_alpha: int, ink: tuple[int, int, int]) -> None:
    """A canvas filled with a translucent colour: the background's alpha is not ink (was a bug)."""
    img = _rgba(ink, (255, 255, 255, bg_alpha))
    if bg_alpha:
        mask = np.asarray(REF_IMG) < 128
        alpha = np.where(mask, 255, bg_alpha).astype(np.uint8)
        img.putalpha(Image.fromarray(alpha))
    got = preprocess(ImageFrame(encode(img)))
    assert got is not None
    assert REF is not None
    assert float(np.abs(got - REF).mean()) <= LOSSY_MAD
