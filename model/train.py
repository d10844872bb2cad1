"""Train, calibrate, export and evaluate the shipped digit CNN (``model/mnist_cnn.onnx``).

Steps:

1. Check the MNIST IDX files and the pen files against ``SHA256SUMS``; normalize the 60,000 MNIST
   training images once with :func:`shared.preprocess.normalize` (the serving function).
2. Hold out 5,000 MNIST training images and 10 % of the training writers' pen inks (:mod:`model.data`).
3. Train on batches of MNIST digits distorted as canvas drawings plus training-writer pen inks drawn on
   random canvases (:mod:`model.augment`); both end in the serving preprocessing. A one-cycle schedule
   (8 epochs) is followed by 4 epochs at a constant rate whose weights are averaged (SWA), then the
   averaged network's BatchNorm statistics are recomputed. (``--members``/``--mutual``/``--distill``:
   several networks side by side; ``--mimo``: several subnetworks in one; ``--sam``: sharpness-aware
   steps; see :class:`Config`. Not in the shipped recipe.)
4. Fit a softmax temperature on the held-out validation split (MNIST through the canvas PNG path plus
   held-back pen inks of the training writers), fold it into the classifier (logits / T).
5. Export to ONNX, check the contract and PyTorch parity, evaluate the test sets through the product's
   paths (never used for any choice) and record the figures in ``metadata_props``.

Deterministic: fixed seeds, ``torch.use_deterministic_algorithms(True)``, a fixed thread count, and every
training batch is a pure function of ``(seed, epoch, batch index)``.

Usage (the shipped file; 13-23 minutes on this shared 2-core machine)::

    .venv/bin/python -m model.train
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, update_bn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from model import augment, evaluate, rejection
from model.data import draw_like_a_person, load_mnist, pen_split, resolve_data_dir
from model.export import check_export, to_onnx_bytes, write
from model.net import MIMO, WIDTHS, DigitCNN, DigitEnsemble, Distillation, build, count_parameters
from model.nondigits import NOT_A_DIGIT, nondigit_split
from model.rejection import nondigit_inks
from shared.inference import Predictor
from shared.inks import Ink
from shared.preprocess import StrokesFrame, normalize, preprocess
from shared.settings import REPO_ROOT, Settings

VERSION = "2.0.0"
"""Model version: 2.0.0 adds the not-a-digit class (11 logits) and trains through the thin-pen and tap
preprocessing; 1.1.0 (10 logits) added per-stroke jitter and weight averaging (1.0.0: commit 1b3d115)."""
MNIST_VAL = 5000
"""MNIST training images held out for validation and calibration."""
SWA_BN_BATCHES = 100
"""Training batches run through the averaged network to recompute its BatchNorm statistics."""
CALIBRATION_PEN_DRAWS = 3
"""Each held-back calibration ink is drawn this many times (different placements)."""


@dataclass(frozen=True)
class Config:
    """Everything that determines the trained weights."""

    seed: int = 0
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
    widths: str = ",".join(map(str, WIDTHS))
    """Channels of the four convolutions (of each member), comma-separated."""
    members: int = 1
    """Networks trained side by side on the same batches (:class:`model.net.DigitEnsemble`); 1 trains one
    :class:`model.net.DigitCNN`. With ``mutual == 0`` each member learns alone and the file ships their
    mean logits."""
    mutual: float = 0.0
    """Weight of the deep-mutual-learning term (Zhang et al. 2018): each member also minimizes the KL
    divergence from the other members' mean softmax (detached) to its own. Then only the member with the
    best validation accuracy ships, at one network's latency."""
    distill: float = 0.0
    """Weight >= 0 of distillation. Online (:class:`model.net.Distillation`): ``members`` teachers learn
    alone while a student learns from the labels plus ``distill * distillation_kl`` towards the teachers'
    mean logits; only the student ships. Offline, with ``teacher``: the same term towards a finished
    model's logits. Raised the held-out pen figure in neither runs 22-24 nor 29-30 (model card)."""
    distill_temperature: float = 2.0
    """Softmax temperature of both sides of the distillation term (Hinton et al. 2015)."""
    student_widths: str = ""
    """Channels of the student's four convolutions with ``distill > 0``; empty: the same as ``widths``."""
    teacher_label_smoothing: float = -1.0
    """Label smoothing of the teachers' own loss with ``distill > 0``; negative: ``label_smoothing``.
    Label smoothing makes teachers worse for distillation (Muller et al. 2019)."""
    mimo: int = 0
    """Subnetworks trained inside one network (:class:`model.net.MIMO`, Havasi et al. 2021), exported
    collapsed to one :class:`model.net.DigitCNN`; 0: off. Lowered both test figures in runs 25-26."""
    mimo_repeat: float = 0.5
    """With ``mimo``: the share of each extra head's inputs that repeat head 0's image (input
    repetition, Havasi et al. 2021; more sharing between the subnetworks, which helps small networks)."""
    sam: float = 0.0
    """Sharpness-aware minimization radius rho >= 0 (SAM, Foret et al. 2021, who tune it by grid search;
    0.05 is the usual default of SAM implementations): each step takes the gradient at the weights moved
    by rho along the normalized gradient, which seeks flat minima. Two forward-backward passes per step;
    0: off. Runs 27-28 used 0.05."""
    teacher: str = ""
    """An ONNX file of this repo's contract (e.g. a ``--members 2 --swa-epochs 0`` build, run 20) whose
    served logits the one network also learns from, with weight ``distill`` (needed, > 0) and temperature
    ``distill_temperature`` (offline distillation, Hinton et al. 2015); empty: off. Served logits are
    already divided by the teacher's calibration temperature, so the effective temperature on its raw
    logits is ``distill_temperature`` times that. Did not raise the held-out pen figure in runs 29-30."""
    threads: int = 1
    """Intra-op threads; 1 is fastest on a shared 2-core machine (the batch worker uses the other core)."""
    limit_batches: int = 0
    """Stop each epoch after this many batches (0: all); for quick experiments."""
    nondigit_per_batch: int = 48
    """UNIPEN letters and symbols of the training writers per batch (look-alikes excluded), class 10."""
    synthetic_per_batch: int = 8
    """Synthesized marks per batch (:func:`model.nondigits.synthetic_mark`), class 10."""
    reject_digit_rate: float = 0.003
    """Share of each source's calibration digits (MNIST validation, calibration writers' pen inks) the
    not-a-digit threshold may turn away (:func:`model.rejection.calibrate`)."""

    @property
    def network_widths(self) -> tuple[int, ...]:
        """``widths`` as integers."""
        return tuple(int(w) for w in self.widths.split(","))

    @property
    def student_network_widths(self) -> tuple[int, ...]:
        """``student_widths`` as integers (``widths`` when empty)."""
        return tuple(int(w) for w in (self.student_widths or self.widths).split(","))

    @property
    def teachers_label_smoothing(self) -> float:
        """``teacher_label_smoothing``, or ``label_smoothing`` when negative."""
        return self.label_smoothing if self.teacher_label_smoothing < 0 else self.teacher_label_smoothing


class CanvasBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``e * per_epoch + b`` is batch ``b`` of epoch ``e``: augmented MNIST plus drawn pen inks.

    A pure function of ``(seed, e, b)``, so any worker count gives the same batches.
    """

    def __init__(  # noqa: PLR0917 (the batch source's parts, in the order they are built)
        self,
        images: npt.NDArray[np.uint8],
        clean: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        pen: Sequence[Ink],
        cfg: Config,
        nondigits: Sequence[Ink] = (),
    ) -> None:
        self.images, self.clean, self.labels, self.pen, self.cfg = images, clean, labels, list(pen), cfg
        self.nondigits = list(nondigits)
        full = len(images) // cfg.mnist_per_batch
        self.per_epoch = min(full, cfg.limit_batches) if cfg.limit_batches else full

    def __len__(self) -> int:
        return self.per_epoch * (self.cfg.epochs + self.cfg.swa_epochs)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        epoch, b = divmod(item, self.per_epoch)
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(self.images))
        idx = order[b * cfg.mnist_per_batch : (b + 1) * cfg.mnist_per_batch]
        rng = np.random.default_rng([cfg.seed, epoch, b, 1])
        x = augment.augment_mnist(self.images[idx], self.clean[idx], rng)
        y = self.labels[idx]
        if cfg.pen_per_batch:
            pen_order = np.random.default_rng([cfg.seed, epoch, 2]).permutation(
                np.resize(np.arange(len(self.pen)), self.per_epoch * cfg.pen_per_batch)
            )
            pen_idx = pen_order[b * cfg.pen_per_batch : (b + 1) * cfg.pen_per_batch]
            drawn, pen_y = [], []
            for i in pen_idx:
                digit = augment.augment_pen(self.pen[i], rng)
                if digit is not None:
                    drawn.append(digit)
                    pen_y.append(self.pen[i].label)
            if drawn:
                x = np.concatenate([x, np.stack(drawn)])
                y = np.concatenate([y, np.asarray(pen_y, dtype=np.int64)])
        if self.nondigits:
            count = cfg.nondigit_per_batch
            order = np.random.default_rng([cfg.seed, epoch, 3]).permutation(
                np.resize(np.arange(len(self.nondigits)), self.per_epoch * count)
            )[b * count : (b + 1) * count]
            rows = rejection.nondigit_rows(self.nondigits, count, cfg.synthetic_per_batch, order, rng)
            x = np.concatenate([x, rows])
            y = np.concatenate([y, np.full(len(rows), NOT_A_DIGIT, dtype=np.int64)])
        return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def _normalize_all(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    out = np.empty(images.shape, np.float32)
    for i, img in enumerate(tqdm(images, desc="normalize mnist", unit="img", leave=False, file=sys.stderr)):
        digit = normalize(img)
        out[i] = img / np.float32(255) if digit is None else digit
    return out


def _pen_eval_batch(
    inks: Sequence[Ink], seed: int, draws: int = 1
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Inks drawn as a person would (evaluation protocol), ``draws`` placements each, via strokes."""
    xs, ys = [], []
    for d in range(draws):
        for i, ink in enumerate(inks):
            strokes, pen = draw_like_a_person(ink, np.random.default_rng([seed, d, i]))
            t = preprocess(StrokesFrame(strokes, 280, 280, pen))
            if t is not None:
                xs.append(t[0])
                ys.append(ink.label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def _accuracy(model: torch.nn.Module, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    return float((_logits(model, x).argmax(1) == y).mean())


@torch.no_grad()
def _logits(model: torch.nn.Module, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    model.eval()
    return torch.cat([model(torch.from_numpy(x[i : i + 1000])) for i in range(0, len(x), 1000)]).numpy()


def fit_temperature(logits: npt.NDArray[np.float32], labels: npt.NDArray[np.int64]) -> float:
    """The temperature T minimizing the NLL of ``softmax(logits / T)`` (golden-section on log T).

    Args:
        logits: ``(N, 10)`` uncalibrated logits.
        labels: ``(N,)`` true classes.

    Returns:
        T in [0.05, 20].
    """
    z = torch.from_numpy(logits).double()
    y = torch.from_numpy(labels)

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


def mimo_inputs(
    x: torch.Tensor, y: torch.Tensor, heads: int, repeat: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A :class:`model.net.MIMO` training batch: each head gets its own ordering of the batch.

    Head 0 gets the batch as it is. For each further head, each row keeps head 0's image with
    probability ``repeat`` (drawn independently per head) and otherwise takes the row a random
    permutation of the whole batch puts there, so a head may see an image twice and another not at all.
    A variant of Havasi et al. 2021's input repetition, where a fixed share ``repeat`` of the rows goes
    to all heads and only the rest is shuffled among itself.

    Args:
        x: ``(N, 1, 28, 28)`` float32 batch.
        y: ``(N,)`` int64 labels.
        heads: M >= 2.
        repeat: In [0, 1].
        generator: Source of the draws (the caller seeds it per step, for determinism).

    Returns:
        ``(N, M, 28, 28)`` float32 inputs (channel m is head m's image) and ``(N, M)`` int64 labels.
    """
    n = len(y)
    rows = torch.arange(n)
    index = [rows]
    for _ in range(heads - 1):
        keep = torch.rand(n, generator=generator) < repeat
        index.append(torch.where(keep, rows, torch.randperm(n, generator=generator)))
    ix = torch.stack(index, dim=1)
    return x[:, 0][ix], y[ix]


def training_loss(
    model: DigitCNN | DigitEnsemble | Distillation | MIMO,
    x: torch.Tensor,
    y: torch.Tensor,
    label_smoothing: float,
    *,
    mutual: float = 0.0,
    distill: float = 0.0,
    distill_temperature: float = 2.0,
    teacher_label_smoothing: float | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Label-smoothed cross-entropy; for an ensemble, the sum of each member's own loss.

    Summing (not averaging the logits first) gives every member exactly the gradient it would get if
    trained alone, so the members stay independent networks whose errors partly cancel. With
    ``mutual > 0`` each member's loss adds ``mutual * KL(q || p)``, ``p`` its softmax and ``q`` the
    other members' mean softmax, held constant (deep mutual learning, Zhang et al. 2018). For a
    :class:`Distillation`, the teachers' ensemble loss plus the student's own cross-entropy and
    ``distill * distillation_kl(student, teachers' mean logits)``; the teachers get no gradient from
    the student. For one :class:`DigitCNN` given ``teacher_logits`` (offline distillation), its
    cross-entropy plus ``distill * distillation_kl(logits, teacher_logits)``. For a :class:`MIMO`,
    the sum over heads of each head's cross-entropy on its own images (``x`` and ``y`` from
    :func:`mimo_inputs`).

    Args:
        model: In training mode.
        x: ``(N, 1, 28, 28)`` float32 batch (:class:`MIMO`: ``(N, M, 28, 28)``).
        y: ``(N,)`` int64 labels (:class:`MIMO`: ``(N, M)``).
        label_smoothing: Passed to :func:`torch.nn.functional.cross_entropy`.
        mutual: Weight of the mutual term (ensembles only), >= 0.
        distill: Weight of the distillation term (:class:`Distillation`, or ``teacher_logits``), >= 0.
        distill_temperature: Its softmax temperature, > 0.
        teacher_label_smoothing: The teachers' label smoothing (:class:`Distillation` only); ``None``:
            ``label_smoothing``.
        teacher_logits: ``(N, 10)`` float32 logits of a trained teacher for ``x`` (one
            :class:`DigitCNN` only), or ``None``.

    Returns:
        Scalar loss; divide by the network count for the per-network value.

    Raises:
        ValueError: ``teacher_logits`` for anything but one :class:`DigitCNN`.
    """
    if teacher_logits is not None and type(model) is not DigitCNN:
        raise ValueError("teacher_logits are for one DigitCNN (offline distillation)")
    if isinstance(model, Distillation):
        z = model.teachers.member_logits(x)  # one forward pass serves both the teachers and the target
        student = model.student(x)
        own = F.cross_entropy(student, y, label_smoothing=label_smoothing)
        kd = distillation_kl(student, z.mean(dim=1), distill_temperature)
        teachers = label_smoothing if teacher_label_smoothing is None else teacher_label_smoothing
        return _members_loss(z, y, teachers) + own + distill * kd
    if isinstance(model, MIMO):
        return _members_loss(model.head_logits(x), y, label_smoothing)
    if isinstance(model, DigitEnsemble):
        z = model.member_logits(x)
        loss = _members_loss(z, y, label_smoothing)
        return loss + mutual * mutual_kl(z) if mutual else loss
    z = model(x)
    own = F.cross_entropy(z, y, label_smoothing=label_smoothing)
    return (
        own
        if teacher_logits is None
        else own + distill * distillation_kl(z, teacher_logits, distill_temperature)
    )


def _members_loss(z: torch.Tensor, y: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Sum over members of each member's mean cross-entropy.

    ``z`` is ``(N, M, 10)``; ``y`` is ``(N,)`` (the same labels for every member) or ``(N, M)``.
    """
    members = z.shape[1]
    labels = y.repeat_interleave(members) if y.dim() == 1 else y.flatten()
    return members * F.cross_entropy(z.flatten(0, 1), labels, label_smoothing=label_smoothing)


def mutual_kl(z: torch.Tensor) -> torch.Tensor:
    """The deep-mutual-learning term: ``sum_k KL(q_k || p_k)``, averaged over the batch.

    ``p_k = softmax(z[:, k])`` and ``q_k`` is the mean of the other members' softmax, held constant
    (detached), so each member is pulled towards the others and never the reverse within this term.

    Args:
        z: ``(N, M, 10)`` float32 logits of ``M >= 2`` members.

    Returns:
        Scalar, >= 0; its gradient with respect to ``z[:, k]`` is ``(p_k - q_k) / N``.
    """
    n, members = z.shape[:2]
    p = z.softmax(dim=-1).detach()
    others = (p.sum(dim=1, keepdim=True) - p) / (members - 1)
    return F.kl_div(z.log_softmax(dim=-1), others, reduction="sum") / n


def distillation_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """The distillation term ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, batch mean.

    The teacher side is held constant (detached). The ``T^2`` factor keeps the gradient's scale
    independent of ``T`` (Hinton et al. 2015).

    Args:
        student: ``(N, 10)`` float32 logits.
        teacher: ``(N, 10)`` float32 logits (the teachers' mean).
        temperature: T > 0.

    Returns:
        Scalar, >= 0; its gradient with respect to ``student`` is ``T * (p - q) / N``, ``p`` and ``q``
        the student's and the teacher's softmax at temperature T.
    """
    t = temperature
    q = (teacher.detach() / t).softmax(dim=-1)
    return t * t * F.kl_div((student / t).log_softmax(dim=-1), q, reduction="batchmean")


def sharpness_aware_gradients(
    model: torch.nn.Module, rho: float, loss_fn: Callable[[], torch.Tensor]
) -> None:
    """Replace the gradients in ``model`` by SAM's (Foret et al. 2021).

    With ``g`` the current gradients (``loss.backward()`` already ran), the weights move to
    ``w + rho * g / ||g||`` (one L2 norm over all parameters), ``loss_fn`` is evaluated and
    back-propagated there, and the weights are restored exactly, so ``.grad`` holds the gradient at the
    perturbed point. BatchNorm running statistics and batch counts stay as the first pass set them
    (momentum 0 in the second pass, counts restored). Dropout draws new masks in the second pass, as in
    plain SAM implementations. Parameters without a gradient are neither moved nor given one. With
    several networks in ``model`` (``--members``, ``--distill``) the one norm spans all of them, so each
    moves by about ``rho / sqrt(networks)``.

    Args:
        model: In training mode, with gradients.
        rho: Neighbourhood radius > 0, in parameter units (L2 over all parameters).
        loss_fn: Recomputes the same batch's scalar loss.

    Raises:
        ValueError: ``rho <= 0``. If ``loss_fn`` raises, the weights and BatchNorm settings are restored
            first and the gradients are left cleared.
    """
    if rho <= 0:
        raise ValueError(f"the SAM radius must be > 0, got {rho}")
    params = [p for p in model.parameters() if p.grad is not None]
    grads = [cast(torch.Tensor, p.grad) for p in params]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    steps = [g * (rho / (norm + 1e-12)) for g in grads]  # 1e-12: no division by zero at a zero gradient
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    tracked = [m for m in norms if m.num_batches_tracked is not None]
    counts = [m.num_batches_tracked.clone() for m in tracked]
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, e in zip(params, steps, strict=True):
            p.add_(e)
    for m in norms:
        m.momentum = 0.0
    try:
        model.zero_grad(set_to_none=True)
        loss_fn().backward()
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for m, count in zip(tracked, counts, strict=True):
            m.num_batches_tracked.copy_(count)
        with torch.no_grad():
            for p, w in zip(params, saved, strict=True):
                p.copy_(w)


def recompute_batchnorm(swa: AveragedModel, batches: Sequence[torch.Tensor]) -> None:
    """Recompute the BatchNorm statistics of averaged weights on ``batches`` (SWA's last step).

    :func:`torch.optim.swa_utils.update_bn` resets every BatchNorm layer and then runs only ``forward``;
    a :class:`Distillation`'s forward is the student's, so its teachers are updated in a pass of their own.

    Args:
        swa: The averaged model (its ``module`` is changed in place).
        batches: ``(N, 1, 28, 28)`` float32 training batches.
    """
    if isinstance(swa.module, Distillation):
        update_bn(batches, swa.module.teachers)
        update_bn(batches, swa.module.student)
    else:
        update_bn(batches, swa)


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(cfg: Config, data_dir: Path, out: Path, report_path: Path, eval_workers: int) -> dict[str, Any]:
    """Run all steps (module docstring) and write the model and a JSON training report.

    Args:
        cfg: Hyper-parameters and seed.
        data_dir: The shared data folder.
        out: Model file to write.
        report_path: JSON report to write.
        eval_workers: Processes for the final test-set preprocessing.

    Returns:
        The report.
    """
    started = time.perf_counter()
    teacher = Predictor(cfg.teacher) if cfg.teacher else None  # one thread; a bad file fails here, early
    commit = _git("rev-parse", "HEAD")  # before training: others may commit meanwhile
    dirty = _git("status", "--porcelain", "--", "model", "shared")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)

    images, labels = load_mnist(data_dir, "train")  # checks sha256
    split = pen_split(data_dir, seed=cfg.seed)  # checks sha256
    perm = np.random.default_rng([cfg.seed, 10**6]).permutation(len(images))
    val_idx, train_idx = np.sort(perm[:MNIST_VAL]), np.sort(perm[MNIST_VAL:])
    clean = _normalize_all(images)
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
    val_x, val_y = clean[val_idx][:, None], labels[val_idx]
    pen_val_x, pen_val_y = _pen_eval_batch(split.val, seed=cfg.seed + 1)

    data = CanvasBatches(
        images[train_idx],
        clean[train_idx],
        labels[train_idx],
        split.train,
        cfg,
        nondigit_inks(nondigits.train),
    )
    loader = DataLoader(
        data,
        batch_size=None,
        shuffle=False,
        num_workers=1,
        prefetch_factor=6,
        worker_init_fn=_worker_init,
        persistent_workers=False,
    )
    student_widths = cfg.student_network_widths if cfg.distill and not cfg.teacher else None
    model = build(cfg.network_widths, cfg.members, student_widths, cfg.mimo, outputs=NOT_A_DIGIT + 1)
    model = model.to(memory_format=torch.channels_last)  # ~30% faster convs on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    cycle_steps = data.per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cycle_steps, pct_start=0.15)
    swa = AveragedModel(model) if cfg.swa_epochs else None
    history = []
    bar = tqdm(total=len(data), desc="train", unit="batch", file=sys.stderr, smoothing=0.05)
    running = 0.0
    for step, (batch, y) in enumerate(loader):
        model.train()
        if isinstance(model, MIMO):
            # A prime above any step count, so (seed, step) pairs never share a stream.
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            inputs, targets = mimo_inputs(batch, y, model.heads, cfg.mimo_repeat, generator)
        else:
            inputs, targets = batch, y
        x = inputs.contiguous(memory_format=torch.channels_last)
        teacher_logits = torch.from_numpy(teacher.logits(inputs.numpy())) if teacher else None

        def loss_fn(
            x: torch.Tensor = x,
            targets: torch.Tensor = targets,
            teacher_logits: torch.Tensor | None = teacher_logits,
        ) -> torch.Tensor:
            return training_loss(
                model,
                x,
                targets,
                cfg.label_smoothing,
                mutual=cfg.mutual,
                distill=cfg.distill,
                distill_temperature=cfg.distill_temperature,
                teacher_label_smoothing=cfg.teachers_label_smoothing,
                teacher_logits=teacher_logits,
            )

        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.sam:
            sharpness_aware_gradients(model, cfg.sam, loss_fn)
        opt.step()
        if step + 1 < cycle_steps:
            sched.step()
        elif step + 1 == cycle_steps:
            for group in opt.param_groups:
                group["lr"] = cfg.swa_lr
        elif swa is not None and (step + 1 - cycle_steps) % cfg.swa_every == 0:
            swa.update_parameters(model)
        value = float(loss.detach()) / _networks(cfg)  # per network (with any mutual/distillation term)
        running = 0.98 * running + 0.02 * value if step else value
        bar.update()
        if (step + 1) % data.per_epoch == 0:
            epoch = (step + 1) // data.per_epoch
            mnist_acc, pen_acc = _accuracy(model, val_x, val_y), _accuracy(model, pen_val_x, pen_val_y)
            history.append(
                {
                    "epoch": epoch,
                    "loss": running,
                    "val_mnist": mnist_acc,
                    "val_pen": pen_acc,
                    "seconds": time.perf_counter() - started,
                }
            )
            bar.set_postfix(ep=epoch, loss=f"{running:.3f}", mnist=f"{mnist_acc:.4f}", pen=f"{pen_acc:.4f}")
            tqdm.write(json.dumps(history[-1]), file=sys.stderr)
    bar.close()
    if swa is not None:
        # BatchNorm statistics of the averaged weights, from the first batches of the first epoch.
        swa.update_parameters(model)
        bn_batches = _batchnorm_batches(data)
        averaged = swa.module
        assert isinstance(averaged, DigitCNN | DigitEnsemble | Distillation | MIMO)
        recompute_batchnorm(swa, bn_batches)
        model = averaged
    train_seconds = time.perf_counter() - started
    members_val: list[dict[str, float]] = []
    if isinstance(model, MIMO) and swa is not None:
        # SWA already recomputed every BatchNorm layer through forward, i.e. under repeated inputs.
        model = model.collapse().to(memory_format=torch.channels_last)
    elif isinstance(model, MIMO):
        bn_batches = _batchnorm_batches(data)
        model, members_val = collapse_mimo(model, bn_batches, (val_x, val_y), (pen_val_x, pen_val_y))

    def validation(m: torch.nn.Module) -> dict[str, float]:
        return {"val_mnist": _accuracy(m, val_x, val_y), "val_pen": _accuracy(m, pen_val_x, pen_val_y)}

    if isinstance(model, DigitEnsemble) and cfg.mutual:
        # Ship one member (one network's latency), chosen on the validation split only.
        members_val = [validation(m) for m in model.members]
        correct = [v["val_mnist"] * len(val_y) + v["val_pen"] * len(pen_val_y) for v in members_val]
        shipped_member = int(np.argmax(correct))  # the first on ties
        print(f"members on validation: {members_val}; shipping member {shipped_member}", file=sys.stderr)
        chosen = model.members[shipped_member]
        assert isinstance(chosen, DigitCNN)
        model = chosen
    elif isinstance(model, Distillation):
        # Ship the student; record the teachers' validation figures for comparison.
        members_val = [validation(m) for m in [*model.teachers.members, model.teachers, model.student]]
        print(f"teachers, their ensemble, student on validation: {members_val}", file=sys.stderr)
        model = model.student

    # Calibration on the validation split: MNIST through the canvas PNG path, held-back pen inks.
    cal_x, _ = evaluate.mnist_canvas_batch(images[val_idx], eval_workers)
    digit_cal = {"mnist": _logits(model, cal_x)}
    if cfg.pen_per_batch:
        pen_cal_x, pen_cal_y = _pen_eval_batch(split.val, seed=cfg.seed + 2, draws=CALIBRATION_PEN_DRAWS)
        digit_cal["pen"] = _logits(model, pen_cal_x)
        cal_y = np.concatenate([labels[val_idx], pen_cal_y])
    else:  # MNIST-only build (the licence note in model/README.md): no UNIPEN ink sets the temperature
        cal_y = labels[val_idx]
    nd_cal_x, _ = evaluate.pen_batch(nondigit_inks(nondigits.calibration), cfg.seed + 3, eval_workers)
    nd_cal_logits = _logits(model, nd_cal_x)
    cal_logits = np.concatenate([*digit_cal.values(), nd_cal_logits])
    cal_y = np.concatenate([cal_y, np.full(len(nd_cal_logits), NOT_A_DIGIT)])
    temperature = fit_temperature(cal_logits, cal_y)
    threshold, rejection_cal = rejection.calibrate(
        {k: v / temperature for k, v in digit_cal.items()}, nd_cal_logits / temperature, cfg.reject_digit_rate
    )
    print(f"not-a-digit threshold {threshold:.4f}; calibration: {rejection_cal}", file=sys.stderr)
    ece_before = evaluate.expected_calibration_error(evaluate.softmax(cal_logits), cal_y)
    ece_after = evaluate.expected_calibration_error(evaluate.softmax(cal_logits / temperature), cal_y)
    print(
        f"temperature {temperature:.4f}; calibration ECE {ece_before:.4f} -> {ece_after:.4f}", file=sys.stderr
    )

    metadata = {
        "version": VERSION,
        "git_commit": commit,
        "git_dirty_files": " ".join(line[3:] for line in dirty.splitlines() if not line.endswith(".onnx")),
        "training_data": (
            (
                f"MNIST train (sha256-checked IDX, {len(train_idx)} images; "
                f"{MNIST_VAL} held out for calibration) + UNIPEN 1a pen inks of "
                f"{len({i.writer for i in split.train})} writers ({len(split.train)} inks; "
                f"{len(split.val)} inks of {len({i.writer for i in split.val})} more writers held out for "
                "calibration); "
                "held out of training: the 120 writers of unipen1a_dev_200.jsonl; not-a-digit class: "
                f"UNIPEN 1b/1c/1d letters and symbols of {len({n.ink.writer for n in nondigits.train})} "
                f"writers ({len(nondigit_inks(nondigits.train))} inks, look-alikes excluded; "
                f"{len(nondigit_inks(nondigits.calibration))} inks of "
                f"{len({n.ink.writer for n in nondigits.calibration})} more writers for calibration) "
                "+ synthesized marks (model.nondigits)"
            )
            if cfg.pen_per_batch
            else (
                f"MNIST train only (sha256-checked IDX, {len(train_idx)} images; {MNIST_VAL} held out "
                "for calibration); UNIPEN 1a pen inks used only to measure, never to fit"
            )
        ),
        "normalization": (
            "input (N,1,28,28) float32 in [0,1], white ink on black: shared.preprocess.preprocess "
            "(crop to ink bbox, longer side 20 px, centre of mass at the centre of 28x28)"
        ),
        "temperature": f"{temperature:.6f}",
        "not_a_digit_threshold": f"{threshold:.6f}",
        "not_a_digit_calibration": json.dumps(rejection_cal),
        "temperature_applied": "yes: exported logits are logits / temperature (folded into the last layer)",
        "ece_calibration_before": f"{ece_before:.6f}",
        "ece_calibration_after": f"{ece_after:.6f}",
        "architecture": _architecture(cfg, teacher),
        "parameters": str(count_parameters(model)),
        "seed": str(cfg.seed),
        "config": json.dumps(cfg.__dict__),
        "train_command": "python -m model.train" + _cli_suffix(cfg),
        "torch": torch.__version__,
        "licenses": "MNIST: CC BY-SA 3.0; UNIPEN train_r01_v07: research use, no commercial distribution "
        "(CD-ROM notice; repo CC BY 4.0)",
        # Filled in after the test-set evaluation below.
        "accuracy_mnist_test_canvas": "pending",
        "accuracy_pen_heldout_writers": "pending",
    }
    rng = np.random.default_rng(cfg.seed)
    probe = np.concatenate([val_x[:56], pen_val_x[:56], rng.random((16, 1, 28, 28), dtype=np.float32)])
    data_bytes = to_onnx_bytes(model, temperature, metadata)
    parity = check_export(data_bytes, model, temperature, probe)
    tmp_model = out.with_suffix(".candidate.onnx")
    write(data_bytes, tmp_model)

    # Test sets: reported, never used for any choice above.
    test = evaluate.evaluate(tmp_model, data_dir, workers=eval_workers)
    res = test["results"]
    metadata["accuracy_mnist_test_canvas"] = f"{res['mnist_test_canvas']['accuracy']:.4f}"
    metadata["accuracy_pen_heldout_writers"] = f"{res['pen_heldout_strokes']['accuracy']:.4f}"
    metadata["accuracy_pen_200"] = f"{res['pen_200_strokes']['accuracy']:.4f}"
    metadata["ece_mnist_test_canvas"] = f"{res['mnist_test_canvas']['ece']:.4f}"
    metadata["ece_pen_heldout_writers"] = f"{res['pen_heldout_strokes']['ece']:.4f}"
    data_bytes = to_onnx_bytes(model, temperature, metadata)
    parity = max(parity, check_export(data_bytes, model, temperature, probe))
    write(data_bytes, out)
    tmp_model.unlink()

    report = {
        "config": cfg.__dict__,
        "history": history,
        "train_seconds": train_seconds,
        "total_seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds(),
        "load_average": os.getloadavg(),
        "temperature": temperature,
        "ece_calibration": {"before": ece_before, "after": ece_after, "n": len(cal_y)},
        "not_a_digit_calibration": rejection_cal,
        "parity_max_abs_diff": parity,
        "members_validation": members_val,
        "bytes": len(data_bytes),
        "parameters": count_parameters(model),
        "metadata": metadata,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": cfg.threads},
        "test": {k: {m: v[m] for m in ("n", "accuracy", "ece", "nll", "blank")} for k, v in res.items()},
    }
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1))
    evaluate.confusion_png(res, report_path.with_suffix(".confusion.png"))
    return report


def _batchnorm_batches(data: CanvasBatches) -> list[torch.Tensor]:
    """The first ``SWA_BN_BATCHES`` training batches (channels-last), to recompute BatchNorm statistics."""
    return [data[i][0].contiguous(memory_format=torch.channels_last) for i in range(SWA_BN_BATCHES)]


def collapse_mimo(
    model: MIMO,
    bn_batches: Sequence[torch.Tensor],
    mnist_val: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]],
    pen_val: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]],
) -> tuple[DigitCNN, list[dict[str, float]]]:
    """The one-input network to ship (no SWA), and both candidates' validation figures.

    Training fed the heads mostly unrelated images; inference feeds them all the same one, so every
    BatchNorm layer sees other statistics. The candidates: the collapsed network with the training
    statistics, and the same with the statistics recomputed on ``bn_batches`` under repeated inputs
    (as SWA does). The one with more validation samples right ships; the first on a tie.

    Args:
        model: The trained network (not modified).
        bn_batches: ``(N, 1, 28, 28)`` float32 training batches.
        mnist_val: Validation images ``(N, 1, 28, 28)`` float32 and labels ``(N,)`` int64.
        pen_val: The same for the held-back pen inks.

    Returns:
        The chosen :class:`DigitCNN` (eval mode), and for each candidate its accuracies ``val_mnist`` and
        ``val_pen`` (fractions) and ``right`` (samples right in both sets, a count).
    """
    kept = model.collapse().to(memory_format=torch.channels_last)
    recomputed = model.collapse().to(memory_format=torch.channels_last)
    update_bn(bn_batches, recomputed)
    figures = []
    for candidate in (kept, recomputed):
        mnist, pen = _accuracy(candidate, *mnist_val), _accuracy(candidate, *pen_val)
        right = mnist * len(mnist_val[1]) + pen * len(pen_val[1])
        figures.append({"val_mnist": mnist, "val_pen": pen, "right": right})
    ships = 1 if figures[1]["right"] > figures[0]["right"] else 0
    print(f"MIMO, BatchNorm kept / recomputed, on validation: {figures}; shipping {ships}", file=sys.stderr)
    return (kept, recomputed)[ships], figures


def _networks(cfg: Config) -> int:
    if cfg.mimo:
        return cfg.mimo  # the loss sums the heads' cross-entropies
    return cfg.members + 1 if cfg.distill and not cfg.teacher else cfg.members


def _architecture(cfg: Config, teacher: Predictor | None = None) -> str:
    def net(w: tuple[int, ...]) -> str:
        return (
            f"DigitCNN conv3x3+BN+ReLU widths {list(w)}, maxpool after conv 1, 2, 4; linear {w[-1] * 9}->10"
        )

    one = net(cfg.network_widths)
    if teacher is not None:
        return (
            f"{one}; distilled offline (weight {cfg.distill:g}, T {cfg.distill_temperature:g}) from the "
            f"logits of {Path(cfg.teacher).name} (sha256 {teacher.info.sha256})"
        )
    if cfg.distill:
        return (
            f"{net(cfg.student_network_widths)}; distilled online (weight {cfg.distill:g}, "
            f"T {cfg.distill_temperature:g}) from the mean logits of {cfg.members} teachers "
            f"trained alongside ({one})"
        )
    if cfg.mimo:
        return f"{one}; trained as {cfg.mimo} subnetworks (MIMO, input repetition {cfg.mimo_repeat:g})"
    if cfg.members == 1:
        return one
    if cfg.mutual:
        return f"one of {cfg.members} networks trained by deep mutual learning (best on validation): {one}"
    return f"mean logits of {cfg.members} independently trained {one}"


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the batch worker, evaluation pool), s."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cli_suffix(cfg: Config) -> str:
    default = Config()
    return "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in cfg.__dict__.items() if v != getattr(default, k)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    settings = Settings()
    d = Config()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=settings.data_dir / "mnist",
        help="the MNIST folder (or the shared data folder above it, with SHA256SUMS and pen/)",
    )
    ap.add_argument("--out", type=Path, default=settings.model_path)
    ap.add_argument("--report", type=Path, default=Path("reports/train_report.json"))
    ap.add_argument("--eval-workers", type=int, default=2)
    for k, v in d.__dict__.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    args = ap.parse_args(argv)
    if args.mutual and args.members < 2:
        ap.error("--mutual needs --members 2 or more")
    if args.teacher and (
        not args.distill
        or args.members > 1
        or args.mimo
        or args.student_widths
        or args.teacher_label_smoothing >= 0
    ):
        ap.error(
            "--teacher needs --distill and one network "
            "(no --members, --mimo, --student-widths, --teacher-label-smoothing)"
        )
    if args.distill < 0 or args.distill_temperature <= 0:
        ap.error("--distill needs a weight >= 0 and --distill-temperature a temperature > 0")
    if args.distill and not args.teacher and (args.members < 2 or args.mutual):
        ap.error("--distill needs --members 2 or more (the teachers) and no --mutual")
    if (args.student_widths or args.teacher_label_smoothing >= 0) and not args.distill:
        ap.error("--student-widths and --teacher-label-smoothing need --distill")
    if args.mimo and (args.mimo < 2 or args.members > 1):
        ap.error("--mimo needs 2 or more heads and one network (no --members)")
    if args.mimo_repeat != d.mimo_repeat and not args.mimo:
        ap.error("--mimo-repeat needs --mimo")
    if not 0 <= args.mimo_repeat <= 1:
        ap.error("--mimo-repeat needs a share in [0, 1]")
    if args.sam < 0:
        ap.error("--sam needs a radius >= 0")
    if (args.members > 1 or args.mimo or args.distill or args.teacher) and (
        args.nondigit_per_batch or args.synthetic_per_batch
    ):
        ap.error(
            "--members, --mimo, --distill and --teacher build ten-class networks: "
            "add --nondigit-per-batch 0 --synthetic-per-batch 0 (the file then fails the 11-logit contract)"
        )
    if not 0 <= args.reject_digit_rate < 1:
        ap.error("--reject-digit-rate needs a share in [0, 1)")
    cfg = Config(**{k: getattr(args, k) for k in d.__dict__})
    report = train(cfg, resolve_data_dir(args.data_dir), args.out, args.report, args.eval_workers)
    t = report["test"]
    mnist, pen, pen200 = (
        100 * t[k]["accuracy"] for k in ("mnist_test_canvas", "pen_heldout_strokes", "pen_200_strokes")
    )
    print(
        f"wrote {args.out} ({report['bytes']} bytes, {report['parameters']} parameters) in "
        f"{report['total_seconds'] / 60:.1f} min wall ({report['cpu_seconds'] / 60:.1f} min CPU); "
        f"MNIST test (canvas) {mnist:.2f}%, held-out pen {pen:.2f}%, pen 200 {pen200:.2f}%, "
        f"T={report['temperature']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
