"""The pen's motion as feature planes beside the raster: which way the pen moved, where strokes begin and end.

A strokes frame carries what an image loses: the order and direction of every point. The strokes model
reads them as six planes in the same 28x28 field as the raster (stroke-direction feature maps in the
manner of DirectMap, Zhang, Bengio & Liu 2017, arXiv:1606.05763; path features beside the raster as in
Graham 2013, arXiv:1308.0371):

This module's planes 0-5 are planes 1-6 of the strokes model's input (plane 0 is the raster):

* planes 0-3, **direction**: the path is resampled every :data:`STEP_PX` field px; each piece's length
  is split over four directions by its unit vector ``(ux, uy)`` (y down), ``max(ux, 0)``, ``max(-ux, 0)``,
  ``max(uy, 0)``, ``max(-uy, 0)`` (right, left, down, up), and splatted bilinearly at its midpoint. A
  straight stroke crossing a pixel leaves about 1 in its direction's plane, as the raster leaves about 1.
* planes 4-5, **pen-down and pen-up**: a bilinear splat of 1 at each stroke's first and last point.

Every plane is clipped to [0, 1]. Timestamps are never used (clients need not send them). The points are
mapped with the exact affine map the raster was drawn with (:func:`shared.preprocess.strokes_planes`), so
the planes lie on the raster's ink.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from shared import kernels

MNIST_SIDE = kernels.MNIST_SIDE
"""Side of the field, px: the raster's."""
MOTION_PLANES = 6
"""Planes this module draws: four directions, pen-down, pen-up."""
STEP_PX = 0.5
"""Resampling step along the path, field px: half a pixel, so every pixel the path crosses is visited."""

_FIELD = MNIST_SIDE * MNIST_SIDE


def numpy_motion_planes(  # noqa: PLR0917 (the kernel's signature)
    points: npt.NDArray[np.float64],
    lengths: npt.NDArray[np.int64],
    canvas: npt.NDArray[np.float64],
    sx: float,
    sy: float,
    ox: float,
    oy: float,
) -> npt.NDArray[np.float32]:
    """Draw the six motion planes of a stroke list (numpy; :data:`motion_planes` is the public name).

    Args:
        points: ``(P, 2)`` float64 canvas px ``(x, y)``, y down, the strokes' points in drawing order.
        lengths: ``(S,)`` int64 points per stroke, each >= 1, summing to ``P``.
        canvas: ``(2,)`` float64 canvas width and height, px: motion off the canvas is not drawn, as
            the canvas does not draw that ink.
        sx: Field px per canvas px, x.
        sy: Field px per canvas px, y.
        ox: Offset, field px, x: a canvas point ``(x, y)`` lies at ``(x * sx + ox, y * sy + oy)`` in the
            field, where pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``.
        oy: Offset, field px, y.

    Returns:
        ``(6, 28, 28)`` float32 in [0, 1]: right, left, down, up, pen-down, pen-up.
    """
    ends = np.cumsum(lengths)
    starts = ends - lengths
    tips = np.concatenate([points[starts], points[ends - 1]])
    on_canvas = np.all((tips >= 0) & (tips <= canvas), axis=1)
    at: list[npt.NDArray[np.float64]] = [tips[on_canvas]]
    values: list[npt.NDArray[np.float64]] = [np.ones(int(on_canvas.sum()))]
    planes: list[npt.NDArray[np.int64]] = [np.repeat(np.array([4, 5]), len(starts))[on_canvas]]
    if len(points) > 1:
        same_stroke = np.ones(len(points) - 1, dtype=bool)
        same_stroke[ends[:-1] - 1] = False  # the jump from one stroke's end to the next one's start
        a, d = points[:-1][same_stroke], np.diff(points, axis=0)[same_stroke]
        lo, hi = _window(canvas, sx, sy, ox, oy)
        with np.errstate(all="ignore"):  # d == 0 gives inf or nan, masked below; tiny d may overflow
            ta, tb = (lo - a) / d, (hi - a) / d  # Liang-Barsky: where each segment crosses the window
        inside = np.all((d != 0) | ((a >= lo) & (a <= hi)), axis=1)
        t0 = np.max(np.where(d != 0, np.minimum(ta, tb), 0.0), axis=1, initial=0.0)
        t1 = np.min(np.where(d != 0, np.maximum(ta, tb), 1.0), axis=1, initial=1.0)
        keep = inside & (t1 > t0)
        a, d, t0, t1 = a[keep] + t0[keep, None] * d[keep], d[keep], t0[keep], t1[keep]
        d = d * (t1 - t0)[:, None]  # the part of each segment inside the window
        field = d * np.array((sx, sy))  # the pieces are cut and weighed in field px
        length = np.hypot(field[:, 0], field[:, 1])
        moving = length > 0
        a, d, field, length = a[moving], d[moving], field[moving], length[moving]
        if len(length):
            pieces = np.maximum(np.ceil(length / STEP_PX), 1).astype(np.int64)
            seg = np.repeat(np.arange(len(length)), pieces)
            first = np.repeat(np.cumsum(pieces) - pieces, pieces)
            t = (np.arange(len(seg)) - first + 0.5) / pieces[seg]
            mid = a[seg] + t[:, None] * d[seg]
            unit = field[seg] / length[seg, None]
            piece = (length / pieces)[seg]
            for plane, component in enumerate((unit[:, 0], -unit[:, 0], unit[:, 1], -unit[:, 1])):
                keep = component > 0
                at.append(mid[keep])
                values.append(piece[keep] * component[keep])
                planes.append(np.full(int(keep.sum()), plane))
    where, value, plane_of = np.concatenate(at), np.concatenate(values), np.concatenate(planes)
    return _splat_all(where * np.array((sx, sy)) + np.array((ox - 0.5, oy - 0.5)), value, plane_of)


