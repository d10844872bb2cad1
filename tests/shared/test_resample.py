"""The BOX resampling of the 20-px fit (``shared.preprocess._box_weights``) against Pillow's own."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from shared.preprocess import MNIST_BOX, _box_weights


@settings(max_examples=300, deadline=None)
@given(
    height=st.integers(1, 600),
    width=st.integers(1, 600),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_box_weights_match_pillow_box_resize(height: int, width: int, density: float, seed: int) -> None:
    """For every crop shape the fit shrinks (longer side > 20 px), ``W_rows @ crop @ W_cols.T`` is
    Pillow's ``resize(BOX)`` of the float image to within one float32 ulp of 1.0."""
    if max(height, width) <= MNIST_BOX:
        height += MNIST_BOX  # the fit only shrinks with BOX
    rng = np.random.default_rng(seed)
    crop = (rng.random((height, width)) * (rng.random((height, width)) < density)).astype(np.float32)
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    want = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float32)
    got = _box_weights(height, size[1]) @ crop @ _box_weights(width, size[0]).T
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-7)


def test_box_weights_rows_are_averages() -> None:
    """Each output pixel is a plain average: its weights are equal, positive and sum to 1."""
    for size_in, size_out in [(21, 20), (280, 20), (97, 10), (1000, 7), (20, 20)]:
        w = _box_weights(size_in, size_out).astype(np.float64)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-6)
        for row in w:
            taps = row[row > 0]
            assert taps.size >= 1 and np.ptp(taps) == 0
