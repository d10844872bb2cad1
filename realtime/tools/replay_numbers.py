"""Numbers for the replay harness: compose them from recorded inks and plan them as inks to draw.

Each number is composed by :class:`shared.compose.NumberComposer` (one writer's inks, 2-5 digits,
80-160 px high on a 280 px high canvas, seeded by the replay's ``seed`` and the number's index) and
drawn like one ink: every point at the writer's source rate, :data:`realtime.tools.replay.DEFAULT_PEN_UP_MS`
between strokes (also between digits), snapshots in number mode at the page's pace.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.tools.replay_plan import InkPlan, ReplayOptions, ink_times_ms, schedule_frames
from shared.canvas import PEN_WIDTH_PX
from shared.compose import NumberComposer
from shared.inks import Ink


def plan_numbers(inks: Sequence[Ink], count: int, options: ReplayOptions) -> list[tuple[Ink, InkPlan]]:
    """Compose ``count`` numbers from ``inks`` and plan each as one ink in number mode.

    Args:
        inks: Digit recordings (several writers).
        count: Numbers to compose; number ``i`` uses ``default_rng([options.seed, i])``.
        options: Pace (rates, pen-up gap, speed, fps) and seed.

    Returns:
        ``(ink, plan)`` per number: the number's strokes as one ink (canvas px, y down, its writer and
        source, for the pace) and its plan (label: the digits as a string, ``mode`` ``"number"``).
    """
    composer = NumberComposer(inks, (PEN_WIDTH_PX, PEN_WIDTH_PX))
    out = []
    for i in range(count):
        number = composer.compose(np.random.default_rng([options.seed, i]))
        source = composer.by_writer[number.writer][0].source
        ink = Ink(label=0, writer=number.writer, strokes=number.strokes, source=source, y_up=False)
        times = ink_times_ms(ink, options)
        frames = schedule_frames(times, options.fps)
        plan = InkPlan(i, number.text, number.strokes, times, frames, width=number.width, mode="number")
        out.append((ink, plan))
    return out
