"""Write ``tests/data/golden_preprocess.npz``: inputs and the tensors the trained model was fitted on.

A model is trained against :func:`shared.preprocess.preprocess`; these goldens pin its numerical output
(``tests/shared/test_golden.py`` allows 1e-5) so speed refactors cannot drift it. Regenerate only on
purpose, when the preprocessing rules change: ``.venv/bin/python tests/data/make_golden.py``.

Contents (~50 KB): 12 pen inks from ``unipen1a_dev_200.jsonl`` placed on a 280x280 canvas (seed 0) as
strokes (``points`` concatenated, ``lengths`` per stroke, ``frame_of_stroke``, ``pens``); 6 of them as
PNG bytes in different colour schemes and 2 drawn twice as large with thin pens (``png_<k>``); the
expected ``(N, 28, 28)`` float32 outputs; and 12 MNIST test-set indices with their ``normalize``
outputs (the images stay in ../shared/data).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from shared.inks import load_inks, random_placement, render_png  # noqa: E402
from shared.preprocess import ImageFrame, StrokesFrame, normalize, preprocess  # noqa: E402
from shared.settings import Settings  # noqa: E402

OUT = Path(__file__).with_name("golden_preprocess.npz")
SCHEMES = [
    ((0, 0, 0, 255), (255, 255, 255, 255)),
    ((255, 255, 255, 255), (0, 0, 0, 255)),
    ((0, 0, 0, 255), (0, 0, 0, 0)),
    ((255, 255, 255, 255), (255, 255, 255, 0)),
    ((230, 230, 230, 255), (30, 30, 40, 255)),
    ((20, 20, 200, 255), (250, 250, 240, 255)),
]
THIN_PENS = [(6, 2.0), (7, 14.0)]
"""(placement, pen px) drawn twice as large on a 560 px canvas: strokes 0.15 px wide in the box
(redrawn) and 1.3 px wide (contrast stretched)."""
MNIST_INDICES = [0, 1, 2, 3, 4, 7, 11, 18, 61, 247, 1000, 9999]


def main() -> None:
    data_dir = Settings().data_dir
    inks = load_inks(data_dir / "pen" / "unipen1a_dev_200.jsonl")
    rng = np.random.default_rng(0)
    placed = [random_placement(inks[i * 17], rng) for i in range(12)]
    pens = rng.uniform(6, 24, size=12)
    out: dict[str, np.ndarray] = {}
    points, lengths, owner = [], [], []
    strokes_expected = []
    for k, (strokes, pen) in enumerate(zip(placed, pens, strict=True)):
        for s in strokes:
            points.extend(s)
            lengths.append(len(s))
            owner.append(k)
        t = preprocess(StrokesFrame(strokes, 280, 280, float(pen)))
        assert t is not None
        strokes_expected.append(t.reshape(28, 28))
    out["points"] = np.asarray(points, dtype=np.float64)
    out["lengths"] = np.asarray(lengths, dtype=np.int64)
    out["frame_of_stroke"] = np.asarray(owner, dtype=np.int64)
    out["pens"] = pens
    out["strokes_expected"] = np.stack(strokes_expected)
    png_expected = []
    for k, (fg, bg) in enumerate(SCHEMES):
        png = render_png(placed[k], 280, 280, float(pens[k]), ink=fg, background=bg)
        out[f"png_{k}"] = np.frombuffer(png, dtype=np.uint8)
        t = preprocess(ImageFrame(png))
        assert t is not None
        png_expected.append(t.reshape(28, 28))
    for k, (placement, pen) in enumerate(THIN_PENS, start=len(SCHEMES)):  # the thin-pen paths
        side = 2 * 280
        strokes = [[[2 * x, 2 * y] for x, y in stroke] for stroke in placed[placement]]
        png = render_png(strokes, side, side, pen)
        out[f"png_{k}"] = np.frombuffer(png, dtype=np.uint8)
        t = preprocess(ImageFrame(png))
        assert t is not None
        png_expected.append(t.reshape(28, 28))
    out["png_expected"] = np.stack(png_expected)
    with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as fh:
        raw = fh.read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    mnist_expected = []
    for i in MNIST_INDICES:
        t = normalize(images[i])
        assert t is not None
        mnist_expected.append(t)
    out["mnist_indices"] = np.asarray(MNIST_INDICES, dtype=np.int64)
    out["mnist_expected"] = np.stack(mnist_expected)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
