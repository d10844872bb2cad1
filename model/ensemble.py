"""Build the strokes model from several trained strokes files: their motion networks' logits averaged.

Each member is a file written by ``model.train --form strokes`` with the same data splits
(``--split-seed``) and its own ``--seed``; its first motion network is taken
(:func:`model.fuse.motion_network`) and the shipped image model is added unless ``--image none``. The
mean is calibrated as one model, exactly as training calibrates a strokes model
(:func:`model.calibrate.calibrate` on the members' calibration writers), checked against onnxruntime,
written, then evaluated as training does and its test figures
recorded. The shipped strokes model is built this way (model/README.md)::

    .venv/bin/python -m model.train --form strokes --out /tmp/member0.onnx
    .venv/bin/python -m model.train --form strokes --seed 1 --split-seed 0 --out /tmp/member1.onnx
    .venv/bin/python -m model.ensemble /tmp/member0.onnx /tmp/member1.onnx
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model import evaluate
from model.calibrate import Calibration, calibrate, logits, pen_eval_batch
from model.data import data_folder, pen_split, split_seed_of
from model.export import check_export, to_onnx_bytes, write
from model.fuse import FusedStrokes, motion_network
from model.metadata import (
    STROKES_VERSION,
    ModelFileError,
    dirty_files,
    fused_architecture,
    git,
    model_file,
    network_architecture,
    read_model,
    test_figures,
)
from model.nondigits import nondigit_split
from model.rejection import nondigit_inks
from model.train import Config
from realtime.tools.argtypes import share, worker_count
from shared.settings import Settings


class EnsembleError(RuntimeError):
    """The members cannot be averaged (not strokes files, or not trained on the same splits)."""


def image_model(text: str) -> Path | None:
    """``--image`` as an ``argparse`` type: ``none``, or a model file (:func:`model.metadata.model_file`)."""
    return None if text == "none" else model_file(text)


def member_configs(members: Sequence[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each member's recorded training config and ``train_command``.

    Raises:
        EnsembleError: a member is not a strokes file written by ``model.train``, or the members' data
            splits differ (their calibration writers would not be unseen by all).
    """
    configs, commands = [], []
    for path in members:
        meta = {p.key: p.value for p in read_model(path).metadata_props}
        config = json.loads(meta.get("config", "{}"))
        if config.get("form") != "strokes":
            raise EnsembleError(f"{path}: not a strokes model written by model.train")
        configs.append(config)
        commands.append(meta.get("train_command", ""))
    if len({split_seed_of(c) for c in configs}) > 1:
        raise EnsembleError("the members were trained on different data splits (--split-seed)")
    return configs, commands


def provenance(members: Sequence[Path], commands: Sequence[str], image: bool, rate: float) -> dict[str, str]:
    """The ``members`` (each file's sha256 and ``train_command``) and ``train_command`` metadata entries.

    Args:
        members: The member files.
        commands: Their recorded ``train_command``s.
        image: Whether the image model is averaged in.
        rate: The calibration's digit rate.
    """
    return {
        "members": json.dumps(
            [
                {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "train_command": c}
                for p, c in zip(members, commands, strict=True)
            ]
        ),
        "train_command": " && ".join(
            [
                *commands,
                "python -m model.ensemble"
                + ("" if image else " --image none")
                + ("" if rate == Config().reject_digit_rate else f" --rate {rate}"),
            ]
        ),
    }


def build(
    members: Sequence[Path], image: Path | None, data_dir: Path, rate: float, workers: int = 2
) -> tuple[FusedStrokes, Calibration, dict[str, str], npt.NDArray[np.float32]]:
    """Average the members' motion networks (and ``image``) and calibrate the mean.

    Args:
        members: Strokes files (:func:`member_configs`); the first one's seed sets the calibration draws.
        image: The image model file to average in, or ``None``.
        data_dir: The shared data folder.
        rate: Share of calibration pen digits the threshold may turn away.
        workers: Preprocessing processes.

    Returns:
        The model, its calibration, its metadata (test figures pending) and ``(72, 7, 28, 28)`` float32
        probe inputs for the export check (56 calibration pen inks, 16 random rows).
    """
    configs, commands = member_configs(members)
    motions = [motion_network(p) for p in members]
    model = FusedStrokes(motions[0], image, motions[1:])
    seed = int(configs[0]["seed"])
    pen_val = pen_split(data_dir, seed=split_seed_of(configs[0])).val
    cal = calibrate(
        functools.partial(logits, model),
        model.planes,
        None,
        np.zeros(0, np.int64),
        pen_val,
        nondigit_inks(nondigit_split(data_dir).calibration),
        seed,
        rate,
        workers,
    )
    first = {p.key: p.value for p in read_model(members[0]).metadata_props}
    metadata = first | {
        "version": STROKES_VERSION,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty_files": dirty_files(git("status", "--porcelain", "--", "model", "shared")),
        "architecture": fused_architecture(model, network_architecture(model.planes)),
        "parameters": str(sum(p.numel() for p in model.parameters())),
        **provenance(members, commands, image is not None, rate),
        "temperature": f"{cal.temperature:.6f}",
        "not_a_digit_threshold": f"{cal.threshold:.6f}",
        "not_a_digit_calibration": json.dumps(cal.rejection),
        "ece_calibration_before": f"{cal.ece_before:.6f}",
        "ece_calibration_after": f"{cal.ece_after:.6f}",
        "config": json.dumps(configs[0] | {"reject_digit_rate": rate}),
    }
    metadata.pop("fused_image_model_sha256", None)
    if model.image_sha256 is not None:
        metadata["fused_image_model_sha256"] = model.image_sha256
    probe = np.concatenate(
        [
            pen_eval_batch(pen_val[:56], 0, 1, model.planes)[0],
            np.random.default_rng(0).random((16, model.planes, 28, 28), dtype=np.float32),
        ]
    )
    return model, cal, metadata, probe


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 2 with a usage message for a bad option."""
    settings = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("members", type=model_file, nargs="+", help="strokes model files written by model.train")
    ap.add_argument(
        "--image", type=image_model, default=str(settings.model_path), help="image model, or none"
    )
    ap.add_argument("--out", type=Path, default=settings.strokes_model_path)
    ap.add_argument("--rate", type=share, default=Config().reject_digit_rate, help="digits to turn away")
    ap.add_argument("--data-dir", type=data_folder, default=str(settings.data_dir))
    ap.add_argument("--workers", type=worker_count, default=2)
    args = ap.parse_args(argv)
    try:
        model, cal, metadata, probe = build(args.members, args.image, args.data_dir, args.rate, args.workers)
    except (EnsembleError, ModelFileError) as e:
        print(f"ensemble: {e}", file=sys.stderr)
        return 1
    candidate = args.out.with_suffix(".candidate.onnx")
    data = to_onnx_bytes(model, cal.temperature, metadata)
    parity = check_export(data, model, cal.temperature, probe)
    write(data, candidate)
    res = evaluate.evaluate(settings.model_path, args.data_dir, args.workers, strokes_model_path=candidate)
    data = to_onnx_bytes(model, cal.temperature, metadata | test_figures(res["results"]))
    parity = max(parity, check_export(data, model, cal.temperature, probe))
    write(data, args.out)
    candidate.unlink()
    print(json.dumps({"out": str(args.out), "parity": parity, **test_figures(res["results"])}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
