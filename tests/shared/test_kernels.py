"""The compiled kernels (numba) against their numpy forms: one contract, two implementations.

The numpy forms are what the Lambda image runs (it leaves numba out); the compiled ones serve
everywhere else. They must agree within ``ATOL`` (1e-5, the golden tests' tolerance) on every input the
preprocessing can give them, including dots, zero-length strokes, ink off the canvas, read-only and
strided bands.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shared import kernels

ATOL = 1e-5

pytestmark = pytest.mark.skipif(kernels.BACKEND != "numba", reason="numba is not installed")


def test_numba_is_the_backend_where_installed() -> None:
    """numba is a default dependency: a plain install must not fall back silently."""
    assert kernels.BACKEND == "numba"
    assert kernels.capsule_coverage is not kernels.numpy_capsule_coverage


StrokeCase = tuple[np.ndarray, np.ndarray, tuple[float, ...], int, int]
"""points, lengths, (x0, y0, sx, sy, radius), height, width"""
coordinate = st.floats(-40, 320, allow_nan=False, allow_infinity=False, width=32)


@st.composite
def stroke_sets(draw: st.DrawFn) -> StrokeCase:
    """Points and stroke lengths as rasterize_strokes passes them, with a box and an output size."""
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=6))
    n = sum(lengths)
    xy = draw(hnp.arrays(np.float64, (n, 2), elements=coordinate))
    if draw(st.booleans()):  # repeated points: zero-length segments and dots
        xy[1::2] = xy[::2][: len(xy[1::2])]
    height, width = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    x0, y0 = draw(st.floats(-20, 100)), draw(st.floats(-20, 100))
    sx, sy = draw(st.floats(0.01, 2.0)), draw(st.floats(0.01, 2.0))
    radius = draw(st.floats(0.0, 6.0))
    return xy, np.array(lengths, dtype=np.int64), (x0, y0, sx, sy, radius), height, width


@hsettings(max_examples=300, deadline=None)
@given(stroke_sets())
def test_capsule_coverage_matches_numpy(case: StrokeCase) -> None:
    xy, lengths, (x0, y0, sx, sy, radius), height, width = case
    got = kernels.capsule_coverage(xy, lengths, x0, y0, sx, sy, radius, height, width)
    want = kernels.numpy_capsule_coverage(xy, lengths, x0, y0, sx, sy, radius, height, width)
    assert got.dtype == np.float32 and got.shape == (height, width)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)


def test_capsule_coverage_draws_what_it_should() -> None:
    """Independent of either form: a dot's coverage is 1 at its centre and falls off past the radius."""
    dot = kernels.capsule_coverage(np.array([[5.0, 5.0]]), np.array([1]), 0.0, 0.0, 1.0, 1.0, 2.0, 11, 11)
    assert dot[5, 5] == 1.0  # centre (5.5, 5.5) is 0.71 px from the dot: inside radius 2
    assert dot[0, 0] == 0.0 and dot[10, 10] == 0.0
    assert dot.sum() == pytest.approx(np.pi * 2.0**2, rel=0.05)  # a 1-px ramp centred on the radius
    line = kernels.capsule_coverage(
        np.array([[0.0, 5.5], [20.0, 5.5]]), np.array([2]), 0.0, 0.0, 1.0, 1.0, 0.5, 11, 20
    )
    np.testing.assert_allclose(line[5], np.ones(20), rtol=0, atol=ATOL)  # every pixel centre on the line
    assert not line[:4].any() and not line[7:].any()


@hsettings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.integers(1, 20)),
        elements=st.floats(0, 1, width=32),
    )
)
def test_center_by_mass_matches_numpy(box: np.ndarray) -> None:
    got = kernels.center_by_mass(box)
    np.testing.assert_allclose(got, kernels.numpy_center_by_mass(box), rtol=0, atol=ATOL)
    # nothing cut: the mass is centred (denormal masses, under 1e-30, lose the moments in float32)
    if box.sum() > 1e-30 and np.isclose(got.sum(), box.sum(), rtol=1e-5):
        rows, cols = got.sum(axis=1), got.sum(axis=0)
        centre = (np.arange(28) @ rows / rows.sum(), np.arange(28) @ cols / cols.sum())
        assert centre == pytest.approx((13.5, 13.5), abs=0.02)


@hsettings(max_examples=300, deadline=None)
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40))),
    st.integers(-1, 255),
    st.integers(0, 256),
    st.booleans(),
)
def test_ink_extent_matches_numpy(levels: np.ndarray, low: int, high: int, read_only: bool) -> None:
    levels.setflags(write=not read_only)
    assert kernels.ink_extent(levels, low, high) == kernels.numpy_ink_extent(levels, low, high)


@hsettings(max_examples=300, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.integers(1, 20)),
        elements=st.sampled_from([0.0, 0.125, 0.25, 0.5, 1.0]) | st.floats(0, 1, width=32),
    ),
    st.booleans(),
)
def test_outline_matches_numpy(box: np.ndarray, read_only: bool) -> None:
    box.setflags(write=not read_only)
    mass, edges = kernels.outline(box, 0.25)
    want_mass, want_edges = kernels.numpy_outline(box, 0.25)
    assert edges == want_edges
    assert mass == pytest.approx(want_mass, rel=1e-9, abs=1e-9)


def test_outline_measures_a_bar() -> None:
    """A 2 px wide, 10 px long bar has mass 20 and an outline of 2 * (10 + 2) pixel edges."""
    box = np.zeros((14, 6), np.float32)
    box[2:12, 2:4] = 1.0
    box[5, 0] = 0.2  # below a quarter of the peak: not outlined, but counted in the mass
    for outline in (kernels.outline, kernels.numpy_outline):
        mass, edges = outline(box, 0.25)
        assert mass == pytest.approx(20.2)
        assert edges == 24
    assert kernels.outline(np.zeros((3, 3), np.float32), 0.25) == (0.0, 0)


@hsettings(max_examples=300, deadline=None)
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(2, 300), st.integers(2, 300))),
    st.integers(1, 40),
    st.integers(1, 40),
    st.booleans(),
    st.booleans(),
)
def test_resample_is_pillows_resize(
    levels: np.ndarray, height: int, width: int, bilinear: bool, read_only: bool
) -> None:
    """The compiled resize against Pillow's own ``resize`` of the float image (numpy_resample).

    Same algorithm and float64 sums; a Pillow built with fused multiply-adds (-march=native, as the
    wheel installed here) rounds some sums 1 ulp differently, so the bound is 1e-6, not equality.
    """
    table = np.random.default_rng(0).random(256, dtype=np.float32)
    levels.setflags(write=not read_only)
    crop = levels[1:, 1:]  # strided, like a crop of a band
    got = kernels.resample(crop, table, height, width, bilinear)
    assert got.dtype == np.float32 and got.shape == (height, width) and got.flags.c_contiguous
    want = kernels.numpy_resample(crop, table, height, width, bilinear)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
