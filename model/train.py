"""Train, calibrate, export and evaluate the shipped digit CNN (``model/mnist_cnn.onnx``).

Steps (one function each, in this order):

1. :func:`load_data`: check the MNIST IDX files and the pen files against ``SHA256SUMS``; normalize the
   60,000 MNIST training images once with :func:`shared.preprocess.normalize` (the serving function);
   hold out 5,000 MNIST images, 10 % of the training writers' pen inks and the calibration writers'
   letters and symbols (:mod:`model.data`, :mod:`model.nondigits`).
2. :func:`fit`: train on :class:`model.batches.CanvasBatches` (augmented MNIST, drawn pen inks, letters,
   symbols and synthesized marks), :func:`one_epoch` at a time: a one-cycle schedule (8 epochs), then 4
   epochs at a constant rate whose weights are averaged (:mod:`model.swa`).
3. :func:`model.calibrate.calibrate`: fit a softmax temperature on the held-out validation split and the
   not-a-digit threshold; the temperature is folded into the classifier (logits / T).
4. :func:`export_and_evaluate`: export to ONNX, check the contract and PyTorch parity, evaluate the test
   sets through the product's paths (never used for any choice) and record the figures in
   ``metadata_props``.

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, a fixed thread count, and every
training batch is a pure function of ``(seed, epoch, batch index)``. Usage (the shipped file)::

    .venv/bin/python -m model.train
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from model import evaluate, swa
from model.batches import CanvasBatches, loader
from model.calibrate import Calibration, accuracy, calibrate, logits, pen_eval_batch
from model.data import MNIST_VAL, PenSplit, data_folder, load_mnist, mnist_split, pen_split, split_seed_of
from model.export import check_export, to_onnx_bytes, write
from model.fuse import FusedStrokes
from model.metadata import cpu_seconds, describe, git, test_figures
from model.net import WIDTHS, DigitCNN, count_parameters
from model.nondigits import NOT_A_DIGIT, NonDigitSplit, nondigit_split
from model.rejection import nondigit_inks
from realtime.tools.argtypes import worker_count
from shared.preprocess import STROKES_PLANES, normalize
from shared.settings import Settings


@dataclass(frozen=True)
class Config:
    """Everything that determines the trained weights."""

    seed: int = 0
    split_seed: int = -1
    """Seed of the data splits (MNIST validation, training and calibration writers); -1: ``seed``. An
    ensemble's other networks vary ``seed`` alone, so all leave the same writers out."""
    epochs: int = 8
    """Epochs of the one-cycle schedule."""
    swa_epochs: int = 4
    """Epochs after the one-cycle schedule at the constant ``swa_lr``, averaging the weights (SWA,
    Izmailov et al. 2018); 0 ships the last one-cycle weights."""
    swa_lr: float = 1e-3
    swa_every: int = 143
    """Steps between weight snapshots in the SWA epochs (a quarter epoch)."""
    mnist_per_batch: int = 96
    pen_per_batch: int = 48
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    threads: int = 1
    """Intra-op threads; 1 is fastest on a shared 2-core machine (the batch worker uses the other core)."""
    limit_batches: int = 0
    """Batches per epoch when > 0 (0: all, 572); for quick experiments."""
    nondigit_per_batch: int = 48
    """UNIPEN letters and symbols of the training writers per batch (look-alikes excluded), class 10."""
    synthetic_per_batch: int = 8
    """Synthesized marks per batch (:func:`model.nondigits.synthetic_mark`), class 10."""
    form: str = "image"
    """Which model: ``image`` (the raster; :data:`shared.settings.Settings.model_path`) or ``strokes``
    (the raster and the motion planes, :func:`shared.preprocess.strokes_planes`;
    ``Settings.strokes_model_path``)."""
    fuse_image: int = 1
    """Strokes model: 1 ships the mean of its logits and the shipped image model's on the raster
    (:class:`model.fuse.FusedStrokes`, calibrated as one model); 0 the motion network alone."""
    motion_dropout: float = 0.2
    """Strokes model: share of drawn rows whose motion planes are zeroed
    (:class:`model.batches.CanvasBatches`)."""
    reject_digit_rate: float = 0.005
    """Share of each source's calibration digits (MNIST validation, calibration writers' pen inks) the
    not-a-digit threshold may turn away (:func:`model.rejection.calibrate`): the 0.5 % target, which the
    pen digits must meet at the writer-resampled bound, so unseen writers meet it too."""


