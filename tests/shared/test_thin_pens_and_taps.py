"""Thin pens and stray taps: the model sees MNIST-like strokes whatever the pen, and a tap is blank.

* Thin pens (1-3 px on 560-1000 px canvases) give the tensor the page's pen gives, in both forms: full
  peak, MNIST-like ink mass, and the same answers from the shipped model.
* A tap (ink no longer than two page-pen widths, 32 px on the 280 px canvas) is ``no_digit`` as strokes
  and as the PNG the page would send, and no real digit drawn at the evaluation's smallest size is.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageDraw

from model.data import PEN_BOX_RANGE, PEN_WIDTH_RANGE
from shared.inference import Predictor
from shared.inks import Ink, Strokes, fit_to_canvas, render_png
from shared.preprocess import (
    MIN_STROKE_PX,
    TAP_FRACTION,
    ImageFrame,
    StrokesFrame,
    normalize,
    preprocess,
)
from tests.shared.imaging import canvas, encode

PAGE_CANVAS, PAGE_PEN = 280, 16.0
"""The page's canvas and pen (site/app.js)."""


def _place(ink: Ink, side: float, fraction: float = 0.7) -> Strokes:
    """The ink with its longer side ``fraction`` of a ``side`` px canvas, inside it."""
    return fit_to_canvas(ink, side * fraction, side * 0.15, side * 0.1)


def _classes(predictor: Predictor, tensors: list[np.ndarray]) -> np.ndarray:
    """The served answer of each tensor: its digit, or -1 for not_a_digit."""
    return np.array([-1 if p.digit is None else p.digit for p in predictor.classify(tensors)])


def _line_mass(t: np.ndarray, reference: np.ndarray) -> float:
    """Ink mass of ``t`` relative to ``reference``: the ratio of their stroke widths for the same ink."""
    return float(t.sum() / reference.sum())


@pytest.mark.data
@pytest.mark.parametrize(("side", "pen"), [(560, 3.0), (560, 1.0), (1000, 2.0), (1000, 1.0)])
def test_thin_pen_strokes_look_like_the_page_pen(
    pen_inks_200: list[Ink], predictor: Predictor, side: int, pen: float
) -> None:
    thin, page = [], []
    for ink in pen_inks_200:
        t = preprocess(StrokesFrame(_place(ink, side), side, side, pen))
        ref = preprocess(StrokesFrame(_place(ink, PAGE_CANVAS), PAGE_CANVAS, PAGE_CANVAS, PAGE_PEN))
        assert t is not None
        assert ref is not None
        assert float(t.max()) >= 0.9  # MNIST's peak is full; a thin pen used to peak at 0.29
        assert _line_mass(t, ref) >= 0.95  # the page pen is thinner than MIN_STROKE_PX here too
        thin.append(t)
        page.append(ref)
    labels = np.array([ink.label for ink in pen_inks_200])
    got = _classes(predictor, thin)
    assert (got == _classes(predictor, page)).mean() >= 0.97
    assert (got == labels).mean() >= 0.97


@pytest.mark.data
@pytest.mark.parametrize(("side", "pen"), [(560, 3.0), (800, 1.0)])
def test_thin_pen_pngs_read_right(
    pen_inks_200: list[Ink], predictor: Predictor, side: int, pen: float
) -> None:
    inks = pen_inks_200[::4]
    tensors = []
    for ink in inks:
        t = preprocess(ImageFrame(render_png(_place(ink, side), side, side, pen)))
        assert t is not None
        tensors.append(t)
    peaks = np.array([float(t.max()) for t in tensors])
    assert np.median(peaks) >= 0.99
    assert (peaks >= 0.9).mean() >= 0.9
    labels = np.array([ink.label for ink in inks])
    assert (_classes(predictor, tensors) == labels).mean() >= 0.96


@pytest.mark.data
def test_thin_pen_four_png_reads_four(pen_inks_200: list[Ink], predictor: Predictor) -> None:
    """A thin-pen "4" PNG used to read as "1" (its strokes faded to a peak of about 0.3)."""
    fours = [ink for ink in pen_inks_200 if ink.label == 4]
    for ink in fours[:5]:
        png = render_png(_place(ink, 560), 560, 560, 3.0)
        t = preprocess(ImageFrame(png))
        assert t is not None
        assert predictor.classify([t])[0].digit == 4


def test_thin_strokes_are_drawn_at_the_minimum_width() -> None:
    """A 1 px pen on a 1000 px canvas: a vertical bar of MIN_STROKE_PX with full peak, in both forms."""
    strokes = [[[500.0, 100.0], [500.0, 900.0]]]
    a = preprocess(StrokesFrame(strokes, 1000, 1000, 1.0))
    b = preprocess(ImageFrame(render_png(strokes, 1000, 1000, 1.0)))
    a = None if a is None else a[:, :1]  # the raster
    for t in (a, b):
        assert t is not None
        assert float(t.max()) >= 0.85  # full, less the centring's sub-pixel shift (0.29 before)
        # mass per row of the 20 px bar is the stroke width, px
        assert float(t.sum()) / 20 == pytest.approx(MIN_STROKE_PX, rel=0.2)


