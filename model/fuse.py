"""The strokes model: motion networks, and the shipped image model beside them, logits averaged.

The networks read different evidence (the pen's motion and the raster; the raster alone) or start from
different seeds, so they make different mistakes: the mean of their logits reads digits better and turns
away more letters and symbols at the same share of digits than any one of them (model/README.md). Every
network but the one being trained is rebuilt in PyTorch from a served ONNX file and frozen; the strokes
file then holds them all, so serving still runs one model per frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from model.net import WIDTHS, DigitCNN, export_form
from model.nondigits import NOT_A_DIGIT
from shared.preprocess import STROKES_PLANES

MOTION_PREFIX = "motion."
"""Initializer names of the first motion network in a strokes file (``_Served`` attribute names)."""


def served_network(data: bytes, prefix: str = "", planes: int = 1) -> nn.Module:
    """A served network (BatchNorm and temperature folded in) rebuilt as a frozen PyTorch module.

    Args:
        data: An ONNX file's bytes, as :func:`model.export.to_onnx_bytes` wrote them.
        prefix: The network's initializer name prefix in the file: ``""`` for the image model,
            :data:`MOTION_PREFIX` for a strokes file's first motion network.
        planes: Its input planes (1: the image model; 7: a motion network).

    Returns:
        An eval-mode module, ``(N, planes, 28, 28)`` float32 to ``(N, 11)`` logits: the image model's
        served logits, or a motion network's logits before the strokes file's mean and temperature.

    Raises:
        RuntimeError: the file's weights under ``prefix`` do not fit :func:`model.net.export_form`'s
            layers.
    """
    net = export_form(DigitCNN(WIDTHS, outputs=NOT_A_DIGIT + 1, planes=planes), 1.0)
    proto = onnx.load_from_string(data)
    weights = {
        i.name[len(prefix) :]: torch.from_numpy(numpy_helper.to_array(i).copy())
        for i in proto.graph.initializer
        if i.name.startswith(prefix)
    }
    net.load_state_dict(weights, strict=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def image_network(data: bytes) -> nn.Module:
    """The image model's served network as a frozen PyTorch module (:func:`served_network`)."""
    return served_network(data)


def motion_network(path: Path) -> nn.Module:
    """The first motion network of a strokes file (written by ``model.train --form strokes``), frozen."""
    return served_network(path.read_bytes(), MOTION_PREFIX, STROKES_PLANES)


class FusedStrokes(nn.Module):
    """The strokes model: ``(N, 7, 28, 28)`` float32 to ``(N, 11)`` float32 logits.

    The mean of the logits of its motion networks on all planes and, when an image model is given, of
    the image network's served logits on the raster (plane 0).

    Args:
        motion: The trained strokes network (7 input planes), or a served one (:func:`motion_network`).
        image_path: The image model's ONNX file, read once, rebuilt by :func:`image_network` (frozen);
            ``None``: no image network.
        more: Further motion networks, served and frozen (:func:`motion_network`).

    Attributes:
        image_path: As given. image_sha256: Hex digest of the file read (recorded in the metadata), or
            ``None``. members: How many networks are averaged.
    """

    def __init__(self, motion: nn.Module, image_path: Path | None, more: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.motion, self.more = motion, nn.ModuleList(more)
        self.image: nn.Module | None = None
        self.image_path, self.image_sha256 = image_path, None
        if image_path is not None:
            data = image_path.read_bytes()
            self.image, self.image_sha256 = image_network(data), hashlib.sha256(data).hexdigest()
        self.planes = STROKES_PLANES
        self.members = 1 + len(self.more) + (self.image is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused logits, before this model's own temperature."""
        return _mean(self.motion, self.more, self.image, x, 1.0 / self.members)

    def served(self, temperature: float) -> nn.Module:
        """The export form: BatchNorm folded into a trained motion network, the mean over ``temperature``."""
        motion = export_form(self.motion, 1.0) if isinstance(self.motion, DigitCNN) else self.motion
        return _Served(motion, list(self.more), self.image, 1.0 / (self.members * temperature))


def _mean(
    motion: nn.Module, more: nn.ModuleList, image: nn.Module | None, x: torch.Tensor, scale: float
) -> torch.Tensor:
    total: torch.Tensor = motion(x)
    for m in more:
        total = total + m(x)
    if image is not None:
        total = total + image(x[:, :1])
    return total * scale


class _Served(nn.Module):
    def __init__(
        self, motion: nn.Module, more: list[nn.Module], image: nn.Module | None, scale: float
    ) -> None:
        super().__init__()
        self.motion, self.more, self.image, self.scale = motion, nn.ModuleList(more), image, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _mean(self.motion, self.more, self.image, x, self.scale)
