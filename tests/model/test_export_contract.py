"""The shipped ONNX files keep the serving contract (no data folder needed): the image model reads
``(N, 1, 28, 28)``, the strokes model ``(N, 7, 28, 28)``; both give ``(N, 11)`` logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from model.contract import INPUT_NAME, MAX_BYTES, OPSET, OUTPUT_NAME, REQUIRED_METADATA
from shared.inference import Predictor
from shared.settings import Settings

PLANES = {"image": 1, "strokes": 7}


@pytest.fixture(scope="module", params=sorted(PLANES))
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _path(settings: Settings, form: str) -> Path:
    return settings.strokes_model_path if form == "strokes" else settings.model_path


@pytest.fixture(scope="module")
def proto(settings: Settings, form: str) -> onnx.ModelProto:
    return onnx.load(_path(settings, form))


def _dims(value_info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_file_is_at_most_2_mb(settings: Settings, form: str) -> None:
    assert _path(settings, form).stat().st_size <= MAX_BYTES


def test_graph_passes_checker_and_opset(proto: onnx.ModelProto) -> None:
    onnx.checker.check_model(proto, full_check=True)
    default = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    assert default
    assert default[0] >= OPSET


def test_input_and_output_signature(proto: onnx.ModelProto, form: str) -> None:
    inits = {i.name for i in proto.graph.initializer}
    (inp,) = [i for i in proto.graph.input if i.name not in inits]
    (out,) = proto.graph.output
    assert inp.name == INPUT_NAME
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    n, *rest = _dims(inp)
    assert isinstance(n, str)  # symbolic: dynamic batch
    assert rest == [PLANES[form], 28, 28]
    assert out.name == OUTPUT_NAME
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(out) == [n, 11]  # digits 0-9, then not-a-digit


def test_metadata_records_provenance(proto: onnx.ModelProto) -> None:
    meta = {p.key: p.value for p in proto.metadata_props}
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    assert not missing
    assert float(meta["temperature"]) > 0
    assert 0 < float(meta["not_a_digit_threshold"]) <= 1
    assert 0.995 <= float(meta["accuracy_mnist_test_canvas"]) <= 1
    assert 0.9 <= float(meta["accuracy_pen_heldout_writers"]) <= 1
    assert len(meta["git_commit"]) == 40
    assert "python -m model.train" in meta["train_command"]
    json.loads(meta["config"])


RECORDED_PEN_GATE = {"image": 0.9817, "strokes": 0.9846}
"""Each file's recorded held-out pen accuracy (its ``accuracy_pen_heldout_writers``, strokes path) must not
fall below the shipped figure (model/README.md)."""


def test_recorded_held_out_pen_accuracy_holds(proto: onnx.ModelProto, form: str) -> None:
    meta = {p.key: p.value for p in proto.metadata_props}
    assert float(meta["accuracy_pen_heldout_writers"]) >= RECORDED_PEN_GATE[form]


@pytest.mark.xfail(
    strict=True,
    reason="the strokes model: 98.46 % on the 68 held-out writers; the target is 99.2 % (model/README.md)",
)
def test_the_strokes_models_recorded_held_out_accuracy_meets_the_99_2_percent_target(
    settings: Settings,
) -> None:
    meta = {p.key: p.value for p in onnx.load(settings.strokes_model_path).metadata_props}
    assert float(meta["accuracy_pen_heldout_writers"]) >= 0.992


@pytest.mark.parametrize("n", [1, 5, 32])
def test_dynamic_batch_gives_probabilities(predictor: Predictor, n: int, form: str) -> None:
    x = np.random.default_rng(n).random((n, PLANES[form], 28, 28), dtype=np.float32)
    probs = predictor.probabilities(x)
    assert probs.shape == (n, 11)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    # The batch of one equals the first row of the batch: no cross-sample leakage (BatchNorm folded).
    np.testing.assert_allclose(predictor.logits(x[:1]), predictor.logits(x)[:1], atol=1e-5)
