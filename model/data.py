"""Training and evaluation data: checked MNIST IDX files, the UNIPEN writer split, canvas renderings.

Everything here goes through the product's own preprocessing (:mod:`shared.preprocess`), so the model
is trained and evaluated on exactly the tensors serving produces.

Writer split of ``pen/unipen1a_dev.jsonl.gz`` (178 writers, 10,542 inks):

* held out (evaluation only, never trained on): a seeded half (:data:`HELDOUT_WRITER_FRACTION`) of the
  120 writers of ``unipen1a_dev_200.jsonl`` (68 writers, 5,015 inks), so the CI tests on that file's
  held-out inks measure unseen writers (:func:`heldout_pen_writers`);
* the other 110 writers (5,527 inks): a seeded :data:`PEN_VAL_WRITER_FRACTION` of them are calibration
  writers, never trained on (their inks set the temperature and the not-a-digit threshold, so the
  threshold sees how digits of writers the network never saw score); the rest are trained on.

Holding out half of those writers, not all 120, doubles the writers trained on: with 46 training writers
a network turned away 75 % of unseen writers' letters and symbols at 0.5 % of their digits, with 98 it
turned away 94 % (``docs/experiments.md``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from shared.canvas import CANVAS_PX
from shared.inks import Ink, Strokes, load_inks, random_placement

MNIST_FILES = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
}
"""Split name to (images, labels) IDX gzip paths, relative to the data folder."""
PEN_ALL = "pen/unipen1a_dev.jsonl.gz"
"""Every ink of the 178 development writers."""
PEN_200 = "pen/unipen1a_dev_200.jsonl"
"""200 inks of 120 writers (20 per digit); a seeded half of its writers are held out of training."""
HELDOUT_WRITER_FRACTION = 0.5
"""Share of :data:`PEN_200`'s writers held out: 60-odd writers (about 5,000 inks) measure to about 0.2
accuracy points, and the rest train (module docstring)."""
HELDOUT_SPLIT_SEED = 7
"""Seed of the held-out draw (fixed: the held-out side never depends on a training seed)."""
CANVAS = CANVAS_PX
"""Side of the page's drawing canvas, px (:data:`shared.canvas.CANVAS_PX`)."""
PEN_BOX_RANGE = (90.0, 230.0)
"""Longer side of a digit drawn on the 280 px canvas, px (evaluation)."""
PEN_WIDTH_RANGE = (12.0, 24.0)
"""Pen diameter on the 280 px canvas, px (evaluation)."""
PEN_VAL_WRITER_FRACTION = 0.2
"""Share of the non-held-out writers kept out of training for calibration (temperature, threshold)."""


class ChecksumError(RuntimeError):
    """A data file's sha256 differs from ``SHA256SUMS``."""


def resolve_data_dir(path: Path) -> Path:
    """The shared data folder, given it or its ``mnist/`` subfolder.

    Args:
        path: ``../shared/data`` or ``../shared/data/mnist``.

    Returns:
        The folder holding ``SHA256SUMS``, ``mnist/`` and ``pen/``.

    Raises:
        FileNotFoundError: neither ``path`` nor its parent holds ``SHA256SUMS``.
    """
    for candidate in (path, path.parent):
        if (candidate / "SHA256SUMS").is_file() and (candidate / "mnist").is_dir():
            return candidate
    raise FileNotFoundError(f"no SHA256SUMS beside mnist/ in {path} or {path.parent}")


def data_folder(text: str) -> Path:
    """``--data-dir`` as an ``argparse`` type: :func:`resolve_data_dir`, a one-line usage error if absent."""
    try:
        return resolve_data_dir(Path(text))
    except FileNotFoundError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def verify_checksums(data_dir: Path, names: list[str]) -> None:
    """Check files against the data folder's ``SHA256SUMS``.

    Args:
        data_dir: The shared data folder (holds ``SHA256SUMS``).
        names: Paths relative to ``data_dir``, as listed in ``SHA256SUMS``.

    Raises:
        ChecksumError: a file is not listed, or its sha256 differs.
        OSError: a file cannot be read.
    """
    sums: dict[str, str] = {}
    for line in (data_dir / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.lstrip("*")] = digest
    for name in names:
        if name not in sums:
            raise ChecksumError(f"{name} is not listed in {data_dir / 'SHA256SUMS'}")
        actual = hashlib.sha256((data_dir / name).read_bytes()).hexdigest()
        if actual != sums[name]:
            raise ChecksumError(f"{name}: sha256 {actual} != {sums[name]} (SHA256SUMS)")


