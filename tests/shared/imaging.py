"""Small helpers for building test images in memory (no files)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def grey_png(a: np.ndarray) -> bytes:
    """``(H, W)`` uint8 array as an 8-bit grayscale PNG."""
    return encode(Image.fromarray(np.asarray(a, dtype=np.uint8), mode="L"))


def canvas(value: int | tuple[int, ...] = 255, size: int = 280, mode: str = "L") -> Image.Image:
    return Image.new(mode, (size, size), value)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(
    width: int, height: int, idat: bytes = b"", bit_depth: int = 8, colour_type: int = 0
) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height``, followed by ``idat`` as its only IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )
