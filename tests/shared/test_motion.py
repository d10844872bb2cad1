"""The pen's motion planes: direction, pen-down and pen-up, on the raster's ink in the raster's field."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shared import kernels, motion
from shared.preprocess import (
    STROKES_PLANES,
    ImageFrame,
    StrokesFrame,
    preprocess,
    rasterize_strokes,
    strokes_planes,
)
from tests.shared.imaging import grey_png

RIGHT, LEFT, DOWN, UP, PEN_DOWN, PEN_UP = range(1, 7)
"""Plane indices in the strokes model's input (plane 0 is the raster)."""


def _planes(strokes: list[list[list[float]]]) -> np.ndarray:
    out = strokes_planes(strokes, 280, 280, 16)
    assert out is not None and out.shape == (STROKES_PLANES, 28, 28) and out.dtype == np.float32
    return out


def test_strokes_frames_carry_the_raster_then_six_motion_planes() -> None:
    strokes = [[[60, 140], [220, 140]], [[140, 60], [140, 220]]]
    x = preprocess(StrokesFrame(strokes, 280, 280, 16))
    assert x is not None and x.shape == (1, 7, 28, 28)
    np.testing.assert_array_equal(x[0, 0], rasterize_strokes(strokes, 280, 280, 16))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_image_frames_stay_one_raster_plane() -> None:
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[60:220, 130:150] = 0
    x = preprocess(ImageFrame(grey_png(canvas)))
    assert x is not None and x.shape == (1, 1, 28, 28)


@pytest.mark.parametrize(
    ("stroke", "plane"),
    [
        ([[40, 140], [240, 140]], RIGHT),
        ([[240, 140], [40, 140]], LEFT),
        ([[140, 40], [140, 240]], DOWN),
        ([[140, 240], [140, 40]], UP),
    ],
)
def test_a_straight_stroke_fills_its_direction_plane_only(stroke: list[list[float]], plane: int) -> None:
    x = _planes([stroke])
    direction = x[RIGHT : UP + 1]
    assert float(direction[plane - RIGHT].sum()) > 15  # about 20 px of path at ~1 per px
    others = [float(direction[p - RIGHT].sum()) for p in range(RIGHT, UP + 1) if p != plane]
    assert max(others) == 0.0


def test_a_diagonal_splits_its_length_between_two_directions() -> None:
    x = _planes([[[40, 40], [240, 240]]])
    right, down = float(x[RIGHT].sum()), float(x[DOWN].sum())
    assert right == pytest.approx(down, rel=1e-3) and right > 10
    assert float(x[LEFT].sum()) == 0.0 and float(x[UP].sum()) == 0.0


def test_pen_down_and_pen_up_mark_each_strokes_ends_on_its_ink() -> None:
    strokes = [[[40, 140], [240, 140]]]
    x = _planes(strokes)
    down_at = np.unravel_index(np.argmax(x[PEN_DOWN]), (28, 28))
    up_at = np.unravel_index(np.argmax(x[PEN_UP]), (28, 28))
    assert down_at[1] < 8 and up_at[1] > 19  # the start on the left, the end on the right
    assert float(x[PEN_DOWN].sum()) == pytest.approx(1.0, abs=1e-5)
    assert x[0][down_at] > 0.5 and x[0][up_at] > 0.5  # on the raster's ink
    reverse = _planes([strokes[0][::-1]])
    np.testing.assert_allclose(reverse[PEN_DOWN], x[PEN_UP], atol=1e-6)
    np.testing.assert_array_equal(reverse[0], x[0])  # the same picture, the other motion


def test_motion_lies_on_the_ink_for_any_canvas_and_pen() -> None:
    t = np.linspace(0, 2 * np.pi, 40)
    loop = np.c_[300 + 120 * np.cos(t), 200 + 90 * np.sin(t)].tolist()
    for width, height, pen in ((600, 400, 30), (1200, 900, 2), (280, 280, 16)):  # 280: partly off the canvas
        x = strokes_planes([loop], width, height, pen)
        assert x is not None
        path = x[RIGHT : UP + 1].sum(axis=0)
        assert float(path[x[0] == 0].sum()) < 0.02 * float(path.sum())


