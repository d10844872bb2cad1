"""Number segmentation: the grouping rules on boxes, on real pen inks, on canvas images; one model call."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from shared import errors
from shared.compose import NumberComposer
from shared.inference import Predictor
from shared.inks import Ink, Strokes, fit_to_canvas, render_png
from shared.number import read_number
from shared.preprocess import ImageFrame, StrokesFrame, preprocess
from shared.segment import (
    SPLIT_WIDTH,
    group_boxes,
    label_components,
    segment,
    segment_image,
    segment_strokes,
)

HEIGHT = 120.0
"""Digit height in these tests, px on a 280 px high canvas."""
TOP = 80.0


def ink_width(ink: Ink, height: float = HEIGHT) -> float:
    pts = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes])
    ext = pts.max(axis=0) - pts.min(axis=0)
    return float(ext[0] / ext.max() * height)


def write(inks: Sequence[Ink], gaps: Sequence[float]) -> tuple[Strokes, list[list[int]], int]:
    """Write inks left to right, ``gaps[k]`` px between the point boxes of ink k and k + 1.

    Returns:
        The strokes, each digit's stroke indices, and a canvas width that holds them.
    """
    strokes: Strokes = []
    owners: list[list[int]] = []
    left = 20.0
    for k, ink in enumerate(inks):
        placed = fit_to_canvas(ink, HEIGHT, left, TOP)
        owners.append(list(range(len(strokes), len(strokes) + len(placed))))
        strokes.extend(placed)
        left += ink_width(ink) + (gaps[k] if k < len(gaps) else 0)
    return strokes, owners, int(left + 40)


def groups_of(strokes: Strokes, width: int) -> list[list[int]]:
    return [list(c.strokes) for c in segment_strokes(strokes, width, 280, 16)]


def by_label(inks: Sequence[Ink], label: int, strokes: int | None = None) -> list[Ink]:
    return [i for i in inks if i.label == label and (strokes is None or len(i.strokes) == strokes)]


# ------------------------------------------------------------------------------------- boxes alone


def test_a_thin_stem_inside_another_box_joins_it() -> None:
    body, stem = (0.0, 0.0, 60.0, 70.0), (40.0, 0.0, 44.0, 100.0)  # a 4: open top, then its stem
    assert group_boxes([body, stem]) == [[0, 1]]


def test_boxes_apart_are_characters_ordered_left_to_right() -> None:
    right, left = (200.0, 0.0, 260.0, 100.0), (0.0, 0.0, 60.0, 100.0)  # written right to left
    assert group_boxes([right, left]) == [[1], [0]]


def test_a_thin_one_grazing_its_neighbour_stays_apart() -> None:
    one, seven = (0.0, 0.0, 5.0, 100.0), (3.0, 0.0, 70.0, 100.0)  # overlap 2 px of a 5 px wide 1
    assert group_boxes([one, seven]) == [[0], [1]]


def test_a_stroke_traced_again_joins_the_first() -> None:
    one, again, beside = (100.0, 20.0, 100.0, 260.0), (101.0, 25.0, 101.0, 255.0), (114.0, 20.0, 114.0, 260.0)
    assert group_boxes([one, again]) == [[0, 1]]  # a 1 traced twice to darken it
    assert group_boxes([one, beside]) == [[0], [1]]  # "11": 0.05 H apart stays two


def test_strokes_off_the_canvas_neither_count_nor_set_the_height() -> None:
    seven, one = [[60, 60], [220, 60], [120, 240]], [[400, 30], [400, 250]]
    down_past_the_edge = [[600, 30], [600, 1500]]
    far_off = [[-5000, -5000], [-5000, 5000]]
    got = [c.strokes for c in segment_strokes([seven, one, down_past_the_edge], 840, 280)]
    assert got == [(0,), (1,), (2,)]
    assert [c.strokes for c in segment_strokes([seven, one, far_off], 840, 280)] == [(0,), (1,)]


def test_marks_are_not_characters() -> None:
    digit, dot = (0.0, 0.0, 60.0, 100.0), (100.0, 90.0, 105.0, 95.0)
    assert group_boxes([digit, dot]) == [[0]]
    assert group_boxes([]) == []


def test_a_short_part_touching_a_digit_joins_it() -> None:
    serif, stroke = (0.0, 0.0, 10.0, 35.0), (10.0, 0.0, 70.0, 100.0)  # a 7's serif written apart
    assert group_boxes([serif, stroke]) == [[0, 1]]
    assert group_boxes([serif, (30.0, 0.0, 90.0, 100.0)]) == [[0], [1]]  # 0.2 H away: apart


def test_a_flat_whole_digit_is_not_a_part() -> None:
    one, flat_zero = (0.0, 0.0, 5.0, 100.0), (12.0, 40.0, 112.0, 100.0)  # 0.6 H tall but 0.6 H² large
    assert group_boxes([one, flat_zero]) == [[0], [1]]


def test_a_part_joins_its_closest_neighbour() -> None:
    left, top_of_four, stem = (0.0, 0.0, 40.0, 100.0), (50.0, 30.0, 80.0, 70.0), (88.0, 0.0, 92.0, 100.0)
    assert group_boxes([left, top_of_four, stem]) == [[0], [1, 2]]


# ---------------------------------------------------------------------------------- real pen inks


@pytest.mark.data
@pytest.mark.parametrize("label", [4, 5])
def test_two_stroke_fours_and_fives_stay_one_digit(pen_inks_200: list[Ink], label: int) -> None:
    two_stroke = by_label(pen_inks_200, label, strokes=2)
    zero, three = by_label(pen_inks_200, 0, 1)[0], by_label(pen_inks_200, 3, 1)[0]
    assert len(two_stroke) >= 10
    for ink in two_stroke:
        strokes, owners, width = write([zero, ink, three], [0.15 * HEIGHT, 0.15 * HEIGHT])
        assert groups_of(strokes, width) == owners, ink.writer


@pytest.mark.data
@pytest.mark.parametrize("gap", [0.0, -0.04 * HEIGHT, 0.05 * HEIGHT], ids=["touching", "overlap", "close"])
def test_a_one_close_to_a_seven_stays_apart(pen_inks_200: list[Ink], gap: float) -> None:
    ones, sevens = by_label(pen_inks_200, 1, 1)[:10], by_label(pen_inks_200, 7)[:10]
    pairs = [
        (a, b) for one, seven in zip(ones, sevens, strict=False) for a, b in ((one, seven), (seven, one))
    ]
    right = 0
    for pair in pairs:
        strokes, owners, width = write(pair, [gap])
        right += groups_of(strokes, width) == owners
    assert right >= 0.9 * len(pairs), f"{right} of {len(pairs)}"


@pytest.mark.data
def test_touching_neighbours_are_counted_right(pen_inks_200: list[Ink]) -> None:
    """Every pair of consecutive inks of the file, their point boxes touching (inks overlapping)."""
    inks = pen_inks_200[::2]
    right = 0
    for a, b in itertools.pairwise(inks):
        strokes, _owners, width = write([a, b], [0.0])
        right += len(groups_of(strokes, width)) == 2
    assert right >= 0.95 * (len(inks) - 1), f"{right} of {len(inks) - 1}"


@pytest.mark.data
def test_dots_and_stray_marks_are_not_digits(pen_inks_200: list[Ink], predictor: Predictor) -> None:
    four, two = by_label(pen_inks_200, 4, 2)[0], by_label(pen_inks_200, 2)[0]
    strokes, owners, width = write([four, two], [0.3 * HEIGHT])
    tap = [[width - 30.0, TOP + HEIGHT]]  # a full stop after the number
    speck = [[30.0, TOP + HEIGHT + 20], [33.0, TOP + HEIGHT + 22]]  # a stray mark under it
    marked = [*strokes, tap, speck]
    assert groups_of(marked, width) == owners
    plain = read_number(predictor, StrokesFrame(strokes, width, 280, 16))
    dotted = read_number(predictor, StrokesFrame(marked, width, 280, 16))
    assert dotted.number == plain.number == "42"
    alone = read_number(predictor, StrokesFrame([tap], width, 280, 16))
    assert alone.status == "no_digit" and alone.number is None and alone.digits == []


@pytest.mark.data
def test_composed_numbers_are_read_like_their_digits_alone(
    pen_inks_200: list[Ink], predictor: Predictor
) -> None:
    """Each character gets exactly the tensor its digit gets drawn alone, in number mode's one call."""
    composer = NumberComposer(pen_inks_200, (12.0, 24.0))
    checked = 0
    for i in range(20):
        number = composer.compose(np.random.default_rng([7, i]))
        frame = StrokesFrame(number.strokes, number.width, number.height, number.pen)
        characters = segment(frame)
        if [list(c.strokes) for c in characters] != number.digit_strokes:
            continue
        checked += 1
        for c in characters:
            alone = StrokesFrame([number.strokes[k] for k in c.strokes], number.width, 280, number.pen)
            np.testing.assert_array_equal(c.tensor, preprocess(alone))
    assert checked >= 15


