"""Evaluate an ONNX digit model through the product's full input paths; write a JSON report and PNGs.

* MNIST test (10,000): each image is rendered as the page's 280x280 canvas PNG (black on white) and
  goes through ``preprocess(ImageFrame(png))``, exactly as a browser snapshot would.
* UNIPEN held-out writers (5,015 inks of 68 writers; never trained on): each ink is drawn as a person
  would (longer side 90-230 px at a random position on a 280x280 canvas, pen 12-24 px, seeded per ink)
  and goes through ``preprocess(StrokesFrame(...))``; ``--pen-png`` also sends the rendered PNG. ``pen_200``:
  the 119 of those inks in ``unipen1a_dev_200.jsonl`` (the CI check's set).

Usage::

    .venv/bin/python -m model.evaluate [--model model/mnist_cnn.onnx] [--out reports/model_eval.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw
from rich.console import Console
from rich.progress import track

from model.data import (
    data_folder,
    draw_like_a_person,
    load_mnist,
    mnist_canvas_png,
    pen_200_heldout,
    pen_split,
)
from model.nondigits import NonDigit, nondigit_split
from model.rejection import rejection_figures, rejection_png
from realtime.tools.argtypes import worker_count
from shared.canvas import CANVAS_PX
from shared.inference import NUM_CLASSES, Predictor, not_a_digit_scores, softmax
from shared.inks import Ink, render_png
from shared.preprocess import ImageFrame, StrokesFrame, preprocess
from shared.settings import Settings

PEN_SEED = 2024
"""Seed of the pen placement in evaluation (per ink: ``default_rng([PEN_SEED, index])``)."""
ECE_BINS = 15
NONDIGIT_PNG_STRIDE = 4
"""Every this-many-th held-out non-digit also goes through the PNG path (the strokes path takes them all)."""

Labels = npt.NDArray[np.integer[Any]]
"""Class labels, any integer dtype, ``(N,)``."""


# ------------------------------------------------------------------------------------------ inputs


def _mnist_one(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32] | None:
    return preprocess(ImageFrame(mnist_canvas_png(image)))


def _pen_one(args: tuple[Ink, int, int, bool]) -> npt.NDArray[np.float32] | None:
    ink, seed, index, as_png = args
    strokes, pen = draw_like_a_person(ink, np.random.default_rng([seed, index]))
    if as_png:
        return preprocess(ImageFrame(render_png(strokes, CANVAS_PX, CANVAS_PX, pen)))
    return preprocess(StrokesFrame(strokes, CANVAS_PX, CANVAS_PX, pen))


def _map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, desc: str) -> list[Any]:
    """``[fn(x) for x in items]`` with a progress bar, in ``workers`` processes (order kept)."""
    chunk = max(1, min(256, len(items) // (8 * max(workers, 1)) or 1))
    console = Console(stderr=True)
    if workers <= 1:
        return [fn(x) for x in track(items, description=desc, transient=True, console=console)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        it = pool.imap(fn, items, chunksize=chunk)
        return list(track(it, description=desc, total=len(items), transient=True, console=console))


def _batch(
    tensors: Sequence[npt.NDArray[np.float32] | None],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Stack ``(1, P, 28, 28)`` tensors; blank (``None``) frames become zeros and are flagged."""
    blank = np.array([t is None for t in tensors])
    shape = next((t.shape for t in tensors if t is not None), (1, 1, 28, 28))
    zeros = np.zeros(shape, np.float32)
    return np.concatenate([zeros if t is None else t for t in tensors]), blank


