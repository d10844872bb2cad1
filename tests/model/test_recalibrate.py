"""Recalibrating a model file: new threshold and figures in its metadata, weights untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.onnx_models import constant_model, one_hot

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import numpy_helper  # noqa: E402 (after the skip)

from model.calibrate import Calibration  # noqa: E402
from model.recalibrate import RecalibrationError, main, write_calibration  # noqa: E402

CONFIG = {"seed": 0, "pen_per_batch": 48, "form": "strokes", "reject_digit_rate": 0.003}


def _calibration(threshold: float) -> Calibration:
    return Calibration(1.0, threshold, {"pen_turned_away": 0.004, "n_pen": 2043}, 0.02, 0.01, 3502)


def _strokes_file(tmp_path: Path, image: Path) -> Path:
    return constant_model(
        tmp_path,
        one_hot(3),
        {
            "not_a_digit_threshold": "0.5",
            "config": json.dumps(CONFIG),
            "train_command": "python -m model.train --form strokes",
            "fused_image_model_sha256": hashlib.sha256(image.read_bytes()).hexdigest(),
            "version": "1.0.0",
        },
        name="strokes.onnx",  # one plane, so that it holds the image model's weights exactly
    )


def _initializers(path: Path) -> dict[str, bytes]:
    return {i.name: numpy_helper.to_array(i).tobytes() for i in onnx.load(str(path)).graph.initializer}


def test_recalibration_rewrites_the_threshold_and_keeps_the_weights(tmp_path: Path) -> None:
    image = constant_model(tmp_path, one_hot(3), name="image.onnx")
    path = _strokes_file(tmp_path, image)
    before = _initializers(path)
    # The image model recalibrated: the same weights, new metadata, so a new digest.
    image = constant_model(tmp_path, one_hot(3), {"not_a_digit_threshold": "0.7"}, name="image.onnx")
    rate = 0.004
    cfg = {**CONFIG, "reject_digit_rate": rate}
    write_calibration(path, _calibration(0.75), cfg, image, {"accuracy_x": "0.9"})
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert _initializers(path) == before
    assert meta["not_a_digit_threshold"] == "0.750000"
    assert json.loads(meta["not_a_digit_calibration"])["pen_turned_away"] == 0.004
    assert json.loads(meta["config"])["reject_digit_rate"] == rate
    assert meta["version"] == "1.0.0" and meta["accuracy_x"] == "0.9"
    assert meta["fused_image_model_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()


def test_a_rate_other_than_the_default_is_part_of_the_recorded_train_command(tmp_path: Path) -> None:
    image = constant_model(tmp_path, one_hot(3), name="image.onnx")
    path = _strokes_file(tmp_path, image)
    write_calibration(path, _calibration(0.75), {**CONFIG, "reject_digit_rate": 0.01})
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["train_command"] == "python -m model.train --form strokes --reject-digit-rate 0.01"


def test_a_strokes_file_that_does_not_hold_the_image_models_weights_is_refused(tmp_path: Path) -> None:
    image = constant_model(tmp_path, one_hot(3), name="image.onnx")
    path = _strokes_file(tmp_path, image)
    other = constant_model(tmp_path, one_hot(5), name="other.onnx")
    with pytest.raises(RecalibrationError, match="weights"):
        write_calibration(path, _calibration(0.75), CONFIG, other)
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["not_a_digit_threshold"] == "0.5"


@pytest.mark.parametrize("argv", [["missing.onnx"], ["--rate", "1.5", "missing.onnx"]])
def test_bad_arguments_exit_2_with_a_usage_message(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv[:-1], str(tmp_path / argv[-1])])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err
