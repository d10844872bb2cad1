"""Evaluate number mode: numbers composed from pen inks (:mod:`shared.compose`), read through the product.

Each number (2-5 digits of one writer, one height per number, jittered, one in ten touching) goes
through :func:`shared.number.read_number` as a strokes frame (``--png``: as the canvas PNG). Reported:

* ``exact``: the number read is exactly the digits written;
* ``count``: as many characters found as digits written;
* ``segmentation``: every digit's strokes grouped exactly (strokes path);
* ``digit_accuracy``: digits read right, position by position, over the numbers with the right count;
* ``alone_accuracy``: each digit's ink classified alone (the single-digit reading of the same strokes),
  the bound segmentation can reach; ``alone_exact``: numbers whose digits are all read right alone,
  the exact-match rate perfect segmentation would give;

overall, per digit count, for the touching numbers and for the separated ones (every pair of
neighbours' inks apart: a gap between their point boxes wider than the pen), the numbers the image
path (connected components) can split. ``segmentation`` counts stroke groups, so it is 0 for
``--png``. ``--writers heldout`` (default) composes from the writers never trained on
(``model.data.pen_split``); ``--writers train`` from the training writers' inks, the only ones the
segmentation's constants were tuned on.

Usage::

    .venv/bin/python -m model.evaluate_numbers [--writers heldout] [--count 2000] [--out reports/numbers.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.data import PEN_WIDTH_RANGE, data_folder, pen_split
from model.evaluate import add_model_options, models_of
from shared.compose import ComposedNumber, NumberComposer
from shared.inference import Predictor
from shared.inks import render_png
from shared.number import CharacterReading, read_number
from shared.preprocess import ImageFrame, StrokesFrame, preprocess
from shared.settings import Settings

NUMBER_SEED = 2025
"""Seed of the composition in evaluation (number ``i`` uses ``default_rng([NUMBER_SEED, i])``)."""


def compose_numbers(composer: NumberComposer, count: int, seed: int = NUMBER_SEED) -> list[ComposedNumber]:
    """``count`` numbers, number ``i`` from ``default_rng([seed, i])``."""
    return [composer.compose(np.random.default_rng([seed, i])) for i in range(count)]


def _tally(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    digits = sum(len(r["text"]) for r in rows)
    counted = [r for r in rows if r["count_right"]]
    counted_digits = sum(len(r["text"]) for r in counted)
    return {
        "n": n,
        "exact": sum(r["exact"] for r in rows) / max(n, 1),
        "count": len(counted) / max(n, 1),
        "segmentation": sum(r["segmented"] for r in rows) / max(n, 1),
        "digit_accuracy": sum(r["digits_right"] for r in counted) / max(counted_digits, 1),
        "alone_accuracy": sum(r["alone_right"] for r in rows) / max(digits, 1),
        "alone_exact": sum(r["alone_right"] == len(r["text"]) for r in rows) / max(n, 1),
    }


def _grouped_right(digits: Sequence[CharacterReading], truth: list[list[int]]) -> bool:
    """Whether the characters are the digits' stroke sets, marks (strokes in no character) aside."""
    found = {i for d in digits for i in d.strokes or ()}
    return [d.strokes for d in digits] == [[i for i in idx if i in found] for idx in truth]


def score_number(predictor: Predictor, number: ComposedNumber, as_png: bool = False) -> dict[str, Any]:
    """Read one composed number and compare it with what was written.

    Returns:
        ``text``, ``read`` (the number read or ``None``), ``exact``, ``count_right``, ``segmented``,
        ``digits_right`` (position-wise, 0 when the count is wrong), ``alone_right``, ``touching``,
        ``separated`` and ``source`` (the inks' recording source, e.g. ``unipen1a-ibm``).
    """
    frame: StrokesFrame | ImageFrame
    if as_png:
        frame = ImageFrame(render_png(number.strokes, number.width, number.height, number.pen))
    else:
        frame = StrokesFrame(number.strokes, number.width, number.height, number.pen)
    reading = read_number(predictor, frame)
    read = "".join("?" if d.digit is None else str(d.digit) for d in reading.digits)
    count_right = len(reading.digits) == len(number.text)
    alone = [
        preprocess(StrokesFrame([number.strokes[i] for i in idx], number.width, number.height, number.pen))
        for idx in number.digit_strokes
    ]
    alone_digits = [p.digit for p in predictor.classify(alone)]
    return {
        "text": number.text,
        "read": reading.number,
        "exact": reading.number == number.text,
        "count_right": count_right,
        "segmented": _grouped_right(reading.digits, number.digit_strokes),
        "digits_right": sum(a == b for a, b in zip(read, number.text, strict=True)) if count_right else 0,
        "alone_right": sum(d == int(c) for d, c in zip(alone_digits, number.text, strict=True)),
        "touching": number.touching,
        "separated": ink_gap(number) > number.pen,
        "source": number.source,
    }


