"""Calibration on the held-out validation split: the softmax temperature and the not-a-digit threshold."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from model import evaluate, rejection
from model.data import draw_like_a_person
from model.nondigits import NOT_A_DIGIT
from shared.inference import softmax
from shared.inks import Ink
from shared.preprocess import StrokesFrame, preprocess

CALIBRATION_PEN_DRAWS = 3
"""Each held-back calibration ink is drawn this many times (different placements)."""


@torch.no_grad()
def logits(model: torch.nn.Module, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``(N, 1, 28, 28)`` float32 to ``(N, outputs)`` float32 logits, in eval mode, 1,000 rows at a time."""
    model.eval()
    return torch.cat([model(torch.from_numpy(x[i : i + 1000])) for i in range(0, len(x), 1000)]).numpy()


def accuracy(model: torch.nn.Module, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    """Share of ``x`` (``(N, 1, 28, 28)`` float32) whose arg-max logit is ``y`` (``(N,)`` int64)."""
    return float((logits(model, x).argmax(1) == y).mean())


def pen_eval_batch(
    inks: Sequence[Ink], seed: int, draws: int = 1, planes: int = 1
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Inks drawn as a person would (:func:`model.data.draw_like_a_person`), ``draws`` placements each.

    Returns:
        ``(N, planes, 28, 28)`` float32, the first ``planes`` planes of :func:`shared.preprocess.preprocess`
        of a 280x280 strokes frame (1: the raster; 7: with the motion planes), and ``(N,)`` int64 labels;
        inks that leave no ink are skipped.
    """
    x, y, _ = pen_draws(inks, seed, draws, planes)
    return x, y


def pen_draws(
    inks: Sequence[Ink], seed: int, draws: int = 1, planes: int = 1
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.str_]]:
    """:func:`pen_eval_batch`, with the ``(N,)`` writer of each row (the threshold's bound resamples them)."""
    xs, ys, writers = [], [], []
    for d in range(draws):
        for i, ink in enumerate(inks):
            strokes, pen = draw_like_a_person(ink, np.random.default_rng([seed, d, i]))
            t = preprocess(StrokesFrame(strokes, 280, 280, pen))
            if t is not None:
                xs.append(t[0, :planes])
                ys.append(ink.label)
                writers.append(ink.writer)
    return np.stack(xs), np.asarray(ys, dtype=np.int64), np.asarray(writers)


def fit_temperature(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """The temperature T minimizing the NLL of ``softmax(logits / T)`` (golden-section on log T).

    Args:
        logits: ``(N, C)`` uncalibrated logits.
        labels: ``(N,)`` true classes.

    Returns:
        T in [0.05, 20].
    """
    z = torch.from_numpy(logits).double()
    y = torch.from_numpy(labels)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(z / math.exp(log_t), y))

    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


@dataclass(frozen=True)
class Calibration:
    """The fitted temperature and threshold, with the figures the model file records."""

    temperature: float
    threshold: float
    """On the not-a-digit score (:func:`shared.inference.not_a_digit_scores`) of ``logits / temperature``."""
    rejection: dict[str, float]
    """Per-source turned-away shares on the calibration split (:func:`model.rejection.calibrate`)."""
    ece_before: float
    """Expected calibration error on the calibration split at T = 1 (15 bins, top label)."""
    ece_after: float
    n: int
    """Calibration samples."""


def calibrate(  # noqa: PLR0917 (the calibration split's parts)
    logits_of: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
    planes: int,
    mnist_val: npt.NDArray[np.uint8] | None,
    mnist_val_labels: npt.NDArray[np.int64],
    pen_val: Sequence[Ink] | None,
    nondigit_val: Sequence[Ink],
    seed: int,
    reject_digit_rate: float,
    workers: int,
) -> Calibration:
    """Fit the temperature on all 11 classes, then the not-a-digit threshold, on the validation split.

    Args:
        logits_of: ``(N, planes, 28, 28)`` float32 inputs to ``(N, 11)`` float32 logits before the
            temperature: the trained network (:func:`logits`), or a served file's logits times its
            temperature (``model.recalibrate``).
        planes: Input planes (1: the image model; 7: the strokes model).
        mnist_val: ``(N, 28, 28)`` uint8 held-out MNIST training images, drawn through the canvas PNG path;
            ``None`` for the strokes model, which never sees images.
        mnist_val_labels: ``(N,)`` int64 their digits.
        pen_val: Held-back pen inks of the training writers, :data:`CALIBRATION_PEN_DRAWS` placements
            each; ``None`` for an MNIST-only build (no UNIPEN ink sets the temperature).
        nondigit_val: The calibration writers' letters and symbols (class 10).
        seed: The training seed (the draws use ``seed + 2`` and ``seed + 3``).
        reject_digit_rate: Share of each source's digits the threshold may turn away (of the pen digits,
            at the writer-resampled bound, :func:`model.rejection.fit_threshold_by_writer`).
        workers: Processes for the canvas and pen preprocessing.
    """
    digit_cal, cal_y, writers = {}, np.zeros(0, np.int64), {}
    if mnist_val is not None:
        cal_x, _ = evaluate.mnist_canvas_batch(mnist_val, workers)
        digit_cal["mnist"] = logits_of(cal_x)
        cal_y = mnist_val_labels
    if pen_val is not None:
        pen_cal_x, pen_cal_y, writers["pen"] = pen_draws(pen_val, seed + 2, CALIBRATION_PEN_DRAWS, planes)
        digit_cal["pen"] = logits_of(pen_cal_x)
        cal_y = np.concatenate([cal_y, pen_cal_y])
    nd_cal_x, _ = evaluate.pen_batch(nondigit_val, seed + 3, workers)
    nd_cal_x = nd_cal_x[:, :planes]
    nd_cal_logits = logits_of(nd_cal_x)
    cal_logits = np.concatenate([*digit_cal.values(), nd_cal_logits])
    cal_y = np.concatenate([cal_y, np.full(len(nd_cal_logits), NOT_A_DIGIT)])
    temperature = fit_temperature(cal_logits, cal_y)
    threshold, figures = rejection.calibrate(
        {k: v / temperature for k, v in digit_cal.items()},
        nd_cal_logits / temperature,
        reject_digit_rate,
        writers,
    )
    print(f"not-a-digit threshold {threshold:.4f}; calibration: {figures}", file=sys.stderr)
    ece_before = evaluate.expected_calibration_error(softmax(cal_logits), cal_y)
    ece_after = evaluate.expected_calibration_error(softmax(cal_logits / temperature), cal_y)
    print(
        f"temperature {temperature:.4f}; calibration ECE {ece_before:.4f} -> {ece_after:.4f}", file=sys.stderr
    )
    return Calibration(temperature, threshold, figures, ece_before, ece_after, len(cal_y))
