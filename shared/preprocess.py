"""MNIST-faithful preprocessing: canvas images and pen strokes to the model's 28x28 input.

MNIST's recipe (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition", section III-A; http://yann.lecun.com/exdb/mnist/): each digit is size-normalized to fit a
20x20 pixel box while preserving its aspect ratio, with grey levels from anti-aliasing, then placed in a
28x28 field so that its centre of mass sits at the field's centre. Digits are white (1.0) on black (0.0).

Both input forms end in the same steps (:func:`normalize` for images, :func:`rasterize_strokes` for
vectors produce the 20-px box; :func:`_center_by_mass` places it), so the model sees the same tensor for a
stroke list and for the PNG the browser would have rendered from it.

Blank rule (``None`` means ``no_digit``; the model is not asked):

* images: a pixel is ink when its contrast against the background (``|v - median(border)|`` on a
  0..1 scale, or ``|alpha - median(border alpha)|`` where the background is transparent) is at least
  :data:`NOISE_FLOOR` (0.15, above JPEG ringing and sensor noise); the frame is blank when the
  strongest contrast is below :data:`MIN_PEAK_CONTRAST` (0.3, "faint noise"), fewer than
  :data:`MIN_INK_PIXELS` (5) pixels are ink, or the ink's bounding box is at most
  :data:`MAX_SPECK_PX` (3) px on its longer side ("a 1-3 px speck");
* strokes: no points, every point outside the canvas, or the points' bounding box is at most
  :data:`MAX_SPECK_PX` (3) canvas px on its longer side (a tap or a speck).
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
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps, UnidentifiedImageError

from shared import errors
from shared.limits import DEFAULT_LIMITS, Limits

FloatImage: TypeAlias = npt.NDArray[np.float32]

MNIST_BOX = 20
"""Side of the box the digit's longer side is scaled to, px (LeCun et al. 1998)."""
MNIST_SIDE = 28
"""Side of the field the box is centred in by centre of mass, px (LeCun et al. 1998)."""
NOISE_FLOOR = 0.15
"""Contrast (0..1) below which a pixel counts as background: above JPEG ringing (~0.05) and noise."""
MIN_PEAK_CONTRAST = 0.3
"""A frame whose strongest contrast (0..1) is below this is faint noise, not a digit."""
MIN_INK_PIXELS = 5
"""A frame with fewer ink pixels than this is a speck."""
MAX_SPECK_PX = 3.0
"""Ink whose bounding box is at most this many px (canvas px) on its longer side is a speck or tap."""
MIN_VISIBLE_PX = 1e-3
"""Ink narrower than this (canvas px) on the canvas is invisible: blank (also keeps float32 finite)."""
DEFAULT_STROKE_FRACTION = 16 / 280
"""Default stroke width as a fraction of the canvas's longer side: 16 px on the page's 280 px canvas."""
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""Pillow decoders we accept; nothing more exotic is ever parsed."""
MAX_WORKING_SIDE = 1024
"""Images with a longer side above this (px) are box-reduced to it right after decoding (the digit ends at
20 px): bounds memory and time per request; big JPEGs are decoded at 1/2-1/8 scale by libjpeg."""
JPEG_SCAN_BUDGET = 16
"""Progressive JPEG decoding work allowed: scans x pixels <= 16 x ``max_image_pixels`` (a 4096x4096
image with 16 scans; a typical progressive colour JPEG has about 10)."""
_LARGE_DECODES = threading.BoundedSemaphore(2)
"""At most two images above :data:`MAX_WORKING_SIDE` are decoded at once (one per core here), so
concurrent requests cannot multiply the full-size buffers (~100 MB for a 4096x4096 16-bit PNG)."""
_SIMPLIFY_PX = 0.5
"""Polyline points closer than this (output px) to the previous kept point are dropped."""


@dataclass(frozen=True, slots=True)
class ImageFrame:
    """A canvas snapshot as an encoded image.

    Attributes:
        image: Raw bytes, or base64 text with or without a ``data:image/<type>;base64,`` prefix
            (whitespace and line breaks allowed). PNG, JPEG, WebP, GIF (first frame) or BMP.
    """

    image: bytes | str


@dataclass(frozen=True, slots=True)
class StrokesFrame:
    """A canvas snapshot as pen strokes.

    Attributes:
        strokes: ``[[[x, y], ...], ...]``: strokes in drawing order, points in canvas px, y down; a
            third value per point (a timestamp) is allowed and ignored.
        width: Canvas width, px, > :data:`MIN_CANVAS_PX` (1).
        height: Canvas height, px, > :data:`MIN_CANVAS_PX` (1).
        stroke_width: Pen diameter, px, > 0; default ``DEFAULT_STROKE_FRACTION * max(width, height)``.
    """

    strokes: Any
    width: Any
    height: Any
    stroke_width: Any = None


Frame: TypeAlias = ImageFrame | StrokesFrame


def preprocess(frame: Frame, limits: Limits = DEFAULT_LIMITS) -> FloatImage | None:
    """Turn one canvas snapshot into the model's input, the one path every entry point uses.

    Args:
        frame: An :class:`ImageFrame` or a :class:`StrokesFrame`.
        limits: Size limits, checked before any large allocation.

    Returns:
        ``(1, 1, 28, 28)`` float32 NCHW in [0, 1], white ink on black, centred by mass as in MNIST; or
        ``None`` when the frame holds no meaningful ink (see the module's blank rule).

    Raises:
        shared.errors.ClientError: a subclass naming what is wrong (``invalid_base64``, ``empty_image``,
            ``not_an_image``, ``invalid_image``, ``truncated_image``, ``image_too_large``,
            ``payload_too_large``, ``invalid_strokes``, ``invalid_field_type``).
    """
    if isinstance(frame, StrokesFrame):
        digit = rasterize_strokes(frame.strokes, frame.width, frame.height, frame.stroke_width, limits)
    else:
        digit = _normalize_image(frame.image, limits)
    return None if digit is None else digit.reshape(1, 1, MNIST_SIDE, MNIST_SIDE)


# --------------------------------------------------------------------------------------------- images


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
    source = _ink_source(_load(data, limits))
    if isinstance(source, np.ndarray):
        return source
    _, levels, lut = source
    return lut[levels]


def _load(data: bytes | str, limits: Limits) -> Image.Image:
    """Decode ``data`` (bytes or base64 text) to a loaded, upright Pillow image, within ``limits``.

    Raises:
        EmptyImage, PayloadTooLarge, NotAnImage, InvalidImage, TruncatedImage, ImageTooLarge,
        InvalidBase64: see :func:`decode_image`.
    """
    raw = decode_base64(data, limits) if isinstance(data, str) else bytes(data)
    if not raw:
        raise errors.EmptyImage("The image is empty.")
    if len(raw) > limits.max_encoded_bytes:
        raise errors.PayloadTooLarge(f"The image exceeds {limits.max_encoded_bytes} bytes.")
    img = _open_checked(raw, limits)
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
        if isinstance(exc, EOFError) or "truncat" in text or "end of file" in text or _is_truncated(raw):
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
        TruncatedImage: a supported format's header ends early (see :func:`_is_truncated`).
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
        if _is_truncated(raw):
            raise errors.TruncatedImage("The image data is truncated.") from exc
        if _sniff(raw) is not None:
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


_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
"""BMP DIB header sizes (bytes) Pillow reads: OS/2 1.x-2.x, BITMAPINFOHEADER to BITMAPV5HEADER."""


def _sniff(raw: bytes) -> str | None:
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


def _is_truncated(raw: bytes) -> bool:
    """Tell whether ``raw`` is a supported format cut short (inside its header or before its data).

    Walks PNG chunks up to IDAT, JPEG segments up to SOS and GIF blocks up to the first image
    descriptor; uses BMP's file size and WebP's RIFF size fields. Costs O(header size), no decoding.

    Args:
        raw: The encoded bytes.

    Returns:
        True when the data ends before the header (or the size it declares) is complete.
    """
    fmt, n = _sniff(raw), len(raw)
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


_U8_TO_UNIT = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
"""``(256,)`` float32 ``v * (1 / 255)`` per 8-bit level: what ``uint8.astype(float32) * (1 / 255)`` gives."""


InkSource: TypeAlias = tuple[Image.Image, npt.NDArray[np.uint8], FloatImage] | FloatImage
"""What :func:`_ink_source` returns: ``(band, levels, lut)`` for 8-bit images, else a float ink map."""


def _ink_source(img: Image.Image) -> InkSource:
    """Reduce a decoded image to its ink map: contrast against the canvas background, on a 0..1 scale.

    The ink is ``|grey - background grey|``; on a (semi-)transparent canvas (median border alpha < 128)
    it is ``|alpha - background alpha|`` instead, so ink of any colour works there.

    8-bit images stay 8-bit: the result is one band (as an image and an array) plus a 256-entry float32
    table, ``ink = lut[levels]``,
    so callers can crop before converting anything to float. Values are bit-identical to converting the
    whole band to float32 and computing ``|v / 255 - background|``. 16-bit and wider integer images
    (``I;16*``, ``I``) are rescaled by 1/65535, not clipped to 8 bits, and returned as a float array.

    Args:
        img: A loaded Pillow image of any mode.

    Returns:
        ``(band, levels, lut)``: an ``L`` image, the same as an ``(H, W)`` uint8 array, and a ``(256,)``
        float32 table in [0, 1]; or an ``(H, W)`` float32 ink map in [0, 1].
    """
    mode = img.mode
    if mode in ("PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    elif mode not in ("L", "LA", "RGBA") and not mode.startswith("I"):
        img = img.convert("L")  # 1, P, RGB, CMYK, YCbCr, F, ...
    mode = img.mode
    if mode in ("RGBA", "LA"):
        alpha = img.getchannel("A")
        levels = np.asarray(alpha)
        middle = _median_pair(_border(levels))
        if float(middle.mean()) < 128:  # (semi-)transparent canvas: ink is the alpha contrast
            background = _U8_TO_UNIT[middle].mean()
            return alpha, levels, np.abs(_U8_TO_UNIT - background)
        img = img.convert("L")
        mode = "L"
    if mode == "L":
        levels = np.asarray(img)
        background = _U8_TO_UNIT[_median_pair(_border(levels))].mean()
        return img, levels, np.abs(_U8_TO_UNIT - background)
    # I;16, I;16B, I;16L, I: 16-bit (PNG) or wider integers; rescale, don't clip
    grey = np.asarray(img).astype(np.float32) * np.float32(1 / 65535)
    np.clip(grey, 0.0, 1.0, out=grey)
    background = np.float32(_border_median(grey))
    grey -= background
    np.abs(grey, out=grey)
    return grey


def _border(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The one-pixel border of a 2-D array, flat (the whole array, flat, when under 3x3)."""
    if a.shape[0] < 3 or a.shape[1] < 3:
        return a.ravel()
    return np.concatenate((a[0], a[-1], a[1:-1, 0], a[1:-1, -1]))


def _median_pair(values: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The middle element (odd count) or two middle elements (even count) of ``values``, as sorted.

    ``mean()`` of them is ``np.median(values)``; because :data:`_U8_TO_UNIT` is increasing,
    ``_U8_TO_UNIT[pair].mean()`` is bit for bit ``np.median(_U8_TO_UNIT[values])`` (numpy's median is
    that same float32 mean of the same middle elements), at a fraction of the calls.
    """
    half = values.size // 2
    if values.size % 2:
        return np.partition(values, half)[half : half + 1]
    return np.partition(values, (half - 1, half))[half - 1 : half + 1]


def _border_median(a: npt.NDArray[Any]) -> float:
    """Median of the one-pixel border of a 2-D array (the canvas background), or of a flat border."""
    return float(np.median(_border(a) if a.ndim == 2 else a))


def normalize(ink: npt.NDArray[Any]) -> FloatImage | None:
    """Normalize an ink map as MNIST did: crop, scale into 20x20, centre by mass in 28x28.

    Args:
        ink: ``(H, W)`` contrast map, ink high: float in [0, 1] or uint8 in [0, 255] (an MNIST image
            is already such a map). Any size >= 1x1.

    Returns:
        ``(28, 28)`` float32 in [0, 1], or ``None`` for a blank frame (module docstring).
    """
    if ink.dtype == np.uint8:
        ink = _U8_TO_UNIT[ink]
    mask = ink >= NOISE_FLOOR
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return _normalize_crop(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _normalize_image(data: bytes | str, limits: Limits) -> FloatImage | None:
    """:func:`normalize` of :func:`decode_image`, cropping 8-bit images before any float conversion.

    Same result as ``normalize(decode_image(data, limits))`` (bit for bit); the ink's bounding box is
    found by Pillow on a thresholded 8-bit band, so only the crop is converted to float32.
    """
    source = _ink_source(_load(data, limits))
    if isinstance(source, np.ndarray):
        return normalize(source)
    _, levels, lut = source
    low, high = _ink_levels(lut.tobytes())
    if low < 0 and high > 255:
        return None
    if high > 255:
        mask = levels <= low
    elif low < 0:
        mask = levels >= high
    else:
        mask = levels <= low
        mask |= levels >= high
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return _normalize_crop(lut[levels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]])


@lru_cache(maxsize=512)
def _ink_levels(lut: bytes) -> tuple[int, int]:
    """The 8-bit levels that are ink: ``v <= low`` or ``v >= high`` (``-1`` / ``256`` for none).

    ``lut`` (float32 bytes, ``|v / 255 - background|``) falls then rises with ``v``, so the levels whose
    ink is at least :data:`NOISE_FLOOR` are a prefix and a suffix of 0..255; the result is exactly
    ``lut[v] >= NOISE_FLOOR``, found with one or two uint8 comparisons instead of a table lookup.
    """
    ink = (np.frombuffer(lut, dtype=np.float32) >= NOISE_FLOOR).tolist()
    low = -1
    while low + 1 < 256 and ink[low + 1]:
        low += 1
    high = 256
    while high - 1 > low and ink[high - 1]:
        high -= 1
    return low, high  # v - background is monotonic in float32 too, so nothing between is ink


def _normalize_crop(crop: FloatImage) -> FloatImage | None:
    """The tail of :func:`normalize`: ``crop`` is the ink map cut to the bounding box of its ink pixels."""
    peak = float(crop.max())
    if peak < MIN_PEAK_CONTRAST or max(crop.shape) <= MAX_SPECK_PX:
        return None
    mask = crop >= NOISE_FLOOR
    if np.count_nonzero(mask) < MIN_INK_PIXELS:
        return None
    crop = crop * np.float32(1 / peak)  # ink >= 0, so zeroing by multiplying with the mask is exact
    crop *= mask
    height, width = crop.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    box = np.asarray(Image.fromarray(crop, mode="F").resize(size, resample), dtype=np.float32)
    return _center_by_mass(np.clip(box, 0.0, 1.0))


# -------------------------------------------------------------------------------------------- strokes


def _number(value: Any, name: str, limits: Limits, minimum: float = 0.0) -> float:
    """Validate a positive size field (px) into a float in ``(minimum, limits.max_coordinate]``.

    Args:
        value: The field as sent (JSON number expected).
        name: Field name for the message.
        limits: ``max_coordinate`` bounds the value.
        minimum: Exclusive lower bound, px.

    Returns:
        The value as a float, px.

    Raises:
        InvalidFieldType: not an int or float (bools refused), not finite, out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.InvalidFieldType(f"'{name}' must be a number.")
    v = float(value) if isinstance(value, float) or abs(value) <= 1 << 64 else math.inf
    if not math.isfinite(v) or v <= minimum or v > limits.max_coordinate:
        raise errors.InvalidFieldType(
            f"'{name}' must be a finite number in ({minimum:g}, {limits.max_coordinate:g}]."
        )
    return v


MIN_CANVAS_PX = 1.0
"""Canvas width and height must exceed this (px); sub-pixel canvases make the vector scale overflow."""


def _stroke_arrays(strokes: Any, limits: Limits) -> list[npt.NDArray[np.float64]]:
    """Validate strokes into ``(K, 2)`` float64 arrays (empty strokes dropped)."""
    if not isinstance(strokes, list | tuple):
        raise errors.InvalidStrokes("'strokes' must be a list of strokes.")
    if len(strokes) > limits.max_strokes:
        raise errors.InvalidStrokes(f"At most {limits.max_strokes} strokes are allowed per frame.")
    arrays: list[npt.NDArray[np.float64]] = []
    total = 0
    for stroke in strokes:
        if not isinstance(stroke, list | tuple):
            raise errors.InvalidStrokes("Each stroke must be a list of [x, y] points.")
        if not stroke:
            continue
        total += len(stroke)
        if total > limits.max_points:
            raise errors.InvalidStrokes(f"At most {limits.max_points} points are allowed per frame.")
        try:
            arr = np.asarray(stroke)
        except (ValueError, TypeError, OverflowError) as exc:
            raise errors.InvalidStrokes("Each point must be a pair of numbers [x, y].") from exc
        if arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise errors.InvalidStrokes("Each point must be a pair of numbers [x, y].")
        xy = arr[:, :2].astype(np.float64)
        if not np.isfinite(xy).all() or np.abs(xy).max() > limits.max_coordinate:
            raise errors.InvalidStrokes(
                f"Point coordinates must be finite and within +-{limits.max_coordinate:g} px."
            )
        arrays.append(xy)
    return arrays


def rasterize_strokes(
    strokes: Any,
    width: Any,
    height: Any,
    stroke_width: Any = None,
    limits: Limits = DEFAULT_LIMITS,
) -> FloatImage | None:
    """Rasterize pen strokes straight into MNIST's normalized frame (no PNG round trip).

    The ink's bounding box (points grown by half the stroke width, clipped to the canvas as the canvas
    would clip it) is scaled so its longer side is 20 px, exactly as :func:`normalize` scales a cropped
    image, and the strokes are drawn there as anti-aliased round-capped, round-joined lines (coverage
    ``clip(r - d + 0.5, 0, 1)`` for distance ``d`` to the polyline and pen radius ``r``, in output px),
    so the stroke width scales with the normalization as it would on the canvas. Single points are dots.
    The box is then centred by mass in 28x28.

    Args:
        strokes: ``[[[x, y], ...], ...]`` in canvas px, y down (see :class:`StrokesFrame`).
        width: Canvas width, px, in ``(MIN_CANVAS_PX, limits.max_coordinate]``.
        height: Canvas height, px, same range.
        stroke_width: Pen diameter, px, > 0; default ``DEFAULT_STROKE_FRACTION * max(width, height)``.
        limits: ``max_strokes``, ``max_points`` and ``max_coordinate``.

    Returns:
        ``(28, 28)`` float32 in [0, 1], white ink on black; ``None`` when blank (module docstring).

    Raises:
        InvalidStrokes: malformed, non-numeric, non-finite or out-of-range points, or over the limits.
        InvalidFieldType: ``width``, ``height`` or ``stroke_width`` not a positive finite number.
    """
    w = _number(width, "width", limits, MIN_CANVAS_PX)
    h = _number(height, "height", limits, MIN_CANVAS_PX)
    if stroke_width is None:
        pen = DEFAULT_STROKE_FRACTION * max(w, h)
    else:
        pen = _number(stroke_width, "stroke_width", limits)
    arrays = _stroke_arrays(strokes, limits)
    if not arrays:
        return None
    points = np.concatenate(arrays)
    lo, hi = points.min(axis=0), points.max(axis=0)
    if float((hi - lo).max()) <= MAX_SPECK_PX:
        return None
    radius = pen / 2
    x0, y0 = max(lo[0] - radius, 0.0), max(lo[1] - radius, 0.0)
    x1, y1 = min(hi[0] + radius, w), min(hi[1] + radius, h)
    if min(x1 - x0, y1 - y0) < MIN_VISIBLE_PX:
        return None  # every point is off the canvas, or only an invisible sliver of pen is on it
    scale = MNIST_BOX / max(x1 - x0, y1 - y0)
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    # Pixel centres of the output box, in output px (x scaled like PIL's resize of the cropped box).
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    a_list, b_list = [], []
    for arr in arrays:
        p = (arr - (x0, y0)) * (sx, sy)
        p = _simplify(p)
        a_list.append(p[:-1] if len(p) > 1 else p)
        b_list.append(p[1:] if len(p) > 1 else p)
    a = np.concatenate(a_list).astype(np.float32)
    b = np.concatenate(b_list).astype(np.float32)
    box = _capsule_coverage(a, b, radius * scale, out_h, out_w)
    if not box.any():
        return None
    return _center_by_mass(box)


def _simplify(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Drop points closer than :data:`_SIMPLIFY_PX` to their predecessor (keeps both ends)."""
    if len(p) <= 2:
        return p
    step = np.hypot(*np.diff(p, axis=0).T)
    if step.min() >= _SIMPLIFY_PX:  # every step is long enough: the loop below would keep all
        return p
    keep = np.ones(len(p), dtype=bool)
    acc = 0.0
    for i, s in enumerate(step.tolist(), start=1):
        acc += s
        if acc < _SIMPLIFY_PX:
            keep[i] = False
        else:
            acc = 0.0
    keep[-1] = True
    kept: npt.NDArray[np.float64] = p[keep]
    return kept


def _capsule_coverage(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], radius: float, height: int, width: int
) -> FloatImage:
    """Anti-aliased coverage of the union of capsules (segments ``a[i]``-``b[i]``, radius ``radius``).

    Args:
        a: ``(M, 2)`` float32 segment starts, output px.
        b: ``(M, 2)`` float32 segment ends (equal to ``a`` for a dot).
        radius: Pen radius, output px.
        height: Output rows.
        width: Output columns.

    Returns:
        ``(height, width)`` float32 in [0, 1]: ``clip(radius + 0.5 - distance, 0, 1)`` per pixel centre.
    """
    gx, gy = _grid(height, width)
    ax, ay = a[:, :1], a[:, 1:]
    abx, aby = b[:, :1] - ax, b[:, 1:] - ay
    len2 = abx * abx + aby * aby
    np.maximum(len2, np.float32(1e-12), out=len2)
    dx = gx - ax  # (M, G): every segment against every pixel centre
    dy = gy - ay
    t = dx * (abx / len2)
    t += dy * (aby / len2)
    np.clip(t, 0, 1, out=t)
    dx -= t * abx
    dy -= t * aby
    dx *= dx
    dy *= dy
    dx += dy
    d = np.sqrt(dx.min(axis=0))
    cover = np.float32(radius + 0.5) - d
    np.clip(cover, 0, 1, out=cover)
    out: FloatImage = cover.reshape(height, width)
    return out


@lru_cache(maxsize=1024)
def _grid(height: int, width: int) -> tuple[FloatImage, FloatImage]:
    """Pixel-centre x and y coordinates of a ``height`` x ``width`` grid, each ``(height * width,)``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)
    return xs.ravel(), ys.ravel()


# --------------------------------------------------------------------------------------------- common


def _center_by_mass(box: FloatImage) -> FloatImage:
    """Place a normalized box in 28x28 with its centre of mass at the centre (sub-pixel, bilinear).

    Args:
        box: ``(h, w)`` float32 in [0, 1], ``max(h, w) <= 20``.

    Returns:
        ``(28, 28)`` float32 in [0, 1]; ink pushed past the field's edge is cut, as in MNIST.
    """
    h, w = box.shape
    rows, cols = box.sum(axis=1), box.sum(axis=0)
    total = float(rows.sum())
    if total <= 0:
        return np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    centre = (MNIST_SIDE - 1) / 2  # index space: pixel i covers [i, i+1), the field's centre is 13.5
    shift_y = centre - float(rows @ _INDEX[:h]) / total
    shift_x = centre - float(cols @ _INDEX[:w]) / total
    out = _shift_matrix(shift_y, h) @ box @ _shift_matrix(shift_x, w).T
    return np.clip(out, 0.0, 1.0, out=out)


_INDEX = np.arange(MNIST_SIDE, dtype=np.float32)


_INDEX_DIFF = _INDEX[:, None] - _INDEX
"""``(28, 28)`` float32 ``i - j``, exact integers."""


def _shift_matrix(shift: float, size: int) -> FloatImage:
    """``(28, size)`` bilinear weights moving index ``j`` to ``j + shift``: ``max(1 - |i - j - s|, 0)``."""
    w = _INDEX_DIFF[:, :size] - np.float32(shift)
    np.abs(w, out=w)
    np.subtract(np.float32(1), w, out=w)
    return np.maximum(w, np.float32(0), out=w)


def stack(images: Sequence[FloatImage]) -> FloatImage:
    """Stack normalized images into one batch.

    Args:
        images: ``(28, 28)`` or ``(1, 1, 28, 28)`` arrays in [0, 1] (as :func:`preprocess` returns).

    Returns:
        ``(N, 1, 28, 28)`` float32 NCHW batch, N = ``len(images)`` >= 1.
    """
    return np.stack([np.asarray(i, dtype=np.float32).reshape(1, MNIST_SIDE, MNIST_SIDE) for i in images])