def load_mnist(
    data_dir: Path, split: str, verify: bool = True
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Read one MNIST split from its IDX gzip files.

    Args:
        data_dir: The shared data folder (``mnist/`` inside it).
        split: ``"train"`` (60,000) or ``"test"`` (10,000).
        verify: Check both files' sha256 against ``SHA256SUMS`` first.

    Returns:
        ``(N, 28, 28)`` uint8 images (white ink on black, 0..255) and ``(N,)`` int64 labels 0-9.

    Raises:
        ChecksumError: a checksum differs. ValueError: a file is not the expected IDX format.
    """
    images_name, labels_name = MNIST_FILES[split]
    if verify:
        verify_checksums(data_dir, [images_name, labels_name])
    raw = gzip.decompress((data_dir / images_name).read_bytes())
    magic, count, rows, cols = np.frombuffer(raw, ">u4", count=4)
    if magic != 0x803 or (rows, cols) != (28, 28):
        raise ValueError(f"{images_name}: not an IDX3 file of 28x28 images")
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(int(count), 28, 28)
    raw = gzip.decompress((data_dir / labels_name).read_bytes())
    magic, n = np.frombuffer(raw, ">u4", count=2)
    if magic != 0x801 or n != count:
        raise ValueError(f"{labels_name}: not an IDX1 file with {count} labels")
    labels = np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)
    return images, labels


MNIST_VAL = 5000
"""MNIST training images held out of training for validation and calibration."""


def split_seed_of(config: Mapping[str, Any]) -> int:
    """The seed of a training run's data splits: ``split_seed``, or ``seed`` when that is -1 or absent.

    ``config`` is a ``model.train.Config``'s fields, or the ``config`` JSON a model file records.
    """
    seed = int(config.get("split_seed", -1))
    return int(config["seed"]) if seed < 0 else seed


def mnist_split(count: int, seed: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Split ``count`` MNIST training images into the :data:`MNIST_VAL` held out and the rest, by seed.

    Returns:
        Sorted ``(MNIST_VAL,)`` validation indices and sorted ``(count - MNIST_VAL,)`` training indices.
    """
    perm = np.random.default_rng([seed, 10**6]).permutation(count)
    return np.sort(perm[:MNIST_VAL]), np.sort(perm[MNIST_VAL:])


@dataclass(frozen=True)
class PenSplit:
    """UNIPEN inks: held-out writers apart, the training writers' inks split into train and calibration.

    Attributes:
        train: Inks trained on.
        val: Inks of the calibration writers, never trained on (no writer in common with ``train``).
        heldout: Inks of the held-out writers (:func:`heldout_pen_writers`), for evaluation only (no
            writer in common with ``train`` or ``val``).
    """

    train: list[Ink]
    val: list[Ink]
    heldout: list[Ink]


def heldout_pen_writers(data_dir: Path) -> set[str]:
    """The held-out writers: a seeded :data:`HELDOUT_WRITER_FRACTION` of :data:`PEN_200`'s writers.

    Args:
        data_dir: The shared data folder.

    Returns:
        Writer pseudonyms (their digits and their letters and symbols are never trained or tuned on).
    """
    return _heldout_of(load_inks(data_dir / PEN_200))


def pen_200_heldout(data_dir: Path) -> list[Ink]:
    """The inks of :data:`PEN_200` by held-out writers (119 of 200), in file order: the CI checks' set."""
    inks = load_inks(data_dir / PEN_200)
    writers = _heldout_of(inks)
    return [ink for ink in inks if ink.writer in writers]


def _heldout_of(sample: list[Ink]) -> set[str]:
    writers = sorted({ink.writer for ink in sample})
    chosen = np.random.default_rng([HELDOUT_SPLIT_SEED, 120]).random(len(writers)) >= HELDOUT_WRITER_FRACTION
    return {w for w, c in zip(writers, chosen, strict=True) if c}


def pen_split(data_dir: Path, seed: int = 0, verify: bool = True) -> PenSplit:
    """Split ``unipen1a_dev.jsonl.gz`` (module docstring).

    Args:
        data_dir: The shared data folder.
        seed: Chooses the calibration writers.
        verify: Check the two pen files' sha256 first.

    Returns:
        The three parts, each in file order.
    """
    if verify:
        verify_checksums(data_dir, [PEN_ALL, PEN_200])
    heldout_writers = heldout_pen_writers(data_dir)
    inks = load_inks(data_dir / PEN_ALL)
    writers = sorted({ink.writer for ink in inks} - heldout_writers)
    chosen = np.random.default_rng([seed, 58]).random(len(writers)) < PEN_VAL_WRITER_FRACTION
    val_writers = {w for w, c in zip(writers, chosen, strict=True) if c}
    return PenSplit(
        train=[ink for ink in inks if ink.writer not in heldout_writers and ink.writer not in val_writers],
        val=[ink for ink in inks if ink.writer in val_writers],
        heldout=[ink for ink in inks if ink.writer in heldout_writers],
    )


def draw_like_a_person(ink: Ink, rng: np.random.Generator) -> tuple[Strokes, float]:
    """Place an ink as a person would draw it on the page's 280 px canvas (the evaluation protocol).

    Args:
        ink: The recording.
        rng: Seeded generator (one draw for the size, two for the position, one for the pen).

    Returns:
        Strokes in canvas px (y down) with the digit's longer side 90-230 px at a random position, and a
        pen diameter of 12-24 px.
    """
    strokes = random_placement(ink, rng, CANVAS, PEN_BOX_RANGE)
    return strokes, float(rng.uniform(*PEN_WIDTH_RANGE))


def mnist_canvas_png(image: npt.NDArray[np.uint8]) -> bytes:
    """Render an MNIST image as the page's canvas would send it: 280x280 PNG, black ink on white.

    Args:
        image: ``(28, 28)`` uint8, white ink on black.

    Returns:
        PNG bytes, 8-bit grey, the image scaled 10x (bilinear) and inverted.
    """
    canvas = Image.fromarray(255 - image).resize((CANVAS, CANVAS), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    canvas.save(buf, "PNG", compress_level=1)
    return buf.getvalue()
