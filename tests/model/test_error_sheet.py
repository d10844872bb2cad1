"""The error sheet: which held-out inks it shows, and how it lays them out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.error_sheet import COLUMNS, TILE_PX, draw_sheet, is_lone_bar, wrong_inks
from shared.inference import Predictor
from shared.inks import Ink
from tests.onnx_models import constant_model, one_hot

BAR = [[[0, 0], [0, 100]]]
HOOK = [[[0, 100], [50, 100], [10, 0]], [[5, 50], [40, 50]]]


def test_only_inks_read_other_than_their_label_are_listed(tmp_path: Path) -> None:
    image = constant_model(tmp_path, one_hot(1), name="image.onnx")
    strokes = constant_model(tmp_path, one_hot(1), planes=7, name="strokes.onnx")
    inks = [Ink(1, "w1", BAR), Ink(7, "w2", HOOK), Ink(4, "w3", BAR)]
    errors = wrong_inks(Predictor(image, 1, strokes), inks, workers=1)
    assert [(ink.label, ink.writer, read) for ink, read in errors] == [(7, "w2", 1), (4, "w3", 1)]


def test_the_sheet_has_one_captioned_tile_per_ink_and_draws_every_stroke() -> None:
    errors = [(Ink(7, "w2", HOOK), 1)] * (COLUMNS + 1)  # two rows
    sheet = np.asarray(draw_sheet(errors))
    assert sheet.shape == (2 * (TILE_PX + 14), COLUMNS * TILE_PX, 3)
    first = sheet[:TILE_PX, :TILE_PX]
    black = (first == 0).all(axis=2)
    red = (first[..., 0] > 150) & (first[..., 1] < 60) & (first[..., 2] < 60)
    assert black.sum() > 50 and red.sum() > 20, "stroke 1 black, stroke 2 red"
    assert (sheet[TILE_PX + 14 :, TILE_PX:] == 255).all(), "the second row holds one tile only"


def test_a_lone_bar_is_one_straight_stroke_that_cannot_be_its_label() -> None:
    upright, flat = [[[0, 0], [3, 50], [6, 100]]], [[[0, 0], [50, 4], [100, 8]]]
    assert is_lone_bar(Ink(4, "w", upright)) and is_lone_bar(Ink(0, "w", flat))
    assert is_lone_bar(Ink(1, "w", flat)), "a flat bar is not a 1"
    assert not is_lone_bar(Ink(1, "w", upright)), "an upright bar is a 1"
    assert not is_lone_bar(Ink(4, "w", HOOK)), "two strokes"
    assert not is_lone_bar(Ink(0, "w", [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 5]]])), "a closed loop"
