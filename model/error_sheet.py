"""Draw the held-out pen digits a model reads wrong, from their recorded strokes, to look at by eye.

``python -m model.error_sheet [--model ...] [--strokes-model ...] [--out reports/pen_errors.png]``

Each tile is one held-out ink (``model.data.pen_split``), drawn through the same strokes path as
``model.evaluate`` (ten-way arg-max of the served logits), shown as recorded: every stroke in its own
colour, a circle where it starts, upright on the screen. The caption is ``label>read writer``. Inks are
grouped by source (``unipen1a-ibm`` first, then the rest), so segmentation noise (a lone stroke labelled
with a larger digit) is easy to tell from a model's real mistakes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model.data import data_folder, pen_split
from model.evaluate import PEN_SEED, add_model_options, models_of, pen_batch
from realtime.tools.argtypes import worker_count
from shared.inference import Predictor
from shared.inks import Ink
from shared.settings import Settings

TILE_PX = 96
"""Side of one ink's tile, px."""
COLUMNS = 10
STRAIGHT = 0.9
"""A stroke whose ends are this far apart, as a fraction of its path length, is a straight bar."""
STROKE_COLOURS = [(0, 0, 0), (220, 0, 0), (0, 120, 0), (0, 0, 220), (200, 120, 0), (150, 0, 150)]
"""Stroke 1, 2, ... of an ink (cycled)."""


def wrong_inks(predictor: Predictor, inks: Sequence[Ink], workers: int = 2) -> list[tuple[Ink, int]]:
    """The inks whose ten-way reading differs from their label, each with the digit read."""
    x, _ = pen_batch(inks, PEN_SEED, workers)
    read = predictor.logits(x)[:, :10].argmax(1)
    return [(ink, int(r)) for ink, r in zip(inks, read, strict=True) if r != ink.label]


def is_lone_bar(ink: Ink) -> bool:
    """Whether the ink is one straight stroke that cannot be its label: any digit but 1, or a flat 1.

    Such an ink is one stroke of a larger digit (UNIPEN's segmentation noise, data README): a 4's
    upright or bar, a 0's slash. "Flat" is within 30 degrees of horizontal.
    """
    if len(ink.strokes) != 1 or len(ink.strokes[0]) < 2:
        return False
    points = np.asarray(ink.strokes[0], np.float64)
    path = float(np.hypot(*np.diff(points, axis=0).T).sum())
    dx, dy = np.abs(points[-1] - points[0])
    if float(np.hypot(dx, dy)) <= STRAIGHT * path:
        return False
    return ink.label != 1 or dy < dx * np.tan(np.radians(30))


def draw_sheet(errors: Sequence[tuple[Ink, int]]) -> Image.Image:
    """One RGB image, :data:`COLUMNS` tiles a row, each ink scaled into its tile by its bounding box."""
    rows = max(1, -(-len(errors) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * TILE_PX, rows * (TILE_PX + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (ink, read) in enumerate(errors):
        ox, oy = (k % COLUMNS) * TILE_PX, (k // COLUMNS) * (TILE_PX + 14)
        points = np.concatenate([np.asarray(s, np.float64) for s in ink.strokes])
        low, high = points.min(0), points.max(0)
        scale = (TILE_PX - 16) / max(float((high - low).max()), 1e-9)
        for n, stroke in enumerate(ink.strokes):
            colour = STROKE_COLOURS[n % len(STROKE_COLOURS)]
            xy = [
                (
                    ox + 8 + (x - low[0]) * scale,
                    oy + 8 + ((high[1] - y) if ink.y_up else (y - low[1])) * scale,
                )
                for x, y in stroke
            ]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            (x0, y0) = xy[0]
            draw.ellipse([x0 - 3, y0 - 3, x0 + 3, y0 + 3], outline=colour)
        draw.rectangle([ox, oy, ox + TILE_PX - 1, oy + TILE_PX - 1], outline=(200, 200, 200))
        draw.text((ox + 2, oy + TILE_PX), f"{ink.label}>{read} {ink.writer}", fill=(0, 0, 0))
    return sheet


def main(argv: Sequence[str] | None = None) -> int:
    """Write the sheet and print how many errors each source has."""
    settings = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_model_options(ap, settings)
    ap.add_argument(
        "--data-dir", type=data_folder, default=str(settings.data_dir), help="the shared data folder"
    )
    ap.add_argument("--out", type=Path, default=Path("reports/pen_errors.png"))
    ap.add_argument("--workers", type=worker_count, default=2)
    args = ap.parse_args(argv)
    model_path, strokes_path = models_of(args)
    inks = pen_split(args.data_dir).heldout
    errors = wrong_inks(Predictor(model_path, 1, strokes_path), inks, args.workers)
    errors.sort(key=lambda e: (e[0].source != "unipen1a-ibm", e[0].source, e[0].writer))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw_sheet(errors).save(args.out)
    sources = sorted({ink.source for ink, _ in errors})
    print("source           wrong   inks  lone bars (all inks)")
    for source in sources:
        mine = [ink for ink in inks if ink.source == source]
        wrong = sum(ink.source == source for ink, _ in errors)
        bars = sum(map(is_lone_bar, mine))
        print(f"{source:16} {wrong:5} {len(mine):6}  {bars:5}  ({100 * wrong / len(mine):.1f} % wrong)")
    print(f"{len(errors)} of {len(inks)} held-out inks read wrong; sheet: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