# -------------------------------------------------------------------------------- images and model


@pytest.mark.data
def test_canvas_images_split_into_well_separated_digits(
    pen_inks_200: list[Ink], predictor: Predictor
) -> None:
    inks = by_label(pen_inks_200, 4, 2)[:3] + by_label(pen_inks_200, 8)[:3] + by_label(pen_inks_200, 1, 1)[:3]
    right = same = 0
    for k in range(len(inks) - 2):
        strokes, _owners, width = write(inks[k : k + 3], [0.25 * HEIGHT, 0.25 * HEIGHT])
        png = render_png(strokes, width, 280, 16)
        characters = segment_image(png)
        right += len(characters) == 3
        by_strokes = read_number(predictor, StrokesFrame(strokes, width, 280, 16))
        by_png = read_number(predictor, ImageFrame(png))
        same += by_png.number == by_strokes.number
        for c, d in zip(characters, by_strokes.digits, strict=False):
            assert c.strokes == ()
            assert np.allclose(c.bbox, d.bbox, atol=2.0)  # the same ink, seen as pixels
    assert right == len(inks) - 2
    assert same >= len(inks) - 3


def flood_fill_labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """A reference 8-connected labelling: breadth-first flood fill from each unlabelled ink pixel."""
    labels, count = np.zeros(mask.shape, dtype=int), 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        count += 1
        labels[start] = count
        queue = [start]
        while queue:
            y, x = queue.pop()
            for yy, xx in itertools.product((y - 1, y, y + 1), (x - 1, x, x + 1)):
                inside = 0 <= yy < mask.shape[0] and 0 <= xx < mask.shape[1]
                if inside and mask[yy, xx] and not labels[yy, xx]:
                    labels[yy, xx] = count
                    queue.append((yy, xx))
    return labels, count


