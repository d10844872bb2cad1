"""What a model file records about its making: ``metadata_props`` (``model/contract.py``), provenance."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
import torch
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # onnx raises it; no stubs

from model.fuse import FusedStrokes
from model.net import WIDTHS, DigitCNN, count_parameters
from model.nondigits import NOT_A_DIGIT
from model.rejection import nondigit_inks
from shared.settings import REPO_ROOT

if TYPE_CHECKING:
    from model.calibrate import Calibration
    from model.train import Config, TrainingData

VERSION = "2.1.0"
"""Model version: 2.1.0 trains on twice the pen writers (``model.data.heldout_pen_writers``); 2.0.0
adds the not-a-digit class (11 logits) and trains through the thin-pen and tap preprocessing; 1.1.0
(10 logits) added per-stroke jitter and weight averaging (1.0.0: commit 1b3d115)."""
STROKES_VERSION = "1.2.0"
"""The strokes model's version (``model/strokes_cnn.onnx``): 1.2.0 is 1.1.0's recipe on twice the pen
writers, beside image model 2.1.0; 1.1.0 averages two motion networks
(``model.ensemble``); 1.0.0 was one motion network beside the image model."""


def describe(
    cfg: Config,
    data: TrainingData,
    model: DigitCNN | FusedStrokes,
    cal: Calibration,
    provenance: tuple[str, str],
) -> dict[str, str]:
    """The ``metadata_props`` entries known before the test sets are evaluated (``model/contract.py``)."""
    split, nondigits = data.pen, data.nondigits
    nd_train, nd_cal = nondigit_inks(nondigits.train), nondigit_inks(nondigits.calibration)
    commit, dirty = provenance
    if cfg.pen_per_batch:
        training_data = (
            f"MNIST train (sha256-checked IDX, {len(data.train_idx)} images; "
            f"{len(data.val_idx)} held out for calibration) + UNIPEN 1a pen inks of "
            f"{len({i.writer for i in split.train})} writers ({len(split.train)} inks; "
            f"{len(split.val)} inks of {len({i.writer for i in split.val})} more writers held out for "
            f"calibration); held out of training: {len({i.writer for i in split.heldout})} writers of "
            "unipen1a_dev_200.jsonl (model.data.heldout_pen_writers); not-a-digit "
            f"class: UNIPEN 1b/1c/1d letters and symbols of {len({n.ink.writer for n in nondigits.train})} "
            f"writers ({len(nd_train)} inks, look-alikes excluded; {len(nd_cal)} inks of "
            f"{len({n.ink.writer for n in nondigits.calibration})} more writers for calibration) "
            "+ synthesized marks (model.nondigits)"
        )
    else:
        training_data = (
            f"MNIST train only (sha256-checked IDX, {len(data.train_idx)} images; {len(data.val_idx)} "
            "held out for calibration); UNIPEN 1a pen inks used only to measure, never to fit"
        )
    architecture = network_architecture(model.planes)
    extra = {}
    if isinstance(model, FusedStrokes):
        architecture = fused_architecture(model, architecture)
        if model.image_sha256 is not None:
            extra["fused_image_model_sha256"] = model.image_sha256
    return extra | {
        "version": STROKES_VERSION if model.planes > 1 else VERSION,
        "git_commit": commit,
        "git_dirty_files": dirty_files(dirty),
        "training_data": training_data,
        "normalization": (
            "input (N,1,28,28) float32 in [0,1], white ink on black: shared.preprocess.preprocess "
            "(crop to ink bbox, longer side 20 px, centre of mass at the centre of 28x28)"
            if model.planes == 1
            else "input (N,7,28,28) float32 in [0,1]: plane 0 the raster of shared.preprocess.preprocess "
            "(crop to ink bbox, longer side 20 px, centre of mass at the centre of 28x28), planes 1-6 the "
            "pen's motion in the same field (shared.motion: right, left, down, up, pen-down, pen-up)"
        ),
        "frames": "strokes" if model.planes > 1 else "image",
        "temperature": f"{cal.temperature:.6f}",
        "not_a_digit_threshold": f"{cal.threshold:.6f}",
        "not_a_digit_calibration": json.dumps(cal.rejection),
        "temperature_applied": "yes: exported logits are logits / temperature (folded into the last layer)",
        "ece_calibration_before": f"{cal.ece_before:.6f}",
        "ece_calibration_after": f"{cal.ece_after:.6f}",
        "architecture": architecture,
        "parameters": str(count_parameters(model)),
        "seed": str(cfg.seed),
        "config": json.dumps(cfg.__dict__),
        "train_command": "python -m model.train" + cli_suffix(cfg),
        "torch": torch.__version__,
        "licenses": "MNIST: CC BY-SA 3.0; UNIPEN train_r01_v07: research use, no commercial distribution "
        "(CD-ROM notice; repo CC BY 4.0)",
        "accuracy_mnist_test_canvas": "pending",
        "accuracy_pen_heldout_writers": "pending",
    }


def network_architecture(planes: int) -> str:
    """The ``architecture`` entry of one :class:`model.net.DigitCNN` reading ``planes`` input planes."""
    w = WIDTHS
    return (
        f"DigitCNN ({planes} input planes) conv3x3+BN+ReLU widths {list(w)}, "
        f"maxpool after conv 1, 2, 4; linear {w[-1] * 9}->{NOT_A_DIGIT + 1}"
    )


def dirty_files(status: str) -> str:
    """The ``git_dirty_files`` entry: the paths of ``git status --porcelain`` output, model files aside."""
    paths = (line.split(maxsplit=1)[1] for line in status.splitlines() if line.strip())
    return " ".join(p for p in paths if not p.endswith(".onnx"))


def fused_architecture(model: FusedStrokes, motion: str) -> str:
    """The ``architecture`` entry of a strokes model whose motion networks are each ``motion``."""
    networks = motion if not len(model.more) else f"{1 + len(model.more)} motion networks, each {motion},"
    image = "" if model.image_path is None else f" and of the image model {model.image_path.name} on plane 0"
    return f"mean of the logits of {networks}{image} (model.fuse.FusedStrokes), divided by the temperature"


def test_figures(results: dict[str, Any]) -> dict[str, str]:
    """The ``accuracy_*`` and ``ece_*`` entries from :func:`model.evaluate.evaluate`'s ``results``."""
    return {
        "accuracy_mnist_test_canvas": f"{results['mnist_test_canvas']['accuracy']:.4f}",
        "accuracy_pen_heldout_writers": f"{results['pen_heldout_strokes']['accuracy']:.4f}",
        "accuracy_pen_200": f"{results['pen_200_strokes']['accuracy']:.4f}",
        "ece_mnist_test_canvas": f"{results['mnist_test_canvas']['ece']:.4f}",
        "ece_pen_heldout_writers": f"{results['pen_heldout_strokes']['ece']:.4f}",
    }


class ModelFileError(RuntimeError):
    """A model file cannot be read as ONNX."""


def read_model(path: Path) -> onnx.ModelProto:
    """``path`` as an ONNX model.

    Raises:
        ModelFileError: it cannot be read, or is not an ONNX model.
    """
    try:
        return onnx.load(str(path))
    except (DecodeError, OSError, ValueError) as e:
        raise ModelFileError(f"{path}: not an ONNX model ({e})") from e


def model_file(text: str) -> Path:
    """A model file argument as an ``argparse`` type: an existing, readable ONNX file (:func:`read_model`)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such model file: {text}")
    try:
        read_model(path)
    except ModelFileError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return path


def git(*args: str) -> str:
    """``git args...`` run in the repository, its stripped stdout; ``"unknown"`` without git or a repo."""
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the batch worker, evaluation pool), s."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def cli_suffix(cfg: Config) -> str:
    """The ``--option value`` arguments that differ from the defaults (``""`` for the shipped recipe)."""
    default = type(cfg)()
    return "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in cfg.__dict__.items() if v != getattr(default, k)
    )
