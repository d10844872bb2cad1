"""The strokes model's parts: the image model rebuilt from its file, the fusion, the motion batches
(need the ``train`` extra)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from model.batches import CanvasBatches  # noqa: E402
from model.export import check_export, to_onnx_bytes  # noqa: E402
from model.fuse import FusedStrokes, image_network  # noqa: E402
from model.net import DigitCNN  # noqa: E402
from model.train import Config  # noqa: E402
from shared.inference import Predictor  # noqa: E402
from shared.inks import Ink  # noqa: E402
from shared.settings import Settings  # noqa: E402


def test_the_image_network_rebuilt_from_its_file_serves_the_same_logits(settings: Settings) -> None:
    net = image_network(settings.model_path.read_bytes())
    x = np.random.default_rng(0).random((9, 1, 28, 28), dtype=np.float32)
    session = ort.InferenceSession(str(settings.model_path), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"input": x})
    with torch.no_grad():
        got = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not any(p.requires_grad for p in net.parameters())


def test_the_fused_model_is_the_mean_of_both_and_exports_as_one_file(settings: Settings) -> None:
    torch.manual_seed(0)
    motion = DigitCNN(outputs=11, planes=7).eval()
    fused = FusedStrokes(motion, settings.model_path)
    image = fused.image
    assert fused.image_sha256 == Predictor.of(settings).models.image.sha256
    x = torch.rand(5, 7, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), 0.5 * (motion(x) + image(x[:, :1])))
    data = to_onnx_bytes(fused, 0.8, {})
    probe = np.random.default_rng(1).random((16, 7, 28, 28), dtype=np.float32)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [7, 28, 28]
    (got,) = session.run(None, {"input": probe})
    with torch.no_grad():
        want = (fused(torch.from_numpy(probe)) / 0.8).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(Exception, match="metadata"):
        check_export(data, fused, 0.8, probe)  # no metadata given: the contract check refuses it


def _ink(label: int) -> Ink:
    t = np.linspace(0, 2 * np.pi, 30)
    return Ink(strokes=[np.c_[np.cos(t), np.sin(t)].tolist()], label=label, writer="w", y_up=False)


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_strokes_batches_carry_motion_planes_and_mnist_rows_carry_none(dropout: float) -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((40, 28, 28)) * 255).astype(np.uint8)
    clean = images / np.float32(255)
    labels = rng.integers(0, 10, 40).astype(np.int64)
    cfg = Config(form="strokes", mnist_per_batch=8, pen_per_batch=4, motion_dropout=dropout, epochs=1)
    x, y = CanvasBatches(images, clean.astype(np.float32), labels, [_ink(0)] * 6, cfg)[0]
    assert tuple(x.shape) == (12, 7, 28, 28) and len(y) == 12
    assert float(x[:8, 1:].abs().sum()) == 0.0  # MNIST: no trajectory
    drawn_motion = float(x[8:, 1:].abs().sum())
    assert (drawn_motion == 0.0) is (dropout == 1.0)
    assert float(x[8:, 0].sum()) > 0  # the raster is always there
    image_batch, _ = CanvasBatches(
        images,
        clean.astype(np.float32),
        labels,
        [_ink(0)] * 6,
        Config(mnist_per_batch=8, pen_per_batch=4, epochs=1),
    )[0]
    assert tuple(image_batch.shape) == (12, 1, 28, 28)
