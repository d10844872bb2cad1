"""Tiny ONNX files of the serving contract whose answers are known, for tests of routing and decisions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def constant_model(
    tmp_path: Path,
    logits: list[float],
    metadata: dict[str, str] | None = None,
    planes: int = 1,
    name: str = "constant.onnx",
) -> Path:
    """An ONNX file whose served logits are ``logits`` for every ``(N, planes, 28, 28)`` input.

    ``metadata`` defaults to a not-a-digit threshold of 0.5; the file is ``tmp_path / name``.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", planes, 28, 28])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(logits)])
    weights = numpy_helper.from_array(np.zeros((planes * 784, len(logits)), np.float32), "w")
    bias = numpy_helper.from_array(np.asarray(logits, np.float32), "b")
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"]),
    ]
    graph = helper.make_graph(nodes, "constant", [x], [y], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata if metadata is not None else {"not_a_digit_threshold": "0.5"}).items():
        model.metadata_props.add(key=key, value=value)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def one_hot(digit: int) -> list[float]:
    """Eleven logits that answer ``digit`` surely (and not "not a digit")."""
    return [8.0 if i == digit else 0.0 for i in range(11)]
