"""The strokes model's late fusion: the motion network beside the shipped image model, logits averaged.

The two read different evidence (the pen's motion and the raster; the raster alone), so they make
different mistakes: the mean of their logits turns away far more letters and symbols than the motion
network alone at the same share of digits, and reads digits about as well (model/README.md). The image
model is rebuilt in PyTorch from the shipped ONNX file and frozen; the strokes file then holds both
networks, so serving still runs one model per frame.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from torch import nn

from model.net import WIDTHS, DigitCNN, export_form
from model.nondigits import NOT_A_DIGIT


def image_network(data: bytes) -> nn.Module:
    """The image model's served network (BatchNorm and temperature folded in) as a frozen PyTorch module.

    Args:
        data: The image model's ONNX file's bytes, as :func:`model.export.to_onnx_bytes` wrote them.

    Returns:
        An eval-mode module, ``(N, 1, 28, 28)`` float32 to the file's ``(N, 11)`` served logits.

    Raises:
        RuntimeError: the file's weights do not fit :func:`model.net.export_form`'s layers.
    """
    net = export_form(DigitCNN(WIDTHS, outputs=NOT_A_DIGIT + 1), 1.0)
    proto = onnx.load_from_string(data)
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in proto.graph.initializer}
    net.load_state_dict(weights, strict=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


class FusedStrokes(nn.Module):
    """The strokes model: ``(N, 7, 28, 28)`` float32 to ``(N, 11)`` float32 logits.

    The mean of the motion network's logits on all planes and the image network's served logits on the
    raster (plane 0).

    Args:
        motion: The trained strokes network (7 input planes).
        image_path: The image model's ONNX file; read once, rebuilt by :func:`image_network` (frozen).

    Attributes:
        image_path: As given. image_sha256: Hex digest of the file read (recorded in the metadata).
    """

    def __init__(self, motion: DigitCNN, image_path: Path) -> None:
        super().__init__()
        data = image_path.read_bytes()
        self.motion, self.image = motion, image_network(data)
        self.image_path, self.image_sha256 = image_path, hashlib.sha256(data).hexdigest()
        self.planes = motion.planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The fused logits, before this model's own temperature."""
        logits: torch.Tensor = 0.5 * (self.motion(x) + self.image(x[:, :1]))
        return logits

    def served(self, temperature: float) -> nn.Module:
        """The export form: BatchNorm folded into the motion network, the mean divided by ``temperature``."""
        return _Served(export_form(self.motion, 1.0), self.image, temperature)


class _Served(nn.Module):
    def __init__(self, motion: nn.Module, image: nn.Module, temperature: float) -> None:
        super().__init__()
        self.motion, self.image, self.scale = motion, image, 0.5 / temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = (self.motion(x) + self.image(x[:, :1])) * self.scale
        return logits