def mnist_canvas_batch(
    images: npt.NDArray[np.uint8], workers: int = 1
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """MNIST images through the canvas PNG path.

    Args:
        images: ``(N, 28, 28)`` uint8.
        workers: Processes to use.

    Returns:
        ``(N, 1, 28, 28)`` float32 model inputs and ``(N,)`` blank flags (all False for MNIST).
    """
    return _batch(_map(_mnist_one, list(images), workers, "mnist canvas"))


def pen_batch(
    inks: Sequence[Ink], seed: int = PEN_SEED, workers: int = 1, as_png: bool = False
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Pen inks drawn as a person would on the 280 px canvas, through the strokes (or PNG) path.

    Args:
        inks: The recordings.
        seed: Placement seed (ink ``i`` uses ``default_rng([seed, i])``).
        workers: Processes to use.
        as_png: Render each canvas to PNG and send that instead.

    Returns:
        ``(N, 1, 28, 28)`` float32 model inputs and ``(N,)`` blank flags.
    """
    items = [(ink, seed, i, as_png) for i, ink in enumerate(inks)]
    return _batch(_map(_pen_one, items, workers, "pen png" if as_png else "pen strokes"))


def nondigit_figures(
    predictor: Predictor, nondigits: Sequence[NonDigit], seed: int, workers: int, as_png: bool = False
) -> dict[str, Any]:
    """Non-digits drawn as a person would, through the strokes (or PNG) path: how many are turned away.

    Args:
        predictor: The model.
        nondigits: The inks (look-alikes are reported apart).
        seed: Placement seed (as :func:`pen_batch`).
        workers: Processes to use.
        as_png: Render each canvas to PNG and send that instead.

    Returns:
        :func:`model.rejection.rejection_figures` (blank frames count as not turned away).
    """
    x, blank = pen_batch([n.ink for n in nondigits], seed, workers, as_png)
    look_alike = np.array([n.look_alike for n in nondigits])
    chars = [n.char for n in nondigits]
    return rejection_figures(
        predictor.logits(x), predictor.threshold_for(x.shape[1]), chars, look_alike, blank
    )


# ----------------------------------------------------------------------------------------- metrics


def expected_calibration_error(
    probs: npt.NDArray[np.floating[Any]], labels: Labels, bins: int = ECE_BINS
) -> float:
    """Top-label ECE with equal-width confidence bins.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` true classes.
        bins: Number of bins on [0, 1].

    Returns:
        ``sum_b |B_b|/N * |accuracy(B_b) - confidence(B_b)|``.
    """
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def score(
    logits: npt.NDArray[np.float32],
    labels: Labels,
    blank: npt.NDArray[np.bool_],
    temperature: float | None = None,
    threshold: float = 1.0,
) -> dict[str, Any]:
    """Accuracy (blank and not-a-digit answers count as errors), ECE, NLL and the confusion matrix.

    Args:
        logits: ``(N, 11)`` served (calibrated) logits.
        labels: ``(N,)`` true digits.
        blank: ``(N,)`` no-digit flags.
        temperature: The temperature baked into the model, if known: adds ``ece_uncalibrated``, the ECE
            of the digits' softmax of ``logits * temperature`` (the network before calibration).
        threshold: The model's not-a-digit threshold (:func:`shared.inference.not_a_digit_scores`).

    Returns:
        A JSON-ready dict; ECE and NLL are of the ten digit probabilities (what the protocol sends).
    """
    digits = logits[:, :NUM_CLASSES]
    probs = softmax(digits)
    turned_away = ~blank & (not_a_digit_scores(logits) >= threshold)
    pred = np.where(blank, -1, np.where(turned_away, -2, probs.argmax(axis=1)))
    confusion = np.zeros((10, 12), dtype=int)  # column 10: "not a digit", 11: "no digit"
    np.add.at(confusion, (labels, np.where(pred == -2, 10, np.where(pred == -1, 11, pred))), 1)
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()
    return {
        "n": len(labels),
        "correct": int((pred == labels).sum()),
        "accuracy": float((pred == labels).mean()),
        "blank": int(blank.sum()),
        "not_a_digit": int(turned_away.sum()),
        "ece": expected_calibration_error(probs[~blank], labels[~blank]),
        "ece_uncalibrated": None
        if temperature is None
        else expected_calibration_error(softmax(digits[~blank] * temperature), labels[~blank]),
        "nll": float(nll),
        "confusion": confusion.tolist(),
        "per_digit_accuracy": [float(confusion[d, d] / max(confusion[d].sum(), 1)) for d in range(10)],
    }


def confusion_png(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Draw each result's confusion matrix (rows: true digit, columns: predicted, then not a digit, no digit).

    Args:
        results: Name to :func:`score` output.
        path: PNG to write.
    """
    cell, pad, title = 34, 40, 24
    cols = 12
    panel_w, panel_h = pad + cols * cell + 10, title + pad + 10 * cell + 10
    img = Image.new("RGB", (panel_w * len(results), panel_h), "white")
    draw = ImageDraw.Draw(img)
    for k, (name, res) in enumerate(results.items()):
        ox = k * panel_w
        m = np.asarray(res["confusion"], dtype=float)
        draw.text((ox + 4, 4), f"{name}: {100 * res['accuracy']:.2f}% of {res['n']}", fill="black")
        for j in range(cols):
            draw.text((ox + pad + j * cell + 12, title + 12), {10: "X", 11: "-"}.get(j, str(j)), fill="black")
        for i in range(10):
            draw.text((ox + 12, title + pad + i * cell + 12), str(i), fill="black")
            row = max(m[i].sum(), 1)
            for j in range(cols):
                share = m[i, j] / row
                shade = share if i == j else min(1.0, 20 * share)  # errors are small: amplify
                colour = (
                    (int(255 * (1 - shade)), int(255 * (1 - 0.5 * shade)), 255)
                    if i == j
                    else (255, int(255 * (1 - shade)), int(255 * (1 - shade)))
                )
                x0, y0 = ox + pad + j * cell, title + pad + i * cell
                draw.rectangle((x0, y0, x0 + cell - 1, y0 + cell - 1), fill=colour, outline=(220, 220, 220))
                if m[i, j]:
                    draw.text((x0 + 3, y0 + 11), str(int(m[i, j])), fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


# --------------------------------------------------------------------------------------------- CLI


def evaluate(  # noqa: PLR0917 (the evaluation's inputs)
    model_path: Path,
    data_dir: Path,
    workers: int = 2,
    seed: int = PEN_SEED,
    pen_png: bool = False,
    strokes_model_path: Path | None = None,
) -> dict[str, Any]:
    """Evaluate the served models on MNIST test (canvas path) and the held-out pen writers.

    Each frame goes to the model serving its form (:class:`shared.inference.Predictor`): images (MNIST
    canvases, pen PNGs) to the image model, strokes to the strokes model when there is one.

    Args:
        model_path: The image model's ``.onnx`` file.
        data_dir: The shared data folder.
        workers: Preprocessing processes.
        seed: Pen placement seed.
        pen_png: Also evaluate held-out pen inks through the rendered-PNG path.
        strokes_model_path: The strokes model's ``.onnx`` file, or ``None`` (strokes read as rasters).

    Returns:
        A JSON-ready report.
    """
    predictor = Predictor(model_path, 1, strokes_model_path)

    def scored(x: npt.NDArray[np.float32], y: Labels, blank: npt.NDArray[np.bool_]) -> Any:
        info = predictor.models.strokes if x.shape[1] > 1 else predictor.models.image
        temp = info.metadata.get("temperature")
        threshold = predictor.threshold_for(x.shape[1])
        return score(predictor.logits(x), y, blank, float(temp) if temp else None, threshold)

    results: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    t = time.perf_counter()
    images, labels = load_mnist(data_dir, "test")
    x, blank = mnist_canvas_batch(images, workers)
    results["mnist_test_canvas"] = scored(x, labels, blank)
    timings["mnist_test_canvas"] = time.perf_counter() - t

    split = pen_split(data_dir)
    pen_sets = {"pen_heldout_strokes": (split.heldout, False)}
    if pen_png:
        pen_sets["pen_heldout_png"] = (split.heldout, True)
    pen_sets["pen_200_strokes"] = (pen_200_heldout(data_dir), False)
    for name, (inks, as_png) in pen_sets.items():
        t = time.perf_counter()
        x, blank = pen_batch(inks, seed, workers, as_png)
        y = np.array([ink.label for ink in inks])
        results[name] = scored(x, y, blank)
        timings[name] = time.perf_counter() - t

    nondigits: dict[str, dict[str, Any]] = {}
    heldout = nondigit_split(data_dir).heldout
    for name, (chosen, as_png) in {
        "nondigits_heldout_strokes": (heldout, False),
        "nondigits_heldout_png": (heldout[::NONDIGIT_PNG_STRIDE], True),
    }.items():
        t = time.perf_counter()
        nondigits[name] = nondigit_figures(predictor, chosen, seed, workers, as_png)
        timings[name] = time.perf_counter() - t
    return {
        "model": str(model_path),
        "strokes_model": None if strokes_model_path is None else str(strokes_model_path),
        "sha256": predictor.info.sha256,
        "metadata": predictor.info.metadata,
        "strokes_sha256": predictor.models.strokes.sha256,
        "strokes_metadata": predictor.models.strokes.metadata,
        "pen_seed": seed,
        "pen_protocol": "longer side U(90,230) px at a uniform position on 280x280, pen U(12,24) px",
        "pen_writers": {
            "train": len({i.writer for i in split.train}),
            "calibration": len({i.writer for i in split.val}),
            "heldout": len({i.writer for i in split.heldout}),
        },
        "results": results,
        "nondigits": nondigits,
        "seconds": timings,
    }


def add_model_options(ap: argparse.ArgumentParser, settings: Settings) -> None:
    """Add ``--model`` (the image model) and ``--strokes-model``, defaulting to the shipped files.

    ``--strokes-model none`` reads strokes frames as rasters with the image model; :func:`models_of`
    reads both options back.
    """
    ap.add_argument("--model", type=Path, default=settings.model_path, help="the image model")
    ap.add_argument(
        "--strokes-model",
        type=Path,
        default=settings.strokes_model_path,
        help="the strokes model ('none': strokes frames read as rasters by the image model)",
    )


def models_of(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The image model's path and the strokes model's (``None`` for ``none``), as parsed."""
    return args.model, None if str(args.strokes_model) == "none" else args.strokes_model


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints a summary table and writes the report and confusion PNG."""
    settings = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(ap, settings)
    ap.add_argument(
        "--data-dir",
        type=data_folder,
        default=str(settings.data_dir),
        help="shared data folder (or its mnist/)",
    )
    ap.add_argument("--out", type=Path, default=Path("reports/model_eval.json"))
    ap.add_argument("--confusion", type=Path, default=Path("reports/model_confusion.png"))
    ap.add_argument("--workers", type=worker_count, default=2)
    ap.add_argument("--seed", type=int, default=PEN_SEED)
    ap.add_argument("--pen-png", action="store_true", help="also run held-out pen inks as rendered PNGs")
    args = ap.parse_args(argv)
    image, strokes = models_of(args)
    report = evaluate(image, args.data_dir, args.workers, args.seed, args.pen_png, strokes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    confusion_png(report["results"], args.confusion)
    figure = args.confusion.with_name(args.confusion.stem + "_nondigits.png")
    rejection_png(report["nondigits"], figure)
    print(f"{'set':<22} {'n':>6} {'top-1':>8} {'ECE':>7} {'ECE(T=1)':>9} {'blank':>6} {'not a digit':>12}")
    for name, r in report["results"].items():
        raw = "" if r["ece_uncalibrated"] is None else f"{r['ece_uncalibrated']:.4f}"
        print(
            f"{name:<22} {r['n']:>6} {100 * r['accuracy']:>7.2f}% {r['ece']:>7.4f} {raw:>9} {r['blank']:>6} "
            f"{r['not_a_digit']:>5} ({100 * r['not_a_digit'] / r['n']:.2f}%)"
        )
    for name, f in report["nondigits"].items():
        worst = sorted((v["rate"], c) for c, v in f["per_char"].items() if not v["look_alike"])[:8]
        print(
            f"{name}: {100 * f['rate']:.2f}% of {f['n']} turned away (look-alikes apart: "
            f"{100 * f['look_alikes']['rate']:.2f}% of {f['look_alikes']['n']}); least turned away: "
            + ", ".join(f"{c} {100 * r:.0f}%" for r, c in worst)
        )
    print(f"report: {args.out}  confusion: {args.confusion}  non-digits: {figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
