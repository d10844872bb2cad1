"""Decompression bombs are refused from the header; big genuine canvases work."""

from __future__ import annotations

import io
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from shared import errors
from shared.decode import MAX_WORKING_SIDE, decode_image
from shared.inks import render_png
from shared.limits import Limits
from shared.preprocess import ImageFrame, StrokesFrame, preprocess
from tests.shared.imaging import png_chunk

BOMB_SIDE = 12000
MAX_SECONDS = 1.0
MAX_EXTRA_BYTES = 50 * 1024 * 1024

DIGIT = [[[60, 40], [220, 40], [120, 250]], [[90, 150], [190, 150]]]  # a "7" with a bar, 280 px canvas


def _bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A genuine 8-bit grey PNG of side x side white pixels (~140 KB; 144 MB once decoded).

    Built from repeated full-flush deflate blocks of ten rows, so it costs milliseconds to make.
    """
    rows = (b"\x00" + b"\xff" * side) * 10
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(rows) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush(zlib.Z_FINISH)
    adler = 1
    for _ in range(side // 10):
        adler = zlib.adler32(rows, adler)
    stream = b"\x78\xda" + block * (side // 10) + tail + adler.to_bytes(4, "big")
    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", stream) + png_chunk(b"IEND", b"")
    )


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS mark (Linux); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_the_bomb_is_a_genuine_png() -> None:
    """The test image is what it claims: ~100 KB, decodable at a smaller side with the same recipe."""
    bomb = _bomb_png()
    assert 80_000 <= len(bomb) <= 200_000
    small = _bomb_png(200)
    assert decode_image(small).shape == (200, 200)


def test_bomb_refused_fast_and_small() -> None:
    bomb = _bomb_png()
    native = _peak_rss_reset()
    rss0 = _rss_bytes()
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(errors.ImageTooLarge) as info:
        preprocess(ImageFrame(bomb))
    elapsed = time.perf_counter() - t0
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.code == "image_too_large"
    assert elapsed < MAX_SECONDS
    assert python_peak < MAX_EXTRA_BYTES
    if native:  # Pillow's pixel buffers are malloc'd in C, invisible to tracemalloc
        assert _peak_rss_bytes() - rss0 < MAX_EXTRA_BYTES


def test_bomb_as_base64_also_refused() -> None:
    import base64

    with pytest.raises(errors.ImageTooLarge):
        preprocess(ImageFrame("data:image/png;base64," + base64.b64encode(_bomb_png()).decode()))


@pytest.mark.parametrize(("side", "refused"), [(4096, False), (4097, True)])
def test_pixel_limit_boundary_from_the_header(side: int, refused: bool) -> None:
    """4096 x 4096 (the default limit) is allowed, one more column is not; both read from the header."""
    from tests.shared.imaging import png_with_header

    data = png_with_header(side, 4096)
    with pytest.raises(errors.ClientError) as info:
        decode_image(data)
    assert (info.value.code == "image_too_large") == refused  # allowed -> fails later, at decoding


def test_custom_pixel_limit() -> None:
    with pytest.raises(errors.ImageTooLarge):
        decode_image(render_png(DIGIT, 100, 100, 6), Limits(max_image_pixels=99 * 100))


def test_genuine_2048_canvas_works() -> None:
    scale = 2048 / 280
    strokes = [[[x * scale, y * scale] for x, y in s] for s in DIGIT]
    png = render_png(strokes, 2048, 2048, 16 * scale, supersample=1)
    assert len(png) < 1 << 20
    got = preprocess(ImageFrame(png))
    want = preprocess(StrokesFrame(DIGIT, 280, 280, 16))
    assert got is not None
    assert want is not None
    assert float(np.abs(got - want[:, :1]).mean()) <= 0.05  # the strokes' raster


def _progressive_jpeg_with_scans(side: int, extra_scans: int) -> bytes:

    img = Image.new("L", (side, side), 255)
    ImageDraw.Draw(img).line([(side // 2, side // 10), (side // 2, side * 9 // 10)], fill=0, width=side // 20)
    buf = io.BytesIO()
    img.save(buf, "JPEG", progressive=True, quality=50)
    data = buf.getvalue()
    last_scan = data[data.rindex(b"\xff\xda") : -2]
    return data[:-2] + last_scan * extra_scans + b"\xff\xd9"


def test_progressive_jpeg_scan_bomb_is_refused_before_decoding() -> None:
    """~100 repeated scans of a 4096x4096 JPEG (~240 KB) cost seconds of CPU to decode: refuse them."""
    bomb = _progressive_jpeg_with_scans(4096, 100)
    assert len(bomb) < 300_000
    start = time.perf_counter()
    with pytest.raises(errors.ImageTooLarge):
        preprocess(ImageFrame(bomb))
    assert time.perf_counter() - start < 0.5


def test_genuine_progressive_jpegs_still_work() -> None:
    for side in (280, 4096):
        out = preprocess(ImageFrame(_progressive_jpeg_with_scans(side, 0)))
        assert out is not None and out.shape == (1, 1, 28, 28)


def test_large_canvases_are_reduced_to_the_working_size() -> None:
    img = Image.new("I;16", (4096, 3000), 65535)

    ImageDraw.Draw(img).line([(2000, 300), (2000, 2700)], fill=0, width=200)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    ink = decode_image(buf.getvalue())
    assert max(ink.shape) <= MAX_WORKING_SIDE
    assert ink.max() > 0.9  # the stroke survives the box reduction at full contrast
    assert preprocess(ImageFrame(buf.getvalue())) is not None
