"""Benchmark the shipped models with onnxruntime on one thread (not a test).

Prints, for each model (the image model, the strokes model), the median and p90 latency of batch 1 and
the per-sample time of batch 32, as the server runs it (:class:`shared.inference.Predictor`,
``intra_op_num_threads=1``). Inputs are real: normalized MNIST test digits for the image model, the 200
pen inks drawn on a 280x280 canvas (raster and motion planes) for the strokes model, when the data folder
is present; else random.

Usage::

    .venv/bin/python -m bench.bench_model [--model model/mnist_cnn.onnx]
        [--strokes-model model/strokes_cnn.onnx] [--repeat 3000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shared.canvas import CANVAS_PX
from shared.inference import Predictor
from shared.inks import load_inks, random_placement
from shared.preprocess import STROKES_PLANES, normalize, strokes_planes
from shared.settings import Settings

TARGET_BATCH1_MS = 0.15
"""The image model's batch-1 target; the strokes model's budget is bench_core's 0.5 ms with preprocessing."""


def _inputs(data_dir: Path, n: int) -> np.ndarray:
    """``(n, 1, 28, 28)`` image-model inputs."""
    try:
        from model.data import load_mnist

        images, _ = load_mnist(data_dir, "test", verify=False)
        return np.stack([normalize(img) for img in images[:n]])[:, None].astype(np.float32)
    except OSError:
        return np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32)


def _strokes_inputs(data_dir: Path, n: int) -> np.ndarray:
    """``(n, 7, 28, 28)`` strokes-model inputs (the 200 pen inks, repeated)."""
    try:
        inks = load_inks(data_dir / "pen" / "unipen1a_dev_200.jsonl")
    except OSError:
        return np.random.default_rng(0).random((n, STROKES_PLANES, 28, 28), dtype=np.float32)
    rng = np.random.default_rng(0)
    rows = [strokes_planes(random_placement(ink, rng, CANVAS_PX), CANVAS_PX, CANVAS_PX) for ink in inks]
    drawn = np.stack([r for r in rows if r is not None])
    return np.resize(drawn, (n, *drawn.shape[1:]))


def _time(predictor: Predictor, batches: list[np.ndarray], repeat: int) -> list[float]:
    """Seconds per call, one per repeat, cycling through ``batches``."""
    for b in batches[:50]:
        predictor.logits(b)  # warm up
    out = []
    for i in range(repeat):
        b = batches[i % len(batches)]
        t = time.perf_counter()
        predictor.logits(b)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    settings = Settings()
    ap = argparse.ArgumentParser(description="batch-1 and batch-32 onnxruntime latency, one thread")
    ap.add_argument("--model", type=Path, default=settings.model_path, help="the image model")
    ap.add_argument("--strokes-model", type=Path, default=settings.strokes_model_path)
    ap.add_argument("--repeat", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    predictor = Predictor(args.model, args.threads, args.strokes_model)
    forms = {
        "image": (args.model, _inputs(settings.data_dir, 1024), predictor.models.image),
        "strokes": (args.strokes_model, _strokes_inputs(settings.data_dir, 1024), predictor.models.strokes),
    }
    table = Table(title=f"onnxruntime, {args.threads} thread(s)")
    for col in ("model", "batch", "median / call", "p90 / call", "median / sample", "target"):
        table.add_column(col, justify="right")
    for form, (path, x, _) in forms.items():
        for batch, repeat in ((1, args.repeat), (32, max(args.repeat // 10, 100))):
            batches = [x[i : i + batch] for i in range(0, len(x) - batch + 1, batch)]
            t = _time(predictor, batches, repeat)
            med = statistics.median(t)
            p90 = statistics.quantiles(t, n=10)[-1]
            target = f"<= {TARGET_BATCH1_MS} ms" if batch == 1 and form == "image" else ""
            table.add_row(
                path.name,
                str(batch),
                f"{med * 1e3:.3f} ms",
                f"{p90 * 1e3:.3f} ms",
                f"{med / batch * 1e6:.1f} µs",
                target,
            )
    Console().print(table)
    for path, _, info in forms.values():
        print(
            f"{path.name}: parameters {info.metadata.get('parameters', '?')}, file {path.stat().st_size} "
            f"bytes, version {info.version}"
        )


if __name__ == "__main__":
    main()
