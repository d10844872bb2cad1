"""Segmentation of a written number into characters, left to right: pure and stateless per snapshot.

A strokes snapshot is grouped by what the pen drew (each stroke's point box, clipped to the canvas; a
stroke whose ink is all off the canvas is left out); a canvas image by its connected components. Both
then share one rule, :func:`group_boxes`, on bounding boxes:

1. The number's height ``H`` is the tallest box's height (a digit has at least one stroke of about its
   full height: the stem of a 1, 4, 7 or 9, the bowl of 0, 6, 8; an ink's shorter strokes are bars and
   flags). Boxes whose longer side is under :data:`MARK_FRACTION` x ``H`` are marks (dots, taps,
   stray specks), not characters: dropped.
2. Two boxes are one character when the narrower one's centre lies well inside the wider one's span
   (:data:`CENTRE_MARGIN`), or their horizontal overlap is at least :data:`OVERLAP_FRACTION` of the
   narrower one's width, each width counted as at least :data:`MIN_WIDTH_FRACTION` x ``H``. So the stem
   of a two-stroke 4 (a thin box inside the box of its other stroke) and the flag of a 5 (over its
   body) join their character, while a 1 beside a 7, or neighbours whose boxes touch or overlap by a
   few pixels, stay apart: a thin 1 must overlap its neighbour by a real share of ``H``, not just its
   own width, to join it. A stroke traced again over another joins it too (:data:`RETRACE_FRACTION`).
   Joining repeats on the joined boxes until nothing changes.
3. Then a box less tall than :data:`SHORT_FRACTION` x ``H`` and smaller than :data:`PART_AREA` x
   ``H`` squared is a part of a digit, not a whole one, and joins the neighbour it is closest to when
   their horizontal gap is at most :data:`ABUT_FRACTION` x ``H`` (closest pair first, repeated): a 7's
   serif written apart, the top of a 4 written beside its stem, a 5's flag drawn off to the right.
4. Characters are ordered by the left edge of their box.

An image character much wider than a digit (:data:`SPLIT_WIDTH`) is digits whose inks touch, which
connected components cannot tell apart; it is cut where the least ink crosses its middle half.

Each character then goes through the single-digit preprocessing unchanged
(:func:`shared.preprocess.strokes_planes` for its strokes: the raster and the pen's motion, read by the
strokes model; :func:`shared.preprocess.normalize` for its pixels), so the model sees exactly what it
would for that digit drawn alone.

The constants were chosen on numbers composed from the pen inks of the training writers only
(:mod:`shared.compose`, ``python -m model.evaluate_numbers --writers train``): a grid over the rule-2
constants on 1,500 numbers, then one over the rule-3 constants on 4,000 (two seeds, the training
writers' trained and calibration inks), each taken at the middle of the best plateau. The held-out
writers were only measured, after each step (``docs/numbers.md``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shared.decode import FloatImage, read_ink
from shared.limits import DEFAULT_LIMITS, Limits
from shared.preprocess import (
    DEFAULT_STROKE_FRACTION,
    MIN_INK_PIXELS,
    MNIST_SIDE,
    NOISE_FLOOR,
    ImageFrame,
    StrokesFrame,
    normalize,
    rasterize_strokes,
    strokes_planes,
)

MARK_FRACTION = 0.2
"""Boxes whose longer side is under this share of the number's height are marks, not characters.

The shortest whole parts of digits in the training writers' inks are the flag of a 5 and the bar of a 7
(about 0.3-0.5 of the digit's height); a dot or a tap is a pen width or two (under 0.15 of a digit
written 80 px high with a 12 px pen), and single-point dots inside some recorded digits are dropped
with them."""
OVERLAP_FRACTION = 0.3
"""Two boxes overlapping horizontally by at least this share of the narrower one's (floored) width
join one character: the parts of one digit overlap by most of the smaller one's width."""
MIN_WIDTH_FRACTION = 0.3
"""Box widths count as at least this share of the number's height when comparing overlaps, so a thin
stroke (a 1, about a pen width wide) must overlap a neighbour by 0.09 H or more to join it: a 1 whose
box overlaps a 7's by a few pixels stays a 1."""

