"""Export the trained network to ONNX under the serving contract, and check the file.

Contract (read by :class:`shared.inference.Predictor`): one input ``input`` of shape ``(N, P, 28, 28)``
float32 (dynamic ``N``; ``P`` is 1 for the image model, 7 for the strokes model), one output ``logits``
of shape ``(N, 11)`` (digits 0-9, then "not a digit"), already divided by the calibration temperature.
``metadata_props`` hold the keys in :data:`model.contract.REQUIRED_METADATA`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch

from model.contract import INPUT_NAME, MAX_BYTES, OPSET, OUTPUT_NAME, OUTPUTS, REQUIRED_METADATA
from model.fuse import FusedStrokes
from model.net import DigitCNN, export_form

TOLERANCE = 1e-4
"""Largest allowed |onnxruntime - PyTorch| logit difference."""


class ExportError(RuntimeError):
    """The exported file breaks the contract (checker, parity with PyTorch, size)."""


def to_onnx_bytes(model: DigitCNN | FusedStrokes, temperature: float, metadata: Mapping[str, str]) -> bytes:
    """Serialize ``model.eval()(x) / temperature`` as an ONNX model with metadata.

    Args:
        model: The trained network.
        temperature: Calibration temperature, > 0.
        metadata: ``metadata_props`` entries (string values).

    Returns:
        The serialized, ``onnx.checker``-validated model.
    """
    net = model.served(temperature) if isinstance(model, FusedStrokes) else export_form(model, temperature)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            net,
            (torch.zeros(1, model.planes, 28, 28),),
            buf,  # type: ignore[arg-type]  # a file-like object is accepted; the stubs name paths only
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.graph.name = "strokes_cnn" if model.planes > 1 else "mnist_cnn"
    proto.producer_name = "mnist-live model/train.py"
    del proto.metadata_props[:]
    for key, value in sorted(metadata.items()):
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto, full_check=True)
    data: bytes = proto.SerializeToString()
    return data


def check_export(
    data: bytes, model: DigitCNN | FusedStrokes, temperature: float, probe: npt.NDArray[np.float32]
) -> float:
    """Check the contract and that onnxruntime matches PyTorch.

    Args:
        data: The serialized model.
        model: The trained network.
        temperature: As exported.
        probe: ``(N, P, 28, 28)`` float32 inputs to compare on (``P`` the model's input planes).

    Returns:
        The largest |onnxruntime - PyTorch| logit difference.

    Raises:
        ExportError: too large, wrong input/output names or shapes, missing metadata, or a difference
            above :data:`TOLERANCE`.
    """
    if len(data) > MAX_BYTES:
        raise ExportError(f"model is {len(data)} bytes, above {MAX_BYTES}")
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    if proto.opset_import[0].version < OPSET:
        raise ExportError(f"opset {proto.opset_import[0].version} < {OPSET}")
    keys = {p.key for p in proto.metadata_props}
    missing = [k for k in REQUIRED_METADATA if k not in keys]
    if missing:
        raise ExportError(f"metadata_props lack {missing}")
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    if inp.name != INPUT_NAME or inp.type != "tensor(float)" or list(inp.shape)[1:] != [model.planes, 28, 28]:
        raise ExportError(f"input is {inp.name} {inp.type} {inp.shape}")
    if out.name != OUTPUT_NAME or len(out.shape) != 2 or out.shape[1] != OUTPUTS:
        raise ExportError(f"output is {out.name} {out.shape}")
    if isinstance(inp.shape[0], int) or isinstance(out.shape[0], int):
        raise ExportError("batch dimension is not dynamic")
    with torch.no_grad():
        expected = (model.eval()(torch.from_numpy(probe)) / temperature).numpy()
    worst = 0.0
    for n in (1, 7, len(probe)):  # batch 1, an odd size, everything
        (got,) = session.run(None, {INPUT_NAME: probe[:n]})
        worst = max(worst, float(np.abs(got - expected[:n]).max()))
    if worst > TOLERANCE:
        raise ExportError(f"onnxruntime differs from PyTorch by {worst:.2e} > {TOLERANCE}")
    return worst


def write(data: bytes, path: Path) -> None:
    """Write the model file atomically (readers never see a half-written model)."""
    tmp = path.with_suffix(".onnx.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
