"""Replay plans: when each snapshot of a recorded ink is sent, at the writer's own pace.

The frames follow the page's sending rule (at most ``fps`` a second while the pen moves, one at each
pen-up) over the ink's recorded or estimated timestamps (:func:`ink_times_ms`, :func:`schedule_frames`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.canvas import CANVAS_PX
from shared.inks import Ink, Strokes, drawn_prefix, random_placement

DEFAULT_POINTS_PER_SECOND = 100.0
"""Pen sampling rate for inks without timestamps from sources of unknown rate, points per second."""

DEFAULT_PEN_UP_MS = 200.0
"""Time between a stroke's last point and the next stroke's first when not recorded, ms."""

SOURCES_FILE = "unipen1a_sources.json"
"""Per-source metadata looked up beside a recording (``POINTS_PER_SECOND`` per UNIPEN source)."""


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay.

    Attributes:
        concurrency: Virtual users drawing at the same time.
        fps: Most snapshots per second each user sends while drawing (the page sends ~30); pen-ups are
            never throttled.
        speed: Pen speed multiplier (2 draws twice as fast as recorded).
        seed: Seed of the canvas placement (size and position of each ink).
        points_per_second: Sampling rate per ``source`` id for inks without timestamps, points/s.
        default_points_per_second: Rate for sources not in ``points_per_second``, points/s.
        pen_up_ms: Gap between strokes when not recorded, ms (before ``speed``).
        box_range: Range of the drawn digit's longer side, canvas px.
        http_intermediate: Over HTTP, also post snapshots while drawing (one request in flight).
        timeout_s: Longest wait for the answer to an ink's final frame, seconds.
        drain_s: After a user's last ink, how long a silence ends the wait for replies still expected
            (late replies from a stateless backend), seconds.
        token: Access token (``?token=`` on WebSocket URLs, ``Authorization: Bearer`` over HTTP).
    """

    concurrency: int = 16
    fps: float = 30.0
    speed: float = 1.0
    seed: int = 0
    points_per_second: Mapping[str, float] = field(default_factory=dict)
    default_points_per_second: float = DEFAULT_POINTS_PER_SECOND
    pen_up_ms: float = DEFAULT_PEN_UP_MS
    box_range: tuple[float, float] = (90.0, 230.0)
    http_intermediate: bool = False
    timeout_s: float = 10.0
    drain_s: float = 0.5
    token: str | None = None


# ----------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedFrame:
    """One snapshot a user sends.

    Attributes:
        t_ms: Send time after the ink's first pen-down, ms.
        points: Points drawn so far (the snapshot is the first ``points`` points in drawing order).
        pen_up: True for a frame sent at a pen-up (never throttled).
    """

    t_ms: float
    points: int
    pen_up: bool


@dataclass(frozen=True)
class InkPlan:
    """An ink laid on the canvas with its timeline and the frames to send.

    Attributes:
        index: Position in the recording. label: The digit written (a number: its digits, a string).
        strokes: Canvas px, y down. times_ms: Per-point times after the first pen-down, ms, per stroke.
        frames: What to send, in order; the last one is at the final pen-up.
        width: Canvas width, px (280 px high). mode: ``"digit"``, or ``"number"`` (number mode).
    """

    index: int
    label: int | str
    strokes: Strokes
    times_ms: list[list[float]]
    frames: list[PlannedFrame]
    width: float = CANVAS_PX
    mode: str = "digit"

    @property
    def total_points(self) -> int:
        """Points in the whole ink."""
        return sum(len(s) for s in self.strokes)

    @property
    def duration_ms(self) -> float:
        """Time from first pen-down to last pen-up, ms."""
        return self.times_ms[-1][-1] if self.times_ms and self.times_ms[-1] else 0.0

    def snapshot(self, points: int) -> Strokes:
        """The first ``points`` points, as strokes (canvas px, y down)."""
        return drawn_prefix(self.strokes, points)


