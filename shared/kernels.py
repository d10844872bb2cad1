"""Pixel loops of the preprocessing, compiled with numba when it is installed, else numpy.

Each kernel is written twice, with one contract:

* **compiled** (numba, the default install): one loop nest compiled to machine code (``nopython``,
  ``nogil``: inference worker threads preprocess while the event loop runs), a few passes over the
  pixels instead of one numpy call (~3 us here) per operation. Signatures are explicit, so the kernels
  are compiled when this module is imported (about 4 s once per machine; then about 0.5 s to load from
  numba's cache beside this file or in ``NUMBA_CACHE_DIR``), never during a request.
* **numpy** (``numpy_*``): the vectorized reference, used when numba is not installed (the Lambda image
  leaves it out: the import would add about 1 s to every cold start, see infra/README.md).

:data:`BACKEND` says which one the public names are. Both agree within 1e-5 (tested), and
``tests/shared/test_golden.py`` pins either to 1e-5 of the code the model was trained on. Arguments must
have exactly the dtypes and layouts named (C-contiguous where said); :mod:`shared.preprocess` validates
and converts before calling.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

try:
    from numba import njit
except ImportError:  # the Lambda image: numpy kernels
    njit = None  # type: ignore[assignment]

MNIST_SIDE = 28
"""Side of MNIST's field, px (LeCun et al. 1998)."""
SIMPLIFY_PX = 0.5
"""Polyline points closer than this (output px, path length) to the previous kept point are dropped."""
FIELD_CENTRE = (MNIST_SIDE - 1) / 2
"""Centre of the 28x28 field in index space (pixel i covers [i, i + 1)): 13.5."""


def _capsule_coverage_loops(  # noqa: PLR0917 (a kernel: positional, typed arguments)
    points: npt.NDArray[np.float64],
    lengths: npt.NDArray[np.int64],
    x0: float,
    y0: float,
    sx: float,
    sy: float,
    radius: float,
    height: int,
    width: int,
) -> npt.NDArray[np.float32]:
    """Anti-aliased coverage of pen strokes drawn as round-capped, round-joined capsules.

    Each point ``(x, y)`` (canvas px) maps to ``((x - x0) * sx, (y - y0) * sy)`` output px. Within a
    stroke, a point is skipped while the path since the last kept point is shorter than
    :data:`SIMPLIFY_PX` (both ends are always kept); a one-point stroke is a dot. Pixel ``(i, j)`` has
    its centre at ``(j + 0.5, i + 0.5)`` and coverage ``clip(radius + 0.5 - d, 0, 1)``, ``d`` its
    distance to the nearest segment (each segment only visits the pixels within its reach).

    Args:
        points: ``(P, 2)`` float64 canvas px, strokes concatenated, P >= 1.
        lengths: ``(S,)`` int64 points per stroke, each >= 1, summing to P.
        x0: Left edge of the ink's bounding box, canvas px.
        y0: Top edge, canvas px.
        sx: Horizontal scale, output px per canvas px.
        sy: Vertical scale, output px per canvas px.
        radius: Pen radius, output px, >= 0.
        height: Output rows, >= 1.
        width: Output columns, >= 1.

    Returns:
        ``(height, width)`` float32 in [0, 1].
    """
    n_points = points.shape[0]
    p = np.empty((n_points, 2), np.float64)  # output px
    for i in range(n_points):
        p[i, 0] = (points[i, 0] - x0) * sx
        p[i, 1] = (points[i, 1] - y0) * sy
    n_strokes = lengths.shape[0]
    seg = np.empty((n_points + n_strokes, 4), np.float32)  # segments: ax, ay, bx, by
    m = 0
    first = 0
    for k in range(n_strokes):
        last = first + lengths[k] - 1
        if last == first:
            seg[m, 0] = seg[m, 2] = p[first, 0]
            seg[m, 1] = seg[m, 3] = p[first, 1]
            m += 1
        kept = first
        acc = 0.0
        for i in range(first + 1, last + 1):
            acc += math.hypot(p[i, 0] - p[i - 1, 0], p[i, 1] - p[i - 1, 1])
            if acc >= SIMPLIFY_PX or i == last:
                seg[m, 0] = p[kept, 0]
                seg[m, 1] = p[kept, 1]
                seg[m, 2] = p[i, 0]
                seg[m, 3] = p[i, 1]
                m += 1
                kept = i
                acc = 0.0
        first = last + 1

    reach = np.float32(radius + 0.5)
    best = np.full((height, width), np.inf, np.float32)  # squared distance to the nearest segment
    for s in range(m):
        ax, ay, bx, by = seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]
        abx = bx - ax
        aby = by - ay
        len2 = max(abx * abx + aby * aby, np.float32(1e-12))
        ux = abx / len2
        uy = aby / len2
        # pixel centres within reach of the segment's bounding box (a superset of those within reach)
        c0 = max(math.floor(min(ax, bx) - reach - 0.5), 0)
        c1 = min(math.ceil(max(ax, bx) + reach + 0.5), width)
        r0 = max(math.floor(min(ay, by) - reach - 0.5), 0)
        r1 = min(math.ceil(max(ay, by) + reach + 0.5), height)
        for r in range(r0, r1):
            dy = np.float32(r) + np.float32(0.5) - ay
            for c in range(c0, c1):
                dx = np.float32(c) + np.float32(0.5) - ax
                t = min(max(dx * ux + dy * uy, np.float32(0.0)), np.float32(1.0))
                ex = dx - t * abx
                ey = dy - t * aby
                d2 = ex * ex + ey * ey
                best[r, c] = min(best[r, c], d2)

    out = np.empty((height, width), np.float32)
    for r in range(height):
        for c in range(width):
            out[r, c] = min(max(reach - np.float32(math.sqrt(best[r, c])), np.float32(0.0)), np.float32(1.0))
    return out


