"""The digit CNN and its export form (BatchNorm folded into the convolutions, temperature into the head)."""

from __future__ import annotations

import copy
from typing import cast

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

WIDTHS = (16, 32, 64, 64)
"""Channels of the four 3x3 convolutions (28x28 -> pool -> 14x14 -> pool -> 7x7 x2 -> pool -> 3x3)."""


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DigitCNN(nn.Module):
    """Small VGG-style CNN: ``(N, 1, 28, 28)`` float32 in [0, 1] to ``(N, 10)`` logits.

    Pooling right after each of the first two convolutions keeps the full-resolution work to one 1->16
    layer and the 14x14 work to one 16->32 layer; two 7x7 layers (64 channels) carry most of the capacity.
    About 3.7 M multiply-adds per image, which sets batch-1 latency on one onnxruntime thread.

    Args:
        widths: Channels of the four convolutions.
        dropout: Dropout before the classifier (training only).
        in_channels: Input channels; 1 except inside :class:`MIMO`.
        outputs: Logits; 10 except inside :class:`MIMO`.
    """

    def __init__(
        self, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.1, in_channels: int = 1, outputs: int = 10
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(
            *_conv(in_channels, w0),
            nn.MaxPool2d(2),
            *_conv(w0, w1),
            nn.MaxPool2d(2),
            *_conv(w1, w2),
            *_conv(w2, w3),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(w3 * 3 * 3, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, 28, 28)`` float32 to ``(N, outputs)`` logits (by default 1 and 10)."""
        return self.head(self.dropout(self.features(x)))


class MeanLogits(nn.Module):
    """Networks side by side on the same input; the output is their mean logits.

    Args:
        members: Modules mapping ``(N, 1, 28, 28)`` to ``(N, 10)`` logits.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` to ``(N, members, 10)`` logits, one row per member."""
        return torch.stack([m(x) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` to ``(N, 10)``: the members' mean logits."""
        return self.member_logits(x).mean(dim=1)


class DigitEnsemble(MeanLogits):
    """``members`` independently initialised :class:`DigitCNN` s side by side; the output is their mean logit.

    Each member is trained on its own loss (see ``model/train.py``), so the members differ only by their
    initial weights and dropout masks: a deep ensemble (Lakshminarayanan et al. 2017) inside one ONNX graph.
    Averaging removes part of the run-to-run variance of a single network (model card, runs 10-15 and 20);
    N full-width members cost N times the multiply-adds, and narrower members, tried to stay within one
    network's latency, lost accuracy (runs 16-17).

    Args:
        members: Number of networks, >= 2.
        widths: Channels of each member's four convolutions.
        dropout: Dropout before each member's classifier (training only).

    Raises:
        ValueError: ``members < 2``.
    """

    def __init__(self, members: int, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.1) -> None:
        if members < 2:
            raise ValueError(f"an ensemble needs >= 2 members, got {members}")
        super().__init__([DigitCNN(widths, dropout) for _ in range(members)])


class Distillation(nn.Module):
    """A :class:`DigitEnsemble` of teachers and one :class:`DigitCNN` student, trained together.

    Online ensemble distillation (Hinton et al. 2015, with the teachers trained in the same run as in
    Guo et al. 2020, KDCL): each teacher learns alone; the student learns from the labels and from the
    teachers' mean logits (``model.train.distillation_kl``). Only the student ships, at one network's
    latency. ``forward`` is the student's, so validation during training measures what ships. Tried in
    runs 22-24 of the model card: on held-out pen writers the student scored below the same network
    trained alone.

    Args:
        teachers: Number of teacher networks, >= 2.
        widths: Channels of each teacher's four convolutions.
        student_widths: Channels of the student's four convolutions.
        dropout: Dropout before each classifier (training only).

    Raises:
        ValueError: ``teachers < 2``.
    """

    def __init__(
        self,
        teachers: int,
        widths: tuple[int, ...] = WIDTHS,
        student_widths: tuple[int, ...] = WIDTHS,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.teachers = DigitEnsemble(teachers, widths, dropout)
        self.student = DigitCNN(student_widths, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` to the student's ``(N, 10)`` logits."""
        return cast(torch.Tensor, self.student(x))


class MIMO(nn.Module):
    """Several subnetworks inside one :class:`DigitCNN` (multi-input multi-output, Havasi et al. 2021).

    In training, each of the ``heads`` input channels carries a different image and each group of 10
    logits is trained on that image's label (``model.train.mimo_inputs``), so the network learns
    ``heads`` mostly independent subnetworks. At inference every input channel gets the same image and the
    groups' logits are averaged: an ensemble in one forward pass. Since the input channels are then equal,
    the first convolution's weights can be summed over them and the head's rows averaged
    (:meth:`collapse`): the shipped graph is an ordinary one-input :class:`DigitCNN`, at its latency. Tried
    in runs 25-26 of the model card: at this width it did not help (MNIST test and validation lower in
    both runs, held-out pen lower or within the spread).

    Args:
        heads: Subnetworks M, >= 2.
        widths: Channels of the four convolutions (shared by the subnetworks).
        dropout: Dropout before the classifier (training only).

    Raises:
        ValueError: ``heads < 2``.
    """

    def __init__(self, heads: int, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.1) -> None:
        if heads < 2:
            raise ValueError(f"MIMO needs >= 2 heads, got {heads}")
        super().__init__()
        self.heads = heads
        self.net = DigitCNN(widths, dropout, in_channels=heads, outputs=10 * heads)

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, M, 28, 28)``, one image per input channel, to ``(N, M, 10)`` logits, one row per head."""
        return cast(torch.Tensor, self.net(x)).view(x.shape[0], self.heads, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` to ``(N, 10)``: the image on every input channel, the heads' mean logits."""
        return self.head_logits(x.expand(-1, self.heads, -1, -1).contiguous()).mean(dim=1)

    def collapse(self) -> DigitCNN:
        """The equivalent one-input :class:`DigitCNN` (float32, CPU, training mode like any new module).

        The first convolution's weights are summed over the input channels (which inference fills with
        the same image) and the head's weights and biases averaged over the heads. BatchNorm statistics
        are copied unchanged. Both steps are linear, so in eval mode the result equals :meth:`forward`
        up to float rounding.
        """
        widths = tuple(m.out_channels for m in self.net.features if isinstance(m, nn.Conv2d))
        one = DigitCNN(widths, self.net.dropout.p)
        state = {k: v.clone() for k, v in self.net.state_dict().items()}
        state["features.0.weight"] = state["features.0.weight"].sum(dim=1, keepdim=True)
        features = state["head.weight"].shape[1]
        state["head.weight"] = state["head.weight"].view(self.heads, 10, features).mean(dim=0)
        state["head.bias"] = state["head.bias"].view(self.heads, 10).mean(dim=0)
        one.load_state_dict(state)
        return one


def build(
    widths: tuple[int, ...] = WIDTHS,
    members: int = 1,
    student_widths: tuple[int, ...] | None = None,
    mimo: int = 0,
    outputs: int = 10,
) -> DigitCNN | DigitEnsemble | Distillation | MIMO:
    """The network to train.

    Returns:
        One :class:`DigitCNN` (``members == 1``), a :class:`DigitEnsemble` of ``members`` of them,
        given ``student_widths`` a :class:`Distillation` with ``members`` teachers, or, given ``mimo``
        (which takes precedence over ``members`` and ``student_widths``), a :class:`MIMO` of that many heads.

    Raises:
        ValueError: ``members < 1`` with an ensemble or teachers, or ``mimo == 1``.
    """
    if mimo:
        return MIMO(mimo, widths)
    if student_widths is not None:
        return Distillation(members, widths, student_widths)
    return DigitCNN(widths, outputs=outputs) if members == 1 else DigitEnsemble(members, widths)


def export_form(model: DigitCNN | DigitEnsemble, temperature: float) -> nn.Module:
    """An inference-only copy: BatchNorm folded into each convolution, logits divided by ``temperature``.

    Args:
        model: The trained network or ensemble (not modified).
        temperature: Softmax temperature T > 0; the result returns ``logits / T`` (for an ensemble, the
            mean of the members' logits over T, which equals the mean of each member's ``logits / T``).

    Returns:
        An eval-mode module computing the calibrated ``(N, 10)`` logits (equal to
        ``model.eval()(x) / temperature`` up to float rounding).
    """
    if isinstance(model, DigitEnsemble):
        return MeanLogits([export_form(cast(DigitCNN, m), temperature) for m in model.members]).eval()
    model = copy.deepcopy(model).eval()
    layers: list[nn.Module] = []
    modules = list(model.features)
    i = 0
    while i < len(modules):
        m = modules[i]
        if isinstance(m, nn.Conv2d) and i + 1 < len(modules) and isinstance(modules[i + 1], nn.BatchNorm2d):
            bn = modules[i + 1]
            assert isinstance(bn, nn.BatchNorm2d)
            layers.append(fuse_conv_bn_eval(m, bn))
            i += 2
            continue
        layers.append(m)
        i += 1
    head = nn.Linear(model.head.in_features, model.head.out_features)
    with torch.no_grad():
        head.weight.copy_(model.head.weight / temperature)
        head.bias.copy_(model.head.bias / temperature)
    layers.append(head)
    return nn.Sequential(*layers).eval()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
