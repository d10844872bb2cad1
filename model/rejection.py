"""Training side of the not-a-digit answer: non-digit training rows, the threshold, the figures.

The network has an 11th class, :data:`model.nondigits.NOT_A_DIGIT`, trained on real letters and symbols
of the training writers (look-alikes excluded) and on synthesized marks, each drawn on a random canvas
and rasterized by the serving path exactly like the pen digits (:func:`model.augment.augment_pen`).
Serving turns a frame away when its not-a-digit score (the 11th class against the likeliest digit,
:func:`shared.inference.not_a_digit_scores`) reaches a threshold, set on the calibration split so that a
chosen share of calibration digits at most is turned away: of the pen digits, at an upper bound over
resampled writers (:func:`fit_threshold_by_writer`), since unseen writers differ more from each other
than draws of one writer do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from model import augment
from model.nondigits import NOT_A_DIGIT, NonDigit, synthetic_mark
from shared.inference import not_a_digit_scores
from shared.inks import Ink
from shared.preprocess import STROKES_PLANES

BOUND_CONFIDENCE = 0.9
"""The quantile of the writer-resampled share that must stay within the rate
(:func:`fit_threshold_by_writer`): the threshold holds for nine in ten draws of writers like these."""
BOUND_RESAMPLES = 2000
"""Writer resamples for the bound (the usual count for a bootstrap quantile; Efron and Tibshirani 1993)."""


def nondigit_rows(  # noqa: PLR0917 (a batch's parts, in the order they are drawn)
    inks: Sequence[Ink],
    real: int,
    synthetic: int,
    order: npt.NDArray[np.int64],
    rng: np.random.Generator,
    motion: bool = False,
) -> npt.NDArray[np.float32]:
    """Draw the non-digit rows of one training batch.

    Args:
        inks: The training non-digits (look-alikes already removed).
        real: How many of ``inks`` to draw (``order`` holds their indices).
        synthetic: How many synthesized marks to add (:func:`model.nondigits.synthetic_mark`).
        order: ``(real,)`` indices into ``inks``.
        rng: The batch's generator.
        motion: Draw the strokes model's input (:func:`model.augment.augment_pen`).

    Returns:
        ``(K, 28, 28)`` float32 rows, with ``motion`` ``(K, 7, 28, 28)`` (blank drawings dropped, so
        ``K <= real + synthetic``).
    """
    rows = []
    chosen = [inks[i] for i in order[:real]]
    chosen += [synthetic_mark(rng) for _ in range(synthetic)]
    for ink in chosen:
        drawn = augment.augment_pen(ink, rng, motion)
        if drawn is not None:
            rows.append(drawn)
    return (
        np.stack(rows) if rows else np.zeros((0, *((STROKES_PLANES,) if motion else ()), 28, 28), np.float32)
    )


def fit_threshold(digit_scores: npt.NDArray[np.floating[Any]], digit_rate: float) -> float:
    """The lowest threshold that turns away at most ``digit_rate`` of the calibration digits.

    A frame is turned away when its score is at or above the threshold, so the threshold sits just above
    the ``k + 1``-th highest digit score, ``k = floor(digit_rate * N)``.

    Args:
        digit_scores: ``(N,)`` not-a-digit scores of calibration digits, in [0, 1].
        digit_rate: Largest share of them to turn away, in [0, 1).

    Returns:
        The threshold, in (0, 1].
    """
    ranked = np.sort(np.asarray(digit_scores, dtype=np.float64))[::-1]
    k = int(np.floor(digit_rate * len(ranked)))
    return float(min(1.0, np.nextafter(ranked[k], np.inf)))


def fit_threshold_by_writer(
    digit_scores: npt.NDArray[np.floating[Any]],
    writers: npt.NDArray[np.str_],
    digit_rate: float,
    confidence: float = BOUND_CONFIDENCE,
    resamples: int = BOUND_RESAMPLES,
) -> float:
    """The lowest threshold whose share of digits turned away stays within ``digit_rate`` over writers.

    The writers are resampled with replacement (a cluster bootstrap, ``resamples`` times, seed 0); the
    threshold is the lowest at which the ``confidence`` quantile of the resampled shares is at most
    ``digit_rate``. A few writers whose digits the network finds odd then count as what they are, a
    property of writers that unseen writers share, not of single inks.

    Args:
        digit_scores: ``(N,)`` not-a-digit scores of calibration digits, in [0, 1].
        writers: ``(N,)`` each digit's writer.
        digit_rate: Largest share to turn away, in [0, 1).
        confidence: The quantile that must stay within ``digit_rate``, in (0, 1).
        resamples: Bootstrap resamples.

    Returns:
        The threshold, in (0, 1].
    """
    scores = np.asarray(digit_scores, dtype=np.float64)
    names, which = np.unique(np.asarray(writers), return_inverse=True)
    weights = np.random.default_rng(0).multinomial(len(names), np.full(len(names), 1 / len(names)), resamples)
    inks = weights @ np.bincount(which, minlength=len(names))
    ranked = np.unique(scores)[::-1]

    def bound(k: int) -> float:  # turn away the scores above ranked[k]
        away = np.bincount(which, weights=scores > ranked[k], minlength=len(names))
        return float(np.quantile(weights @ away / np.maximum(inks, 1), confidence))

    lo, hi = 0, len(ranked) - 1  # bound(0) is 0: nothing above the highest score
    while lo < hi:  # the largest k whose bound holds (bound grows with k)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if bound(mid) <= digit_rate else (lo, mid - 1)
    return float(min(1.0, np.nextafter(ranked[lo], np.inf)))


def calibrate(
    digit_logits: Mapping[str, npt.NDArray[np.float32]],
    nondigit_logits: npt.NDArray[np.float32],
    digit_rate: float,
    writers: Mapping[str, npt.NDArray[np.str_]] | None = None,
) -> tuple[float, dict[str, float]]:
    """Set the threshold on each source of calibration digits; report what it does on calibration non-digits.

    The threshold is the highest over the sources, so at most ``digit_rate`` of every source's digits is
    turned away (pooling would let the many easy MNIST digits hide the pen digits of unseen writers,
    which the network turns away far more often): :func:`fit_threshold_by_writer` for a source whose
    writers are known, :func:`fit_threshold` for the others.

    Args:
        digit_logits: Source name to ``(N, 11)`` served logits of its calibration digits (MNIST validation
            canvases; the calibration writers' pen inks, never trained on).
        nondigit_logits: ``(M, 11)`` served logits of the calibration writers' non-digits (no look-alikes).
        digit_rate: Largest share of each source's digits to turn away.
        writers: Source name to the ``(N,)`` writer of each of its digits, where known.

    Returns:
        The threshold and, as shares and counts, ``{"<source>_turned_away", "n_<source>",
        "nondigits_turned_away", "n_nondigits"}``.
    """
    writers = writers or {}
    scores = {name: not_a_digit_scores(z) for name, z in digit_logits.items()}
    others = not_a_digit_scores(nondigit_logits)
    threshold = max(
        fit_threshold_by_writer(s, writers[name], digit_rate)
        if name in writers
        else fit_threshold(s, digit_rate)
        for name, s in scores.items()
    )
    figures: dict[str, float] = {}
    for name, s in scores.items():
        figures[f"{name}_turned_away"] = float((s >= threshold).mean())
        figures[f"n_{name}"] = len(s)
    figures["nondigits_turned_away"] = float((others >= threshold).mean())
    figures["n_nondigits"] = len(others)
    return threshold, figures


def rejection_figures(
    logits: npt.NDArray[np.float32],
    threshold: float,
    chars: Sequence[str],
    look_alike: npt.NDArray[np.bool_],
    blank: npt.NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """Share of non-digits turned away, overall (look-alikes apart) and per character.

    Args:
        logits: ``(N, 11)`` served logits of the non-digit inks.
        threshold: The model's not-a-digit threshold.
        chars: ``(N,)`` the characters.
        look_alike: ``(N,)`` which are look-alikes.
        blank: ``(N,)`` frames answered ``no_digit`` (counted as not turned away); ``None``: none.

    Returns:
        ``{"n", "turned_away", "rate", "look_alikes": {"n", "turned_away", "rate"}, "per_char": {c: {...}},
        "answered": {digit or "not_a_digit": count}}`` (``answered`` over the non-look-alikes).
    """
    blank = np.zeros(len(logits), bool) if blank is None else blank
    turned = (not_a_digit_scores(logits) >= threshold) & ~blank
    digit = logits[:, :NOT_A_DIGIT].argmax(axis=1)
    answered = np.where(turned, -1, np.where(blank, -2, digit))
    per_char: dict[str, dict[str, Any]] = {}
    for c in sorted(set(chars)):
        sel = np.array([x == c for x in chars])
        per_char[c] = {
            "n": int(sel.sum()),
            "rate": float(turned[sel].mean()),
            "look_alike": bool(look_alike[sel][0]),
        }

    def part(sel: npt.NDArray[np.bool_]) -> dict[str, Any]:
        n = int(sel.sum())
        return {
            "n": n,
            "turned_away": int(turned[sel].sum()),
            "rate": float(turned[sel].mean()) if n else 0.0,
        }

    names = {-2: "no_digit", -1: "not_a_digit"}
    counts = {names.get(a, str(a)): int(((answered == a) & ~look_alike).sum()) for a in range(-2, 10)}
    return {**part(~look_alike), "look_alikes": part(look_alike), "per_char": per_char, "answered": counts}


def nondigit_inks(nondigits: Sequence[NonDigit], look_alikes: bool = False) -> list[Ink]:
    """The inks of ``nondigits``, without the look-alikes unless asked."""
    return [n.ink for n in nondigits if look_alikes or not n.look_alike]


def rejection_png(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Draw, for each result, the share of each character turned away (look-alikes in grey, apart).

    Args:
        results: Name to :func:`rejection_figures` output.
        path: PNG to write.
    """
    row, label_w, bar_w, pad = 14, 40, 220, 10
    panels = []
    for name, res in results.items():
        chars = sorted(res["per_char"].items(), key=lambda kv: (kv[1]["look_alike"], kv[1]["rate"], kv[0]))
        panels.append((name, res, chars))
    height = max(len(chars) for _, _, chars in panels) * row + 3 * row + pad
    width = (label_w + bar_w + 60) * len(panels)
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for k, (name, res, chars) in enumerate(panels):
        ox = k * (label_w + bar_w + 60) + pad
        draw.text((ox, 2), f"{name}: {100 * res['rate']:.1f}% of {res['n']} turned away", fill="black")
        look = res["look_alikes"]
        draw.text((ox, row + 2), f"look-alikes (grey): {100 * look['rate']:.1f}% of {look['n']}", fill="grey")
        for i, (char, f) in enumerate(chars):
            y = (i + 3) * row
            colour = (
                (170, 170, 170)
                if f["look_alike"]
                else (int(220 * (1 - f["rate"])), 120, int(200 * f["rate"]))
            )
            draw.text((ox, y), repr(char)[1:-1][:4], fill="black")
            draw.rectangle(
                (ox + label_w, y + 2, ox + label_w + int(bar_w * f["rate"]), y + row - 3), fill=colour
            )
            draw.text((ox + label_w + bar_w + 4, y), f"{100 * f['rate']:.0f}% ({f['n']})", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
