"""Export form and calibration helpers (need the ``train`` extra: PyTorch)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model.net import MIMO, DigitCNN, DigitEnsemble, Distillation, count_parameters, export_form  # noqa: E402
from model.train import (  # noqa: E402
    collapse_mimo,
    distillation_kl,
    fit_temperature,
    main,
    mimo_inputs,
    mutual_kl,
    recompute_batchnorm,
    sharpness_aware_gradients,
    training_loss,
)


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


def test_ensemble_export_form_is_the_mean_of_the_members_over_temperature() -> None:
    torch.manual_seed(0)
    model = DigitEnsemble(2, (8, 16, 32, 32))
    _random_batchnorm(model)
    x = torch.rand(5, 1, 28, 28)
    folded = export_form(model, temperature=0.5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        model.eval()
        each = [member(x) for member in model.members]
        assert model.member_logits(x).shape == (5, 2, 10)
        assert not torch.allclose(each[0], each[1])  # independently initialised
        torch.testing.assert_close(folded(x), (each[0] + each[1]) / 2 / 0.5, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model(x), (each[0] + each[1]) / 2)
    with pytest.raises(ValueError, match=">= 2 members"):
        DigitEnsemble(1)


def test_each_ensemble_member_gets_the_gradient_it_would_get_alone() -> None:
    torch.manual_seed(0)
    ensemble = DigitEnsemble(2, (8, 16, 32, 32), dropout=0.0).train()
    x, y = torch.rand(6, 1, 28, 28), torch.arange(6) % 10
    training_loss(ensemble, x, y, label_smoothing=0.05).backward()
    for member in ensemble.members:
        alone = copy.deepcopy(member)
        alone.zero_grad()
        training_loss(alone, x, y, label_smoothing=0.05).backward()
        for p_ens, p_alone in zip(member.parameters(), alone.parameters(), strict=True):
            assert p_ens.grad is not None and p_alone.grad is not None
            torch.testing.assert_close(p_ens.grad, p_alone.grad, atol=1e-6, rtol=1e-5)


def test_mutual_term_is_kl_from_the_others_detached_with_the_documented_gradient() -> None:
    rng = np.random.default_rng(0)
    z_np = rng.normal(0, 2, (5, 3, 10))
    z = torch.tensor(z_np, dtype=torch.float64, requires_grad=True)
    value = mutual_kl(z)
    value.backward()
    p = np.exp(z_np - z_np.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    q = (p.sum(1, keepdims=True) - p) / 2  # the other two members' mean, not the member itself
    expected = (q * (np.log(q) - np.log(p))).sum() / 5  # KL(q || p), not KL(p || q)
    assert value.item() == pytest.approx(expected, rel=1e-9)
    assert z.grad is not None
    np.testing.assert_allclose(z.grad.numpy(), (p - q) / 5, atol=1e-12)  # q held constant


def test_mutual_learning_adds_the_term_to_the_members_own_losses() -> None:
    torch.manual_seed(0)
    ensemble = DigitEnsemble(2, (8, 16, 32, 32), dropout=0.0).eval()
    x, y = torch.rand(6, 1, 28, 28), torch.arange(6) % 10
    with torch.no_grad():
        alone = training_loss(ensemble, x, y, label_smoothing=0.05).item()
        mutual = training_loss(ensemble, x, y, label_smoothing=0.05, mutual=0.5).item()
        term = mutual_kl(ensemble.member_logits(x)).item()
    assert term > 0  # different members disagree
    assert mutual == pytest.approx(alone + 0.5 * term, rel=1e-6)


def test_distillation_term_is_t2_kl_from_the_teacher_detached_with_the_documented_gradient() -> None:
    rng = np.random.default_rng(1)
    s_np, t_np = rng.normal(0, 2, (4, 10)), rng.normal(0, 2, (4, 10))
    student = torch.tensor(s_np, dtype=torch.float64, requires_grad=True)
    teacher = torch.tensor(t_np, dtype=torch.float64, requires_grad=True)
    value = distillation_kl(student, teacher, temperature=3.0)
    value.backward()

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(s_np / 3), softmax(t_np / 3)
    expected = 9 * (q * (np.log(q) - np.log(p))).sum() / 4  # T^2 KL(q || p), batch mean
    assert value.item() == pytest.approx(expected, rel=1e-9)
    assert student.grad is not None
    np.testing.assert_allclose(student.grad.numpy(), 3 * (p - q) / 4, atol=1e-12)
    assert teacher.grad is None  # held constant
    same = distillation_kl(teacher.detach(), teacher.detach(), temperature=3.0)
    assert same.item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("teacher_smoothing", [None, 0.0])
def test_distillation_teachers_learn_alone_and_the_student_from_labels_and_teachers(
    teacher_smoothing: float | None,
) -> None:
    torch.manual_seed(0)
    model = Distillation(2, (8, 16, 32, 32), (8, 8, 16, 16), dropout=0.0).double().train()
    x, y = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.arange(6) % 10
    training_loss(
        model,
        x,
        y,
        label_smoothing=0.05,
        distill=0.7,
        distill_temperature=3.0,
        teacher_label_smoothing=teacher_smoothing,
    ).backward()
    tracked = {int(m.num_batches_tracked) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert tracked == {1}  # one forward pass per network and step (BatchNorm statistics updated once)
    for member in model.teachers.members:  # no gradient from the student reaches a teacher
        alone = copy.deepcopy(member)
        alone.zero_grad()
        training_loss(alone, x, y, label_smoothing=0.05 if teacher_smoothing is None else 0.0).backward()
        for p_t, p_alone in zip(member.parameters(), alone.parameters(), strict=True):
            assert p_t.grad is not None and p_alone.grad is not None
            torch.testing.assert_close(p_t.grad, p_alone.grad)
    student = copy.deepcopy(model.student)
    student.zero_grad()
    with torch.no_grad():
        target = model.teachers(x)  # the teachers' mean logits
    loss = torch.nn.functional.cross_entropy(student(x), y, label_smoothing=0.05)
    (loss + 0.7 * distillation_kl(student(x), target, 3.0)).backward()
    for p_s, p_alone in zip(model.student.parameters(), student.parameters(), strict=True):
        assert p_s.grad is not None and p_alone.grad is not None
        torch.testing.assert_close(p_s.grad, p_alone.grad)
    with torch.no_grad():  # what ships and what validation measures is the student
        torch.testing.assert_close(model.eval()(x), model.student(x))


def test_weight_averaging_recomputes_the_batchnorm_statistics_of_teachers_and_student() -> None:
    torch.manual_seed(0)
    swa = torch.optim.swa_utils.AveragedModel(Distillation(2, (8, 8, 8, 8), (8, 8, 8, 8)))
    recompute_batchnorm(swa, [torch.rand(4, 1, 28, 28) for _ in range(3)])
    layers = [m for m in swa.module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(layers) == 12  # 4 per network
    for bn in layers:  # every layer saw the batches; none left at the reset statistics (0 / 1)
        assert int(bn.num_batches_tracked) == 3
        assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


@pytest.mark.parametrize(
    "argv",
    [
        ["--distill", "1"],  # no teachers
        ["--members", "2", "--mutual", "1", "--distill", "1"],
        ["--student-widths", "8,8,8,8"],  # without --distill
        ["--members", "2", "--teacher-label-smoothing", "0"],  # without --distill
        ["--mutual", "1"],  # one network has no peers
        ["--mimo", "1"],  # one head is one network
        ["--mimo", "2", "--members", "2"],
        ["--mimo-repeat", "0.2"],  # without --mimo
        ["--mimo", "2", "--mimo-repeat", "1.5"],
        ["--mimo", "2", "--mimo-repeat", "-0.1"],
        ["--sam", "-0.05"],
        ["--teacher", "t.onnx"],  # without --distill
        ["--teacher", "t.onnx", "--distill", "1", "--members", "2"],
        ["--teacher", "t.onnx", "--distill", "1", "--mimo", "2"],
        ["--teacher", "t.onnx", "--distill", "1", "--student-widths", "8,8,8,8"],
        ["--teacher", "t.onnx", "--distill", "1", "--teacher-label-smoothing", "0"],
        ["--teacher", "t.onnx", "--distill", "-1"],
        ["--teacher", "t.onnx", "--distill", "1", "--distill-temperature", "0"],
    ],
)
def test_meaningless_option_combinations_are_refused_before_training(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "need" in capsys.readouterr().err


def test_mimo_collapses_to_one_plain_network_that_computes_its_forward() -> None:
    torch.manual_seed(0)
    model = MIMO(3)
    _random_batchnorm(model)
    model.eval()
    one = model.collapse().eval()
    assert type(one) is DigitCNN
    assert one.features[0].in_channels == 1 and one.head.out_features == 10
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        heads = model.head_logits(x.expand(-1, 3, -1, -1).contiguous())
        torch.testing.assert_close(model(x), heads.mean(dim=1))
        torch.testing.assert_close(one(x), model(x), atol=1e-5, rtol=1e-5)
    # The shipped graph is a plain network's: same layers and parameter count, so the same latency.
    plain = export_form(DigitCNN(), 1.0)
    layers = [type(m) for m in export_form(one, 1.0)]
    assert layers == [type(m) for m in plain]
    assert count_parameters(one) == count_parameters(DigitCNN())


def test_mimo_inputs_give_each_head_its_own_ordering_with_matching_labels() -> None:
    n = 4000
    x = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 28, 28)  # image i is all i
    y = torch.arange(n) % 10
    xm, ym = mimo_inputs(x, y, 3, 0.5, torch.Generator().manual_seed(1))
    assert xm.shape == (n, 3, 28, 28) and ym.shape == (n, 3)
    rows = xm[:, :, 0, 0].long()  # which image each head got
    assert torch.equal(xm, x[:, 0][rows])  # whole images, not mixed pixels
    assert torch.equal(ym, y[rows])  # each head's label is its own image's
    assert torch.equal(rows[:, 0], torch.arange(n))  # head 0: the batch as it is
    for head in (1, 2):
        same = (rows[:, head] == rows[:, 0]).float().mean().item()
        assert 0.45 < same < 0.55  # input repetition 0.5 (plus a random permutation's few fixed points)
    assert (rows[:, 1] != rows[:, 2]).float().mean().item() > 0.3  # the extra heads draw independently
    again = mimo_inputs(x, y, 3, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], xm) and torch.equal(again[1], ym)
    unshared = mimo_inputs(x, y, 2, 0.0, torch.Generator().manual_seed(2))[0][:, 1, 0, 0].long()
    assert torch.equal(unshared.sort().values, torch.arange(n))  # a permutation
    assert (unshared == torch.arange(n)).float().mean().item() < 0.01
    shared = mimo_inputs(x, y, 2, 1.0, torch.Generator().manual_seed(2))[0]
    assert torch.equal(shared[:, 1], shared[:, 0])


def test_mimo_loss_is_the_sum_of_each_heads_cross_entropy_on_its_own_labels() -> None:
    torch.manual_seed(0)
    model = MIMO(2, (8, 8, 8, 8)).train()
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    xm, ym = mimo_inputs(x, y, 2, 0.0, torch.Generator().manual_seed(0))
    assert not torch.equal(ym[:, 0], ym[:, 1])
    torch.manual_seed(1)  # the same dropout masks in both computations
    loss = training_loss(model, xm, ym, 0.1)
    torch.manual_seed(1)
    z = model.head_logits(xm)
    ce = torch.nn.functional.cross_entropy
    expected = sum(ce(z[:, m], ym[:, m], label_smoothing=0.1) for m in range(2))
    torch.testing.assert_close(loss, expected)


def test_mimo_needs_two_heads() -> None:
    with pytest.raises(ValueError, match="2 heads"):
        MIMO(1)


def _first_batchnorm_input_mean(net: DigitCNN, batches: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([net.features[0](b) for b in batches]).mean(dim=(0, 2, 3))


@pytest.mark.parametrize("winner", ["kept", "recomputed"])
def test_without_swa_mimo_ships_the_collapsed_network_with_the_batchnorm_that_validates_better(
    winner: str,
) -> None:
    torch.manual_seed(0)
    model = MIMO(2, (8, 8, 8, 8))
    _random_batchnorm(model)
    trained_mean = model.net.features[1].running_mean.clone()
    batches = [torch.rand(8, 1, 28, 28) for _ in range(3)]
    recomputed = model.collapse()
    torch.optim.swa_utils.update_bn(batches, recomputed)
    x = np.random.default_rng(0).random((60, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():  # labels that the winning candidate gets all right
        labels = (recomputed if winner == "recomputed" else model.collapse()).eval()(torch.from_numpy(x))
    y = labels.argmax(1).numpy()
    shipped, figures = collapse_mimo(model, batches, (x[:40], y[:40]), (x[40:], y[40:]))
    assert type(shipped) is DigitCNN and not shipped.training
    assert figures[0 if winner == "kept" else 1]["right"] == 60
    assert figures[1 if winner == "kept" else 0]["right"] < 60  # the candidates differ
    for f in figures:
        assert f["right"] == pytest.approx(f["val_mnist"] * 40 + f["val_pen"] * 20)
    mean = shipped.features[1].running_mean
    if winner == "recomputed":  # statistics of the first convolution's output under repeated inputs
        torch.testing.assert_close(mean, _first_batchnorm_input_mean(shipped, batches))
    else:  # the training statistics, untouched
        torch.testing.assert_close(mean, trained_mean)
    torch.testing.assert_close(model.net.features[1].running_mean, trained_mean)  # model not modified


def test_weight_averaging_recomputes_mimo_batchnorm_under_repeated_inputs() -> None:
    torch.manual_seed(0)
    swa = torch.optim.swa_utils.AveragedModel(MIMO(2, (8, 8, 8, 8)))
    batches = [torch.rand(8, 1, 28, 28) for _ in range(3)]
    recompute_batchnorm(swa, batches)
    one = swa.module.collapse()
    torch.testing.assert_close(one.features[1].running_mean, _first_batchnorm_input_mean(one, batches))


def test_sam_takes_the_gradient_at_the_perturbed_weights_and_restores_everything_else() -> None:
    torch.manual_seed(0)
    model = DigitCNN((8, 8, 8, 8), dropout=0.0).train()
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])

    def loss_fn() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x), y)

    loss_fn().backward()
    g = [p.grad.clone() for p in model.parameters()]
    weights = [p.detach().clone() for p in model.parameters()]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    statistics = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in norms]
    perturbed = copy.deepcopy(model)  # the same weights, moved by rho along the normalized gradient
    scale = 0.05 / torch.sqrt(sum((gi**2).sum() for gi in g))
    with torch.no_grad():
        for p, gi in zip(perturbed.parameters(), g, strict=True):
            p.add_(gi * scale)
    torch.nn.functional.cross_entropy(perturbed(x), y).backward()

    sharpness_aware_gradients(model, 0.05, loss_fn)
    for p, q, w in zip(model.parameters(), perturbed.parameters(), weights, strict=True):
        torch.testing.assert_close(p.grad, q.grad)  # SAM's gradient
        assert torch.equal(p.detach(), w)  # weights restored bit for bit
    assert any(not torch.allclose(p.grad, gi) for p, gi in zip(model.parameters(), g, strict=True))
    for m, (mean, var, count) in zip(norms, statistics, strict=True):  # the second pass left no statistics
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert int(m.num_batches_tracked) == count
        assert m.momentum == 0.1


def test_sam_restores_weights_and_batchnorm_when_the_second_pass_fails() -> None:
    torch.manual_seed(0)
    model = DigitCNN((8, 8, 8, 8), dropout=0.0).train()
    torch.nn.functional.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
    weights = [p.detach().clone() for p in model.parameters()]

    def failing() -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        sharpness_aware_gradients(model, 0.05, failing)
    assert all(torch.equal(p.detach(), w) for p, w in zip(model.parameters(), weights, strict=True))
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="radius"):
        sharpness_aware_gradients(model, 0.0, failing)


def test_offline_distillation_adds_the_weighted_term_towards_the_teachers_logits() -> None:
    torch.manual_seed(0)
    model = DigitCNN((8, 8, 8, 8), dropout=0.0).train()
    x, y = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    teacher = torch.randn(6, 10) * 3
    loss = training_loss(model, x, y, 0.05, distill=0.7, distill_temperature=1.5, teacher_logits=teacher)
    z = model(x)
    own = torch.nn.functional.cross_entropy(z, y, label_smoothing=0.05)
    torch.testing.assert_close(loss, own + 0.7 * distillation_kl(z, teacher, 1.5))
    assert loss > own  # the term is there (KL > 0 for random logits)
    torch.testing.assert_close(training_loss(model, x, y, 0.05, distill=0.7, distill_temperature=1.5), own)
    with pytest.raises(
        ValueError, match="one DigitCNN"
    ):  # silently ignored, it would train without a teacher
        training_loss(DigitEnsemble(2, (8, 8, 8, 8)), x, y, 0.05, distill=0.7, teacher_logits=teacher)
