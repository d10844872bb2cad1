"""Blank and near-blank inputs of every kind are ``no_digit``, model not asked."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageDraw

from shared.inference import Predictor
from shared.preprocess import ImageFrame, StrokesFrame, normalize, preprocess, rasterize_strokes
from tests.shared.imaging import canvas, encode, grey_png


def _speck(
    size: int, mode: str = "L", ink: int | tuple[int, ...] = 0, bg: int | tuple[int, ...] = 255
) -> bytes:
    img = canvas(bg, mode=mode)
    ImageDraw.Draw(img).rectangle((130, 140, 130 + size - 1, 140 + size - 1), fill=ink)
    return encode(img)


def _noise(amplitude: float, background: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    a = background + rng.normal(0, amplitude * 255, (280, 280))
    return grey_png(np.clip(np.round(a), 0, 255))


BLANK_IMAGES = {
    "white canvas": encode(canvas(255)),
    "black canvas (dark mode)": encode(canvas(0)),
    "grey canvas": encode(canvas(128)),
    "transparent canvas": encode(canvas((0, 0, 0, 0), mode="RGBA")),
    "transparent white canvas": encode(canvas((255, 255, 255, 0), mode="RGBA")),
    "white RGB JPEG": encode(canvas((255, 255, 255), mode="RGB"), "JPEG"),
    "white GIF": encode(canvas(255, mode="L"), "GIF"),
    "white WebP": encode(canvas((255, 255, 255), mode="RGB"), "WEBP"),
    "white BMP": encode(canvas(255), "BMP"),
    "1x1 black": encode(canvas(0, size=1)),
    "2x2 black dot on white": grey_png(np.array([[0, 255], [255, 255]])),
    "1 px speck": _speck(1),
    "2 px speck": _speck(2),
    "3 px speck": _speck(3),
    "3 px white speck on black": _speck(3, ink=255, bg=0),
    "3 px speck on transparent": _speck(3, mode="RGBA", ink=(0, 0, 0, 255), bg=(0, 0, 0, 0)),
    "faint gaussian noise on white": _noise(0.05, 255),
    "faint gaussian noise on black": _noise(0.05, 0),
    "faint noise on grey": _noise(0.06, 128, seed=3),
    "4 scattered pixels": grey_png(
        np.where(np.isin(np.arange(280 * 280), [0, 1000, 40000, 78399]), 0, 255).reshape(280, 280)
    ),
}


def _faint_disc() -> bytes:
    img = canvas(255)
    ImageDraw.Draw(img).ellipse((60, 60, 200, 220), outline=200, width=12)  # contrast 0.22 < 0.3
    return encode(img)


BLANK_IMAGES["faint ring (contrast 0.22)"] = _faint_disc()


@pytest.mark.parametrize("name", sorted(BLANK_IMAGES))
def test_blank_images_are_no_digit(name: str) -> None:
    assert preprocess(ImageFrame(BLANK_IMAGES[name])) is None


BLANK_STROKES = {
    "empty list": [],
    "one empty stroke": [[]],
    "many empty strokes": [[] for _ in range(10)],
    "a tap": [[[140, 140]]],
    "a tap with timestamp": [[[140, 140, 12.5]]],
    "two taps 2 px apart": [[[140, 140]], [[142, 141]]],
    "a 3 px scribble": [[[140, 140], [143, 140], [141, 142]]],
    "off the canvas": [[[-500, -500], [-400, -300]]],
    "far right of the canvas": [[[600, 10], [900, 200]]],
}


@pytest.mark.parametrize("name", sorted(BLANK_STROKES))
def test_blank_strokes_are_no_digit(name: str) -> None:
    assert preprocess(StrokesFrame(BLANK_STROKES[name], 280, 280)) is None
    assert rasterize_strokes(BLANK_STROKES[name], 280, 280, 16) is None


@pytest.mark.parametrize(
    "ink", [np.zeros((28, 28), np.float32), np.full((5, 5), 0.1, np.float32), np.zeros((1, 1), np.uint8)]
)
def test_normalize_blank_arrays(ink: np.ndarray) -> None:
    assert normalize(ink) is None


def test_blank_frames_never_reach_the_model(predictor: Predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(batch: object) -> object:
        raise AssertionError("the model was asked about a blank frame")

    monkeypatch.setattr(predictor, "logits", boom)
    frames = [ImageFrame(BLANK_IMAGES[k]) for k in sorted(BLANK_IMAGES)]
    frames += [StrokesFrame(BLANK_STROKES[k], 280, 280) for k in sorted(BLANK_STROKES)]
    results = predictor.predict(frames)
    assert [r.status for r in results] == ["no_digit"] * len(frames)
    assert all(r.digit is None and r.probabilities is None and r.confidence is None for r in results)


def test_smallest_non_blank_inputs_are_digits() -> None:
    """The tap limit is tight: ink just longer than 2 page-pen widths (32 px on 280) is not blank."""
    img = canvas(255)
    ImageDraw.Draw(img).line((100, 140, 133, 140), fill=0, width=3)  # 34 px long
    assert preprocess(ImageFrame(encode(img))) is not None
    # 17 px of points plus a 16 px pen: 33 px of ink
    assert preprocess(StrokesFrame([[[140, 140], [157, 140]]], 280, 280)) is not None


def test_single_point_strokes_are_dots() -> None:
    body = [[[100, 60], [100, 220]]]
    with_dot = [*body, [[180, 140]]]
    a = rasterize_strokes(body, 280, 280, 16)
    b = rasterize_strokes(with_dot, 280, 280, 16)
    assert a is not None
    assert b is not None
    assert float(np.abs(a - b).sum()) > 5  # the dot adds ink (and shifts the centre of mass)