@dataclass(frozen=True)
class TrainingData:
    """The MNIST split, the pen and non-digit splits, and the validation sets seen during training."""

    images: npt.NDArray[np.uint8]
    """``(60000, 28, 28)`` MNIST training images."""
    labels: npt.NDArray[np.int64]
    train_idx: npt.NDArray[np.intp]
    val_idx: npt.NDArray[np.intp]
    """The :data:`MNIST_VAL` held-out images (validation and calibration)."""
    pen: PenSplit
    nondigits: NonDigitSplit
    batches: CanvasBatches
    val: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]
    """Held-out MNIST after ``normalize``: ``(N, 1, 28, 28)`` float32 and ``(N,)`` int64."""
    pen_val: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]
    """Held-back pen inks drawn once as a person would, the same shapes."""


def load_data(cfg: Config, data_dir: Path) -> TrainingData:
    """Step 1: read and check the data, split it, and build the training batches."""
    images, labels = load_mnist(data_dir, "train")  # checks sha256
    split_seed = split_seed_of(cfg.__dict__)
    split = pen_split(data_dir, seed=split_seed)  # checks sha256
    val_idx, train_idx = mnist_split(len(images), split_seed)
    clean = np.empty(images.shape, np.float32)
    for i, img in enumerate(tqdm(images, desc="normalize mnist", unit="img", leave=False, file=sys.stderr)):
        digit = normalize(img)
        clean[i] = img / np.float32(255) if digit is None else digit
    nondigits = nondigit_split(data_dir)  # checks sha256
    print(
        f"train: {len(train_idx)} MNIST + {len(split.train)} pen inks "
        f"({len({i.writer for i in split.train})} writers); calibration: {MNIST_VAL} MNIST + "
        f"{len(split.val)} pen inks ({len({i.writer for i in split.val})} writers); "
        f"held out: {len(split.heldout)} pen inks ({len({i.writer for i in split.heldout})} writers); "
        f"non-digits: {len(nondigit_inks(nondigits.train))} train, "
        f"{len(nondigit_inks(nondigits.calibration))} calibration (look-alikes excluded)",
        file=sys.stderr,
    )
    planes = STROKES_PLANES if cfg.form == "strokes" else 1
    val_x = np.zeros((MNIST_VAL, planes, 28, 28), np.float32)
    val_x[:, 0] = clean[val_idx]  # the strokes model: MNIST has no motion planes (zeros, as in training)
    val = (val_x, labels[val_idx])
    pen_val = pen_eval_batch(split.val, cfg.seed + 1, 1, planes)
    batches = CanvasBatches(
        images[train_idx],
        clean[train_idx],
        labels[train_idx],
        split.train,
        cfg,
        nondigit_inks(nondigits.train),
    )
    return TrainingData(images, labels, train_idx, val_idx, split, nondigits, batches, val, pen_val)


class Trainer:
    """Step 2: the network, its optimizer and learning-rate schedule, and the running weight average.

    One-cycle AdamW (``lr`` peak, 15 % warm-up) over ``epochs``, then ``swa_epochs`` at ``swa_lr`` with a
    weight snapshot every ``swa_every`` steps (SWA, Izmailov et al. 2018).

    Args:
        cfg: Hyper-parameters (the global torch seed is already set: it draws the initial weights).
        data: The training batches.
    """

    def __init__(self, cfg: Config, data: CanvasBatches) -> None:
        self.cfg, self.per_epoch = cfg, data.per_epoch
        planes = STROKES_PLANES if cfg.form == "strokes" else 1
        self.model = DigitCNN(WIDTHS, outputs=NOT_A_DIGIT + 1, planes=planes).to(
            memory_format=torch.channels_last  # type: ignore[call-overload]  # torch's stubs lack it
        )
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.cycle_steps = data.per_epoch * cfg.epochs
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=cfg.lr, total_steps=self.cycle_steps, pct_start=0.15
        )
        self.average = AveragedModel(self.model) if cfg.swa_epochs else None
        self.bar = tqdm(total=len(data), desc="train", unit="batch", file=sys.stderr, smoothing=0.05)
        # One iterator for all epochs: creating one draws the worker's seed from torch's generator.
        self.batches = iter(loader(data))
        self.step = 0
        self.running = 0.0
        """Running (EMA 0.98) training loss."""

    def one_epoch(self) -> float:
        """Train one epoch of label-smoothed cross-entropy steps; returns the running loss."""
        model, cfg = self.model, self.cfg
        for batch, y in itertools.islice(self.batches, self.per_epoch):
            model.train()
            x = batch.contiguous(memory_format=torch.channels_last)
            loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self.opt.step()
            done = self.step + 1
            if done < self.cycle_steps:
                self.sched.step()
            elif done == self.cycle_steps:
                for group in self.opt.param_groups:
                    group["lr"] = cfg.swa_lr
            elif self.average is not None and (done - self.cycle_steps) % cfg.swa_every == 0:
                self.average.update_parameters(model)
            value = float(loss.detach())
            self.running = 0.98 * self.running + 0.02 * value if self.step else value
            self.step = done
            self.bar.update()
        return self.running


