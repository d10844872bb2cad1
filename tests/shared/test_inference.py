"""Predictor: contract checks at load, softmax, batching, no_digit handling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from shared import errors
from shared.inference import Predictor, _softmax_row, softmax, top_k
from shared.preprocess import StrokesFrame


def test_softmax_is_stable_and_sums_to_one() -> None:
    logits = np.array([[1000.0, 999.0, -1000.0] + [0.0] * 7, [0.0] * 10])
    p = softmax(logits)
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert p[1, 0] == pytest.approx(0.1)


def test_hot_path_softmax_equals_numpy_softmax() -> None:
    rng = np.random.default_rng(0)
    for row in rng.normal(0, 8, size=(50, 10)):
        np.testing.assert_allclose(_softmax_row(row.tolist()), softmax(row[None])[0], rtol=1e-12, atol=1e-15)
    assert math.fsum(_softmax_row([1e4, -1e4] + [0.0] * 8)) == pytest.approx(1.0)


def test_top_k_orders_by_probability() -> None:
    assert top_k([0.1, 0.5, 0.0, 0.4], 2) == [(1, 0.5), (3, 0.4)]


def test_predict_batches_and_keeps_blank_positions(predictor: Predictor) -> None:
    line = StrokesFrame([[[140, 40], [140, 240]]], 280, 280, 16)
    blank = StrokesFrame([], 280, 280, 16)
    out = predictor.predict([blank, line, blank, line])
    assert [r.status for r in out] == ["no_digit", "ok", "no_digit", "ok"]
    assert out[1] == out[3]
    assert out[1].probabilities is not None and math.fsum(out[1].probabilities) == pytest.approx(1.0)
    assert out[1].confidence == max(out[1].probabilities)
    assert out[0].digit is None and out[0].probabilities is None


def test_batch_equals_single(predictor: Predictor) -> None:
    x = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    batch = predictor.logits(x)
    assert batch.shape == (5, 10) and batch.dtype == np.float32
    for i in range(5):
        np.testing.assert_allclose(predictor.logits(x[i : i + 1])[0], batch[i], rtol=1e-4, atol=1e-4)


def test_missing_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(errors.ModelError):
        Predictor(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(errors.ModelError) as info:
        Predictor(bad)
    assert info.value.__cause__ is not None


def test_wrong_input_contract_is_refused(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "wrong.onnx"
    onnx.save(model, str(path))
    with pytest.raises(errors.ModelError, match=r"\(N, 1, 28, 28\)"):
        Predictor(path)