def ink_gap(number: ComposedNumber) -> float:
    """The smallest horizontal gap between neighbouring digits' point boxes, px (pen not counted)."""
    spans = [
        (min(p[0] for i in idx for p in number.strokes[i]), max(p[0] for i in idx for p in number.strokes[i]))
        for idx in number.digit_strokes
    ]
    return min((b[0] - a[1] for a, b in itertools.pairwise(spans)), default=float("inf"))


def evaluate_numbers(
    model_path: Path,
    data_dir: Path,
    *,
    writers: str = "heldout",
    count: int = 2000,
    seed: int = NUMBER_SEED,
    as_png: bool = False,
    strokes_model_path: Path | None = None,
) -> dict[str, Any]:
    """Compose ``count`` numbers from one writer set and score the model's readings.

    Args:
        model_path: The image model's ``.onnx`` file.
        data_dir: The shared data folder.
        writers: ``"heldout"`` (never trained on) or ``"train"`` (the training writers' trained inks).
        count: Numbers to compose.
        seed: Composition seed.
        as_png: Send each number's canvas as a PNG instead of strokes.
        strokes_model_path: The strokes model (reads the segmented strokes), or ``None``: strokes are read
            as rasters by ``model_path``'s image model.

    Returns:
        A JSON-ready report: overall figures, by digit count, touching and separated numbers, by the
        writers' source (IBM's inks hold most of UNIPEN's segmentation noise), and the misread numbers.
    """
    predictor = Predictor(model_path, 1, strokes_model_path)
    split = pen_split(data_dir)
    inks = split.heldout if writers == "heldout" else split.train
    composer = NumberComposer(inks, PEN_WIDTH_RANGE)
    start = time.perf_counter()
    rows = [score_number(predictor, n, as_png) for n in compose_numbers(composer, count, seed)]
    seconds = time.perf_counter() - start
    sources = {r["source"] for r in rows}
    return {
        "model": str(model_path),
        "sha256": predictor.info.sha256,
        "strokes_model": None if strokes_model_path is None else str(strokes_model_path),
        "strokes_sha256": predictor.models.strokes.sha256,
        "writers": writers,
        "writer_count": len(composer.writers),
        "seed": seed,
        "path": "png" if as_png else "strokes",
        "overall": _tally(rows),
        "by_digits": {str(k): _tally([r for r in rows if len(r["text"]) == k]) for k in range(2, 6)},
        "touching": _tally([r for r in rows if r["touching"]]),
        "separated": _tally([r for r in rows if r["separated"]]),
        "by_source": {s: _tally([r for r in rows if r["source"] == s]) for s in sorted(sources)},
        "misread": [{"text": r["text"], "read": r["read"]} for r in rows if not r["exact"]],
        "seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: prints the figures, writes the JSON report."""
    settings = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(ap, settings)
    ap.add_argument("--data-dir", type=data_folder, default=str(settings.data_dir))
    ap.add_argument("--writers", choices=("heldout", "train"), default="heldout")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=NUMBER_SEED)
    ap.add_argument("--png", action="store_true", help="send each number as its canvas PNG")
    ap.add_argument("--out", type=Path, default=Path("reports/numbers.json"))
    args = ap.parse_args(argv)
    image, strokes = models_of(args)
    report = evaluate_numbers(
        image,
        args.data_dir,
        writers=args.writers,
        count=args.count,
        seed=args.seed,
        as_png=args.png,
        strokes_model_path=strokes,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    columns = ("exact", "count", "segm.", "digit", "alone", "bound")
    head = f"{'set':<10} {'n':>5} " + " ".join(f"{c:>7}" for c in columns)
    print(f"{report['writers']} writers ({report['writer_count']}), {report['path']} path")
    print(head)
    sets = {"all": report["overall"], **report["by_digits"]}
    sets.update(touching=report["touching"], separated=report["separated"])
    sets.update({f"from {src}": t for src, t in report["by_source"].items()})
    for name, t in sets.items():
        keys = ("exact", "count", "segmentation", "digit_accuracy", "alone_accuracy", "alone_exact")
        figures = " ".join(f"{100 * t[k]:>6.2f}%" for k in keys)
        print(f"{name:<10} {t['n']:>5} {figures}")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