def fit(cfg: Config, data: TrainingData, started: float) -> tuple[DigitCNN, list[dict[str, float]]]:
    """Step 2: train, validating after each epoch, and average the weights of the last epochs.

    Returns:
        The network to ship (the weight average, or the last weights with ``swa_epochs == 0``) and one
        record per epoch: ``epoch``, running ``loss``, ``val_mnist`` and ``val_pen`` accuracy of the live
        network (not the average), ``seconds`` since ``started``.
    """
    trainer = Trainer(cfg, data.batches)
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.epochs + cfg.swa_epochs + 1):
        loss = trainer.one_epoch()
        mnist_acc, pen_acc = accuracy(trainer.model, *data.val), accuracy(trainer.model, *data.pen_val)
        history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_mnist": mnist_acc,
                "val_pen": pen_acc,
                "seconds": time.perf_counter() - started,
            }
        )
        trainer.bar.set_postfix(ep=epoch, loss=f"{loss:.3f}", mnist=f"{mnist_acc:.4f}", pen=f"{pen_acc:.4f}")
        tqdm.write(json.dumps(history[-1]), file=sys.stderr)
    if next(trainer.batches, None) is not None:  # also stops the batch worker
        raise RuntimeError("the batch source holds more batches than the epochs take")
    trainer.bar.close()
    if trainer.average is None:
        return trainer.model, history
    return swa.finish(trainer.average, trainer.model, data.batches), history


def export_and_evaluate(  # noqa: PLR0917 (the run's results, in the order they are made)
    cfg: Config,
    data: TrainingData,
    model: DigitCNN | FusedStrokes,
    cal: Calibration,
    provenance: tuple[str, str],
    out: Path,
    data_dir: Path,
    eval_workers: int,
) -> tuple[dict[str, str], dict[str, Any], float, int]:
    """Step 4: write the ONNX file, checked, with the test-set figures in its metadata.

    The file is written once as a candidate (to evaluate it through onnxruntime, as served), then again
    with the figures; both pass :func:`model.export.check_export`. The test sets choose nothing.

    Args:
        cfg: Hyper-parameters and seed (the probe's random rows use ``seed``).
        data: The splits (the probe's first rows are validation images).
        model: The trained network.
        cal: The temperature (folded into the last layer) and the threshold.
        provenance: The git commit and ``git status --porcelain`` of ``model/`` and ``shared/``.
        out: Model file to write.
        data_dir: The shared data folder (the test sets).
        eval_workers: Processes for the test-set preprocessing.

    Returns:
        The metadata, the test results (:func:`model.evaluate.evaluate`'s ``results``), the largest
        onnxruntime-PyTorch logit difference and the file's size in bytes.
    """
    metadata = describe(cfg, data, model, cal, provenance)
    rng = np.random.default_rng(cfg.seed)
    val_x, pen_val_x = data.val[0], data.pen_val[0]
    noise = rng.random((16, val_x.shape[1], 28, 28), dtype=np.float32)
    probe = np.concatenate([val_x[:56], pen_val_x[:56], noise])
    data_bytes = to_onnx_bytes(model, cal.temperature, metadata)
    parity = check_export(data_bytes, model, cal.temperature, probe)
    candidate = out.with_suffix(".candidate.onnx")
    write(data_bytes, candidate)
    if cfg.form == "strokes":  # served beside the shipped image model, which reads the images
        res = evaluate.evaluate(Settings().model_path, data_dir, eval_workers, strokes_model_path=candidate)
    else:
        res = evaluate.evaluate(candidate, data_dir, workers=eval_workers)
    res = res["results"]
    metadata |= test_figures(res)
    data_bytes = to_onnx_bytes(model, cal.temperature, metadata)
    parity = max(parity, check_export(data_bytes, model, cal.temperature, probe))
    write(data_bytes, out)
    candidate.unlink()
    return metadata, res, parity, len(data_bytes)


