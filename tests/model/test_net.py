"""Export form, calibration and weight-averaging helpers, and the command line (need the ``train`` extra)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model import swa  # noqa: E402
from model.calibrate import fit_temperature  # noqa: E402
from model.net import DigitCNN, count_parameters, export_form  # noqa: E402
from model.train import main  # noqa: E402


def _random_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so folding them is tested."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def test_export_form_folds_batchnorm_and_temperature() -> None:
    torch.manual_seed(0)
    model = DigitCNN()
    _random_batchnorm(model)
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


def test_weight_averaging_adds_the_last_weights_and_recomputes_batchnorm_on_the_first_batches() -> None:
    torch.manual_seed(0)
    first, last = DigitCNN((4, 4, 4, 4)), DigitCNN((4, 4, 4, 4))
    average = torch.optim.swa_utils.AveragedModel(first)
    average.update_parameters(first)
    batches = [(torch.rand(3, 1, 28, 28), torch.zeros(3)) for _ in range(swa.BATCHNORM_BATCHES + 5)]
    shipped = swa.finish(average, last, batches)  # type: ignore[arg-type]  # any indexable batch source

    for p, a, b in zip(shipped.parameters(), first.parameters(), last.parameters(), strict=True):
        torch.testing.assert_close(p, (a + b) / 2)
    # The first BatchNorm sees the first convolution's output: its running mean is that output's
    # per-channel mean over exactly the first BATCHNORM_BATCHES batches (equal sizes, cumulative average).
    used = torch.cat([x for x, _ in batches[: swa.BATCHNORM_BATCHES]])
    with torch.no_grad():
        expected = shipped.features[0](used).mean(dim=(0, 2, 3))
    bn = shipped.features[1]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert int(bn.num_batches_tracked) == swa.BATCHNORM_BATCHES
    torch.testing.assert_close(bn.running_mean, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "argv",
    [
        ["--reject-digit-rate", "1"],
        ["--reject-digit-rate", "-0.1"],
    ],
)
def test_a_rejection_rate_outside_zero_to_one_is_refused_before_training(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "--reject-digit-rate needs a share in [0, 1)" in capsys.readouterr().err