def _splat_all(
    p: npt.NDArray[np.float64], value: npt.NDArray[np.float64], plane_of: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Bilinear splats of ``value`` at pixel-centre coordinates ``p`` (``(K, 2)``) into their planes.

    Returns:
        ``(6, 28, 28)`` float32, each plane clipped to [0, 1].
    """
    base = np.floor(p)
    frac = p - base
    col, row = base[:, 0].astype(np.int64), base[:, 1].astype(np.int64)
    fx, fy = frac[:, 0], frac[:, 1]
    flat, weights = [], []
    for dr, dc, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        r, c = row + dr, col + dc
        # Past the field's edge: cut, as the raster's ink is.
        inside = (r >= 0) & (r < MNIST_SIDE) & (c >= 0) & (c < MNIST_SIDE)
        flat.append(plane_of[inside] * _FIELD + r[inside] * MNIST_SIDE + c[inside])
        weights.append((value * w)[inside])
    out = np.bincount(np.concatenate(flat), np.concatenate(weights), minlength=MOTION_PLANES * _FIELD)
    return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(MOTION_PLANES, MNIST_SIDE, MNIST_SIDE)


def _motion_planes_loops(  # noqa: PLR0917 (a kernel: positional, typed arguments)
    points: npt.NDArray[np.float64],
    lengths: npt.NDArray[np.int64],
    canvas: npt.NDArray[np.float64],
    sx: float,
    sy: float,
    ox: float,
    oy: float,
) -> npt.NDArray[np.float32]:
    """:func:`numpy_motion_planes` as one loop nest (compiled by numba)."""
    acc = np.zeros((MOTION_PLANES, MNIST_SIDE, MNIST_SIDE), np.float64)
    width, height = canvas[0], canvas[1]
    lo, hi = _window(canvas, sx, sy, ox, oy)
    first = 0
    for n in lengths:
        last = first + n - 1
        for plane, i in ((4, first), (5, last)):
            x, y = points[i, 0], points[i, 1]
            if 0 <= x <= width and 0 <= y <= height:
                _splat_one(acc, plane, x * sx + ox - 0.5, y * sy + oy - 0.5, 1.0)
        for i in range(first, last):
            ax, ay = points[i, 0], points[i, 1]
            dx, dy = points[i + 1, 0] - ax, points[i + 1, 1] - ay
            t0, t1 = 0.0, 1.0  # Liang-Barsky: the part of the segment inside the window
            for a, d, low, high in ((ax, dx, lo[0], hi[0]), (ay, dy, lo[1], hi[1])):
                if d == 0:
                    if a < low or a > high:
                        t1 = -1.0
                else:
                    ta, tb = (low - a) / d, (high - a) / d
                    t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
            if t1 <= t0:
                continue
            ax, ay = ax + t0 * dx, ay + t0 * dy
            dx, dy = dx * (t1 - t0), dy * (t1 - t0)
            fdx, fdy = dx * sx, dy * sy
            length = math.sqrt(fdx * fdx + fdy * fdy)
            if length <= 0:
                continue
            pieces = max(math.ceil(length / STEP_PX), 1)
            piece = length / pieces
            ux, uy = fdx / length, fdy / length
            for k in range(pieces):
                t = (k + 0.5) / pieces
                mx, my = (ax + t * dx) * sx + ox - 0.5, (ay + t * dy) * sy + oy - 0.5
                if ux > 0:
                    _splat_one(acc, 0, mx, my, piece * ux)
                elif ux < 0:
                    _splat_one(acc, 1, mx, my, -piece * ux)
                if uy > 0:
                    _splat_one(acc, 2, mx, my, piece * uy)
                elif uy < 0:
                    _splat_one(acc, 3, mx, my, -piece * uy)
        first = last + 1
    out = np.empty((MOTION_PLANES, MNIST_SIDE, MNIST_SIDE), np.float32)
    for c in range(MOTION_PLANES):
        for i in range(MNIST_SIDE):
            for j in range(MNIST_SIDE):
                out[c, i, j] = min(max(acc[c, i, j], 0.0), 1.0)
    return out


def _window(
    canvas: npt.NDArray[np.float64], sx: float, sy: float, ox: float, oy: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Corners ``(lo, hi)``, canvas px, of the region whose motion is drawn.

    It is the canvas, cut to the points whose splat can reach the field (pixel-centre coordinate in
    ``(-1, 28)``). Only the path inside it is resampled, so a point far off the canvas or the field costs
    nothing.
    """
    lo = np.maximum(np.array(((-0.5 - ox) / sx, (-0.5 - oy) / sy)), 0.0)
    hi = np.minimum(np.array(((MNIST_SIDE + 0.5 - ox) / sx, (MNIST_SIDE + 0.5 - oy) / sy)), canvas)
    return lo, hi


def _splat_one(acc: npt.NDArray[np.float64], plane: int, x: float, y: float, value: float) -> None:
    """Add ``value`` at pixel-centre coordinates ``(x, y)`` of one plane with bilinear weights."""
    col, row = math.floor(x), math.floor(y)
    fx, fy = x - col, y - row
    for dr in range(2):
        r = row + dr
        if 0 <= r < MNIST_SIDE:
            wy = fy if dr else 1.0 - fy
            for dc in range(2):
                c = col + dc
                if 0 <= c < MNIST_SIDE:
                    acc[plane, r, c] += value * wy * (fx if dc else 1.0 - fx)


motion_planes = numpy_motion_planes
"""``motion_planes(points, lengths, canvas, sx, sy, ox, oy)``: the public name, compiled where numba is
installed (:func:`_motion_planes_loops`), else :func:`numpy_motion_planes`; both agree within 1e-5
(tested)."""
if kernels.BACKEND == "numba":
    _window = kernels.compile_kernel(
        "UniTuple(float64[::1], 2)(float64[::1], float64, float64, float64, float64)", _window
    )
    _splat_one = kernels.compile_kernel(
        "void(float64[:, :, ::1], int64, float64, float64, float64)", _splat_one
    )
    motion_planes = kernels.compile_kernel(
        "float32[:, :, ::1](float64[:, ::1], int64[::1], float64[::1], float64, float64, float64, float64)",
        _motion_planes_loops,
    )
