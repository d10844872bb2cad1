"""Image decoding: encoded canvas snapshots to an ink map, within limits that hold before decoding.

Accepts raw bytes or base64 text (optionally a ``data:image/...;base64,`` URL); PNG (8/16-bit, palette,
grey/RGB with or without alpha), JPEG (EXIF orientation applied; CMYK), WebP, GIF (first frame) and BMP.
The ink map is the contrast against the canvas background: ``|grey - median(border grey)|``, or the
alpha contrast where the canvas is (semi-)transparent, so every polarity and transparency works.

Limits checked before work is done: encoded size, declared width x height (decompression bombs),
progressive JPEG scans x pixels (decoding-work bombs); canvases over :data:`MAX_WORKING_SIDE` px are
reduced right after decoding, at most two at a time. :mod:`shared.preprocess` normalizes the result.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import struct
import threading
import warnings
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyspng
from PIL import Image, ImageOps, UnidentifiedImageError

from shared import errors, kernels
from shared.limits import DEFAULT_LIMITS, Limits
from shared.sniff import is_truncated, sniff

FloatImage: TypeAlias = npt.NDArray[np.float32]
"""A float32 image or ink map, values in [0, 1]."""

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""Pillow decoders we accept; nothing more exotic is ever parsed."""
MAX_WORKING_SIDE = 1024
"""Images with a longer side above this (px) are box-reduced to it right after decoding (the digit ends at
20 px): bounds memory and time per request; big JPEGs are decoded at 1/2-1/8 scale by libjpeg."""
JPEG_SCAN_BUDGET = 16
"""Progressive JPEG decoding work allowed: scans x pixels <= 16 x ``max_image_pixels`` (a 4096x4096
image with 16 scans; a typical progressive colour JPEG has about 10)."""
# Pillow warns (UserWarning) about corrupt metadata in a client's image ("Corrupt EXIF data", "Tag data
# larger than file"). Python would print each as plain text on stderr, and remember each distinct text in
# a registry that only grows. Pillow skips the bad tags either way, so the warnings tell us nothing.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

_LARGE_DECODES = threading.BoundedSemaphore(2)
"""At most two images above :data:`MAX_WORKING_SIDE` are decoded at once (one per core here), so
concurrent requests cannot multiply the full-size buffers (~100 MB for a 4096x4096 16-bit PNG)."""


