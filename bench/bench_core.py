"""Benchmark the core: median CPU time per prediction for the strokes form and for a 280x280 PNG.

Run from the repository root::

    .venv/bin/python bench/bench_core.py                      # current code
    .venv/bin/python bench/bench_core.py --baseline e416e1e   # and an older shared/preprocess.py, interleaved

Inputs: the 200 UNIPEN pen inks (``../shared/data/pen/unipen1a_dev_200.jsonl``), each laid out at a
random size (90-230 px) and position on a 280x280 canvas (seed 0), pen 16 px; the PNG form is the
RGBA PNG a browser canvas would give (``shared.inks.render_png``, black on white).

Each row is the median (and 10th percentile, less sensitive to other processes on a shared machine)
over ``repeat`` passes x 200 frames of the CPU time (``time.process_time_ns``) of one single-frame call:

* ``preprocess``: :func:`shared.preprocess.preprocess` only;
* ``+ inference``: ``preprocess`` then ``Predictor.logits`` (normalization + inference): strokes frames
  (raster and motion planes) through the strokes model, PNGs through the image model;
* ``predict()``: the full ``Predictor.predict`` (adds softmax and the result dataclass).

Rows run in blocks (``--interleave block``, default): each pass runs one row over all frames, then the
next, reversing the row order on odd passes, so slow drifts of the machine's speed hit every row alike.
``--interleave frame`` alternates the rows frame by frame instead; then each call runs after the other
rows' (a 313 KB PNG decode before a strokes frame), with cold caches, and costs up to 1.7x more.

With ``--baseline REV`` the ``preprocess`` rows are repeated for the core (``shared/``) of revision REV,
interleaved with the current code's rows the same way (a core without motion planes sends its strokes
rasters to the image model). Not a test. Targets (this 2-core machine): <= 0.5 ms strokes (preprocess +
inference), <= 2.0 ms PNG per prediction.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared import preprocess as current  # noqa: E402
from shared.inference import Predictor  # noqa: E402
from shared.inks import load_inks, random_placement, render_png  # noqa: E402
from shared.settings import Settings  # noqa: E402

CANVAS = 280
"""Canvas side, px (the page's canvas)."""
PEN = 16
"""Pen diameter, px (the page's default)."""


def _load_revision(rev: str) -> ModuleType:
    """Import ``shared.preprocess`` as it was at git revision ``rev``, with that revision's whole core.

    The revision's ``shared/`` package is copied to a temporary ``shared_<rev>`` package (its absolute
    ``shared`` imports renamed), so decoding, kernels and preprocessing all come from ``rev``.
    """
    tmp = Path(tempfile.mkdtemp())
    package = f"shared_{rev}"
    archive = subprocess.run(
        ["git", "archive", rev, "shared"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.endswith(".py"):
                continue
            extracted = tar.extractfile(member)
            assert extracted is not None
            source = re.sub(
                r"^(\s*)(from|import) shared\b", rf"\1\2 {package}", extracted.read().decode(), flags=re.M
            )
            target = tmp / package / Path(member.name).relative_to("shared")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
    sys.path.insert(0, str(tmp))
    return importlib.import_module(f"{package}.preprocess")


def _bench(
    rows: dict[str, tuple[Callable[[Any], object], list[Any]]], repeat: int, interleave: str = "block"
) -> dict[str, tuple[float, float]]:
    """Median and 10th-percentile CPU ms per call for each row.

    ``interleave="block"``: each pass runs every row over all its frames in turn (row order reversed on
    odd passes), as a stream of frames of one kind would run. ``"frame"``: rows alternate frame by
    frame, so each call follows the other rows' calls (their memory traffic evicts its caches).
    """
    clock = time.process_time_ns
    times: dict[str, list[int]] = {name: [] for name in rows}
    n = min(len(frames) for _, frames in rows.values())
    for fn, frames in rows.values():  # warm up (imports, caches, onnxruntime arenas)
        for f in frames[:20]:
            fn(f)
    for r in range(repeat):
        order = list(rows.items()) if r % 2 == 0 else list(reversed(rows.items()))
        if interleave == "block":
            for name, (fn, frames) in order:
                spent = times[name]
                for f in frames[:n]:
                    t0 = clock()
                    fn(f)
                    spent.append(clock() - t0)
        else:
            for i in range(n):
                for name, (fn, frames) in order:
                    t0 = clock()
                    fn(frames[i])
                    times[name].append(clock() - t0)
    return {
        name: (statistics.median(t) / 1e6, float(np.percentile(t, 10)) / 1e6) for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of inks (<= 200)")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the inks")
    parser.add_argument("--baseline", help="git revision of shared/preprocess.py to compare with")
    parser.add_argument(
        "--interleave",
        choices=("block", "frame"),
        default="block",
        help="run each row over all frames in turn (block, default) or alternate rows frame by frame",
    )
    args = parser.parse_args()
    settings = Settings()
    inks = load_inks(settings.data_dir / "pen" / "unipen1a_dev_200.jsonl")[: args.n]
    rng = np.random.default_rng(0)
    strokes = [random_placement(ink, rng, CANVAS) for ink in inks]
    pngs = [render_png(s, CANVAS, CANVAS, PEN) for s in strokes]
    predictor = Predictor.of(settings)
    predictor.warm_up()

    def forms(mod: ModuleType) -> tuple[list[Any], list[Any]]:
        return (
            [mod.StrokesFrame(s, CANVAS, CANVAS, PEN) for s in strokes],
            [mod.ImageFrame(p) for p in pngs],
        )

    s_frames, p_frames = forms(current)

    def with_inference(mod: ModuleType) -> Callable[[Any], object]:
        def run(frame: Any) -> object:
            x = mod.preprocess(frame)
            return None if x is None else predictor.logits(x)

        return run

    def predict(frame: Any) -> object:
        return predictor.predict([frame])

    rows: dict[str, tuple[Callable[[Any], object], list[Any]]] = {
        "strokes: preprocess": (current.preprocess, s_frames),
        "strokes: preprocess + inference": (with_inference(current), s_frames),
        "strokes: Predictor.predict()": (predict, s_frames),
        "png 280x280: preprocess": (current.preprocess, p_frames),
        "png 280x280: preprocess + inference": (with_inference(current), p_frames),
        "png 280x280: Predictor.predict()": (predict, p_frames),
    }
    if args.baseline:
        base = _load_revision(args.baseline)
        bs, bp = forms(base)
        rows[f"strokes: preprocess @{args.baseline}"] = (base.preprocess, bs)
        rows[f"strokes: preprocess + inference @{args.baseline}"] = (with_inference(base), bs)
        rows[f"png 280x280: preprocess @{args.baseline}"] = (base.preprocess, bp)
        rows[f"png 280x280: preprocess + inference @{args.baseline}"] = (with_inference(base), bp)
    result = _bench(rows, args.repeat, args.interleave)
    mean_png = sum(len(p) for p in pngs) / len(pngs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"inks={len(inks)} repeat={args.repeat} interleave={args.interleave} "
        f"mean png={mean_png / 1024:.1f} KiB load1={load:.1f}"
    )
    print(f"{'CPU ms per frame':52s} {'median':>7s} {'p10':>7s}")
    for name in sorted(result):
        median, p10 = result[name]
        print(f"{name:52s} {median:7.3f} {p10:7.3f}")


if __name__ == "__main__":
    main()
