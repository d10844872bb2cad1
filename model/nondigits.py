"""What is not a digit: UNIPEN letters and symbols split by writer, and synthesized marks.

Real non-digits come from ``pen/unipen1bcd_dev.jsonl.gz`` (UNIPEN 1b upper case, 1c lower case, 1d symbols
of the development writers; ``../shared/data/README.md`` section 3). Writer split (fixed, independent of
the training seed):

* held out (evaluation only, never trained on or tuned on): the digits' held-out writers
  (:func:`model.data.heldout_pen_writers`), plus a seeded :data:`HELDOUT_X_FRACTION` of the writers who
  wrote no digits (pseudonyms ``<site>-xNNN``);
* calibration: a seeded :data:`CALIBRATION_WRITER_FRACTION` of the other writers, never trained on; their
  non-digits set the not-a-digit threshold together with the digits' calibration split;
* training: the rest.

Look-alikes (:data:`LOOK_ALIKES`, the data README's list: characters some people write exactly like a digit,
and marks that are a digit's first stroke) are never trained on as non-digits and are reported apart.

Synthesized marks (:func:`synthetic_mark`): scribbles, spirals, hatching, cross-hatching, zigzags, stars
and random walks, the odd input a drawing page gets that no handwriting set holds.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model.data import PEN_200, heldout_pen_writers, verify_checksums
from shared.inks import Ink

NONDIGITS_ALL = "pen/unipen1bcd_dev.jsonl.gz"
"""UNIPEN 1b/1c/1d inks of the development writers (73,144 inks, 208 writers)."""
NONDIGITS_SAMPLE = "pen/unipen1bcd_dev_sample.jsonl"
"""Up to 10 inks per character (850), for fast tests."""
NOT_A_DIGIT = 10
"""The class index of "not a digit" (after the digits 0-9)."""
LOOK_ALIKES = frozenset("OoQDIli|/!ZzSsbGTBgq-_.,'()")
"""Characters some people write exactly like a digit, or a digit's first stroke (data README, section 3)."""
HELDOUT_X_FRACTION = 0.5
"""Share of the writers without digits (``-xNNN``) held out for evaluation."""
CALIBRATION_WRITER_FRACTION = 0.2
"""Share of the remaining writers whose non-digits calibrate the threshold and are never trained on."""
SPLIT_SEED = 20
"""Seed of the writer split (fixed: the held-out side never depends on the training seed)."""
UNESCAPE = {'\\"': '"', "\\@": "@", "\\\\": "\\"}
"""UNIPEN's escaped labels (data README, section 3)."""


@dataclass(frozen=True)
class NonDigit:
    """One recorded character that is not a digit.

    Attributes:
        char: The character written (UNIPEN escapes resolved).
        ink: The recording, ``label`` :data:`NOT_A_DIGIT`.
    """

    char: str
    ink: Ink

    @property
    def look_alike(self) -> bool:
        """Some people write this character exactly like a digit (never trained on as a non-digit)."""
        return self.char in LOOK_ALIKES


