"""Export form and calibration helpers (need the ``train`` extra: PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model.net import DigitCNN, count_parameters, export_form  # noqa: E402
from model.train import fit_temperature  # noqa: E402


def test_export_form_folds_batchnorm_and_temperature() -> None:
    torch.manual_seed(0)
    model = DigitCNN()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.rand(4, 1, 28, 28)
    folded = export_form(model, temperature=2.5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        expected = model.eval()(x) / 2.5
        torch.testing.assert_close(folded(x), expected, atol=1e-5, rtol=1e-5)
    assert count_parameters(model) < 100_000


def test_fit_temperature_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 3, (4000, 10))
    p = np.exp(true_logits - true_logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in p])
    overconfident = (true_logits * 3.0).astype(np.float32)  # a model 3x too sharp
    assert fit_temperature(overconfident, labels) == pytest.approx(3.0, rel=0.1)