def _center_by_mass_loops(box: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Place a normalized box in 28x28 with its centre of mass at the field's centre (LeCun et al. 1998).

    The box is shifted by a sub-pixel amount with bilinear weights ``max(1 - |i - k - shift|, 0)`` per
    axis; ink shifted past the field's edge is cut, as in MNIST.

    Args:
        box: ``(h, w)`` float32 in [0, 1], ``h, w <= 28`` (20 on the longer side from the normalization).

    Returns:
        ``(28, 28)`` float32 in [0, 1]; all zeros when the box holds no ink.
    """
    h, w = box.shape
    total = 0.0
    row_moment = 0.0
    col_moment = 0.0
    for i in range(h):
        for j in range(w):
            v = box[i, j]
            total += v
            row_moment += v * i
            col_moment += v * j
    out = np.zeros((MNIST_SIDE, MNIST_SIDE), np.float32)
    if total <= 0:
        return out
    shift_y = FIELD_CENTRE - row_moment / total
    shift_x = FIELD_CENTRE - col_moment / total
    ky = math.floor(-shift_y)  # output row i reads rows i + ky (weight 1 - fy) and i + ky + 1 (fy)
    fy = -shift_y - ky
    kx = math.floor(-shift_x)
    fx = -shift_x - kx
    for i in range(MNIST_SIDE):
        for j in range(MNIST_SIDE):
            acc = 0.0
            for di in range(2):
                k = i + ky + di
                if 0 <= k < h:
                    wy = fy if di else 1.0 - fy
                    for dj in range(2):
                        col = j + kx + dj
                        if 0 <= col < w:
                            acc += wy * (fx if dj else 1.0 - fx) * box[k, col]
            out[i, j] = min(max(acc, 0.0), 1.0)
    return out


def _ink_extent_loops(
    levels: npt.NDArray[np.uint8], low: int, high: int
) -> tuple[int, int, int, int, int, int, int]:
    """Bounding box, count and level range of the ink pixels of an 8-bit band.

    Args:
        levels: ``(H, W)`` uint8 grey or alpha levels.
        low: Levels ``<= low`` are ink (``-1``: none).
        high: Levels ``>= high`` are ink (``256``: none).

    Returns:
        ``(r0, r1, c0, c1, count, lowest, highest)``: rows ``r0:r1`` and columns ``c0:c1`` bound the ink
        (``r1 == 0`` when there is none), ``count`` ink pixels, and the lowest and highest ink level.
    """
    height, width = levels.shape
    r0, r1, c0, c1 = height, 0, width, 0
    count = 0
    lowest, highest = 255, 0
    for r in range(height):
        row_count = 0
        for c in range(width):
            v = levels[r, c]
            if v <= low or v >= high:
                row_count += 1
                c0 = min(c0, c)
                c1 = max(c1, c + 1)
                lowest = min(lowest, v)
                highest = max(highest, v)
        if row_count:
            count += row_count
            r0 = min(r0, r)
            r1 = r + 1
    return r0, r1, c0, c1, count, int(lowest), int(highest)


def _coefficients_loops(
    in_size: int, out_size: int, bilinear: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Pillow's resampling weights (``precompute_coeffs`` in libImaging/Resample.c), for one axis.

    Output pixel ``i`` reads input pixels ``first[i] .. first[i] + count[i] - 1`` with weights
    ``k[i, :count[i]]`` (filter ``box``, support 0.5, or ``bilinear``, support 1, stretched by the
    scale when shrinking; normalized to sum 1). Returns ``(bounds, k)``, bounds ``(out, 2)`` = first, count.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = (1.0 if bilinear else 0.5) * filterscale
    ksize = math.ceil(support) * 2 + 1
    bounds = np.zeros((out_size, 2), np.int64)
    k = np.zeros((out_size, ksize), np.float64)
    ss = 1.0 / filterscale
    for i in range(out_size):
        center = (i + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - first
        total = 0.0
        for x in range(count):
            u = (x + first - center + 0.5) * ss
            box = 1.0 if -0.5 < u <= 0.5 else 0.0  # box_filter and bilinear_filter of Resample.c
            w = max(1.0 - abs(u), 0.0) if bilinear else box
            k[i, x] = w
            total += w
        if total != 0.0:
            for x in range(count):
                k[i, x] /= total
        bounds[i, 0] = first
        bounds[i, 1] = count
    return bounds, k


def _resample_loops(
    levels: npt.NDArray[np.uint8], table: npt.NDArray[np.float32], height: int, width: int, bilinear: bool
) -> npt.NDArray[np.float32]:
    """Resize ``table[levels]`` to ``(height, width)`` exactly as Pillow resizes a mode ``F`` image.

    Pillow's two passes (``ImagingResampleInner``): horizontal into float32 rows, then vertical, each
    output pixel a float64 sum of float32 pixels times float64 weights (:func:`_coefficients`),
    stored as float32. Same values as ``Image.fromarray(table[levels], "F").resize((width, height),
    BOX or BILINEAR)`` without building either image: bit for bit where Pillow was compiled without
    fused multiply-adds (as its portable wheels are), else within 1e-6 (tested).

    Args:
        levels: ``(h, w)`` uint8, any strides (a crop of a band).
        table: ``(256,)`` float32, the value of each level.
        height: Output rows, >= 1.
        width: Output columns, >= 1.
        bilinear: BILINEAR filter (growing) instead of BOX (shrinking).

    Returns:
        ``(height, width)`` float32.
    """
    in_h, in_w = levels.shape
    rows, k_rows = _coefficients(in_h, height, bilinear)
    cols, k_cols = _coefficients(in_w, width, bilinear)
    first_row = rows[0, 0]
    last_row = rows[height - 1, 0] + rows[height - 1, 1]
    temp = np.empty((last_row - first_row, width), np.float32)  # horizontal pass, rows in use only
    for r in range(first_row, last_row):
        for j in range(width):
            acc = 0.0
            for x in range(cols[j, 1]):
                acc += np.float64(table[levels[r, cols[j, 0] + x]]) * k_cols[j, x]
            temp[r - first_row, j] = acc
    out = np.empty((height, width), np.float32)
    for i in range(height):
        for j in range(width):
            acc = 0.0
            for y in range(rows[i, 1]):
                acc += np.float64(temp[rows[i, 0] - first_row + y, j]) * k_rows[i, y]
            out[i, j] = acc
    return out


def _outline_loops(box: npt.NDArray[np.float32], level: float) -> tuple[float, int]:
    """Ink mass and outline length of a resized box: what a stroke-width estimate needs.

    Args:
        box: ``(h, w)`` float32 ink >= 0, h, w >= 1.
        level: The outline is that of the pixels at or above ``float32(level * peak)``.

    Returns:
        ``(mass, edges)``: the sum of ``box`` (float64) and the number of 4-neighbour pixel edges
        between outlined pixels and the rest, the outside of the box counting as the rest
        (``edges == 0`` when the box holds no ink).
    """
    height, width = box.shape
    peak = np.float32(0.0)
    mass = 0.0
    for r in range(height):
        for c in range(width):
            v = box[r, c]
            mass += v
            peak = max(peak, v)
    if peak <= 0:
        return mass, 0
    threshold = np.float32(level * np.float64(peak))
    edges = 0
    for r in range(height):
        for c in range(width):
            inside = box[r, c] >= threshold
            up = r > 0 and box[r - 1, c] >= threshold
            left = c > 0 and box[r, c - 1] >= threshold
            edges += (inside != up) + (inside != left)
            if r == height - 1:
                edges += inside
            if c == width - 1:
                edges += inside
    return mass, edges


def _luma_loops(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Grey levels of RGB(A) pixels as Pillow's ``convert("L")`` computes them, bit for bit.

    ITU-R 601-2 luma in Pillow's fixed point (libImaging/Convert.c, ``L24``):
    ``(R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16``; alpha is ignored.

    Args:
        pixels: ``(H, W, C)`` uint8, C >= 3 (RGB or RGBA).

    Returns:
        ``(H, W)`` uint8.
    """
    height, width = pixels.shape[0], pixels.shape[1]
    out = np.empty((height, width), np.uint8)
    for r in range(height):
        for c in range(width):
            out[r, c] = (
                np.int32(pixels[r, c, 0]) * 19595
                + np.int32(pixels[r, c, 1]) * 38470
                + np.int32(pixels[r, c, 2]) * 7471
                + 0x8000
            ) >> 16
    return out


# ---------------------------------------------------------------------------------------- numpy forms


def numpy_capsule_coverage(  # noqa: PLR0917 (the same signature as the compiled kernel)
    points: npt.NDArray[np.float64],
    lengths: npt.NDArray[np.int64],
    x0: float,
    y0: float,
    sx: float,
    sy: float,
    radius: float,
    height: int,
    width: int,
) -> npt.NDArray[np.float32]:
    """:func:`capsule_coverage` with numpy: every segment against every pixel centre, ~14 passes.

    Same arguments (dtypes, units) and result (``(height, width)`` float32 in [0, 1]) as the kernel.
    """
    p = (points - np.array((x0, y0))) * np.array((sx, sy))
    starts, ends = _segments(p, lengths.tolist())
    ab = p[starts + ends].astype(np.float32)
    a, b = ab[: len(starts)], ab[len(starts) :]
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
    out: npt.NDArray[np.float32] = cover.reshape(height, width)
    return out


def _segments(p: npt.NDArray[np.float64], lengths: list[int]) -> tuple[list[int], list[int]]:
    """Segment start and end indices into ``p`` (output px) after thinning each stroke by SIMPLIFY_PX."""
    steps = np.hypot(*np.diff(p, axis=0).T).tolist() if len(p) > 1 else []
    starts: list[int] = []
    ends: list[int] = []
    first = 0
    for n in lengths:
        last = first + n - 1
        if n == 1:
            starts.append(first)
            ends.append(first)
        else:
            kept = first
            acc = 0.0
            for i in range(first + 1, last + 1):
                acc += steps[i - 1]
                if acc >= SIMPLIFY_PX or i == last:
                    starts.append(kept)
                    ends.append(i)
                    kept = i
                    acc = 0.0
        first = last + 1
    return starts, ends


@lru_cache(maxsize=1024)
def _grid(height: int, width: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Pixel-centre x and y coordinates of a ``height`` x ``width`` grid, each ``(height * width,)``."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)
    return xs.ravel(), ys.ravel()


_INDEX = np.arange(MNIST_SIDE, dtype=np.float32)
_INDEX_DIFF = _INDEX[:, None] - _INDEX
"""``(28, 28)`` float32 ``i - j``, exact integers."""


def numpy_center_by_mass(box: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """:func:`center_by_mass` with numpy: the bilinear shift as two small matrix products.

    Same argument (``(h, w)`` float32 in [0, 1]) and result (``(28, 28)`` float32 in [0, 1]) as the kernel.
    """
    h, w = box.shape
    rows, cols = box.sum(axis=1), box.sum(axis=0)
    total = float(rows.sum())
    if total <= 0:
        return np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    shift_y = FIELD_CENTRE - float(rows @ _INDEX[:h]) / total
    shift_x = FIELD_CENTRE - float(cols @ _INDEX[:w]) / total
    weights = _INDEX_DIFF - np.array([[[shift_y]], [[shift_x]]], dtype=np.float32)
    np.abs(weights, out=weights)
    np.subtract(np.float32(1), weights, out=weights)
    np.maximum(weights, np.float32(0), out=weights)
    out: npt.NDArray[np.float32] = weights[0, :, :h] @ box @ weights[1, :, :w].T
    return np.clip(out, 0.0, 1.0, out=out)


def numpy_ink_extent(
    levels: npt.NDArray[np.uint8], low: int, high: int
) -> tuple[int, int, int, int, int, int, int]:
    """:func:`ink_extent` with numpy: the same ``(r0, r1, c0, c1, count, lowest, highest)`` ints."""
    mask = levels <= low
    mask |= levels >= high
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return levels.shape[0], 0, levels.shape[1], 0, 0, 255, 0
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    ink = levels[r0:r1, c0:c1][mask[r0:r1, c0:c1]]
    return r0, r1, c0, c1, int(ink.size), int(ink.min()), int(ink.max())


def numpy_resample(
    levels: npt.NDArray[np.uint8], table: npt.NDArray[np.float32], height: int, width: int, bilinear: bool
) -> npt.NDArray[np.float32]:
    """:func:`resample` with numpy and Pillow: ``table[levels]`` resized by :func:`pillow_resize`.

    Same arguments and result (``(height, width)`` float32) as the kernel.
    """
    return pillow_resize(np.ascontiguousarray(table[levels]), height, width, bilinear)


def pillow_resize(
    crop: npt.NDArray[np.float32], height: int, width: int, bilinear: bool
) -> npt.NDArray[np.float32]:
    """Resize a float image with Pillow (mode ``F``), BILINEAR or BOX: what :func:`resample` reproduces.

    Args:
        crop: ``(h, w)`` float32, C-contiguous.
        height: Output rows, >= 1.
        width: Output columns, >= 1.
        bilinear: BILINEAR filter (growing) instead of BOX (shrinking).

    Returns:
        ``(height, width)`` float32.
    """
    resample = Image.Resampling.BILINEAR if bilinear else Image.Resampling.BOX
    image = Image.fromarray(crop, mode="F").resize((width, height), resample)
    return np.asarray(image, dtype=np.float32)


def numpy_outline(box: npt.NDArray[np.float32], level: float) -> tuple[float, int]:
    """:func:`outline` with numpy: the same ``(mass, edges)`` for the same ``(box, level)``."""
    peak = float(box.max())
    mass = float(box.sum(dtype=np.float64))
    if peak <= 0:
        return mass, 0
    mask = np.zeros((box.shape[0] + 2, box.shape[1] + 2), dtype=np.bool_)
    mask[1:-1, 1:-1] = box >= np.float32(level * peak)
    edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    return mass, int(edges)


def numpy_luma(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """:func:`luma` with numpy: ``(H, W, C>=3)`` uint8 to ``(H, W)`` uint8, the same integer formula."""
    rgb = pixels[..., :3].astype(np.int32)
    grey = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
    out: npt.NDArray[np.uint8] = (grey >> 16).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------- the public names

Kernel = Callable[..., Any]

if njit is None:
    BACKEND = "numpy"
    capsule_coverage: Kernel = numpy_capsule_coverage
    center_by_mass: Kernel = numpy_center_by_mass
    ink_extent: Kernel = numpy_ink_extent
    resample: Kernel = numpy_resample
    luma: Kernel = numpy_luma
    outline: Kernel = numpy_outline
    _coefficients: Kernel = _coefficients_loops
else:
    BACKEND = "numba"

    def compile_kernel(signatures: Any, loops: Callable[..., Any]) -> Kernel:
        """Compile ``loops`` now for ``signatures``: cached on disk, GIL released, numpy's float rules."""
        return njit(signatures, cache=True, nogil=True, error_model="numpy")(loops)  # type: ignore[no-any-return]

    _RO_C = 'Array(uint8, 2, "C", readonly=True)'  # a Pillow band through np.asarray is read-only
    capsule_coverage = compile_kernel(
        "float32[:, ::1](float64[:, ::1], int64[::1], float64, float64, float64, float64, float64, int64, int64)",  # noqa: E501
        _capsule_coverage_loops,
    )
    center_by_mass = compile_kernel("float32[:, ::1](float32[:, ::1])", _center_by_mass_loops)
    ink_extent = compile_kernel(
        [f"UniTuple(int64, 7)({a}, int64, int64)" for a in ("uint8[:, ::1]", _RO_C)], _ink_extent_loops
    )
    _coefficients = compile_kernel(
        "Tuple((int64[:, ::1], float64[:, ::1]))(int64, int64, boolean)", _coefficients_loops
    )
    resample = compile_kernel(
        [
            f"float32[:, ::1](Array(uint8, 2, {layout!r}, readonly={ro}), float32[::1], int64, int64, boolean)"  # noqa: E501
            for layout in ("C", "A")
            for ro in (False, True)
        ],
        _resample_loops,
    )
    luma = compile_kernel(
        [f"uint8[:, ::1](Array(uint8, 3, 'C', readonly={ro}))" for ro in (False, True)], _luma_loops
    )
    outline = compile_kernel(
        [f"Tuple((float64, int64))(Array(float32, 2, 'C', readonly={ro}), float64)" for ro in (False, True)],
        _outline_loops,
    )
