"""Pen-ink augmentation (needs the ``train`` extra: :mod:`model.augment` imports PyTorch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from model import augment
from shared.inks import Ink


def _pairwise(p: np.ndarray) -> np.ndarray:
    return np.linalg.norm(p[:, None] - p[None], axis=-1)


def test_stroke_jitter_moves_each_stroke_rigidly_and_on_its_own() -> None:
    bar = np.stack([np.linspace(-0.4, 0.4, 9), np.full(9, -0.5)], 1)
    hook = np.stack([np.linspace(-0.4, 0.3, 9), np.linspace(-0.3, 0.5, 9)], 1)
    moved = augment._jitter_strokes([bar, hook], np.random.default_rng(3))
    ratios = []
    for before, after in zip((bar, hook), moved, strict=True):
        # A similarity transform: all distances inside a stroke scale by one factor within the limits.
        d0, d1 = _pairwise(before), _pairwise(after)
        mask = d0 > 0
        ratio = d1[mask] / d0[mask]
        assert np.allclose(ratio, ratio[0], rtol=1e-9)
        limit = math.exp(augment.STROKE_JITTER_LOG_SCALE)
        assert 1 / limit - 1e-9 <= ratio[0] <= limit + 1e-9
        ratios.append(ratio[0])
    # Each stroke got its own transform: the gap between the strokes is not one global similarity.
    across0 = np.linalg.norm(bar[:, None] - hook[None], axis=-1)
    across1 = np.linalg.norm(moved[0][:, None] - moved[1][None], axis=-1)
    assert not np.allclose(across1 / across0, ratios[0], rtol=1e-3)


def test_augment_pen_is_a_pure_function_of_the_generator() -> None:
    ink = Ink(
        strokes=[[[0.0, 0.0], [10.0, 0.0]], [[0.0, 0.0], [0.0, 12.0], [8.0, 20.0]]],
        label=5,
        writer="t",
        y_up=False,
    )
    a = [augment.augment_pen(ink, np.random.default_rng([7, i])) for i in range(20)]
    b = [augment.augment_pen(ink, np.random.default_rng([7, i])) for i in range(20)]
    for x, y in zip(a, b, strict=True):
        assert x is not None and y is not None
        assert x.shape == (28, 28) and x.dtype == np.float32
        np.testing.assert_array_equal(x, y)
    # Different generators draw differently; a plain placement (as in evaluation) of this thin two-stroke
    # ink may normalize to the same tensor as another (the thin-pen rule sets the pen from the ink's size).
    assert len({x.tobytes() for x in a if x is not None}) >= 16