def train(cfg: Config, data_dir: Path, out: Path, report_path: Path, eval_workers: int) -> dict[str, Any]:
    """Run all steps (module docstring) and write the model and a JSON training report.

    Args:
        cfg: Hyper-parameters and seed.
        data_dir: The shared data folder.
        out: Model file to write.
        report_path: JSON report to write.
        eval_workers: Processes for the calibration and test-set preprocessing.

    Returns:
        The report.
    """
    started = time.perf_counter()
    provenance = git("rev-parse", "HEAD"), git("status", "--porcelain", "--", "model", "shared")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    data = load_data(cfg, data_dir)
    trained, history = fit(cfg, data, started)
    train_seconds = time.perf_counter() - started
    model: DigitCNN | FusedStrokes = trained
    if cfg.form == "strokes" and cfg.fuse_image:
        model = FusedStrokes(trained, Settings().model_path)
    cal = calibrate(
        functools.partial(logits, model),
        model.planes,
        None if cfg.form == "strokes" else data.images[data.val_idx],  # the strokes model sees no images
        data.labels[data.val_idx],
        data.pen.val if cfg.pen_per_batch else None,  # MNIST-only build: no UNIPEN ink sets T
        nondigit_inks(data.nondigits.calibration),
        cfg.seed,
        cfg.reject_digit_rate,
        eval_workers,
    )
    metadata, res, parity, size = export_and_evaluate(
        cfg, data, model, cal, provenance, out, data_dir, eval_workers
    )
    report = {
        "config": cfg.__dict__,
        "history": history,
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - started,
        "cpu_seconds": cpu_seconds(),
        "load_average": os.getloadavg(),
        "temperature": cal.temperature,
        "ece_calibration": {"before": cal.ece_before, "after": cal.ece_after, "n": cal.n},
        "not_a_digit_calibration": cal.rejection,
        "parity_max_abs_diff": parity,
        "bytes": size,
        "parameters": count_parameters(model),
        "metadata": metadata,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": cfg.threads},
        "test": {k: {m: v[m] for m in ("n", "accuracy", "ece", "nll", "blank")} for k, v in res.items()},
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    evaluate.confusion_png(res, report_path.with_suffix(".confusion.png"))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; exit status 2 with a usage message for a bad option."""
    settings = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data-dir",
        type=data_folder,
        default=str(settings.data_dir / "mnist"),
        help="the MNIST folder (or the shared data folder above it, with SHA256SUMS and pen/)",
    )
    ap.add_argument("--out", type=Path, help="default: the form's model file in Settings")
    ap.add_argument("--report", type=Path, help="default: reports/train_<form>_report.json")
    ap.add_argument("--eval-workers", type=worker_count, default=2)
    for k, v in Config().__dict__.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    args = ap.parse_args(argv)
    if not 0 <= args.reject_digit_rate < 1:
        ap.error("--reject-digit-rate needs a share in [0, 1)")
    if args.form not in {"image", "strokes"}:
        ap.error("--form needs image or strokes")
    cfg = Config(**{k: getattr(args, k) for k in Config().__dict__})
    out = args.out or (settings.strokes_model_path if cfg.form == "strokes" else settings.model_path)
    report_path = args.report or Path(f"reports/train_{cfg.form}_report.json")
    report = train(cfg, args.data_dir, out, report_path, args.eval_workers)
    t = report["test"]
    mnist, pen, pen200 = (
        100 * t[k]["accuracy"] for k in ("mnist_test_canvas", "pen_heldout_strokes", "pen_200_strokes")
    )
    print(
        f"wrote {out} ({report['bytes']} bytes, {report['parameters']} parameters) in "
        f"{report['total_seconds'] / 60:.1f} min wall ({report['cpu_seconds'] / 60:.1f} min CPU); "
        f"MNIST test (canvas) {mnist:.2f}%, held-out pen {pen:.2f}%, pen 200 {pen200:.2f}%, "
        f"T={report['temperature']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
