"""Predictor: contract checks at load, softmax, batching, no_digit handling."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from shared import errors
from shared.inference import Predictor, _softmax_row, not_a_digit_scores, softmax, top_k
from shared.inks import Strokes
from shared.preprocess import ImageFrame, StrokesFrame
from tests.onnx_models import constant_model, one_hot
from tests.shared.imaging import grey_png


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
    assert batch.shape == (5, 11) and batch.dtype == np.float32
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


@pytest.mark.parametrize(("rejected", "status"), [(1.0, "ok"), (2.0, "not_a_digit")], ids=["digit", "not"])
def test_not_a_digit_when_its_score_against_the_likeliest_digit_reaches_the_threshold(
    tmp_path: Path, rejected: float, status: str
) -> None:
    # Ten digit logits of 0 with digit 3 at 2; the 11th logit against digit 3's sets the score.
    logits = [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, rejected]
    predictor = Predictor(constant_model(tmp_path, logits, {"not_a_digit_threshold": "0.4"}))
    assert predictor.info.not_a_digit_threshold == 0.4
    (answer,) = predictor.predict([StrokesFrame([[[140, 40], [140, 240]]], 280, 280, 16)])
    p11 = softmax(np.array([logits]))[0]
    assert answer.status == status
    assert answer.not_a_digit_score == pytest.approx(p11[10] / (p11[10] + p11[3]), rel=1e-12)
    assert answer.not_a_digit_score == pytest.approx(not_a_digit_scores(np.array([logits]))[0], rel=1e-12)
    # The ten probabilities are the digits' softmax: given a digit, how likely each is.
    assert answer.probabilities == pytest.approx((p11[:10] / p11[:10].sum()).tolist(), rel=1e-12)
    assert math.fsum(answer.probabilities or []) == pytest.approx(1.0)
    if status == "ok":
        assert answer.digit == 3 and answer.confidence == answer.probabilities[3]
    else:
        assert answer.digit is None and answer.confidence is None


def test_a_drawing_like_several_digits_at_once_is_scored_against_the_likeliest_alone() -> None:
    # Nine digits tie; "not a digit" is likelier than each but not than their sum.
    spread = np.array([[0.0] + [2.0] * 9 + [3.0]])
    sure = np.array([[0.0] * 9 + [5.0, 3.0]])
    assert softmax(spread)[0, 10] < 0.5 < not_a_digit_scores(spread)[0]
    assert not_a_digit_scores(spread)[0] == pytest.approx(1 / (1 + math.exp(-1.0)), rel=1e-12)
    assert not_a_digit_scores(sure)[0] == pytest.approx(1 / (1 + math.exp(2.0)), rel=1e-12)


def test_extreme_logits_give_finite_scores(tmp_path: Path) -> None:
    for rejected, status in ((900.0, "not_a_digit"), (-900.0, "ok")):
        path = constant_model(tmp_path, [0.0] * 10 + [rejected])
        (answer,) = Predictor(path).predict([StrokesFrame([[[140, 40], [140, 240]]], 280, 280, 16)])
        assert answer.status == status and 0.0 <= (answer.not_a_digit_score or 0.0) <= 1.0


@pytest.mark.parametrize("metadata", [{}, {"not_a_digit_threshold": "high"}, {"not_a_digit_threshold": "0"}])
def test_a_model_without_a_valid_threshold_is_refused(tmp_path: Path, metadata: dict[str, str]) -> None:
    with pytest.raises(errors.ModelError, match="not_a_digit_threshold"):
        Predictor(constant_model(tmp_path, [0.0] * 11, metadata))


def test_a_ten_logit_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.ModelError, match=r"\(N, 11\)"):
        Predictor(constant_model(tmp_path, [0.0] * 10))


def test_letter_is_not_a_digit(predictor: Predictor, letter_h: Strokes) -> None:
    (answer,) = predictor.predict([StrokesFrame(letter_h, 280, 280, 16)])
    assert answer.status == "not_a_digit" and answer.digit is None
    assert answer.not_a_digit_score is not None and answer.not_a_digit_score >= predictor.threshold_for(7)


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


def test_each_model_must_take_its_forms_planes(tmp_path: Path) -> None:
    strokes_model = constant_model(tmp_path, one_hot(7), planes=7, name="strokes.onnx")
    image_model = constant_model(tmp_path, one_hot(3), name="image.onnx")
    with pytest.raises(errors.ModelError, match=r"strokes.onnx.*\(N, 1, 28, 28\)"):
        Predictor(strokes_model)
    with pytest.raises(errors.ModelError, match=r"image.onnx.*\(N, 7, 28, 28\)"):
        Predictor(image_model, 1, image_model)


def test_strokes_go_to_the_strokes_model_and_images_to_the_image_model(tmp_path: Path) -> None:
    image_model = constant_model(tmp_path, one_hot(3), {"not_a_digit_threshold": "0.9"}, name="i.onnx")
    strokes_model = constant_model(tmp_path, one_hot(7), {"not_a_digit_threshold": "0.8"}, 7, "s.onnx")
    predictor = Predictor(image_model, 1, strokes_model)
    line = StrokesFrame([[[140, 40], [140, 240]]], 280, 280, 16)
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[40:240, 132:148] = 0
    png = ImageFrame(grey_png(canvas))
    answers = predictor.predict([line, png, line, StrokesFrame([], 280, 280), png])
    assert [a.digit for a in answers] == [7, 3, 7, None, 3]
    assert predictor.models.image.input_shape == ["N", 1, 28, 28]
    assert predictor.models.strokes.input_shape == ["N", 7, 28, 28]
    assert (predictor.threshold_for(1), predictor.threshold_for(7)) == (0.9, 0.8)


def test_without_a_strokes_model_strokes_are_read_as_their_raster(tmp_path: Path) -> None:
    predictor = Predictor(constant_model(tmp_path, one_hot(3)))
    (answer,) = predictor.predict([StrokesFrame([[[140, 40], [140, 240]]], 280, 280, 16)])
    assert answer.digit == 3
    assert predictor.models.strokes == predictor.models.image
