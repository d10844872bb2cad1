"""Accuracy of the shipped models through the product's own input paths (needs ../shared/data).

Each frame goes to the model of its form, as served: images to the image model, strokes to the strokes
model (raster and pen motion).

* MNIST test, all 10,000 images, each rendered as the page's 280x280 canvas PNG (black on white) and
  sent through ``preprocess(ImageFrame(png))``: top-1 >= 99.5 %.
* All 5,015 digits of the 68 held-out writers (``model.data.pen_split``, none trained on), drawn as a
  person would (random size and position on a 280x280 canvas, pen 12-24 px, fixed seed): through the
  strokes path top-1 >= :data:`PEN_STROKES_GATE` (the shipped strokes model's figure, which must not
  drop; the 99.2 % target, :data:`PEN_STROKES_TARGET`, is a strict xfail: not met); through the rendered
  PNG no lower than the image model's figure (:data:`PEN_PNG_GATE`). The full sets: no tolerance.
* The 119 inks of ``unipen1a_dev_200.jsonl`` by those writers, both paths: top-1 >= 97 % each (a quick
  check).

A digit answered ``not_a_digit`` or ``no_digit`` counts as an error; at most 0.5 % of MNIST test digits
may be answered ``not_a_digit`` (the full set: no tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.data import heldout_pen_writers, load_mnist, pen_200_heldout, pen_split
from model.evaluate import PEN_SEED, mnist_canvas_batch, pen_batch
from shared.inference import Predictor, not_a_digit_scores
from shared.inks import Ink

pytestmark = pytest.mark.data

MNIST_GATE = 0.995
PEN_STROKES_GATE = 0.9846
"""Held-out writers, strokes path: the strokes model 1.2.0's figure, 4,938 of 5,015 (model/README.md)."""
PEN_STROKES_TARGET = 0.992
"""Held-out writers, strokes path: the target (model/README.md says why it is not met)."""
PEN_PNG_GATE = 0.9824
"""Held-out writers, PNG path: the image model 2.1.0's figure, 4,927 of 5,015 (model/README.md)."""
PEN_200_GATE = 0.97
MNIST_NOT_A_DIGIT_MAX = 0.005


def _answers(predictor: Predictor, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The served digit (arg-max of the ten digit logits) and the not-a-digit flag of each row."""
    logits = predictor.logits(x)
    return logits[:, :10].argmax(axis=1), not_a_digit_scores(logits) >= predictor.threshold_for(x.shape[1])


def _accuracy(predictor: Predictor, x: np.ndarray, blank: np.ndarray, labels: np.ndarray) -> float:
    pred, turned_away = _answers(predictor, x)
    return float(((pred == labels) & ~blank & ~turned_away).mean())  # no_digit, not_a_digit: errors


def test_mnist_test_set_through_canvas_path(data_dir: Path, predictor: Predictor) -> None:
    images, labels = load_mnist(data_dir, "test")  # sha256-checked
    assert len(images) == 10_000
    x, blank = mnist_canvas_batch(images)
    acc = _accuracy(predictor, x, blank, labels)
    assert acc >= MNIST_GATE, f"MNIST test top-1 {acc:.4f} < {MNIST_GATE} ({int((1 - acc) * 10_000)} errors)"
    turned_away = float(_answers(predictor, x)[1].mean())
    assert turned_away <= MNIST_NOT_A_DIGIT_MAX, (
        f"{turned_away:.4f} of MNIST test digits answered not_a_digit"
    )


@pytest.mark.parametrize("as_png", [False, True], ids=["strokes", "png"])
def test_unseen_writers_drawn_at_random_size_and_position(
    data_dir: Path, pen_inks_200: list[Ink], predictor: Predictor, as_png: bool
) -> None:
    inks = pen_200_heldout(data_dir)
    heldout = heldout_pen_writers(data_dir)
    assert inks == [ink for ink in pen_inks_200 if ink.writer in heldout]
    assert len(inks) == 119
    labels = np.array([ink.label for ink in inks])
    x, blank = pen_batch(inks, seed=PEN_SEED, as_png=as_png)
    acc = _accuracy(predictor, x, blank, labels)
    assert acc >= PEN_200_GATE, f"pen 200 top-1 {acc:.3f} < {PEN_200_GATE}"


UNMET_TARGET = pytest.mark.xfail(
    strict=True, reason="the strokes model reads 98.46 % of these; IBM's segmentation noise (model/README.md)"
)


@pytest.mark.parametrize(
    ("as_png", "gate"),
    [
        (False, PEN_STROKES_GATE),
        (True, PEN_PNG_GATE),
        pytest.param(False, PEN_STROKES_TARGET, marks=UNMET_TARGET),
    ],
    ids=["strokes", "png", "strokes-target"],
)
def test_all_held_out_writers_digits(data_dir: Path, predictor: Predictor, as_png: bool, gate: float) -> None:
    inks = pen_split(data_dir).heldout
    assert len(inks) == 5015
    labels = np.array([ink.label for ink in inks])
    x, blank = pen_batch(inks, seed=PEN_SEED, workers=2, as_png=as_png)
    assert x.shape[1] == (1 if as_png else 7)  # each form reaches its own model
    acc = _accuracy(predictor, x, blank, labels)
    assert acc >= gate, f"held-out writers top-1 {acc:.4f} < {gate} ({round((1 - acc) * len(inks))} errors)"


def test_pen_drawing_is_seeded(pen_inks_200: list[Ink]) -> None:
    a, _ = pen_batch(pen_inks_200[:5], seed=PEN_SEED)
    b, _ = pen_batch(pen_inks_200[:5], seed=PEN_SEED)
    c, _ = pen_batch(pen_inks_200[:5], seed=PEN_SEED + 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
