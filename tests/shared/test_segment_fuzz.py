"""Fuzzing number-mode segmentation: any frame either segments into well-formed characters or raises
exactly the error the same frame raises as a digit frame."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shared import errors
from shared.preprocess import ImageFrame, StrokesFrame, preprocess
from shared.segment import Character, segment
from tests.shared.test_errors import (
    FUZZ,
    IMAGE_CODES,
    STROKE_CODES,
    _check_fuzz_error,
    _image_bytes,
    _size,
    _strokes,
    seeded,
)


def _digit_outcome(frame: Any) -> str | None:
    """The error code the frame gets as a digit frame, or ``None`` when it is accepted."""
    try:
        preprocess(frame)
    except errors.MnistLiveError as exc:
        return exc.code
    return None


def _segmented(frame: Any) -> list[Character] | errors.MnistLiveError:
    try:
        return segment(frame)
    except errors.MnistLiveError as exc:
        return exc


def _check_characters(characters: list[Character], frame: Any) -> None:
    lefts = [c.bbox[0] for c in characters]
    assert lefts == sorted(lefts), "left to right"
    seen: set[int] = set()
    for c in characters:
        assert all(math.isfinite(v) for v in c.bbox) and c.bbox[0] <= c.bbox[2] and c.bbox[1] <= c.bbox[3]
        planes = 7 if isinstance(frame, StrokesFrame) else 1  # strokes: the raster and the motion planes
        assert c.tensor is not None and c.tensor.shape == (1, planes, 28, 28) and c.tensor.dtype == np.float32
        assert float(c.tensor.min()) >= 0.0 and float(c.tensor.max()) <= 1.0
        if isinstance(frame, StrokesFrame):
            assert c.strokes and not seen & set(c.strokes), "each stroke in one character at most"
            assert all(0 <= i < len(frame.strokes) and len(frame.strokes[i]) for i in c.strokes)
            seen |= set(c.strokes)
        else:
            assert c.strokes == ()


def check_as_a_digit_frame(frame: StrokesFrame | ImageFrame, codes: set[str]) -> None:
    """Segmenting ``frame`` gives well-formed characters, or the error it gets as a digit frame."""
    expected = _digit_outcome(frame)
    outcome = _segmented(frame)
    if isinstance(outcome, errors.MnistLiveError):
        _check_fuzz_error(outcome, codes)
        assert outcome.code == expected
    else:
        assert expected is None
        _check_characters(outcome, frame)


@FUZZ
@given(
    frame=seeded(
        lambda rng: StrokesFrame(_strokes(rng), _size(rng), _size(rng), rng.choice([None, _size(rng)]))
    )
)
def test_fuzz_segment_strokes_errs_as_a_digit_frame(frame: StrokesFrame) -> None:
    check_as_a_digit_frame(frame, STROKE_CODES)


@FUZZ
@given(data=st.one_of(seeded(_image_bytes), st.binary(max_size=64)))
def test_fuzz_segment_images_errs_as_a_digit_frame(data: bytes) -> None:
    check_as_a_digit_frame(ImageFrame(data), IMAGE_CODES)
