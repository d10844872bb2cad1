"""Pen strokes straight into the model's input: the raster (MNIST's recipe) and the pen's motion planes.

The same box, field and blank rules as images (:mod:`shared.rules`, described in :mod:`shared.preprocess`),
without a PNG round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared import kernels, motion
from shared.decode import FloatImage
from shared.limits import DEFAULT_LIMITS, Limits
from shared.rules import (
    DEFAULT_STROKE_FRACTION,
    MAX_SPECK_PX,
    MIN_STROKE_PX,
    MIN_VISIBLE_PX,
    MNIST_BOX,
    MNIST_SIDE,
    TAP_FRACTION,
)
from shared.stroke_input import MIN_CANVAS_PX, size_field, stroke_points


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
    A pen that would be thinner than :data:`MIN_STROKE_PX` in the box is widened to that (the box grows
    by the difference, unclipped, so it holds the wider ink). The box is then centred by mass in 28x28.

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
    drawn = _draw_strokes(strokes, width, height, stroke_width, limits)
    if drawn is None:
        return None
    out: FloatImage = kernels.center_by_mass(drawn.box)
    return out


def strokes_planes(
    strokes: Any,
    width: Any,
    height: Any,
    stroke_width: Any = None,
    limits: Limits = DEFAULT_LIMITS,
) -> FloatImage | None:
    """The strokes model's input: the raster of :func:`rasterize_strokes` and the pen's motion planes.

    Args:
        strokes: As :func:`rasterize_strokes`.
        width: As :func:`rasterize_strokes`.
        height: As :func:`rasterize_strokes`.
        stroke_width: As :func:`rasterize_strokes`.
        limits: As :func:`rasterize_strokes`.

    Returns:
        ``(7, 28, 28)`` float32 in [0, 1]: plane 0 is :func:`rasterize_strokes`'s raster, planes 1-6 are
        :func:`shared.motion.motion_planes` drawn with the same map from canvas to field (the box's scale
        and its shift by centre of mass); ``None`` when blank (module docstring).

    Raises:
        InvalidStrokes, InvalidFieldType: as :func:`rasterize_strokes`.
    """
    drawn = _draw_strokes(strokes, width, height, stroke_width, limits)
    if drawn is None:
        return None
    h, w = drawn.box.shape
    rows, cols = drawn.box.sum(axis=1, dtype=np.float64), drawn.box.sum(axis=0, dtype=np.float64)
    total = float(rows.sum())
    # The shift center_by_mass applies (its docstring): box coordinate u lands at u + shift in the field.
    shift_x = kernels.FIELD_CENTRE - float(cols @ np.arange(w)) / total
    shift_y = kernels.FIELD_CENTRE - float(rows @ np.arange(h)) / total
    out = np.empty((STROKES_PLANES, MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    out[0] = kernels.center_by_mass(drawn.box)
    ox, oy = shift_x - drawn.x0 * drawn.sx, shift_y - drawn.y0 * drawn.sy
    canvas = np.array((drawn.width, drawn.height))
    out[1:] = motion.motion_planes(drawn.points, drawn.lengths, canvas, drawn.sx, drawn.sy, ox, oy)
    return out


STROKES_PLANES = 1 + motion.MOTION_PLANES
"""Planes of the strokes model's input (:func:`strokes_planes`): the raster, then the motion planes."""


@dataclass(frozen=True, slots=True)
class _Drawn:
    """Strokes drawn into the 20 px box, with the canvas size (px) and the validated points.

    A canvas point ``(x, y)`` lies at ``((x - x0) * sx, (y - y0) * sy)`` in the box.
    """

    box: FloatImage
    width: float
    height: float
    points: npt.NDArray[np.float64]
    lengths: npt.NDArray[np.int64]
    x0: float
    y0: float
    sx: float
    sy: float


def _draw_strokes(strokes: Any, width: Any, height: Any, stroke_width: Any, limits: Limits) -> _Drawn | None:
    """Validate strokes and draw them into the 20 px box (:func:`rasterize_strokes` before centring)."""
    w = size_field(width, "width", limits, MIN_CANVAS_PX)
    h = size_field(height, "height", limits, MIN_CANVAS_PX)
    if stroke_width is None:
        pen = DEFAULT_STROKE_FRACTION * max(w, h)
    else:
        pen = size_field(stroke_width, "stroke_width", limits)
    points, lengths = stroke_points(strokes, limits)
    if not lengths:
        return None
    (lx, ly), (hx, hy) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    extent = max(hx - lx, hy - ly)
    if extent <= MAX_SPECK_PX:
        return None
    radius = pen / 2
    x0, y0 = max(lx - radius, 0.0), max(ly - radius, 0.0)
    x1, y1 = min(hx + radius, w), min(hy + radius, h)
    if min(x1 - x0, y1 - y0) < MIN_VISIBLE_PX:
        return None  # every point is off the canvas, or only an invisible sliver of pen is on it
    if max(x1 - x0, y1 - y0) <= TAP_FRACTION * min(w, h):
        return None  # a tap: as small on the canvas as its PNG would be (_blank)
    # Thin pens: a pen of MIN_STROKE_PX in the 20 px box covers extent * m / (20 - m) canvas px, the
    # extent measured on the canvas (a point far off it draws nothing there, and must not shrink the ink).
    shown = max(min(hx, w) - max(lx, 0.0), min(hy, h) - max(ly, 0.0))
    floor = shown * MIN_STROKE_PX / (MNIST_BOX - MIN_STROKE_PX)
    if pen < floor:  # the wider pen grows the box the canvas clipped, so the box holds all its ink
        grow = (floor - pen) / 2
        x0, y0, x1, y1 = x0 - grow, y0 - grow, x1 + grow, y1 + grow
        radius = floor / 2
    scale = MNIST_BOX / max(x1 - x0, y1 - y0)
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    # Output px per canvas px on each axis (x scaled like PIL's resize of the cropped box).
    sx, sy = out_w / (x1 - x0), out_h / (y1 - y0)
    lengths_array = np.array(lengths, dtype=np.int64)
    points = np.ascontiguousarray(points)
    box = kernels.capsule_coverage(points, lengths_array, x0, y0, sx, sy, radius * scale, out_h, out_w)
    if not box.any():
        return None
    return _Drawn(box, w, h, points, lengths_array, x0, y0, sx, sy)
