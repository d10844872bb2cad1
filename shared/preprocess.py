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
  :data:`MAX_SPECK_PX` (3) px on its longer side ("a 1-3 px speck") or at most :data:`TAP_FRACTION`
  (2 x 16 / 280, two widths of the page's pen) of the image's shorter side ("a tap": 32 px on the
  page's 280 px canvas);
* strokes: no points, every point outside the canvas, the points' bounding box is at most
  :data:`MAX_SPECK_PX` (3) canvas px on its longer side, or the ink's bounding box (the points grown by
  half the pen, clipped to the canvas) is at most :data:`TAP_FRACTION` of the canvas's shorter side: a
  tap with the page's pen is blank as strokes and as its PNG.

Thin-pen rule (the model sees MNIST's stroke width and contrast whatever the pen and canvas size):
strokes thinner than :data:`MIN_STROKE_PX` (2 px, MNIST's 25th percentile) in the 20 px box are drawn
at that width. Strokes frames widen the pen (:func:`rasterize_strokes`); images estimate the stroke
width of the resized box and stretch its contrast, or redraw a sub-pixel stroke from its trace
(:func:`_thicken`). Wider strokes are left as drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from shared import kernels
from shared.decode import U8_TO_UNIT, FloatImage, read_ink
from shared.limits import DEFAULT_LIMITS, Limits
from shared.rules import (
    DEFAULT_STROKE_FRACTION,
    MAX_SPECK_PX,
    MIN_INK_PIXELS,
    MIN_PEAK_CONTRAST,
    MIN_STROKE_PX,
    MIN_VISIBLE_PX,
    MNIST_BOX,
    MNIST_SIDE,
    NOISE_FLOOR,
    REDRAW_BELOW_PX,
    TAP_FRACTION,
)
from shared.strokes import STROKES_PLANES, rasterize_strokes, strokes_planes

__all__ = [  # the rules (shared.rules) and the strokes path (shared.strokes) are named here too
    "DEFAULT_STROKE_FRACTION",
    "MAX_SPECK_PX",
    "MIN_INK_PIXELS",
    "MIN_PEAK_CONTRAST",
    "MIN_STROKE_PX",
    "MIN_VISIBLE_PX",
    "MNIST_BOX",
    "MNIST_SIDE",
    "NOISE_FLOOR",
    "OUTLINE_LEVEL",
    "REDRAW_BELOW_PX",
    "REDRAW_RADIUS",
    "RIDGE_LEVEL",
    "STROKES_PLANES",
    "TAP_FRACTION",
    "Frame",
    "ImageFrame",
    "StrokesFrame",
    "normalize",
    "preprocess",
    "rasterize_strokes",
    "stack",
    "strokes_planes",
]


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
            third value per point (a timestamp) is allowed (a finite number) and ignored.
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
        ``(1, P, 28, 28)`` float32 NCHW in [0, 1], white ink on black, centred by mass as in MNIST: for an
        image ``P = 1``, the raster; for strokes ``P = 7``, the raster then the pen's motion planes
        (:func:`strokes_planes`); or ``None`` when the frame holds no meaningful ink (the module's blank
        rule). Plane 0 is always the raster the image model reads.

    Raises:
        shared.errors.ClientError: a subclass naming what is wrong (``invalid_base64``, ``empty_image``,
            ``not_an_image``, ``invalid_image``, ``truncated_image``, ``image_too_large``,
            ``payload_too_large``, ``invalid_strokes``, ``invalid_field_type``).
    """
    if isinstance(frame, StrokesFrame):
        planes = strokes_planes(frame.strokes, frame.width, frame.height, frame.stroke_width, limits)
        return None if planes is None else planes[None]
    digit = _normalize_image(frame.image, limits)
    return None if digit is None else digit.reshape(1, 1, MNIST_SIDE, MNIST_SIDE)


# --------------------------------------------------------------------------------------------- images


def normalize(ink: npt.NDArray[Any]) -> FloatImage | None:
    """Normalize an ink map as MNIST did: crop, scale into 20x20, centre by mass in 28x28.

    Args:
        ink: ``(H, W)`` contrast map, ink high: float in [0, 1] or uint8 in [0, 255] (an MNIST image
            is already such a map). Any size >= 1x1.

    Returns:
        ``(28, 28)`` float32 in [0, 1], or ``None`` for a blank frame (module docstring).
    """
    if ink.dtype == np.uint8:
        return _normalize_levels(ink, U8_TO_UNIT)
    mask = ink >= NOISE_FLOOR
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return _normalize_crop(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], ink.shape)


def _normalize_image(data: bytes | str, limits: Limits) -> FloatImage | None:
    """:func:`normalize` of :func:`decode_image`, on 8-bit levels for 8-bit images (see below)."""
    source = read_ink(data, limits)
    if isinstance(source, np.ndarray):
        return normalize(source)
    levels, lut = source
    return _normalize_levels(levels, lut)


def _normalize_levels(levels: npt.NDArray[np.uint8], lut: FloatImage) -> FloatImage | None:
    """:func:`normalize` of the ink map ``lut[levels]``, without building it (bit for bit, tested).

    The ink's bounding box, peak and pixel count are found on the 8-bit levels, and the crop is read
    through one 256-entry table that already holds ``ink / peak`` zeroed below the noise floor while it
    is resized (:func:`shared.kernels.resample`).

    Args:
        levels: ``(H, W)`` uint8 grey or alpha levels.
        lut: ``(256,)`` float32 ink per level in [0, 1], falling then rising with the level
            (``|v / 255 - background|``, or ``v / 255`` for an MNIST image).
    """
    low, high = _ink_levels(lut.tobytes())
    if low < 0 and high > 255:
        return None
    r0, r1, c0, c1, count, lowest, highest = kernels.ink_extent(np.ascontiguousarray(levels), low, high)
    if count == 0:
        return None
    # lut falls then rises with the level (_ink_levels), so the peak ink is at the extreme ink levels;
    # pixels in the crop that are not ink have less contrast than any ink pixel.
    peak = float(max(lut[lowest], lut[highest]))
    if _blank(peak, (r1 - r0, c1 - c0), levels.shape) or count < MIN_INK_PIXELS:
        return None
    table = lut * np.float32(1 / peak)  # the same float32 operations _normalize_crop does per pixel
    table *= lut >= NOISE_FLOOR
    crop = levels[r0:r1, c0:c1]
    width, height, bilinear = _box_size(r1 - r0, c1 - c0)
    box = kernels.resample(crop, table, height, width, bilinear)
    return _center(
        _thicken(box, lambda h, w: kernels.resample(crop, table, h, w, max(h, w) >= max(crop.shape)))
    )


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


def _normalize_crop(crop: FloatImage, canvas: tuple[int, ...]) -> FloatImage | None:
    """The tail of :func:`normalize`: ``crop`` is the ink map cut to the bounding box of its ink pixels.

    ``canvas`` is the ``(H, W)`` shape of the whole ink map, for the tap rule.
    """
    peak = float(crop.max())
    mask = crop >= NOISE_FLOOR
    if _blank(peak, crop.shape, canvas) or np.count_nonzero(mask) < MIN_INK_PIXELS:
        return None
    crop = crop * np.float32(1 / peak)  # ink >= 0, so zeroing by multiplying with the mask is exact
    crop *= mask
    return _fit_box(crop)


def _blank(peak: float, shape: tuple[int, ...], canvas: tuple[int, ...]) -> bool:
    """The image blank rule before counting pixels: faint noise, a speck or a tap (module docstring).

    Args:
        peak: The strongest contrast, 0..1.
        shape: ``(h, w)`` of the ink's bounding box, px.
        canvas: ``(H, W)`` of the image, px.
    """
    longer = max(shape)
    return peak < MIN_PEAK_CONTRAST or longer <= MAX_SPECK_PX or longer <= TAP_FRACTION * min(canvas)


def _fit_box(crop: FloatImage) -> FloatImage:
    """Scale ``crop`` (ink in [0, 1], cropped to its ink) so its longer side is 20 px, centre by mass.

    Shrinking averages with Pillow's BOX filter (area averaging keeps thin strokes' mass), growing
    (crops under 20 px) uses BILINEAR; the aspect ratio is kept, each side at least 1 px. Strokes
    thinner than :data:`MIN_STROKE_PX` in the box are thickened to that width (:func:`_thicken`).
    """
    width, height, bilinear = _box_size(*crop.shape)
    box = kernels.pillow_resize(crop, height, width, bilinear)
    return _center(
        _thicken(box, lambda h, w: kernels.pillow_resize(crop, h, w, max(h, w) >= max(crop.shape)))
    )


Resize: TypeAlias = Callable[[int, int], FloatImage]
"""``resize(height, width)``: the crop resized as :func:`_box_size` does (BILINEAR growing, else BOX)."""


def _thicken(box: FloatImage, resize: Resize) -> FloatImage:
    """Give a resized box MNIST's stroke width and contrast when its strokes are thinner (thin pens).

    The stroke width is estimated (:func:`_stroke_width`). At :data:`MIN_STROKE_PX` or more the box is
    returned as it is (80 % of MNIST's test images are). From :data:`REDRAW_BELOW_PX` up to it, contrast is
    stretched by ``max(MIN_STROKE_PX / width, 1 / peak)``, clipped at 1 later (:func:`_center`): the
    stroke's mass per length reaches MNIST-like and its peak full. Below, the stroke is sub-pixel and is
    redrawn at :data:`MIN_STROKE_PX` from its trace on a twice finer grid (:func:`_redraw`).

    Args:
        box: ``(h, w)`` float32 ink in [0, 1], the crop resized into the 20 px box (longer side 20).
        resize: Resizes the same crop to another size (for the finer grid).

    Returns:
        ``(h, w)`` float32, ink >= 0 (values above 1 are clipped by :func:`_center`).
    """
    stroke = _stroke_width(box)
    if stroke >= MIN_STROKE_PX:
        return box
    height, width = box.shape
    if stroke >= REDRAW_BELOW_PX:
        gain: FloatImage = box * np.float32(max(MIN_STROKE_PX / stroke, 1 / float(box.max())))
        return gain
    fine = resize(2 * height, 2 * width)
    return _redraw(fine, height, width)


OUTLINE_LEVEL = 0.25
"""The outline of a box's strokes, for :func:`_stroke_width`, is at this fraction of its peak: low enough
that a thin stroke's outline is whole where it straddles two pixels (half its level) and its crossings
double the peak (a quarter); at half the peak, thin-pen PNGs read 3x too wide at the 90th percentile."""


def _stroke_width(box: FloatImage) -> float:
    """Estimate the stroke width of a resized box, px: ``2 * mass / perimeter``.

    A stroke of width ``w`` and length ``L`` has mass ``w * L`` and perimeter about ``2 * L``. The
    perimeter is that of the pixels at or above :data:`OUTLINE_LEVEL` of the box's peak, counted as
    4-neighbour edges times ``pi / 4`` (the mean ratio of Euclidean to 4-neighbour length over
    directions). On 3,000 MNIST training images it correlates at 0.87 with mass over skeleton length
    (:data:`MIN_STROKE_PX`), reading 1.78 px at that measure's 1.71 (10th percentile) and 2.46 at 2.40
    (median); on thin pen PNGs it reads 0.06 for a 0.05 px stroke and 0.86 for 0.78.

    Args:
        box: ``(h, w)`` float32 ink in [0, 1].

    Returns:
        The width, px of the box; ``inf`` for a box without ink.
    """
    mass, edges = kernels.outline(box, OUTLINE_LEVEL)
    return math.inf if edges == 0 else float(mass) * 8 / (math.pi * edges)


RIDGE_LEVEL = 0.2
"""Pixels of the twice-finer box at or above this fraction of its peak are a thin stroke's trace: low
enough to keep a line's pixels where it straddles two (half its level) beside a crossing (twice it).
On 100 thin-pen PNGs (1-6 px pens, 280-1000 px canvases) the redrawn strokes measure 2.15-2.5 px
(:data:`MIN_STROKE_PX`'s measure) and the shipped model reads 99-100 % of them; at 0.5, 79-84 %
where a 1-2 px pen's faint straddling pixels drop out."""
REDRAW_RADIUS = 0.5 * MIN_STROKE_PX
"""Pen radius of the redrawn thin strokes, px of the box: half of :data:`MIN_STROKE_PX`. Dots at most
0.35 px from a pixel centre (the twice-finer grid's) give that pixel coverage ``1.15``, so the peak is
full; the trace's own width (up to 0.5 px) makes the strokes up to that much wider than the minimum."""


def _redraw(fine: FloatImage, height: int, width: int) -> FloatImage:
    """Redraw a thin stroke at :data:`MIN_STROKE_PX`: a round pen dot on every pixel of its trace.

    The trace (pixels of ``fine`` at or above :data:`RIDGE_LEVEL` of its peak) is scaled by
    ``(20 - MIN_STROKE_PX) / 20`` so that, with the pen, the ink's longer side is 20 px again, as
    :func:`rasterize_strokes` fits a thin pen.

    Args:
        fine: ``(2 * height, 2 * width)`` float32, the crop resized to twice the box.
        height: Rows of the box, px.
        width: Columns of the box, px.

    Returns:
        ``(h, w)`` float32 coverage in [0, 1] (:func:`shared.kernels.capsule_coverage`), each side
        ``round(side * k + MIN_STROKE_PX)`` for ``k = (20 - MIN_STROKE_PX) / 20``: 20 on the longer.
    """
    rows, cols = np.nonzero(fine >= np.float32(RIDGE_LEVEL * float(fine.max())))
    points = np.empty((rows.size, 2), dtype=np.float64)
    points[:, 0] = cols
    points[:, 1] = rows
    points += 0.5
    lengths = np.ones(rows.size, dtype=np.int64)
    k = (MNIST_BOX - MIN_STROKE_PX) / MNIST_BOX
    # fine px -> box px: (x + MIN_STROKE_PX / k) * (k / 2) = x * k / 2 + MIN_STROKE_PX / 2
    origin = -MIN_STROKE_PX / k
    out: FloatImage = kernels.capsule_coverage(
        points,
        lengths,
        origin,
        origin,
        k / 2,
        k / 2,
        REDRAW_RADIUS,
        round(height * k + MIN_STROKE_PX),
        round(width * k + MIN_STROKE_PX),
    )
    return out


def _box_size(height: int, width: int) -> tuple[int, int, bool]:
    """Output ``(width, height)`` of a crop scaled so its longer side is 20 px, and whether it grows.

    The aspect ratio is kept, each side at least 1 px; growing (crops under 20 px) uses BILINEAR,
    shrinking BOX.
    """
    scale = MNIST_BOX / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale)), scale >= 1


def _center(box: FloatImage) -> FloatImage:
    """Clip the resized box to [0, 1] and centre it by mass in 28x28."""
    out: FloatImage = kernels.center_by_mass(np.clip(box, 0.0, 1.0))
    return out


# --------------------------------------------------------------------------------------------- common


def stack(images: Sequence[FloatImage]) -> FloatImage:
    """Stack normalized images into one batch.

    Args:
        images: ``(28, 28)`` or ``(1, 1, 28, 28)`` arrays in [0, 1] (as :func:`preprocess` returns).

    Returns:
        ``(N, 1, 28, 28)`` float32 NCHW batch, N = ``len(images)`` >= 1.
    """
    return np.stack([np.asarray(i, dtype=np.float32).reshape(1, MNIST_SIDE, MNIST_SIDE) for i in images])
