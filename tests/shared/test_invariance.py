"""Position, scale, colour scheme and input form do not change the tensor.

Stated tolerances (measured on all 200 inks x 3 random placements: strokes vs strokes max MAD 0.005,
strokes vs PNG max MAD 0.033; since the thin-pen rule, 200 inks x 5 placements: strokes vs strokes max MAD
0.0225, 0.7 % of placements above 0.02):

* ``STROKES_MAD``: the same ink as strokes at any position and scale (pen scaled with the drawing, as a
  zoomed drawing would be) vs the reference placement: mean absolute difference <= 0.025, over the
  raster and the motion planes (the strokes model's whole input).
* ``PNG_MAD``: the PNG rendered from those strokes, black-on-white, white-on-black, black-on-transparent
  or white-on-transparent, vs the reference strokes' raster (plane 0, what a PNG can hold): mean
  absolute difference <= 0.05. The PNG's class is the image model's; the reference's, for this
  comparison, the image model's reading of its raster.
* Class: every form gets the reference's predicted class. When the reference is a near tie (top-1 minus
  top-2 probability below ``TIE_MARGIN``), the other form's class must be among the reference's top 2; the
  dev model is weak and a tie may flip on a 1% pixel change. For a PNG against the strokes it was rendered
  from this is a rate, not a per-example property: model 2.0.0 gives another class for 6 of 600 seeded
  placements (3 inks; model 1.1.0: 0), so at least 98.5 % must agree (``PNG_CLASS_AGREEMENT``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shared.inference import Predictor
from shared.inks import Ink, fit_to_canvas, render_png
from shared.preprocess import ImageFrame, StrokesFrame, preprocess

pytestmark = pytest.mark.data

CANVAS = 280
REF_BOX, REF_PEN = 200.0, 16.0
STROKES_MAD = 0.025
PNG_CLASS_AGREEMENT = 0.985
PNG_MAD = 0.05
TIE_MARGIN = 0.1

SCHEMES = {
    "black-on-white": ((0, 0, 0, 255), (255, 255, 255, 255)),
    "white-on-black": ((255, 255, 255, 255), (0, 0, 0, 255)),
    "black-on-transparent": ((0, 0, 0, 255), (0, 0, 0, 0)),
    "white-on-transparent": ((255, 255, 255, 255), (255, 255, 255, 0)),
    "dark-mode-grey": ((230, 230, 230, 255), (30, 30, 40, 255)),
}
HSETTINGS = hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _placement(ink: Ink, box: float, fx: float, fy: float) -> tuple[list[list[list[float]]], float]:
    """The ink with its longer side ``box`` px, anywhere on the canvas with its pen inside; and the pen."""
    pen = REF_PEN * box / REF_BOX
    pts = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes])
    ext = pts.max(axis=0) - pts.min(axis=0)
    w, h = ext / max(float(ext.max()), 1e-9) * box
    left = pen / 2 + fx * max(CANVAS - w - pen, 0.0)
    top = pen / 2 + fy * max(CANVAS - h - pen, 0.0)
    return fit_to_canvas(ink, box, left, top), pen


def _reference(ink: Ink) -> np.ndarray:
    """The reference placement's strokes-model input, ``(1, 7, 28, 28)``; its raster is ``[:, :1]``."""
    t = preprocess(StrokesFrame(fit_to_canvas(ink, REF_BOX, 40, 40), CANVAS, CANVAS, REF_PEN))
    assert t is not None
    return t


def _same_class(predictor: Predictor, ref: np.ndarray, other: np.ndarray) -> bool:
    probs = predictor.probabilities(np.concatenate([ref, other]))
    order = np.argsort(probs[0])[::-1]
    got = int(probs[1].argmax())
    if probs[0][order[0]] - probs[0][order[1]] >= TIE_MARGIN:
        return bool(got == order[0])
    return got in order[:2]


placements = st.tuples(
    st.integers(0, 199),
    st.floats(90, 230),
    st.floats(0, 1),
    st.floats(0, 1),
)


@HSETTINGS
@given(placement=placements)
def test_strokes_invariant_to_position_and_scale(
    pen_inks_200: list[Ink], predictor: Predictor, placement: tuple[int, float, float, float]
) -> None:
    index, box, fx, fy = placement
    ink = pen_inks_200[index]
    strokes, pen = _placement(ink, box, fx, fy)
    ref = _reference(ink)
    got = preprocess(StrokesFrame(strokes, CANVAS, CANVAS, pen))
    assert got is not None
    assert got.shape == (1, 7, 28, 28)
    assert got.dtype == np.float32
    assert float(np.abs(got - ref).mean()) <= STROKES_MAD
    assert _same_class(predictor, ref, got)


@HSETTINGS
@given(placement=placements, scheme=st.sampled_from(sorted(SCHEMES)))
def test_png_matches_strokes_in_every_colour_scheme(
    pen_inks_200: list[Ink], predictor: Predictor, placement: tuple[int, float, float, float], scheme: str
) -> None:
    index, box, fx, fy = placement
    ink = pen_inks_200[index]
    strokes, pen = _placement(ink, box, fx, fy)
    fg, bg = SCHEMES[scheme]
    ref = _reference(ink)[:, :1]
    png = render_png(strokes, CANVAS, CANVAS, pen, ink=fg, background=bg)
    got = preprocess(ImageFrame(png))
    assert got is not None
    assert got.shape == (1, 1, 28, 28)
    assert float(np.abs(got - ref).mean()) <= PNG_MAD
    # The same placement as strokes and as its PNG: nearly the same tensor (the class: the test below).
    as_strokes = preprocess(StrokesFrame(strokes, CANVAS, CANVAS, pen))
    assert as_strokes is not None
    assert float(np.abs(got - as_strokes[:, :1]).mean()) <= PNG_MAD


def test_png_and_reference_strokes_agree_on_the_class(pen_inks_200: list[Ink], predictor: Predictor) -> None:
    """All 200 inks x 3 seeded placements and colour schemes: the PNG's class is the reference's."""
    rng = np.random.default_rng(1)
    agree = []
    for ink in pen_inks_200:
        ref = _reference(ink)[:, :1]
        for _ in range(3):
            strokes, pen = _placement(ink, rng.uniform(90, 230), rng.random(), rng.random())
            fg, bg = SCHEMES[sorted(SCHEMES)[rng.integers(len(SCHEMES))]]
            got = preprocess(ImageFrame(render_png(strokes, CANVAS, CANVAS, pen, ink=fg, background=bg)))
            assert got is not None
            agree.append(_same_class(predictor, ref, got))
    assert np.mean(agree) >= PNG_CLASS_AGREEMENT, f"{len(agree) - sum(agree)} of {len(agree)} disagree"


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_colour_schemes_give_identical_tensors(pen_inks_200: list[Ink], scheme: str) -> None:
    """Polarity and alpha handling are exact: every scheme equals black-on-white to 1e-6."""
    strokes = fit_to_canvas(pen_inks_200[3], 180, 50, 50)
    base = preprocess(ImageFrame(render_png(strokes)))
    fg, bg = SCHEMES[scheme]
    got = preprocess(ImageFrame(render_png(strokes, ink=fg, background=bg)))
    assert base is not None
    assert got is not None
    if scheme == "dark-mode-grey":  # contrast 200/255, renormalized by the peak: close, not exact
        assert float(np.abs(got - base).mean()) <= 0.02
    else:
        assert float(np.abs(got - base).max()) <= 1e-6
