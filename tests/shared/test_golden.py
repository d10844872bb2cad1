"""The trained model's contract: preprocessing output is pinned to the code it was trained against.

``tests/data/golden_preprocess.npz`` was written by ``tests/data/make_golden.py`` with
``shared/preprocess.py`` as it is (the normalization a model is trained on, thin-pen and tap rules
included). Any refactor must reproduce it to 1e-5 (max absolute difference); a deliberate change
regenerates it, and the model is then retrained on the new normalization. Each test runs with both
kernel forms (:mod:`shared.kernels`): the compiled one and the numpy one the Lambda image uses.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from shared import kernels
from shared.decode import decode_image
from shared.preprocess import ImageFrame, StrokesFrame, normalize, preprocess

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden_preprocess.npz"
ATOL = 1e-5


@pytest.fixture(params=["compiled", "numpy"], autouse=True)
def kernel_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the installed kernels, then with the numpy forms in their place."""
    if request.param == "numpy":
        for name in ("capsule_coverage", "center_by_mass", "ink_extent", "resample", "outline"):
            monkeypatch.setattr(kernels, name, getattr(kernels, f"numpy_{name}"))
    return str(request.param)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as z:
        return {k: z[k] for k in z.files}


def test_strokes_outputs_unchanged(golden: dict[str, np.ndarray]) -> None:
    points, lengths, owner = golden["points"], golden["lengths"], golden["frame_of_stroke"]
    frames: list[list[list[list[float]]]] = [[] for _ in golden["pens"]]
    start = 0
    for n, k in zip(lengths.tolist(), owner.tolist(), strict=True):
        frames[k].append(points[start : start + n].tolist())
        start += n
    for k, strokes in enumerate(frames):
        got = preprocess(StrokesFrame(strokes, 280, 280, float(golden["pens"][k])))
        assert got is not None
        np.testing.assert_allclose(got[0, 0], golden["strokes_expected"][k], rtol=0, atol=ATOL)  # the raster


def test_png_outputs_unchanged(golden: dict[str, np.ndarray]) -> None:
    for k, want in enumerate(golden["png_expected"]):
        png = golden[f"png_{k}"].tobytes()
        got = preprocess(ImageFrame(png))
        assert got is not None
        np.testing.assert_allclose(got.reshape(28, 28), want, rtol=0, atol=ATOL)
        # the public two-step form is the same path
        two_step = normalize(decode_image(png))
        assert two_step is not None
        np.testing.assert_allclose(two_step, want, rtol=0, atol=ATOL)


@pytest.mark.data
def test_mnist_normalize_unchanged(golden: dict[str, np.ndarray], data_dir: Path) -> None:
    with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as fh:
        raw = fh.read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    for i, want in zip(golden["mnist_indices"].tolist(), golden["mnist_expected"], strict=True):
        got = normalize(images[i])
        assert got is not None
        np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
        as_float = normalize(images[i].astype(np.float32) / np.float32(255))
        assert as_float is not None
        np.testing.assert_allclose(as_float, want, rtol=0, atol=ATOL)