CENTRE_MARGIN = -0.04
"""A box whose centre lies inside a wider box's span, at least this far (share of the number's height;
negative: inside) from its edges, joins it: the stem of a 4 crossing its other stroke, the flag of a 5
over its body. A 1 touching its neighbour has its centre near the neighbour's edge, not inside it."""

RETRACE_FRACTION = 0.02
"""A stroke drawn again over another (a 1 traced twice to darken it) joins it: their boxes' centres at
most this share of the number's height apart horizontally, and their heights overlapping by at least
half the shorter one's. Written neighbours' boxes are at least 0.05 H apart, their centres more."""

SHORT_FRACTION = 0.75
"""A character box less tall than this share of the number's height may be part of a digit (a 7's
serif, a 5's flag, the open top of a 4 written beside its stem: 0.1-0.6 H in the training writers'
inks; whole digits are written 0.8-1.1 H tall, as numbers are composed)."""
PART_AREA = 0.4
"""... if its box is also smaller than this share of the number's height squared: the parts above are
under 0.25 H squared; a whole digit written flat (a wide 2 or 0, 0.6 H by 1 H) is larger."""
ABUT_FRACTION = 0.15
"""A part joins its closest neighbour when their boxes are at most this share of the number's height
apart horizontally (touching or overlapping counts as 0 or less): some writers leave a gap between
a 4's open top and its stem; written neighbours are at least 0.05 H apart, most much more."""

SPLIT_WIDTH = 1.15
"""An image character wider than this share of the number's height is cut in two (see
:func:`split_touching`). Chosen on 400 PNG numbers of the training writers: digits counted right
68 % without cutting, 83.5 % at 1.1, 82.5 % at 1.15, 82 % at 1.2, 78 % at 1.3, 61 % at 0.9 (single
wide digits cut); the middle of the plateau."""

Box = tuple[float, float, float, float]
"""``(x0, y0, x1, y1)``: left, top, right, bottom, canvas px (y down)."""


@dataclass(frozen=True, slots=True)
class Character:
    """One segmented character of a number.

    Attributes:
        bbox: ``(x0, y0, x1, y1)`` of its ink, canvas px (strokes: points grown by the pen's radius and
            clipped to the canvas; images: its pixels, the right and bottom edges exclusive).
        strokes: Indices of its strokes in the frame's ``strokes`` list, ascending; empty for images.
        tensor: ``(1, P, 28, 28)`` float32 NCHW in [0, 1], the model's input for it alone (``P`` = 7 for
            strokes, 1 for images, as :func:`shared.preprocess.preprocess`), or ``None`` when its ink is
            blank by the single-digit rule (``shared.preprocess``).
    """

    bbox: Box
    strokes: tuple[int, ...]
    tensor: FloatImage | None


