"""Accuracy of the shipped model through the product's own input paths (needs ../shared/data).

* MNIST test, all 10,000 images, each rendered as the page's 280x280 canvas PNG (black on white) and
  sent through ``preprocess(ImageFrame(png))``: top-1 >= 99.5 %.
* ``unipen1a_dev_200.jsonl`` (120 writers, none trained on), drawn as a person would (random size and
  position on a 280x280 canvas, pen 12-24 px, fixed seed), through the strokes path and through the
  rendered PNG: top-1 >= 97 % each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.data import load_mnist
from model.evaluate import PEN_SEED, mnist_canvas_batch, pen_batch
from shared.inference import Predictor
from shared.inks import Ink

pytestmark = pytest.mark.data

MNIST_GATE = 0.995
PEN_200_GATE = 0.97


def _accuracy(predictor: Predictor, x: np.ndarray, blank: np.ndarray, labels: np.ndarray) -> float:
    pred = predictor.logits(x).argmax(axis=1)
    return float(((pred == labels) & ~blank).mean())  # a digit read as "no digit" is an error


def test_mnist_test_set_through_canvas_path(data_dir: Path, predictor: Predictor) -> None:
    images, labels = load_mnist(data_dir, "test")  # sha256-checked
    assert len(images) == 10_000
    x, blank = mnist_canvas_batch(images)
    acc = _accuracy(predictor, x, blank, labels)
    assert acc >= MNIST_GATE, f"MNIST test top-1 {acc:.4f} < {MNIST_GATE} ({int((1 - acc) * 10_000)} errors)"


@pytest.mark.parametrize("as_png", [False, True], ids=["strokes", "png"])
def test_unseen_writers_drawn_at_random_size_and_position(
    pen_inks_200: list[Ink], predictor: Predictor, as_png: bool
) -> None:
    assert len(pen_inks_200) == 200
    labels = np.array([ink.label for ink in pen_inks_200])
    x, blank = pen_batch(pen_inks_200, seed=PEN_SEED, as_png=as_png)
    acc = _accuracy(predictor, x, blank, labels)
    assert acc >= PEN_200_GATE, f"pen 200 top-1 {acc:.3f} < {PEN_200_GATE}"


def test_pen_drawing_is_seeded(pen_inks_200: list[Ink]) -> None:
    a, _ = pen_batch(pen_inks_200[:5], seed=PEN_SEED)
    b, _ = pen_batch(pen_inks_200[:5], seed=PEN_SEED)
    c, _ = pen_batch(pen_inks_200[:5], seed=PEN_SEED + 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