def load_nondigits(path: Path) -> list[NonDigit]:
    """Read a ``unipen1bcd`` JSON Lines file (``.gz`` or plain).

    Args:
        path: The file.

    Returns:
        The inks in file order, labelled :data:`NOT_A_DIGIT`.

    Raises:
        OSError: unreadable. KeyError / ValueError: a line is not a record of the documented format.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                ink = Ink(NOT_A_DIGIT, str(rec["writer"]), rec["strokes"], str(rec["source"]))
                out.append(NonDigit(UNESCAPE.get(rec["label"], rec["label"]), ink))
    return out


@dataclass(frozen=True)
class NonDigitSplit:
    """The non-digits by writer (module docstring); look-alikes included (filter with ``look_alike``)."""

    train: list[NonDigit]
    calibration: list[NonDigit]
    heldout: list[NonDigit]

    @property
    def heldout_writers(self) -> frozenset[str]:
        """Writers never trained or tuned on."""
        return frozenset(n.ink.writer for n in self.heldout)


def heldout_writers(data_dir: Path, writers: set[str]) -> set[str]:
    """Which of ``writers`` are held out: the digits' held-out ones, a seeded share of those without digits.

    Args:
        data_dir: The shared data folder (:func:`model.data.heldout_pen_writers` reads it).
        writers: Pseudonyms of the full non-digit file (the split depends on the whole set).

    Returns:
        The held-out subset.
    """
    digit_heldout = heldout_pen_writers(data_dir)
    no_digits = sorted(w for w in writers if "-x" in w)
    chosen = np.random.default_rng([SPLIT_SEED, 1]).random(len(no_digits)) < HELDOUT_X_FRACTION
    return (writers & digit_heldout) | {w for w, c in zip(no_digits, chosen, strict=True) if c}


def nondigit_split(data_dir: Path, verify: bool = True) -> NonDigitSplit:
    """Split ``unipen1bcd_dev.jsonl.gz`` by writer (module docstring).

    Args:
        data_dir: The shared data folder.
        verify: Check the files' sha256 against ``SHA256SUMS`` first.

    Returns:
        Training, calibration and held-out inks, each in file order.
    """
    if verify:
        verify_checksums(data_dir, [NONDIGITS_ALL, PEN_200])
    inks = load_nondigits(data_dir / NONDIGITS_ALL)
    writers = {n.ink.writer for n in inks}
    heldout = heldout_writers(data_dir, writers)
    rest = sorted(writers - heldout)
    to_cal = np.random.default_rng([SPLIT_SEED, 2]).random(len(rest)) < CALIBRATION_WRITER_FRACTION
    calibration = {w for w, c in zip(rest, to_cal, strict=True) if c}
    return NonDigitSplit(
        train=[n for n in inks if n.ink.writer not in heldout and n.ink.writer not in calibration],
        calibration=[n for n in inks if n.ink.writer in calibration],
        heldout=[n for n in inks if n.ink.writer in heldout],
    )


# ------------------------------------------------------------------------------- synthesized marks

Points = npt.NDArray[np.float64]


def _random_walk(rng: np.random.Generator) -> list[Points]:
    """One stroke that wanders: heading changes smoothly and often (a doodle)."""
    n = int(rng.integers(100, 250))
    turn = np.cumsum(rng.normal(0, rng.uniform(0.4, 1.0), n))
    heading = rng.uniform(0, 2 * math.pi) + turn
    return [np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1), axis=0)]


def _scribble(rng: np.random.Generator) -> list[Points]:
    """A tangle: a sum of three to five sinusoids per axis (overlapping loops)."""
    t = np.linspace(0, 2 * math.pi * rng.uniform(1.5, 4), int(rng.integers(80, 200)))
    k = int(rng.integers(3, 6))
    f, ph, a = rng.uniform(0.5, 4, (2, k)), rng.uniform(0, 2 * math.pi, (2, k)), rng.uniform(0.2, 1, (2, k))
    xy = [(a[d, :, None] * np.sin(f[d, :, None] * t + ph[d, :, None])).sum(0) for d in range(2)]
    return [np.stack(xy, 1)]


def _spiral(rng: np.random.Generator) -> list[Points]:
    """Two to five turns from the centre out (fewer turns would be a 0, 6 or @)."""
    turns = rng.uniform(2, 5)
    t = np.linspace(0, 2 * math.pi * turns, int(60 * turns))
    r = (0.05 + t / t[-1]) * np.exp(rng.normal(0, 0.03, len(t)))
    sign = rng.choice([-1.0, 1.0])
    return [np.stack([r * np.cos(sign * t), r * np.sin(sign * t) * rng.uniform(0.6, 1.0)], 1)]


def _parallel_lines(rng: np.random.Generator, angle: float, count: int) -> list[Points]:
    d = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-d[1], d[0]])
    out = []
    for i in range(count):
        offset = (i - (count - 1) / 2) / max(count - 1, 1) + rng.normal(0, 0.03)
        half = rng.uniform(0.35, 0.6)
        t = np.linspace(-half, half, 10)[:, None]
        out.append(offset * normal + t * d + rng.normal(0, 0.05, 2))
    return out


def _hatching(rng: np.random.Generator) -> list[Points]:
    """Three to seven parallel strokes (shading)."""
    return _parallel_lines(rng, rng.uniform(0, math.pi), int(rng.integers(3, 8)))


def _cross_hatching(rng: np.random.Generator) -> list[Points]:
    """Two crossing sets of two to five parallel strokes (a grid, a hash gone wide)."""
    a = rng.uniform(0, math.pi)
    return [
        *_parallel_lines(rng, a, int(rng.integers(2, 6))),
        *_parallel_lines(rng, a + rng.uniform(0.6, 2.5), int(rng.integers(3, 6))),
    ]


def _zigzag(rng: np.random.Generator) -> list[Points]:
    """One stroke going back and forth five to twelve times (colouring in)."""
    n = int(rng.integers(5, 13))
    x = np.where(np.arange(n + 1) % 2 == 0, 0.0, 1.0) + rng.normal(0, 0.05, n + 1)
    y = np.linspace(0, rng.uniform(0.4, 1.2), n + 1) + rng.normal(0, 0.02, n + 1)
    return [np.stack([x, y], 1)]


def _star(rng: np.random.Generator) -> list[Points]:
    """A five- to seven-point star in one stroke."""
    k = int(rng.integers(5, 8))
    step = 2 if k != 6 else 1
    angles = rng.uniform(0, 2 * math.pi) + 2 * math.pi * step * np.arange(k + 1) / k
    if k == 6:  # a six-point star is two triangles: draw the outline with inner vertices
        angles = rng.uniform(0, 2 * math.pi) + math.pi * np.arange(2 * k + 1) / k
        r = np.where(np.arange(2 * k + 1) % 2 == 0, 1.0, 0.45)
        return [np.stack([r * np.cos(angles), r * np.sin(angles)], 1)]
    return [np.stack([np.cos(angles), np.sin(angles)], 1)]


SYNTHETIC_KINDS: dict[str, Callable[[np.random.Generator], list[Points]]] = {
    "random_walk": _random_walk,
    "scribble": _scribble,
    "spiral": _spiral,
    "hatching": _hatching,
    "cross_hatching": _cross_hatching,
    "zigzag": _zigzag,
    "star": _star,
}
"""Name to generator of strokes (arbitrary units, y down), drawn with equal probability."""


def synthetic_mark(rng: np.random.Generator, kind: str | None = None) -> Ink:
    """A synthesized non-digit, as an ink in canvas orientation (y down), labelled :data:`NOT_A_DIGIT`.

    Args:
        rng: Seeded generator.
        kind: One of :data:`SYNTHETIC_KINDS`; ``None`` draws one uniformly.

    Returns:
        The ink (strokes in arbitrary units; :func:`model.augment.augment_pen` or
        :func:`shared.inks.random_placement` scale it).
    """
    name = kind or str(rng.choice(sorted(SYNTHETIC_KINDS)))
    strokes = SYNTHETIC_KINDS[name](rng)
    return Ink(NOT_A_DIGIT, f"synthetic-{name}", [s.tolist() for s in strokes], "synthetic", y_up=False)