def load_source_rates(path: str | Path) -> dict[str, float]:
    """Read ``POINTS_PER_SECOND`` per source from a ``unipen1a_sources.json`` file.

    A source with several header values (``unipen1a-syn``: 100 and 200) gets the most common one, the
    lowest on a tie.

    Args:
        path: The JSON file (``{source: {"header_values": [{"POINTS_PER_SECOND": "100", ...}]}}``).

    Returns:
        Points per second by source id.

    Raises:
        OSError: the file cannot be read. ValueError: it is not in that format.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object keyed by source id")
    rates: dict[str, float] = {}
    for source, meta in data.items():
        values = [
            float(h["POINTS_PER_SECOND"])
            for h in (meta.get("header_values") or [])
            if isinstance(h, dict) and "POINTS_PER_SECOND" in h
        ]
        if values:
            counts = Counter(values)
            rates[source] = min(counts, key=lambda v: (-counts[v], v))
    return rates


def ink_times_ms(ink: Ink, options: ReplayOptions) -> list[list[float]]:
    """Per-point times of an ink after its first pen-down, ms, per stroke (already divided by speed).

    Recorded timestamps (``ink.times``) are used when present and consistent with the strokes; otherwise
    points are evenly spaced at the source's rate and strokes are separated by ``options.pen_up_ms``.

    Args:
        ink: The recording.
        options: Rates, pen-up gap and speed.

    Returns:
        One list of non-decreasing times per stroke, starting at 0.
    """
    if len(ink.times) == len(ink.strokes) and all(
        len(t) == len(s) for t, s in zip(ink.times, ink.strokes, strict=True)
    ):
        t0 = float(ink.times[0][0]) if ink.times and ink.times[0] else 0.0
        out: list[list[float]] = []
        last = 0.0
        for stroke_times in ink.times:
            row = []
            for t in stroke_times:
                last = max(last, (float(t) - t0) / options.speed)  # tolerate clock jitter
                row.append(last)
            out.append(row)
        return out
    rate = options.points_per_second.get(ink.source, options.default_points_per_second)
    step = 1000.0 / rate / options.speed
    gap = options.pen_up_ms / options.speed
    out = []
    cursor = 0.0
    for k, stroke in enumerate(ink.strokes):
        if k:
            cursor += gap
        out.append([cursor + j * step for j in range(len(stroke))])
        cursor = out[-1][-1] if out[-1] else cursor
    return out


def schedule_frames(times_ms: Sequence[Sequence[float]], fps: float) -> list[PlannedFrame]:
    """The snapshots a page sends for this timeline (``site/app.js``'s throttle).

    A change sends a frame at once if the previous frame left at least ``1/fps`` s ago; otherwise one
    frame goes out when that interval has passed, with every point drawn by then. A pen-up always sends
    a frame at once.

    Args:
        times_ms: Per-point times, ms, per stroke.
        fps: Most frames per second while drawing.

    Returns:
        Frames in time order; the last one is at the last pen-up.
    """
    interval = 1000.0 / fps
    frames: list[PlannedFrame] = []
    last = -math.inf
    pending = False
    drawn = 0
    for stroke in times_ms:
        for j, t in enumerate(stroke):
            if pending and last + interval < t:
                last = last + interval
                frames.append(PlannedFrame(last, drawn, False))
                pending = False
            drawn += 1
            if j == len(stroke) - 1:
                frames.append(PlannedFrame(t, drawn, True))
                last, pending = t, False
            elif t - last >= interval:
                frames.append(PlannedFrame(t, drawn, False))
                last, pending = t, False
            else:
                pending = True
    return frames


def plan_ink(ink: Ink, index: int, options: ReplayOptions) -> InkPlan:
    """Lay an ink on the canvas (seeded by ``options.seed`` and ``index``) and schedule its frames."""
    rng = np.random.default_rng([options.seed, index])
    strokes = random_placement(ink, rng, CANVAS_PX, options.box_range)
    times = ink_times_ms(ink, options)
    return InkPlan(index, ink.label, strokes, times, schedule_frames(times, options.fps))