def decode_base64(text: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Decode base64 image text, optionally a ``data:`` URL, tolerating whitespace and missing padding.

    Args:
        text: Base64 (standard or URL-safe alphabet), optionally prefixed ``data:image/<type>;base64,``.
        limits: ``max_encoded_bytes`` bounds the decoded size, checked on the text's length first.

    Returns:
        The decoded bytes.

    Raises:
        NotAnImage: a ``data:`` URL with a non-image media type.
        InvalidBase64: not base64, or a ``data:`` URL without ``;base64``.
        PayloadTooLarge: the decoded size would exceed ``limits.max_encoded_bytes``.
    """
    max_chars = 4 * math.ceil(limits.max_encoded_bytes / 3)
    if len(text) > 2 * max_chars + 4096:  # whitespace may at most double it; refuse before copying
        raise errors.PayloadTooLarge(f"The image exceeds {limits.max_encoded_bytes} bytes.")
    payload = text
    if text[:5].lower() == "data:":
        comma = text.find(",", 0, 256)
        if comma < 0:
            raise errors.InvalidBase64("The data URL has no comma before its data.")
        media, *params = (p.strip().lower() for p in text[5:comma].split(";"))
        if media and not media.startswith("image/"):
            raise errors.NotAnImage("The data URL's media type is not an image type.")
        if "base64" not in params:
            raise errors.InvalidBase64("The data URL must be base64 encoded (';base64,').")
        payload = text[comma + 1 :]
    payload = "".join(payload.split())
    if len(payload) > max_chars:
        raise errors.PayloadTooLarge(f"The image exceeds {limits.max_encoded_bytes} bytes.")
    if "-" in payload or "_" in payload:
        payload = payload.translate(str.maketrans("-_", "+/"))
    payload += "=" * (-len(payload) % 4)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidBase64("The image is not valid base64.") from exc
    if len(raw) > limits.max_encoded_bytes:  # the length check above allows up to 2 bytes more
        raise errors.PayloadTooLarge(f"The image exceeds {limits.max_encoded_bytes} bytes.")
    return raw


def decode_image(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> FloatImage:
    """Decode an encoded image into an ink map: contrast against the background, ink high.

    Transparency: where the background (border) is transparent or translucent (median border alpha below
    128), ink is read from alpha (its contrast against the border's alpha), so black-on-transparent and
    white-on-transparent both work. Otherwise polarity comes from the border's
    median grey level, so dark-mode canvases (light ink on dark) work like paper ones. 16-bit images are
    rescaled to 8-bit range, JPEG EXIF orientation is applied, CMYK and palette images are converted.

    Args:
        data: Encoded bytes, or base64 text (see :func:`decode_base64`).
        limits: ``max_encoded_bytes`` and ``max_image_pixels``; the pixel count comes from the header and
            is checked before decoding, so decompression bombs never allocate.

    Returns:
        ``(H, W)`` float32 in [0, 1]: ``|grey - background|`` or the alpha contrast, at the image's own
        resolution.

    Raises:
        EmptyImage, PayloadTooLarge, NotAnImage, InvalidImage, TruncatedImage, ImageTooLarge,
        InvalidBase64: see :mod:`shared.errors`.
    """
    source = read_ink(data, limits)
    if isinstance(source, np.ndarray):
        return source
    levels, lut = source
    return lut[levels]


def read_ink(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> InkSource:
    """Decode ``data`` (bytes or base64 text) within ``limits`` and reduce it to its ink (:func:`ink_source`).

    8-bit grey, RGB and RGBA PNGs up to :data:`MAX_WORKING_SIDE` px without a transparency key or EXIF
    (what a browser canvas exports) are decoded by libspng (pyspng), about twice as fast as Pillow here,
    and reduced with the same rules; the rest, and any PNG libspng refuses, go through Pillow
    (:func:`load_image`), which also names what is wrong with a broken file.

    Args:
        data: Encoded bytes, or base64 text (see :func:`decode_base64`).
        limits: Size limits, checked before decoding (see :func:`decode_image`).

    Returns:
        ``(levels, lut)``, ``(H, W)`` uint8 and ``(256,)`` float32, or an ``(H, W)`` float32 ink map
        in [0, 1] for 16-bit images (see :func:`ink_source`).

    Raises:
        EmptyImage, PayloadTooLarge, NotAnImage, InvalidImage, TruncatedImage, ImageTooLarge,
        InvalidBase64: see :func:`decode_image`.
    """
    raw = _raw_bytes(data, limits)
    img = _open_checked(raw, limits)
    pixels = _canvas_png_pixels(raw, img)
    if pixels is not None:
        return _ink_from_pixels(pixels)
    return ink_source(_load(raw, img, limits))


_CANVAS_PNG_CHANNELS = {0: 1, 2: 3, 6: 4}
"""PNG colour types (IHDR) libspng decodes for us, and their channels: grey, RGB, RGBA."""


_PILLOW_ONLY_PNG_MARKERS = (b"tRNS", b"eXIf", b"acTL", b"Raw profile type exif", b"XML:com.adobe.xmp")
"""Bytes that send a PNG to Pillow: a transparency key, EXIF or XMP (Pillow applies their orientation,
also from the text chunks ImageMagick and Adobe write) and APNG animation (Pillow shows frame 1)."""


def _canvas_png_pixels(raw: bytes, img: Image.Image) -> npt.NDArray[np.uint8] | None:
    """Decode an 8-bit grey/RGB/RGBA PNG with libspng, or return ``None`` to let Pillow handle the file.

    Returns:
        ``(H, W)`` or ``(H, W, C)`` uint8 (C = 3 or 4), as Pillow would decode it; ``None`` for other
        formats, bit depths and colour types, a side over :data:`MAX_WORKING_SIDE`, any of
        :data:`_PILLOW_ONLY_PNG_MARKERS` (a substring test: a false match only costs speed), a chunk cut
        short (:func:`_png_chunks_complete`), or any other decoding error. libspng checks every chunk's CRC
        but stops after the last scanline, so it does not verify the zlib stream's own checksum: a file
        crafted with a wrong adler32 and recomputed CRCs decodes to the pixels it holds, where Pillow
        would refuse it.

    Raises:
        TruncatedImage: The image data (IDAT's zlib stream) ends before the last row. Pillow would fill
            the missing rows with background and classify the rest.
    """
    if (
        img.format != "PNG"
        or raw[12:16] != b"IHDR"
        or raw[24] != 8
        or raw[25] not in _CANVAS_PNG_CHANNELS
        or max(img.size) > MAX_WORKING_SIDE
        or any(marker in raw for marker in _PILLOW_ONLY_PNG_MARKERS)
        or not _png_chunks_complete(raw)
    ):
        return None
    try:
        pixels: npt.NDArray[np.uint8] = pyspng.load(raw)
    except (RuntimeError, ValueError) as exc:  # pyspng's errors: Pillow will name what is wrong, except
        if "too short" in str(exc):  # a zlib stream that ends before the last row, which Pillow decodes
            raise errors.TruncatedImage("The image data is truncated.") from exc
        return None
    channels = _CANVAS_PNG_CHANNELS[raw[25]]
    shape = (img.height, img.width) if channels == 1 else (img.height, img.width, channels)
    if pixels.dtype != np.uint8 or pixels.shape != shape:
        return None
    return pixels


def _png_chunks_complete(raw: bytes) -> bool:
    """Tell whether every chunk of a PNG is whole, up to IEND or the end of the data.

    A chunk whose declared length runs past the end (a cut upload), or a partial chunk header at the
    end, makes this False. libspng stops reading after the image data, so without this walk a file cut
    after its last scanline would decode instead of giving ``truncated_image``. O(number of chunks).
    """
    n, pos = len(raw), 8
    while pos < n:
        if pos + 12 > n:
            return False
        length = int.from_bytes(raw[pos : pos + 4], "big")
        if pos + 12 + length > n:
            return False
        if raw[pos + 4 : pos + 8] == b"IEND":
            return True
        pos += 12 + length
    return True


def _ink_from_pixels(pixels: npt.NDArray[np.uint8]) -> InkSource:
    """:func:`ink_source` for decoded pixels: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8.

    Grey levels are Pillow's ``convert("L")`` of RGB(A) (ITU-R 601-2 luma, :func:`shared.kernels.luma`).
    """
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        transparent = _alpha_ink(np.ascontiguousarray(pixels[..., 3]))
        if transparent is not None:
            return transparent
    return _grey_ink(pixels if pixels.ndim == 2 else kernels.luma(pixels))


def _raw_bytes(data: bytes | str, limits: Limits) -> bytes:
    """The encoded bytes of ``data`` (base64 text decoded), checked for emptiness and size."""
    raw = decode_base64(data, limits) if isinstance(data, str) else bytes(data)
    if not raw:
        raise errors.EmptyImage("The image is empty.")
    if len(raw) > limits.max_encoded_bytes:
        raise errors.PayloadTooLarge(f"The image exceeds {limits.max_encoded_bytes} bytes.")
    return raw


def load_image(data: bytes | str, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    """Decode ``data`` (bytes or base64 text) to a loaded, upright Pillow image, within ``limits``.

    Args:
        data: Encoded bytes, or base64 text (see :func:`decode_base64`).
        limits: Size limits, checked before decoding (see :func:`decode_image`).

    Returns:
        The loaded image, EXIF orientation applied, sides at most :data:`MAX_WORKING_SIDE` px.

    Raises:
        EmptyImage, PayloadTooLarge, NotAnImage, InvalidImage, TruncatedImage, ImageTooLarge,
        InvalidBase64: see :func:`decode_image`.
    """
    raw = _raw_bytes(data, limits)
    return _load(raw, _open_checked(raw, limits), limits)


def _load(raw: bytes, img: Image.Image, limits: Limits) -> Image.Image:
    """Load the lazily opened ``img`` of ``raw``: EXIF orientation, JPEG work bound, large-image shrink."""
    width, height = img.size
    large = max(width, height) > MAX_WORKING_SIDE
    if img.format == "JPEG":
        # Progressive JPEGs cost one pass over the image per scan: bound scans x pixels, not just pixels.
        # 0xFFDA (start of scan) cannot occur inside entropy-coded data (0xFF is stuffed as 0xFF00).
        if raw.count(b"\xff\xda") * width * height > JPEG_SCAN_BUDGET * limits.max_image_pixels:
            raise errors.ImageTooLarge("The JPEG needs too much decoding work (progressive scans x pixels).")
        if large:  # let libjpeg decode at 1/2, 1/4 or 1/8 scale: less memory and time
            scale = MAX_WORKING_SIDE / max(width, height)
            img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    try:
        with _LARGE_DECODES if large else contextlib.nullcontext():
            if img.format in ("JPEG", "WEBP", "PNG") and img.getexif().get(0x0112, 1) not in (1, None):
                img = ImageOps.exif_transpose(img)
            img.load()
            if large:
                img = _shrink(img)
    except errors.MnistLiveError:
        raise
    except (OSError, EOFError, ValueError, SyntaxError, TypeError, IndexError, KeyError, struct.error) as exc:
        text = str(exc).lower()
        if isinstance(exc, EOFError) or "truncat" in text or "end of file" in text or is_truncated(raw):
            raise errors.TruncatedImage("The image data is truncated.") from exc
        raise errors.InvalidImage("The image data is corrupt.") from exc
    return img


def _shrink(img: Image.Image) -> Image.Image:
    """Box-reduce a loaded image so its longer side is at most :data:`MAX_WORKING_SIDE` px.

    Area averaging, like the final 20-px resize, so ink keeps its mass. Modes ``reduce`` cannot take are
    converted first (palette keeps its transparency as alpha; 16-bit becomes 32-bit ``I``).
    """
    factor = math.ceil(max(img.size) / MAX_WORKING_SIDE)
    if factor <= 1:
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "L")
    elif img.mode.startswith("I;16"):
        img = img.convert("I")
    elif img.mode in ("1", "PA", "La", "RGBa"):
        img = img.convert("RGBA" if "A" in img.mode or "a" in img.mode else "L")
    return img.reduce(factor)


def _open_checked(raw: bytes, limits: Limits) -> Image.Image:
    """Open lazily (header only) and refuse impossible or oversized dimensions before decoding.

    Raises:
        ImageTooLarge: the header declares more than ``limits.max_image_pixels`` pixels.
        TruncatedImage: a supported format's header ends early (see :func:`shared.sniff.is_truncated`).
        InvalidImage: a supported format's header is impossible (zero width, bad bit depth, ...).
        NotAnImage: no supported format's signature.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise errors.ImageTooLarge(f"The image declares more than {limits.max_image_pixels} pixels.") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:
        if is_truncated(raw):
            raise errors.TruncatedImage("The image data is truncated.") from exc
        if sniff(raw) is not None:
            raise errors.InvalidImage("The image header is invalid (e.g. zero width).") from exc
        raise errors.NotAnImage("The data is not a supported image (PNG, JPEG, WebP, GIF or BMP).") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        raise errors.InvalidImage("The image header declares a zero width or height.")
    if width * height > limits.max_image_pixels:
        raise errors.ImageTooLarge(
            f"The image declares {width}x{height} pixels; at most {limits.max_image_pixels} are allowed."
        )
    return img


U8_TO_UNIT = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
"""``(256,)`` float32 ``v * (1 / 255)`` per 8-bit level: what ``uint8.astype(float32) * (1 / 255)`` gives."""


InkSource: TypeAlias = tuple[npt.NDArray[np.uint8], FloatImage] | FloatImage
"""What :func:`ink_source` returns: ``(levels, lut)`` for 8-bit images, else a float ink map."""


def ink_source(img: Image.Image) -> InkSource:
    """Reduce a decoded image to its ink map: contrast against the canvas background, on a 0..1 scale.

    The ink is ``|grey - background grey|``; on a (semi-)transparent canvas (median border alpha < 128)
    it is ``|alpha - background alpha|`` instead, so ink of any colour works there.

    8-bit images stay 8-bit: the result is one band plus a 256-entry float32 table,
    ``ink = lut[levels]``, so callers can crop before converting anything to float. Values are
    bit-identical to converting the whole band to float32 and computing ``|v / 255 - background|``.
    16-bit and wider integer images (``I;16*``, ``I``) are rescaled by 1/65535, not clipped to 8 bits,
    and returned as a float array.

    Args:
        img: A loaded Pillow image of any mode.

    Returns:
        ``(levels, lut)``: an ``(H, W)`` uint8 array and a ``(256,)`` float32 table in [0, 1]; or an
        ``(H, W)`` float32 ink map in [0, 1].
    """
    mode = img.mode
    if mode in ("PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    elif mode not in ("L", "LA", "RGBA") and not mode.startswith("I"):
        img = img.convert("L")  # 1, P, RGB, CMYK, YCbCr, F, ...
    mode = img.mode
    if mode in ("RGBA", "LA"):
        transparent = _alpha_ink(np.asarray(img.getchannel("A")))
        if transparent is not None:
            return transparent
        img = img.convert("L")
        mode = "L"
    if mode == "L":
        return _grey_ink(np.asarray(img))
    # I;16, I;16B, I;16L, I: 16-bit (PNG) or wider integers; rescale, don't clip
    grey = np.asarray(img).astype(np.float32) * np.float32(1 / 65535)
    np.clip(grey, 0.0, 1.0, out=grey)
    background = np.float32(_border_median(grey))
    grey -= background
    np.abs(grey, out=grey)
    return grey


def _alpha_ink(alpha: npt.NDArray[np.uint8]) -> InkSource | None:
    """The alpha band as the ink source when the canvas is (semi-)transparent, else ``None``.

    The canvas counts as transparent when its border's median alpha is below 128 (half opacity).
    """
    middle = _median_pair(_border(alpha))
    if sum(middle.tolist()) >= 128 * middle.size:
        return None
    return alpha, _contrast_table(tuple(middle.tolist()))


def _grey_ink(levels: npt.NDArray[np.uint8]) -> InkSource:
    """Grey levels as the ink source: contrast against the border's median grey."""
    return levels, _contrast_table(tuple(_median_pair(_border(levels)).tolist()))


@lru_cache(maxsize=1024)
def _contrast_table(middle: tuple[int, ...]) -> FloatImage:
    """``|v / 255 - background|`` for each level ``v``, the background being the border's median.

    Args:
        middle: The border's middle level or two middle levels (:func:`_median_pair`).

    Returns:
        ``(256,)`` float32 in [0, 1], read-only (shared between calls). The background is
        ``U8_TO_UNIT[middle].mean()``, which is bit for bit ``np.median`` of the border on a 0..1 scale.
    """
    background = U8_TO_UNIT[np.array(middle)].mean()
    table: FloatImage = np.abs(U8_TO_UNIT - background)
    table.setflags(write=False)
    return table


def _border(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The one-pixel border of a 2-D array, flat (the whole array, flat, when under 3x3)."""
    if a.shape[0] < 3 or a.shape[1] < 3:
        return a.ravel()
    return np.concatenate((a[0], a[-1], a[1:-1, 0], a[1:-1, -1]))


def _median_pair(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The middle element (odd count) or two middle elements (even count) of ``values``, as sorted.

    ``mean()`` of them is ``np.median(values)``; because :data:`U8_TO_UNIT` is increasing,
    ``U8_TO_UNIT[pair].mean()`` is bit for bit ``np.median(U8_TO_UNIT[values])`` (numpy's median is
    that same float32 mean of the same middle elements), at a fraction of the calls.
    """
    half = values.size // 2
    if values.size % 2:
        return np.partition(values, half)[half : half + 1]
    return np.partition(values, (half - 1, half))[half - 1 : half + 1]


def _border_median(a: npt.NDArray[Any]) -> float:
    """Median of the one-pixel border of a 2-D array (the canvas background), or of a flat border."""
    return float(np.median(_border(a) if a.ndim == 2 else a))
