"""Recorded pen inks: load JSON Lines recordings and lay them on a canvas as a person would draw them.

Format (like ``../shared/data/pen/*.jsonl``), one ink per line::

    {"label": 0-9, "writer": "apb-w012", "strokes": [[[x, y], ...], ...], "source": "unipen1a-apb",
     "y_up": true, "t": [[ms, ...], ...]}

``y_up`` (default true, the UNIPEN convention) says the y axis points up as on a tablet; false means
canvas pixels, y down. ``t`` (optional) holds per-point timestamps in ms, one list per stroke.
Used by tests, model training/evaluation and the replay harness; pure (numpy and Pillow only).
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from shared.canvas import CANVAS_PX

Strokes = list[list[list[float]]]
"""``[[[x, y], ...], ...]`` in canvas px, y down."""


@dataclass(frozen=True)
class Ink:
    """One recorded digit.

    Attributes:
        label: The digit written, 0-9.
        writer: Writer pseudonym (split train/test by this).
        strokes: Points per stroke as recorded (``y_up`` says the orientation).
        source: Recording source id.
        y_up: True for tablet coordinates (y up), False for canvas px (y down).
        times: Per-point timestamps, ms, one list per stroke; empty when not recorded.
    """

    label: int
    writer: str
    strokes: list[list[list[float]]]
    source: str = ""
    y_up: bool = True
    times: list[list[float]] = field(default_factory=list)


def load_inks(path: str | Path, limit: int | None = None) -> list[Ink]:
    """Read a ``.jsonl`` or ``.jsonl.gz`` recording.

    Args:
        path: File path.
        limit: Read at most this many inks (all when ``None``).

    Returns:
        The inks in file order.

    Raises:
        OSError: the file cannot be read. ValueError: a line is not a valid ink.
    """
    return list(_iter_inks(Path(path), limit))


def _iter_inks(path: Path, limit: int | None) -> Iterator[Ink]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if limit is not None and n >= limit:
                return
            if not line.strip():
                continue
            rec = json.loads(line)
            try:
                yield Ink(
                    label=int(rec["label"]),
                    writer=str(rec.get("writer", "")),
                    strokes=rec["strokes"],
                    source=str(rec.get("source", "")),
                    y_up=bool(rec.get("y_up", True)),
                    times=rec.get("t") or [],
                )
            except (KeyError, TypeError) as exc:
                raise ValueError(f"{path.name}:{n + 1}: not an ink record") from exc


def fit_to_canvas(ink: Ink, box: float, left: float, top: float) -> Strokes:
    """Scale an ink so its bounding box's longer side is ``box`` px, with that box at (left, top).

    Args:
        ink: The recording (y up or down, any units).
        box: Longer side of the drawn digit, canvas px.
        left: x of the bounding box's left edge, canvas px.
        top: y of its top edge, canvas px (y down).

    Returns:
        Strokes in canvas px, y down, aspect ratio kept.
    """
    pts = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scale = box / max(float((hi - lo).max()), 1e-9)
    out: Strokes = []
    for s in ink.strokes:
        a = np.asarray(s, dtype=np.float64)[:, :2]
        x = (a[:, 0] - lo[0]) * scale + left
        y = ((hi[1] - a[:, 1]) if ink.y_up else (a[:, 1] - lo[1])) * scale + top
        out.append(np.round(np.stack([x, y], axis=1), 2).tolist())
    return out


def drawn_prefix(strokes: Strokes, points: int) -> Strokes:
    """The ink as it looks after its first ``points`` points: whole strokes, then a partial last one.

    Args:
        strokes: The complete ink, in drawing order.
        points: How many points have been drawn (>= 0).

    Returns:
        The snapshot a page sends at that moment (shares the point lists of ``strokes``).
    """
    out: Strokes = []
    left = points
    for stroke in strokes:
        if left <= 0:
            break
        out.append(stroke[:left])
        left -= len(stroke)
    return out


def random_placement(
    ink: Ink, rng: np.random.Generator, canvas: int = CANVAS_PX, box_range: tuple[float, float] = (90, 230)
) -> Strokes:
    """Fit an ink at a random size and position on a square canvas, as people draw.

    Args:
        ink: The recording.
        rng: Seeded generator (two or three draws: size, left, top).
        canvas: Canvas side, px.
        box_range: Range of the digit's longer side, px (default 90-230 on 280, as people draw).

    Returns:
        Strokes in canvas px, y down, fully inside the canvas.
    """
    box = float(rng.uniform(*box_range))
    pts = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes])
    ext = pts.max(axis=0) - pts.min(axis=0)
    w, h = (ext / max(float(ext.max()), 1e-9)) * box
    left = float(rng.uniform(0, max(canvas - w, 0)))
    top = float(rng.uniform(0, max(canvas - h, 0)))
    return fit_to_canvas(ink, box, left, top)


def render_png(  # noqa: PLR0917 (positional form used by callers: strokes, width, height, pen)
    strokes: Strokes,
    width: int = 280,
    height: int = 280,
    stroke_width: float = 16,
    ink: tuple[int, ...] = (0, 0, 0, 255),
    background: tuple[int, ...] = (255, 255, 255, 255),
    supersample: int = 4,
) -> bytes:
    """Render strokes as a browser canvas would (anti-aliased, round caps and joins) and encode PNG.

    Args:
        strokes: Canvas px, y down; a third value per point (timestamp) is ignored.
        width: Canvas width, px.
        height: Canvas height, px.
        stroke_width: Pen diameter, px (browser ``lineWidth``).
        ink: RGBA ink colour, 0-255 per channel.
        background: RGBA canvas colour; alpha 0 gives a transparent canvas whose ink is in alpha,
            as a browser's ``toDataURL`` of an unfilled canvas.
        supersample: Anti-aliasing factor (drawn at ``supersample`` x the size, then box-filtered).

    Returns:
        PNG bytes, RGBA, ``width`` x ``height``.
    """
    s = supersample
    mask = Image.new("L", (width * s, height * s), 0)
    draw = ImageDraw.Draw(mask)
    r = stroke_width * s / 2
    for stroke in strokes:
        pts = [(x * s, y * s) for x, y, *_ in stroke]
        if len(pts) > 1:
            draw.line(pts, fill=255, width=max(1, round(2 * r)))
        for x, y in pts:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    mask = mask.resize((width, height), Image.Resampling.BOX)
    img = Image.new("RGBA", (width, height), background)
    img.paste(Image.new("RGBA", (width, height), ink), (0, 0), mask)
    if background[3] == 0:  # transparent canvas: keep the ink's alpha, as a browser's toDataURL does
        img.putalpha(mask)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