@pytest.mark.parametrize("size", [4, 5, 6, 8])
@pytest.mark.parametrize("shape", ["square", "disc"])
def test_small_dots_on_the_page_canvas_are_blank(size: int, shape: str) -> None:
    img = canvas(255)
    box = (140, 120, 140 + size - 1, 120 + size - 1)
    draw = ImageDraw.Draw(img)
    (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=0)
    assert preprocess(ImageFrame(encode(img))) is None


TAPS = {
    "a tap": [[[140.0, 140.0]]],
    "a tap that moved 5 px": [[[140.0, 140.0], [143.0, 142.0], [145.0, 141.0]]],
    "a tap that moved 12 px": [[[60.0, 200.0], [66.0, 204.0], [72.0, 203.0]]],
    "a tap in the corner": [[[2.0, 3.0], [5.0, 5.0]]],
    "two taps close together": [[[140.0, 140.0]], [[150.0, 146.0]]],
}


@pytest.mark.parametrize("name", sorted(TAPS))
def test_page_pen_taps_are_blank_as_strokes_and_as_png(name: str) -> None:
    strokes = TAPS[name]
    assert preprocess(StrokesFrame(strokes, PAGE_CANVAS, PAGE_CANVAS, PAGE_PEN)) is None
    assert preprocess(StrokesFrame(strokes, PAGE_CANVAS, PAGE_CANVAS)) is None  # the default pen
    assert preprocess(ImageFrame(render_png(strokes, PAGE_CANVAS, PAGE_CANVAS, PAGE_PEN))) is None


@pytest.mark.parametrize("length", [10.0, 14.0, 15.5, 16.5, 18.0, 24.0])
def test_strokes_and_png_agree_at_the_tap_limit(length: float) -> None:
    """Around the limit (16 px of points plus the 16 px pen), strokes and their PNG answer alike."""
    strokes = [[[120.0, 150.0], [120.0 + length, 150.0]]]
    as_strokes = preprocess(StrokesFrame(strokes, PAGE_CANVAS, PAGE_CANVAS, PAGE_PEN))
    as_png = preprocess(ImageFrame(render_png(strokes, PAGE_CANVAS, PAGE_CANVAS, PAGE_PEN)))
    assert (as_strokes is None) == (as_png is None)
    assert (as_strokes is None) == (length + PAGE_PEN <= TAP_FRACTION * PAGE_CANVAS)


def test_tap_limit_is_relative_to_the_canvas() -> None:
    """An 8 px dot is a tap on the 280 px canvas but ink on a 56 px one (a 5x smaller page)."""
    strokes = [[[20.0, 20.0], [28.0, 20.0]]]
    assert preprocess(StrokesFrame(strokes, 280, 280, 4.0)) is None
    assert preprocess(StrokesFrame(strokes, 56, 56, 4.0)) is not None


@pytest.mark.data
def test_no_real_digit_is_blank_at_the_smallest_evaluation_size(pen_inks_200: list[Ink]) -> None:
    """Every ink of the 200 file at the evaluation's smallest size (90 px) with its thinnest and
    thickest pen, as strokes and as PNG, is a digit; so is a 1 drawn as a single short line."""
    box, _ = PEN_BOX_RANGE
    rng = np.random.default_rng(7)
    for ink in pen_inks_200:
        left, top = rng.uniform(0, PAGE_CANVAS - box, 2)
        strokes = fit_to_canvas(ink, box, float(left), float(top))
        for pen in PEN_WIDTH_RANGE:
            assert preprocess(StrokesFrame(strokes, PAGE_CANVAS, PAGE_CANVAS, pen)) is not None
        png = render_png(strokes, PAGE_CANVAS, PAGE_CANVAS, PEN_WIDTH_RANGE[0])
        assert preprocess(ImageFrame(png)) is not None
    one = [[[140.0, 100.0], [140.0, 100.0 + box]]]
    assert preprocess(StrokesFrame(one, PAGE_CANVAS, PAGE_CANVAS, 2.0)) is not None
    assert preprocess(ImageFrame(render_png(one, PAGE_CANVAS, PAGE_CANVAS, 2.0))) is not None


@pytest.mark.data
def test_no_mnist_test_image_is_blank(data_dir: Path) -> None:
    with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    assert all(normalize(image) is not None for image in images)


def test_a_stroke_running_far_off_the_canvas_is_drawn_as_the_part_the_canvas_shows() -> None:
    """The thin-pen floor is measured on the canvas: a point a million px away must not shrink the ink."""
    seven = [[[70.0, 50.0], [210.0, 50.0], [120.0, 240.0]]]
    to_edge = preprocess(StrokesFrame([*seven, [[20.0, 140.0], [0.0, 140.0]]], 280, 280, 16))
    far_off = preprocess(StrokesFrame([*seven, [[20.0, 140.0], [-1e6, 140.0]]], 280, 280, 16))
    assert to_edge is not None and far_off is not None
    # raster and motion alike; only the pen-up plane differs (the pen left the canvas before lifting)
    np.testing.assert_allclose(far_off[0, :6], to_edge[0, :6], atol=1e-5)