def group_boxes(boxes: Sequence[Box]) -> list[list[int]]:
    """Group bounding boxes into characters by the module's rule.

    Args:
        boxes: ``(x0, y0, x1, y1)`` per stroke or component, any px unit (y down), ``x1 >= x0``.

    Returns:
        Lists of indices into ``boxes``, one per character, characters ordered left to right and indices
        ascending; marks (module docstring) are in none of them. Empty for no boxes.
    """
    if not boxes:
        return []
    height = max(b[3] - b[1] for b in boxes)
    mark = MARK_FRACTION * height
    groups = [([i], b) for i, b in enumerate(boxes) if max(b[2] - b[0], b[3] - b[1]) >= mark]
    floor = MIN_WIDTH_FRACTION * height

    def overlapping(a: Box, b: Box) -> bool:
        if abs((a[0] + a[2]) - (b[0] + b[2])) / 2 <= RETRACE_FRACTION * height:
            shorter = min(a[3] - a[1], b[3] - b[1])
            if min(a[3], b[3]) - max(a[1], b[1]) >= 0.5 * shorter:
                return True
        narrow, wide = (a, b) if a[2] - a[0] < b[2] - b[0] else (b, a)
        centre, margin = (narrow[0] + narrow[2]) / 2, CENTRE_MARGIN * height
        if wide[0] - margin <= centre <= wide[2] + margin:
            return True
        overlap = min(a[2], b[2]) - max(a[0], b[0])
        return overlap >= OVERLAP_FRACTION * max(min(a[2] - a[0], b[2] - b[0]), floor)

    def join(a: int, b: int) -> None:
        (ia, ba), (ib, bb) = groups[a], groups[b]
        groups[a] = (
            sorted(ia + ib),
            (min(ba[0], bb[0]), min(ba[1], bb[1]), max(ba[2], bb[2]), max(ba[3], bb[3])),
        )
        del groups[b]

    merged = True
    while merged:
        merged = False
        for a, b in itertools.combinations(range(len(groups)), 2):
            if overlapping(groups[a][1], groups[b][1]):
                join(a, b)
                merged = True
                break

    def part(b: Box) -> bool:
        w, h = b[2] - b[0], b[3] - b[1]
        return h < SHORT_FRACTION * height and w * h < PART_AREA * height * height

    while True:  # the closest part-and-neighbour pair first
        pairs = [
            (max(groups[a][1][0], groups[b][1][0]) - min(groups[a][1][2], groups[b][1][2]), a, b)
            for a, b in itertools.permutations(range(len(groups)), 2)
            if part(groups[a][1])
        ]
        gap, a, b = min(pairs, default=(math.inf, 0, 0))
        if gap > ABUT_FRACTION * height:
            break
        join(min(a, b), max(a, b))
    return [members for members, _ in sorted(groups, key=lambda g: (g[1][0], g[1][2]))]


def segment(frame: StrokesFrame | ImageFrame, limits: Limits = DEFAULT_LIMITS) -> list[Character]:
    """Split one canvas snapshot into characters, left to right, each preprocessed as a single digit.

    Args:
        frame: A strokes or image snapshot (validated exactly as :func:`shared.preprocess.preprocess`
            validates it).
        limits: Input limits.

    Returns:
        The characters whose ink is not blank, left to right (empty for a blank canvas).

    Raises:
        shared.errors.ClientError: the frame is malformed, as for a single digit.
    """
    if isinstance(frame, StrokesFrame):
        return segment_strokes(frame.strokes, frame.width, frame.height, frame.stroke_width, limits)
    return segment_image(frame.image, limits)


def segment_strokes(
    strokes: Any, width: Any, height: Any, stroke_width: Any = None, limits: Limits = DEFAULT_LIMITS
) -> list[Character]:
    """Group a strokes snapshot into characters (:func:`group_boxes` on each stroke's point box).

    Args:
        strokes: ``[[[x, y], ...], ...]`` canvas px, y down (see :class:`shared.preprocess.StrokesFrame`).
        width: Canvas width, px.
        height: Canvas height, px.
        stroke_width: Pen diameter, px; default ``DEFAULT_STROKE_FRACTION`` (16/280) of the canvas's
            shorter side, the page's pen on its wide canvas.
        limits: Input limits.

    Returns:
        The non-blank characters, left to right, each with the indices of its strokes.

    Raises:
        InvalidStrokes, InvalidFieldType: as :func:`shared.preprocess.rasterize_strokes`.
    """
    # Validation first, on the whole frame: a blank or malformed snapshot answers as a digit frame does.
    if rasterize_strokes(strokes, width, height, stroke_width, limits) is None:
        return []
    w, h = float(width), float(height)
    # The page's pen is 16 px on its 280 px high canvas, square or wide: the default follows the shorter
    # side here (a digit frame's default follows the longer side of its square canvas).
    pen = DEFAULT_STROKE_FRACTION * min(w, h) if stroke_width is None else float(stroke_width)
    radius = pen / 2
    indices, boxes = [], []
    for i, stroke in enumerate(strokes):
        if not len(stroke):
            continue
        xy = np.asarray(stroke, dtype=np.float64)[:, :2]
        (x0, y0), (x1, y1) = xy.min(axis=0).tolist(), xy.max(axis=0).tolist()
        if x1 + radius <= 0 or y1 + radius <= 0 or x0 - radius >= w or y0 - radius >= h:
            continue  # its ink is off the canvas: nothing to read, and its points must not set the height
        indices.append(i)
        boxes.append((min(max(x0, 0.0), w), min(max(y0, 0.0), h), min(max(x1, 0.0), w), min(max(y1, 0.0), h)))
    out = []
    for group in group_boxes(boxes):
        members = [indices[g] for g in group]
        tensor = strokes_planes([strokes[i] for i in members], w, h, pen, limits)
        if tensor is None:
            continue
        x0, y0 = min(boxes[g][0] for g in group), min(boxes[g][1] for g in group)
        x1, y1 = max(boxes[g][2] for g in group), max(boxes[g][3] for g in group)
        bbox = (max(x0 - radius, 0.0), max(y0 - radius, 0.0), min(x1 + radius, w), min(y1 + radius, h))
        out.append(Character(bbox, tuple(members), tensor[None]))
    return out


