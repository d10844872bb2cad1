"""Numbers composed from recorded digit inks, as a person writes them on a wide canvas.

For tests, evaluation and replay of number mode. One writer per number; 2-5 of their inks, left to
right, written at one height per number with per-digit jitter:

* the number's height ``H`` (the tallest digit's height before jitter) is uniform in
  :data:`HEIGHT_RANGE` px on a canvas :data:`CANVAS_PX` px high;
* each digit's longer side is ``H`` times a uniform factor in ``1 +- SCALE_JITTER``, its bottom on the
  baseline moved by a uniform ``+- BASELINE_JITTER x H``;
* gaps between neighbours' ink boxes are uniform in :data:`GAP_RANGE` x ``H``; in a share
  :data:`TOUCHING_SHARE` of numbers one pair of neighbours touches or overlaps slightly instead (gap
  uniform in :data:`TOUCHING_GAP_RANGE` x ``H``; the ink boxes are the points' boxes, so at gap 0 the
  inks overlap by a pen width).

Pure (numpy only); the ranges are the ones the number-mode evaluation specifies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.canvas import CANVAS_PX, PEN_WIDTH_PX
from shared.inks import Ink, Strokes, fit_to_canvas

HEIGHT_RANGE = (80.0, 160.0)
"""The number's height, px on the 280 px canvas."""
DIGITS_RANGE = (2, 5)
"""Digits per number, inclusive."""
SCALE_JITTER = 0.1
"""Each digit's size varies by up to this share of the number's height."""
BASELINE_JITTER = 0.08
"""Each digit's bottom moves up or down by up to this share of the number's height."""
GAP_RANGE = (0.05, 0.45)
"""Gap between neighbours' ink boxes, as a share of the number's height."""
TOUCHING_SHARE = 0.1
"""Share of numbers with one pair of neighbours touching or overlapping slightly."""
TOUCHING_GAP_RANGE = (-0.08, 0.0)
"""Gap of that pair, share of the height: 0 touches (points' boxes meet), -0.08 overlaps slightly."""
MARGIN = 20.0
"""Blank canvas left of the first digit and right of the last, px."""


@dataclass(frozen=True)
class ComposedNumber:
    """A number laid out on a canvas.

    Attributes:
        text: The digits written, left to right (e.g. ``"407"``).
        strokes: All strokes, canvas px (y down), in writing order (digit by digit).
        digit_strokes: For each digit, the indices of its strokes in ``strokes``.
        width: Canvas width, px. height: Canvas height, px.
        pen: Pen diameter, px.
        touching: Whether one pair of neighbours touches or overlaps.
        writer: The writer of every ink used. source: Their recording source (:attr:`Ink.source`, e.g.
            ``unipen1a-ibm``).
    """

    text: str
    strokes: Strokes
    digit_strokes: list[list[int]]
    width: int
    height: int
    pen: float
    touching: bool
    writer: str
    source: str = ""


def side_by_side(
    inks: Sequence[Ink], height: float = 150.0, gap: float = 0.3, margin: float = MARGIN
) -> ComposedNumber:
    """Inks written left to right at one height, evenly spaced: a number laid out without jitter.

    Args:
        inks: The digits, left to right.
        height: Each ink's longer side, px, on a :data:`CANVAS_PX` px high canvas.
        gap: Gap between neighbours' ink boxes, share of ``height``.
        margin: Blank canvas left and right, px.

    Returns:
        The number (pen 16 px, the page's; ``writer`` the first ink's).
    """
    placed: list[Strokes] = []
    left, top = margin, (CANVAS_PX - height) / 2
    for ink in inks:
        placed.append(fit_to_canvas(ink, height, left, top))
        left = max(p[0] for s in placed[-1] for p in s) + gap * height
    return _assemble(inks, placed, margin, pen=PEN_WIDTH_PX, touching=False)


def _assemble(
    inks: Sequence[Ink], placed: Sequence[Strokes], margin: float, *, pen: float, touching: bool
) -> ComposedNumber:
    """The number whose digits ``inks`` were laid out as ``placed`` (canvas px), the canvas fitted to them.

    Its ``writer`` and ``source`` are the first ink's.
    """
    strokes: Strokes = []
    digit_strokes: list[list[int]] = []
    for digit in placed:
        digit_strokes.append(list(range(len(strokes), len(strokes) + len(digit))))
        strokes.extend(digit)
    right = max((p[0] for s in strokes for p in s), default=margin)
    return ComposedNumber(
        text="".join(str(ink.label) for ink in inks),
        strokes=strokes,
        digit_strokes=digit_strokes,
        width=int(np.ceil(right + margin)),
        height=CANVAS_PX,
        pen=pen,
        touching=touching,
        writer=inks[0].writer if inks else "",
        source=inks[0].source if inks else "",
    )


class NumberComposer:
    """Composes numbers from one set of inks, one writer per number.

    Args:
        inks: Digit recordings (writers with at least one ink each).
        pen_range: Pen diameter range, px (uniform).
    """

    def __init__(self, inks: Sequence[Ink], pen_range: tuple[float, float]) -> None:
        by_writer: dict[str, list[Ink]] = defaultdict(list)
        for ink in inks:
            by_writer[ink.writer].append(ink)
        self.writers = sorted(by_writer)
        self.by_writer = dict(by_writer)
        self.pen_range = pen_range
        if not self.writers:
            raise ValueError("no inks to compose numbers from")

    def compose(self, rng: np.random.Generator, digits: int | None = None) -> ComposedNumber:
        """Compose one number (module docstring).

        Args:
            rng: Seeded generator.
            digits: How many digits (default uniform in :data:`DIGITS_RANGE`).

        Returns:
            The number and its canvas.
        """
        n = int(rng.integers(DIGITS_RANGE[0], DIGITS_RANGE[1] + 1)) if digits is None else digits
        writer = self.writers[int(rng.integers(len(self.writers)))]
        pool = self.by_writer[writer]
        picks = rng.choice(len(pool), size=n, replace=len(pool) < n)
        inks = [pool[int(i)] for i in picks]
        height = float(rng.uniform(*HEIGHT_RANGE))
        touching = bool(rng.random() < TOUCHING_SHARE) and n > 1
        touch_at = int(rng.integers(n - 1)) if touching else -1
        baseline = CANVAS_PX / 2 + height / 2
        placed: list[Strokes] = []
        left = MARGIN
        for k, ink in enumerate(inks):
            side = height * float(rng.uniform(1 - SCALE_JITTER, 1 + SCALE_JITTER))
            pts = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes])
            ext = pts.max(axis=0) - pts.min(axis=0)
            w, h = ext / max(float(ext.max()), 1e-9) * side
            bottom = baseline + height * float(rng.uniform(-BASELINE_JITTER, BASELINE_JITTER))
            placed.append(fit_to_canvas(ink, side, left, bottom - h))
            gap_range = TOUCHING_GAP_RANGE if k == touch_at else GAP_RANGE
            left += w + height * float(rng.uniform(*gap_range))
        pen = float(rng.uniform(*self.pen_range))
        return _assemble(inks, placed, MARGIN, pen=pen, touching=touching)
