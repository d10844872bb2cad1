"""Training batches: augmented MNIST digits, drawn pen inks and not-a-digit rows, a pure function of the seed.

Every batch is derived from ``(seed, epoch, batch index)`` only, so the DataLoader's worker count and
timing never change what the network sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, Dataset

from model import augment, rejection
from model.nondigits import NOT_A_DIGIT
from shared.inks import Ink
from shared.preprocess import STROKES_PLANES

if TYPE_CHECKING:
    from model.train import Config


class CanvasBatches(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Item ``e * per_epoch + b`` is batch ``b`` of epoch ``e``: augmented MNIST plus drawn pen inks.

    Each batch is ``(N, P, 28, 28)`` float32 in [0, 1] and ``(N,)`` int64 labels (10: not a digit):
    ``mnist_per_batch`` augmented MNIST digits (:func:`model.augment.augment_mnist`), up to
    ``pen_per_batch`` training writers' pen inks drawn on random canvases (:func:`model.augment.augment_pen`;
    an ink that leaves no ink is dropped), then ``nondigit_per_batch`` letters and symbols and
    ``synthetic_per_batch`` synthesized marks (:func:`model.rejection.nondigit_rows`).

    ``P`` is 1 for the image model. For the strokes model (``cfg.form == "strokes"``) it is 7: the raster
    and the motion planes (:func:`shared.preprocess.strokes_planes`). MNIST has no trajectories, so its
    motion planes are zeros; each drawn row's motion planes are also zeroed with probability
    ``cfg.motion_dropout``, so the network keeps reading the raster of pen inks and does not take empty
    motion planes as a sign of MNIST's style.

    Args:
        images: ``(N, 28, 28)`` uint8 MNIST training images.
        clean: ``(N, 28, 28)`` float32 the same images after :func:`shared.preprocess.normalize`.
        labels: ``(N,)`` int64 digits.
        pen: The training writers' digit inks.
        cfg: Seed, epochs and batch composition.
        nondigits: The training writers' letters and symbols (look-alikes excluded).
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
        motion = cfg.form == "strokes"
        x = augment.augment_mnist(self.images[idx], self.clean[idx], rng)
        if motion:
            x = np.concatenate(
                [x[:, None], np.zeros((len(x), STROKES_PLANES - 1, 28, 28), np.float32)], axis=1
            )
        y = self.labels[idx]
        mnist_rows = len(x)
        if cfg.pen_per_batch:
            pen_order = np.random.default_rng([cfg.seed, epoch, 2]).permutation(
                np.resize(np.arange(len(self.pen)), self.per_epoch * cfg.pen_per_batch)
            )
            pen_idx = pen_order[b * cfg.pen_per_batch : (b + 1) * cfg.pen_per_batch]
            drawn, pen_y = [], []
            for i in pen_idx:
                digit = augment.augment_pen(self.pen[i], rng, motion)
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
            rows = rejection.nondigit_rows(self.nondigits, count, cfg.synthetic_per_batch, order, rng, motion)
            x = np.concatenate([x, rows])
            y = np.concatenate([y, np.full(len(rows), NOT_A_DIGIT, dtype=np.int64)])
        if motion and cfg.motion_dropout:
            drop = np.flatnonzero(rng.random(len(x) - mnist_rows) < cfg.motion_dropout) + mnist_rows
            x[drop, 1:] = 0
        return torch.from_numpy(x if motion else x[:, None]), torch.from_numpy(y)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def loader(data: CanvasBatches) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """The batches in order, built ahead by one worker process (one thread) while the network trains.

    Creating an iterator draws the worker's base seed from torch's global generator (PyTorch's
    DataLoader), so iterate after the network is initialised to keep the weights' random draws in order.
    """
    return DataLoader(
        data,
        batch_size=None,
        shuffle=False,
        num_workers=1,
        prefetch_factor=6,
        worker_init_fn=_worker_init,
        persistent_workers=False,
    )