def segment_image(image: bytes | str, limits: Limits = DEFAULT_LIMITS) -> list[Character]:
    """Group a canvas image's connected components into characters (:func:`group_boxes`).

    Pixels are ink when their contrast is at least :data:`shared.preprocess.NOISE_FLOOR` (the digit
    rule); components of 8-connected ink pixels with fewer than :data:`shared.preprocess.MIN_INK_PIXELS`
    pixels are noise. Each character is its components' pixels alone (other ink in its box is zeroed),
    cut where touching digits meet (:func:`split_touching`), normalized as a single digit. Images over
    ``shared.decode.MAX_WORKING_SIDE`` px are reduced when decoded, and boxes are in the reduced
    image's px.

    Args:
        image: Encoded bytes or base64 text (see :class:`shared.preprocess.ImageFrame`).
        limits: Input limits.

    Returns:
        The non-blank characters, left to right (``strokes`` empty).

    Raises:
        ClientError: as :func:`shared.decode.read_ink` (not an image, too large, truncated, ...).
    """
    source = read_ink(image, limits)
    ink = source if isinstance(source, np.ndarray) else source[1][source[0]]
    labels, count = label_components(ink >= NOISE_FLOOR)
    if count == 0:
        return []
    ys, xs = np.nonzero(labels)
    ids = labels[ys, xs]
    sizes = np.bincount(ids, minlength=count + 1)
    lo_x, lo_y = np.full(count + 1, labels.shape[1]), np.full(count + 1, labels.shape[0])
    hi_x, hi_y = np.zeros(count + 1, dtype=np.int64), np.zeros(count + 1, dtype=np.int64)
    np.minimum.at(lo_x, ids, xs)
    np.minimum.at(lo_y, ids, ys)
    np.maximum.at(hi_x, ids, xs + 1)
    np.maximum.at(hi_y, ids, ys + 1)
    kept = [c for c in range(1, count + 1) if sizes[c] >= MIN_INK_PIXELS]
    boxes: list[Box] = [(float(lo_x[c]), float(lo_y[c]), float(hi_x[c]), float(hi_y[c])) for c in kept]
    height = max((b[3] - b[1] for b in boxes), default=0.0)
    out = []
    for group in group_boxes(boxes):
        x0, y0 = int(min(boxes[g][0] for g in group)), int(min(boxes[g][1] for g in group))
        x1, y1 = int(max(boxes[g][2] for g in group)), int(max(boxes[g][3] for g in group))
        mine = np.isin(labels[y0:y1, x0:x1], [kept[g] for g in group])
        pixels = np.where(mine, ink[y0:y1, x0:x1], np.float32(0)).astype(np.float32)
        for a, b in split_touching(pixels, height):
            digit = normalize(pixels[:, a:b])
            if digit is not None:
                rows = np.flatnonzero(pixels[:, a:b].max(axis=1) >= NOISE_FLOOR)
                bbox = (float(x0 + a), float(y0 + rows[0]), float(x0 + b), float(y0 + rows[-1] + 1))
                out.append(Character(bbox, (), digit.reshape(1, 1, MNIST_SIDE, MNIST_SIDE)))
    return out


