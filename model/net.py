"""The digit CNN and its export form (BatchNorm folded into the convolutions, temperature into the head)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

WIDTHS = (16, 32, 64, 64)
"""Channels of the four 3x3 convolutions (28x28 -> pool -> 14x14 -> pool -> 7x7 x2 -> pool -> 3x3)."""


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class DigitCNN(nn.Module):
    """Small VGG-style CNN: ``(N, planes, 28, 28)`` float32 in [0, 1] to ``(N, outputs)`` float32 logits.

    Pooling right after each of the first two convolutions keeps the full-resolution work to one 1->16
    layer and the 14x14 work to one 16->32 layer; two 7x7 layers (64 channels) carry most of the capacity.
    About 3.7 M multiply-adds per image, which sets batch-1 latency on one onnxruntime thread.

    Args:
        widths: Channels of the four convolutions.
        dropout: Dropout before the classifier (training only).
        outputs: Logits; the shipped networks have 11 (digits 0-9, then not-a-digit).
        planes: Input planes: 1 for the image model (the raster), 7 for the strokes model (the raster and
            the motion planes of :func:`shared.preprocess.strokes_planes`).
    """

    def __init__(
        self, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.1, outputs: int = 10, planes: int = 1
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.planes = planes
        self.features = nn.Sequential(
            *_conv(planes, w0),
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
        """``(N, planes, 28, 28)`` float32 to ``(N, outputs)`` float32 logits."""
        logits: torch.Tensor = self.head(self.dropout(self.features(x)))
        return logits


def export_form(model: DigitCNN, temperature: float) -> nn.Module:
    """An inference-only copy: BatchNorm folded into each convolution, logits divided by ``temperature``.

    Args:
        model: The trained network (not modified).
        temperature: Softmax temperature T > 0; the result returns ``logits / T``.

    Returns:
        An eval-mode module computing the calibrated ``(N, outputs)`` float32 logits (equal to
        ``model.eval()(x) / temperature`` up to float rounding).
    """
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
