"""Image format sniffing from the first bytes, and early-ending headers of the formats we accept.

Pure byte checks, no decoding: :mod:`shared.decode` uses them to name an image's format before Pillow
opens it and to tell a truncated file (``truncated_image``) from a corrupt one (``invalid_image``).
"""

from __future__ import annotations

_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
"""BMP DIB header sizes (bytes) Pillow reads: OS/2 1.x-2.x, BITMAPINFOHEADER to BITMAPV5HEADER."""


def sniff(raw: bytes) -> str | None:
    """Name the supported format whose signature ``raw`` starts with (or a prefix of), else ``None``."""
    head = raw[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"[: max(4, len(head))]):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head.startswith(b"GIF8"):
        return "GIF"
    if head.startswith(b"RIFF") and (len(head) < 12 or head[8:12] == b"WEBP"):
        return "WEBP"
    if head.startswith(b"BM") and (
        len(head) < 18 or int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES
    ):
        return "BMP"
    return None


def is_truncated(raw: bytes) -> bool:
    """Tell whether ``raw`` is a supported format cut short (inside its header or before its data).

    Walks PNG chunks up to IDAT, JPEG segments up to SOS and GIF blocks up to the first image
    descriptor; uses BMP's file size and WebP's RIFF size fields. Costs O(header size), no decoding.

    Args:
        raw: The encoded bytes.

    Returns:
        True when the data ends before the header (or the size it declares) is complete.
    """
    fmt, n = sniff(raw), len(raw)
    if fmt == "PNG":
        pos = 8
        while True:
            if pos + 8 > n:
                return True
            length = int.from_bytes(raw[pos : pos + 4], "big")
            if raw[pos + 4 : pos + 8] == b"IDAT" or length >= 1 << 31:
                return pos + 8 >= n  # the image data itself is missing
            pos += 12 + length
    if fmt == "JPEG":
        pos = 2
        while True:
            if pos + 4 > n:
                return True
            if raw[pos] != 0xFF:
                return False
            marker = raw[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
                pos += 2
                continue
            end = pos + 2 + int.from_bytes(raw[pos + 2 : pos + 4], "big")
            if end > n:
                return True
            if marker == 0xDA:  # start of scan: the header is complete; is any entropy data there?
                return end >= n
            pos = end
    if fmt == "GIF":
        if n < 13:
            return True
        flags = raw[10]
        pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        while True:
            if pos >= n:
                return True
            block = raw[pos]
            if block == 0x2C:  # image descriptor (+ local colour table) and LZW code size
                if pos + 10 > n:
                    return True
                local = raw[pos + 9]
                return pos + 11 + (3 << ((local & 7) + 1) if local & 0x80 else 0) > n
            if block != 0x21:  # not an extension: trailer or garbage
                return False
            pos += 2
            while True:
                if pos >= n:
                    return True
                size = raw[pos]
                pos += 1 + size
                if size == 0:
                    break
    if fmt == "BMP":
        if n < 18:
            return True
        declared = int.from_bytes(raw[2:6], "little")
        return n < 14 + int.from_bytes(raw[14:18], "little") or (declared > n and declared < 1 << 30)
    if fmt == "WEBP":
        return n < 12 or n < 8 + int.from_bytes(raw[4:8], "little")
    return False
