"""Set a shipped model's not-a-digit threshold again, its weights untouched.

The threshold depends on the score (:func:`shared.inference.not_a_digit_scores`) and on the share of
calibration digits it may turn away (``reject_digit_rate``). This runs training's calibration step
(:func:`model.calibrate.calibrate`: the same split, seeds and draws, from the file's recorded ``config``) on
the served file's logits times its temperature, writes the threshold, the calibration figures and the
rate into the file's metadata, then evaluates the file as training does (:func:`model.evaluate.evaluate`)
and records its test figures (``accuracy_*``, ``ece_*``: served answers, so they depend on the threshold).
The initializers are not changed. A strokes model that fuses the image model
(``fused_image_model_sha256``) records the image file's new digest once its weights are checked to be the
ones fused, so recalibrate the image model first.

Usage::

    .venv/bin/python -m model.recalibrate model/mnist_cnn.onnx model/strokes_cnn.onnx [--rate 0.005]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from model.calibrate import Calibration, calibrate
from model.data import data_folder, load_mnist, mnist_split, pen_split, split_seed_of
from model.evaluate import evaluate
from model.metadata import ModelFileError, model_file, read_model, test_figures
from model.nondigits import nondigit_split
from model.rejection import nondigit_inks
from model.train import Config
from realtime.tools.argtypes import share, worker_count
from shared.inference import THRESHOLD_KEY
from shared.settings import Settings

TEMPERATURE_TOLERANCE = 1e-3
"""Largest relative difference allowed between the file's temperature and the one refitted on its
logits times that temperature (float32 rounding moves it by about 1e-6)."""


class RecalibrationError(RuntimeError):
    """The file cannot be recalibrated (no recorded config, or not the weights it claims to fuse)."""


def metadata_of(model: onnx.ModelProto) -> dict[str, str]:
    """The file's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}


def served_calibration(
    path: Path, data_dir: Path, rate: float, workers: int = 2
) -> tuple[Calibration, dict[str, Any]]:
    """Run training's calibration step on a served file.

    Args:
        path: An ``.onnx`` file written by ``model.train`` (its ``config`` and ``temperature`` metadata).
        data_dir: The shared data folder.
        rate: Share of each calibration source's digits the threshold may turn away, in [0, 1).
        workers: Preprocessing processes.

    Returns:
        The calibration (threshold on the served logits) and the file's recorded config (a dict, as
        written when it was trained) with ``reject_digit_rate`` set to ``rate``.

    Raises:
        RecalibrationError: no ``config``, or the refitted temperature is not the file's.
    """
    meta = metadata_of(read_model(path))
    if "config" not in meta or "temperature" not in meta:
        raise RecalibrationError(f"{path}: no config or temperature metadata (not written by model.train)")
    cfg = {**json.loads(meta["config"]), "reject_digit_rate": rate}
    temperature = float(meta["temperature"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    planes = int(session.get_inputs()[0].shape[1])

    def logits_of(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows = [session.run(None, {name: x[i : i + 1000]})[0] for i in range(0, len(x), 1000)]
        out: npt.NDArray[np.float32] = np.concatenate(rows) * np.float32(temperature)
        return out

    split_seed = split_seed_of(cfg)
    mnist_val, mnist_labels = None, np.zeros(0, np.int64)  # the strokes model never sees images
    if cfg.get("form") != "strokes":
        images, labels = load_mnist(data_dir, "train")
        val_idx, _ = mnist_split(len(images), split_seed)
        mnist_val, mnist_labels = images[val_idx], labels[val_idx]
    cal = calibrate(
        logits_of,
        planes,
        mnist_val,
        mnist_labels,
        pen_split(data_dir, seed=split_seed).val if cfg["pen_per_batch"] else None,
        nondigit_inks(nondigit_split(data_dir).calibration),
        cfg["seed"],
        rate,
        workers,
    )
    if abs(cal.temperature / temperature - 1) > TEMPERATURE_TOLERANCE:
        raise RecalibrationError(f"{path}: refitted temperature {cal.temperature}, the file's {temperature}")
    return cal, cfg


def write_calibration(
    path: Path,
    cal: Calibration,
    cfg: dict[str, Any],
    image_model: Path | None = None,
    figures: dict[str, str] | None = None,
) -> None:
    """Write the threshold, the figures and the config into ``path``'s metadata; initializers unchanged.

    Args:
        path: The ``.onnx`` file, rewritten in place.
        cal: Its new calibration (the temperature is not written: it is folded into the weights).
        cfg: The config to record (``config``; ``train_command`` gains ``--reject-digit-rate`` unless
            the rate is today's default).
        image_model: For a fused strokes model, the image model file whose digest it records.
        figures: Metadata entries to set too (:func:`model.metadata.test_figures`).

    Raises:
        RecalibrationError: ``image_model``'s initializers are not all among ``path``'s.
    """
    model = read_model(path)
    meta = metadata_of(model)
    meta |= figures or {}
    command = meta.get("train_command", "python -m model.train").split(" --reject-digit-rate")[0]
    if cfg["reject_digit_rate"] != Config().reject_digit_rate:
        command += f" --reject-digit-rate {cfg['reject_digit_rate']}"
    meta |= {
        THRESHOLD_KEY: f"{cal.threshold:.6f}",
        "not_a_digit_calibration": json.dumps(cal.rejection),
        "config": json.dumps(cfg),
        "train_command": command,
    }
    if image_model is not None and "fused_image_model_sha256" in meta:
        image_bytes = image_model.read_bytes()
        fused = {numpy_helper.to_array(i).tobytes() for i in model.graph.initializer}
        image = onnx.load_from_string(image_bytes).graph.initializer
        if any(numpy_helper.to_array(i).tobytes() not in fused for i in image):
            raise RecalibrationError(f"{path} does not hold {image_model}'s weights")
        meta["fused_image_model_sha256"] = hashlib.sha256(image_bytes).hexdigest()
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 2 with a usage message for a bad option."""
    settings = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", type=model_file, nargs="+", help="model files, the image model first")
    ap.add_argument(
        "--rate", type=share, default=Config().reject_digit_rate, help="share of digits to turn away at most"
    )
    ap.add_argument("--data-dir", type=data_folder, default=str(settings.data_dir))
    ap.add_argument("--workers", type=worker_count, default=2)
    args = ap.parse_args(argv)
    report: dict[str, Any] = {}
    for path in args.models:
        try:
            cal, cfg = served_calibration(path, args.data_dir, args.rate, args.workers)
            write_calibration(path, cal, cfg, settings.model_path)
            fused = cfg.get("form") == "strokes"
            res = evaluate(
                settings.model_path if fused else path,
                args.data_dir,
                args.workers,
                strokes_model_path=path if fused else None,
            )
            write_calibration(path, cal, cfg, settings.model_path, test_figures(res["results"]))
        except (RecalibrationError, ModelFileError) as e:
            print(f"recalibrate: {e}", file=sys.stderr)
            return 1
        report[str(path)] = {"threshold": cal.threshold, **cal.rejection}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
