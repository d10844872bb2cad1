"""The strokes model's parts: the image model rebuilt from its file, the fusion, the motion batches
(need the ``train`` extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from model.batches import CanvasBatches  # noqa: E402
from model.export import check_export, to_onnx_bytes  # noqa: E402
from model.fuse import FusedStrokes, image_network, motion_network  # noqa: E402
from model.net import DigitCNN, export_form  # noqa: E402
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


def _trained_like(seed: int) -> DigitCNN:
    """A motion network whose BatchNorm layers are not the identity, as after training (the exporter
    merges equal initializers, such as the zero biases an untrained network folds to)."""
    torch.manual_seed(seed)
    net = DigitCNN(outputs=11, planes=7)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


def test_motion_networks_rebuilt_from_a_strokes_file_serve_their_own_logits(
    settings: Settings, tmp_path: Path
) -> None:
    motion = _trained_like(1)
    path = tmp_path / "member.onnx"
    path.write_bytes(to_onnx_bytes(FusedStrokes(motion, settings.model_path), 0.9, {}))
    rebuilt = motion_network(path)
    x = torch.rand(6, 7, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), motion(x), atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in rebuilt.parameters())


@pytest.mark.parametrize("with_image", [False, True], ids=["motion-only", "with-image"])
def test_an_ensemble_is_the_plain_mean_of_its_networks_and_exports_as_one_file(
    settings: Settings, with_image: bool
) -> None:
    nets = [_trained_like(2), _trained_like(3)]
    fused = FusedStrokes(nets[0], settings.model_path if with_image else None, [export_form(nets[1], 1.0)])
    x = torch.rand(5, 7, 28, 28)
    parts = [nets[0](x), nets[1](x)] + ([fused.image(x[:, :1])] if fused.image is not None else [])
    assert fused.members == len(parts)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), sum(parts) / len(parts), atol=1e-5, rtol=1e-5)
    session = ort.InferenceSession(to_onnx_bytes(fused, 0.7, {}), providers=["CPUExecutionProvider"])
    probe = np.random.default_rng(3).random((8, 7, 28, 28), dtype=np.float32)
    (got,) = session.run(None, {"input": probe})
    with torch.no_grad():
        want = (fused(torch.from_numpy(probe)) / 0.7).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)
