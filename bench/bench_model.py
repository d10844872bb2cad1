"""Benchmark the shipped model with onnxruntime on one thread (not a test).

Prints the median and p90 latency of batch 1 and the per-sample time of batch 32, as the server runs it
(:class:`shared.inference.Predictor`, ``intra_op_num_threads=1``). Inputs are real normalized MNIST
test digits when the data folder is present, else random.

Usage::

    .venv/bin/python -m bench.bench_model [--model model/mnist_cnn.onnx] [--repeat 3000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from shared.inference import Predictor
from shared.preprocess import normalize
from shared.settings import Settings

TARGET_BATCH1_MS = 0.15


def _inputs(data_dir: Path, n: int) -> np.ndarray:
    try:
        from model.data import load_mnist

        images, _ = load_mnist(data_dir, "test", verify=False)
        return np.stack([normalize(img) for img in images[:n]])[:, None].astype(np.float32)
    except OSError:
        return np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32)


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
    ap.add_argument("--model", type=Path, default=settings.model_path)
    ap.add_argument("--repeat", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    predictor = Predictor(args.model, intra_op_num_threads=args.threads)
    x = _inputs(settings.data_dir, 1024)
    table = Table(title=f"{args.model.name}, onnxruntime, {args.threads} thread(s)")
    for col in ("batch", "median / call", "p90 / call", "median / sample", "target"):
        table.add_column(col, justify="right")
    for batch, repeat in ((1, args.repeat), (32, max(args.repeat // 10, 100))):
        batches = [x[i : i + batch] for i in range(0, len(x) - batch + 1, batch)]
        t = _time(predictor, batches, repeat)
        med = statistics.median(t)
        p90 = statistics.quantiles(t, n=10)[-1]
        target = f"<= {TARGET_BATCH1_MS} ms" if batch == 1 else ""
        table.add_row(
            str(batch), f"{med * 1e3:.3f} ms", f"{p90 * 1e3:.3f} ms", f"{med / batch * 1e6:.1f} µs", target
        )
    Console().print(table)
    meta = predictor.info.metadata
    print(
        f"parameters {meta.get('parameters', '?')}, file {args.model.stat().st_size} bytes, "
        f"version {meta.get('version', '?')}"
    )


if __name__ == "__main__":
    main()