def split_touching(pixels: FloatImage, height: float) -> list[tuple[int, int]]:
    """Column ranges of the digits in one character's pixels: split where touching digits meet.

    A character wider than :data:`SPLIT_WIDTH` x the number's height is two or more digits whose inks
    touch (a single digit is at most about 1.1 times the number's height wide); it is cut at the column
    with the least ink in its middle half (where two strokes cross or meet), recursively.

    Args:
        pixels: ``(h, w)`` float32 ink of the character alone.
        height: The number's height, px.

    Returns:
        ``[(a, b), ...]``: column ranges, left to right, covering ``[0, w)``.
    """
    width = pixels.shape[1]
    lo, hi = width // 4, width - width // 4
    if width <= SPLIT_WIDTH * height or lo < 1 or hi <= lo:
        return [(0, width)]  # each cut leaves at least a quarter on both sides: depth <= log4/3(width)
    columns = (pixels >= NOISE_FLOOR).sum(axis=0)
    cut = lo + int(np.argmin(columns[lo:hi]))
    left = split_touching(pixels[:, :cut], height)
    return left + [(cut + a, cut + b) for a, b in split_touching(pixels[:, cut:], height)]


def label_components(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int32], int]:
    """Label the 8-connected components of a boolean mask (run-length union-find).

    A mask with more than :data:`MAX_RUNS` runs (noise, not handwriting) is labelled at half resolution
    (2x2 blocks with any ink), as often as needed, so its cost stays bounded; the labels are then read
    back at full resolution, ink pixels only.

    Args:
        mask: ``(H, W)`` bool, True on ink.

    Returns:
        ``(H, W)`` int32 labels (0 background, components 1..count) and the count.
    """
    height, width = mask.shape
    small, factor = mask, 1
    while True:
        runs = _runs(small)
        if len(runs[0]) <= MAX_RUNS:
            break
        h, w = small.shape
        small = (
            np.pad(small, ((0, h % 2), (0, w % 2))).reshape((h + 1) // 2, 2, (w + 1) // 2, 2).any(axis=(1, 3))
        )
        factor *= 2
    labels, count = _label_runs(*runs, small.shape)
    if factor > 1:
        labels = np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)[:height, :width] * mask
    return labels, count


MAX_RUNS = 20_000
"""Most horizontal ink runs labelled at full resolution: handwriting on a 1024 px canvas has a few
thousand (a few per row); noise has hundreds of thousands (about 1 s of Python per 100,000)."""


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[list[int], list[int], list[int]]:
    """Rows, first columns and end columns (exclusive) of the mask's horizontal runs, row by row."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)  # same row order: every run that starts also ends
    return rows.tolist(), starts.tolist(), ends.tolist()


def _label_runs(
    rows: list[int], starts: list[int], ends: list[int], shape: tuple[int, ...]
) -> tuple[npt.NDArray[np.int32], int]:
    """Union-find over runs touching in consecutive rows (8-connected), then paint the labels."""
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    prev_lo = prev_hi = cur_lo = 0
    current_row = -2
    for k, row in enumerate(rows):
        if row != current_row:
            prev_lo, prev_hi = (cur_lo, k) if row == current_row + 1 else (k, k)
            current_row, cur_lo = row, k
        s, e = starts[k], ends[k]  # run covers columns [s, e)
        while prev_lo < prev_hi and ends[prev_lo] < s:  # ends before this run (and every later one)
            prev_lo += 1
        j = prev_lo
        while j < prev_hi and starts[j] <= e:  # 8-connected: touching diagonally counts
            a, b = find(j), find(k)
            if a != b:
                parent[max(a, b)] = min(a, b)
            j += 1
    roots: dict[int, int] = {}
    labels = np.zeros(shape, dtype=np.int32)
    for k in range(len(rows)):
        label = roots.setdefault(find(k), len(roots) + 1)
        labels[rows[k], starts[k] : ends[k]] = label
    return labels, len(roots)