def test_a_dot_has_no_direction_and_its_ends_coincide() -> None:
    x = _planes([[[40, 140], [240, 140]], [[140, 40]]])
    assert float(x[PEN_DOWN].sum()) == pytest.approx(2.0, abs=1e-5)
    assert float(x[PEN_UP].sum()) == pytest.approx(2.0, abs=1e-5)
    assert float(x[UP].sum()) == 0.0 and float(x[DOWN].sum()) == 0.0


def test_repeated_points_and_a_blank_or_tap_are_handled() -> None:
    x = _planes([[[40, 140], [40, 140], [40, 140], [240, 140], [240, 140]]])
    assert float(x[RIGHT].sum()) > 15 and float(x[LEFT].sum()) == 0.0
    assert strokes_planes([[[100, 100], [100, 100]]], 280, 280, 16) is None  # a speck
    assert strokes_planes([[[100, 100], [110, 104]]], 280, 280, 16) is None  # a tap
    assert strokes_planes([], 280, 280, 16) is None


def test_timestamps_are_accepted_and_ignored() -> None:
    timed = [[[40, 140, 0], [140, 140, 16], [240, 140, 33]]]
    plain = [[[40, 140], [140, 140], [240, 140]]]
    np.testing.assert_array_equal(_planes(timed), _planes(plain))


coordinate = st.floats(-40, 320, allow_nan=False, allow_infinity=False, width=32)


@pytest.mark.skipif(kernels.BACKEND != "numba", reason="numba is not installed")
@hsettings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    data=st.data(),
    scale=st.floats(0.01, 2.0),
    offset=st.tuples(st.floats(-30, 30), st.floats(-30, 30)),
)
def test_compiled_and_numpy_motion_planes_agree(
    lengths: list[int], data: st.DataObject, scale: float, offset: tuple[float, float]
) -> None:
    n = sum(lengths)
    points = np.array(data.draw(st.lists(st.tuples(coordinate, coordinate), min_size=n, max_size=n)))
    lengths_array = np.array(lengths, dtype=np.int64)
    canvas = np.array((280.0, 200.0))
    args = (
        np.ascontiguousarray(points, dtype=np.float64),
        lengths_array,
        canvas,
        scale,
        scale * 0.9,
        *offset,
    )
    np.testing.assert_allclose(motion.motion_planes(*args), motion.numpy_motion_planes(*args), atol=1e-5)


def test_path_off_the_canvas_is_not_drawn_and_far_points_cost_no_pieces() -> None:
    far = strokes_planes([[[-100, 140], [380, 140]], [[140, 40], [140, 240]]], 280, 280, 60)
    near = strokes_planes([[[0, 140], [280, 140]], [[140, 40], [140, 240]]], 280, 280, 60)
    assert far is not None and near is not None
    np.testing.assert_array_equal(far[0], near[0])  # the canvas clips the raster the same way
    assert float(far[RIGHT].sum()) == pytest.approx(float(near[RIGHT].sum()), rel=0.02)
    assert float(far[PEN_DOWN].sum()) == pytest.approx(1.0, abs=1e-5)  # only the on-canvas stroke's start
    # A zigzag between far points is cut to the window before it is resampled: both forms agree.
    zigzag = np.array([[(-9e5 if i % 2 else 9e5), 140.0 + i % 7] for i in range(4000)])
    args = (zigzag, np.array([4000]), np.array((280.0, 280.0)), 0.07, 0.07, 1.0, 1.0)
    np.testing.assert_allclose(motion.motion_planes(*args), motion.numpy_motion_planes(*args), atol=1e-5)


def test_subnormal_steps_raise_no_floating_point_warning() -> None:
    points = np.array([[0.0, 0.0], [0.0, 5e-324], [200.0, 200.0]])
    args = (points, np.array([3]), np.array((280.0, 280.0)), 0.1, 0.1, 1.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(motion.numpy_motion_planes(*args), motion.motion_planes(*args), atol=1e-5)
