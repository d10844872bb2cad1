"""Stroke input validation: a frame's JSON strokes and canvas size, checked before rasterizing.

Strokes are lists of ``[x, y]`` (or ``[x, y, extra]``) points in canvas px, y down; every check raises a
taxonomy error (:mod:`shared.errors`) naming the field, never echoing the submitted data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from shared import errors
from shared.limits import Limits


def size_field(value: Any, name: str, limits: Limits, minimum: float = 0.0) -> float:
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


def stroke_points(strokes: Any, limits: Limits) -> tuple[npt.NDArray[np.float64], list[int]]:
    """Validate strokes into one ``(P, 2)`` float64 array of all points and each stroke's point count.

    Empty strokes are dropped; a third value per point (pressure, time) must be a finite number (as a
    coordinate, but with no range) and is ignored.
    Booleans are refused (numpy would read JSON ``true`` as 1 next to integers).

    The common case (every point ``[x, y]`` or every point ``[x, y, t]``, plain ints and floats, as
    JSON gives) becomes one flat list and one array; anything else takes :func:`_stroke_points_each`,
    which checks stroke by stroke and names what is wrong.
    """
    if not isinstance(strokes, list | tuple):
        raise errors.InvalidStrokes("'strokes' must be a list of strokes.")
    if len(strokes) > limits.max_strokes:
        raise errors.InvalidStrokes(f"At most {limits.max_strokes} strokes are allowed per frame.")
    flat: list[Any] = []
    lengths: list[int] = []
    widths: set[int] = set()
    for stroke in _nonempty_strokes(strokes, limits):
        try:
            widths.update(map(len, stroke))
        except TypeError:  # a point that is a number, None, ...
            return _stroke_points_each(strokes, limits)
        flat.extend(chain.from_iterable(stroke))
        lengths.append(len(stroke))
    if not lengths:
        return np.empty((0, 2)), lengths
    if len(widths) != 1 or not widths <= {2, 3} or not set(map(type, flat)) <= {int, float}:
        return _stroke_points_each(strokes, limits)
    try:
        points = np.array(flat, dtype=np.float64).reshape(-1, widths.pop())
    except OverflowError:  # an integer beyond float64
        return _stroke_points_each(strokes, limits)
    _check_third_values(points)
    xy = points[:, :2]
    _check_coordinates(xy, limits)
    return xy, lengths


def _stroke_points_each(strokes: Any, limits: Limits) -> tuple[npt.NDArray[np.float64], list[int]]:
    """:func:`stroke_points` stroke by stroke, every check repeated: any numeric type numpy reads."""
    arrays: list[npt.NDArray[Any]] = []
    lengths: list[int] = []
    for stroke in _nonempty_strokes(strokes, limits):
        try:
            arr = np.asarray(stroke)
        except (ValueError, TypeError, OverflowError) as exc:
            raise errors.InvalidStrokes("Each point must be a pair of numbers [x, y].") from exc
        if arr.dtype.kind not in "iuf" or arr.ndim != 2 or arr.shape[1] not in (2, 3):
            raise errors.InvalidStrokes("Each point must be a pair of numbers [x, y].")
        if bool in set(map(type, chain.from_iterable(stroke))):  # JSON true/false, read as 1/0 by numpy
            raise errors.InvalidStrokes("Each point must be a pair of numbers [x, y].")
        _check_third_values(arr)
        arrays.append(arr[:, :2])
        lengths.append(len(arr))
    if not arrays:
        return np.empty((0, 2)), lengths
    xy = (np.concatenate(arrays) if len(arrays) > 1 else arrays[0]).astype(np.float64)
    _check_coordinates(xy, limits)
    return xy, lengths


def _nonempty_strokes(strokes: list[Any] | tuple[Any, ...], limits: Limits) -> Iterator[Sequence[Any]]:
    """Yield each non-empty stroke, checking the strokes' types and count before any conversion.

    Raises:
        InvalidStrokes: a stroke is not a list, or the strokes hold more than ``limits.max_points``.
    """
    total = 0
    for stroke in strokes:
        if not isinstance(stroke, list | tuple):
            raise errors.InvalidStrokes("Each stroke must be a list of [x, y] points.")
        if not stroke:
            continue
        total += len(stroke)
        if total > limits.max_points:
            raise errors.InvalidStrokes(f"At most {limits.max_points} points are allowed per frame.")
        yield stroke


def _check_third_values(points: npt.NDArray[Any]) -> None:
    """Refuse a non-finite third value (NaN, infinity): every number a point holds must be finite."""
    if points.shape[1] == 3 and not np.isfinite(points[:, 2]).all():
        raise errors.InvalidStrokes("A point's third value (a timestamp) must be a finite number.")


def _check_coordinates(xy: npt.NDArray[np.float64], limits: Limits) -> None:
    """Refuse non-finite coordinates and any beyond ``+-limits.max_coordinate`` px."""
    if not np.isfinite(xy).all() or np.abs(xy).max() > limits.max_coordinate:
        raise errors.InvalidStrokes(
            f"Point coordinates must be finite and within +-{limits.max_coordinate:g} px."
        )
