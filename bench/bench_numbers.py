"""Benchmark number mode: median CPU time to segment and classify a number, by digit count.

Run from the repository root::

    .venv/bin/python bench/bench_numbers.py [--numbers 200] [--repeat 5]

Inputs: numbers composed from the 200 UNIPEN pen inks (``../shared/data/pen/unipen1a_dev_200.jsonl``)
by :class:`shared.compose.NumberComposer` (one writer per number, 80-160 px high on a 280 px high
canvas, pen 12-24 px, seed 0), ``--numbers`` of each digit count 1-5. Each row is the median (and
10th percentile) over ``repeat`` passes of the CPU time (``time.process_time_ns``) of one call:

* ``segment``: :func:`shared.segment.segment` (grouping + each character's preprocessing);
* ``read_number``: :func:`shared.number.read_number` (the above + one model call for all characters
  + the readings), what a number-mode frame costs;
* ``png read_number``: the same number sent as its canvas PNG (connected components).

Not a test. Target (this 2-core machine): a five-digit strokes number read in at most 2 ms (median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.compose import NumberComposer  # noqa: E402
from shared.inference import Predictor  # noqa: E402
from shared.inks import load_inks, render_png  # noqa: E402
from shared.number import read_number  # noqa: E402
from shared.preprocess import Frame, ImageFrame, StrokesFrame  # noqa: E402
from shared.segment import segment  # noqa: E402
from shared.settings import Settings  # noqa: E402

PEN_RANGE = (12.0, 24.0)
"""Pen diameter, px (the evaluation's range, ``model.data.PEN_WIDTH_RANGE``)."""


def cpu_ms(fn: Callable[[Frame], object], frames: list[Frame], repeat: int) -> list[float]:
    """CPU time of ``fn(frame)`` per call, ms: ``repeat`` passes over ``frames``."""
    out = []
    for _ in range(repeat):
        for frame in frames:
            t = time.process_time_ns()
            fn(frame)
            out.append((time.process_time_ns() - t) / 1e6)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--numbers", type=int, default=200, help="numbers per digit count")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    settings = Settings()
    inks = load_inks(settings.data_dir / "pen" / "unipen1a_dev_200.jsonl")
    composer = NumberComposer(inks, PEN_RANGE)
    predictor = Predictor.of(settings)
    predictor.warm_up()
    print(f"{'digits':>6} {'row':<18} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}")
    for digits in range(1, 6):
        numbers = [
            composer.compose(np.random.default_rng([0, digits, i]), digits) for i in range(args.numbers)
        ]
        strokes: list[Frame] = [StrokesFrame(n.strokes, n.width, n.height, n.pen) for n in numbers]
        pngs: list[Frame] = [ImageFrame(render_png(n.strokes, n.width, n.height, n.pen)) for n in numbers]
        report(digits, "segment", cpu_ms(segment, strokes, args.repeat))
        report(digits, "read_number", cpu_ms(partial(read_number, predictor), strokes, args.repeat))
        report(digits, "png read_number", cpu_ms(partial(read_number, predictor), pngs, args.repeat))
    return 0


def report(digits: int, name: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=10)
    print(f"{digits:>6} {name:<18} {statistics.median(times):>10.3f} {q[0]:>8.3f} {q[-1]:>8.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