def test_components_match_a_flood_fill() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        mask = rng.random((int(rng.integers(1, 24)), int(rng.integers(1, 24)))) < rng.random()
        labels, count = label_components(mask)
        expected, expected_count = flood_fill_labels(mask)
        assert count == expected_count
        assert len(set(zip(labels[mask].tolist(), expected[mask].tolist(), strict=True))) == count
        assert (labels > 0).tolist() == mask.tolist()


def test_noise_is_labelled_at_reduced_resolution() -> None:
    mask = np.random.default_rng(5).random((1024, 1024)) < 0.5  # ~260,000 runs
    labels, count = label_components(mask)
    assert count >= 1 and (labels > 0).tolist() == mask.tolist()


@pytest.mark.data
def test_touching_digits_in_an_image_are_cut_apart(pen_inks_200: list[Ink]) -> None:
    """Pairs whose inks touch (one component) and that together are wider than one digit can be."""
    inks = pen_inks_200[::2]
    wide = [
        (a, b)
        for a, b in itertools.pairwise(inks)
        if ink_width(a) + ink_width(b) + 16 > SPLIT_WIDTH * (HEIGHT + 16)  # point boxes + pen
    ]
    assert len(wide) >= 40
    right = 0
    for pair in wide:
        strokes, _, width = write(pair, [0.0])
        png = render_png(strokes, width, 280, 16)
        right += len(segment_image(png)) == 2
    assert right >= 0.8 * len(wide), f"{right} of {len(wide)}"


def test_a_blank_canvas_image_has_no_characters() -> None:
    assert segment_image(render_png([], 560, 280)) == []


def test_every_character_is_classified_in_one_model_call(predictor: Predictor) -> None:
    strokes = [[[40.0 + 80 * k, 60.0], [40.0 + 80 * k, 200.0]] for k in range(5)]  # 11111
    calls: list[int] = []

    class Counting(Predictor):
        def logits(self, batch: np.ndarray) -> np.ndarray:  # type: ignore[override]
            calls.append(len(batch))
            return predictor.logits(batch)

    spy = Counting.__new__(Counting)
    spy.__dict__.update(vars(predictor))  # the loaded session and contract, without loading again
    reading = read_number(spy, StrokesFrame(strokes, 460, 280, 16))
    assert calls == [5]
    assert reading.number == "11111"
    assert [d.strokes for d in reading.digits] == [[k] for k in range(5)]


def test_the_default_pen_on_a_wide_canvas_is_the_pages_pen() -> None:
    strokes = [[[40.0 + 80 * k, 60.0], [40.0 + 80 * k, 200.0], [60.0 + 80 * k, 120.0]] for k in range(3)]
    default = segment_strokes(strokes, 840, 280)
    page = segment_strokes(strokes, 840, 280, 16)
    for a, b in zip(default, page, strict=True):
        assert a.bbox == b.bbox
        np.testing.assert_array_equal(a.tensor, b.tensor)


def test_stroke_indices_count_the_empty_strokes_sent() -> None:
    strokes: list[list[list[float]]] = [
        [],
        [[40.0, 60.0], [40.0, 200.0]],
        [],
        [[200.0, 60.0], [200.0, 200.0]],
    ]
    assert [c.strokes for c in segment_strokes(strokes, 280, 280, 16)] == [(1,), (3,)]


@pytest.mark.parametrize(
    ("strokes", "error"),
    [
        ("nope", errors.InvalidStrokes),
        ([[[1, "x"]]], errors.InvalidStrokes),
        ([[[1e12, 3]]], errors.InvalidStrokes),
        ([[[0, 0], [1, 1]]] * 65, errors.InvalidStrokes),
    ],
)
def test_malformed_strokes_get_the_digit_frames_errors(strokes: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        preprocess(StrokesFrame(strokes, 280, 280))
    with pytest.raises(error):
        segment(StrokesFrame(strokes, 280, 280))


def test_a_bad_canvas_size_gets_the_digit_frames_error() -> None:
    with pytest.raises(errors.InvalidFieldType):
        segment(StrokesFrame([[[1, 1], [50, 50]]], 0, 280))
    with pytest.raises(errors.NotAnImage):
        segment(ImageFrame(b"not an image at all"))
