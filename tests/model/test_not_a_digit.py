"""The not-a-digit answer on letters and symbols of writers never trained or tuned on (needs ../shared/data).

Non-digits: a seeded 1,000 of the 25,066 non-look-alike letters and symbols of the held-out writers, drawn
as a person would (random size, position and pen, seeded), through the strokes path and the rendered PNG.
The target, at least 95 % answered ``not_a_digit`` (gate 93 %: 2 points of tolerance, about 2.9 standard
errors of a 95 % rate on 1,000 inks), is not met (the strokes model 91.7 %, the image model 71.5 %; the
model card gives the trade-off): that gate is a strict xfail, and regression gates hold the measured
levels (90 % and 69 %, about 2 standard errors below each). Digits: all 5,015 inks of the held-out
writers, strokes path: at most 0.5 % answered ``not_a_digit`` (the target; the full set, no tolerance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.data import heldout_pen_writers, pen_split
from model.evaluate import PEN_SEED, nondigit_figures, pen_batch
from model.nondigits import (
    LOOK_ALIKES,
    SYNTHETIC_KINDS,
    NonDigit,
    nondigit_split,
    synthetic_mark,
)
from model.rejection import fit_threshold, fit_threshold_by_writer, rejection_figures
from shared.inference import Predictor, not_a_digit_scores

NONDIGIT_TARGET_GATE = 0.93
NONDIGIT_REGRESSION_GATE = {False: 0.90, True: 0.69}
"""Strokes (False) and PNG (True) paths: about 2 standard errors below the shipped models' figures."""
DIGITS_TURNED_AWAY_MAX = 0.005
SAMPLE_SIZE = 1000
"""Held-out letters and symbols drawn per path: a 95 % rate is measured to 0.7 points (one standard error)."""
SAMPLE_SEED = 20
SYNTHETIC_GATE = 0.93
NAMED_MARKS_GATE = 0.95


@pytest.fixture(scope="module")
def heldout_sample(data_dir: Path) -> list[NonDigit]:
    """A seeded :data:`SAMPLE_SIZE` of the held-out writers' letters and symbols, look-alikes excluded."""
    others = [n for n in nondigit_split(data_dir).heldout if not n.look_alike]
    chosen = np.random.default_rng(SAMPLE_SEED).choice(len(others), SAMPLE_SIZE, replace=False)
    return [others[i] for i in sorted(chosen)]


@pytest.mark.data
def test_the_writer_split_keeps_evaluation_writers_out_of_training(data_dir: Path) -> None:
    split = nondigit_split(data_dir)
    train = {n.ink.writer for n in split.train}
    calibration = {n.ink.writer for n in split.calibration}
    digit_heldout = heldout_pen_writers(data_dir)
    assert not train & split.heldout_writers and not calibration & split.heldout_writers
    assert not train & calibration
    # Writers whose digits are held out have their letters held out too.
    assert digit_heldout & (train | calibration) == set()
    assert len(split.train) + len(split.calibration) + len(split.heldout) == 73_144


UNMET_TARGET = pytest.mark.xfail(
    strict=True,
    reason="the models turn away 91.7 % (strokes) and 71.5 % (PNG) of these inks at a threshold set to "
    "keep unseen writers' digits (model/README.md, Not a digit); the target is 95 %",
)


@pytest.mark.data
@pytest.mark.parametrize(
    ("as_png", "gate"),
    [
        (False, NONDIGIT_REGRESSION_GATE[False]),
        (True, NONDIGIT_REGRESSION_GATE[True]),
        pytest.param(False, NONDIGIT_TARGET_GATE, marks=UNMET_TARGET),
        pytest.param(True, NONDIGIT_TARGET_GATE, marks=UNMET_TARGET),
    ],
    ids=["strokes", "png", "strokes-target", "png-target"],
)
def test_held_out_writers_letters_and_symbols_are_turned_away(
    heldout_sample: list[NonDigit], predictor: Predictor, as_png: bool, gate: float
) -> None:
    figures = nondigit_figures(predictor, heldout_sample, PEN_SEED, workers=1, as_png=as_png)
    assert figures["n"] == SAMPLE_SIZE
    worst = sorted((f["rate"], c) for c, f in figures["per_char"].items() if not f["look_alike"])[:5]
    assert figures["rate"] >= gate, f"{figures['rate']:.3f} turned away; worst {worst}"


@pytest.mark.data
def test_held_out_writers_digits_are_kept(data_dir: Path, predictor: Predictor) -> None:
    inks = pen_split(data_dir).heldout
    x, blank = pen_batch(inks, seed=PEN_SEED, workers=2)
    threshold = predictor.threshold_for(x.shape[1])
    turned_away = float(((not_a_digit_scores(predictor.logits(x)) >= threshold) & ~blank).mean())
    assert turned_away <= DIGITS_TURNED_AWAY_MAX, f"{turned_away:.4f} of {len(inks)} answered not_a_digit"


def test_scribbles_spirals_stars_and_hatching_are_not_digits(predictor: Predictor) -> None:
    # Regression gate: 69 of these 70 marks measured (every kind 10/10 but random walks, 9/10: a tangle
    # can still pass for a 0 or an 8).
    rng = np.random.default_rng(7)
    marks = [NonDigit(kind, synthetic_mark(rng, kind)) for kind in sorted(SYNTHETIC_KINDS) for _ in range(10)]
    figures = nondigit_figures(predictor, marks, seed=99, workers=1)
    rates = {kind: round(f["rate"], 2) for kind, f in figures["per_char"].items()}
    assert figures["rate"] >= SYNTHETIC_GATE, rates
    named = (rates["spiral"] + rates["star"]) / 2  # the named failures: a star read as 0, a spiral as 0
    assert named >= NAMED_MARKS_GATE, rates


def test_synthetic_marks_are_seeded_and_every_kind_is_drawn() -> None:
    a = [synthetic_mark(np.random.default_rng(3)) for _ in range(1)]
    b = [synthetic_mark(np.random.default_rng(3)) for _ in range(1)]
    assert a == b
    kinds = {synthetic_mark(np.random.default_rng(i)).writer for i in range(200)}
    assert kinds == {f"synthetic-{k}" for k in SYNTHETIC_KINDS}


def test_threshold_turns_away_at_most_the_asked_share_of_digits() -> None:
    scores = np.linspace(0, 0.999, 1000)
    threshold = fit_threshold(scores, 0.002)
    assert int((scores >= threshold).sum()) == 2
    assert int((scores >= fit_threshold(scores, 0.0)).sum()) == 0
    ties = np.full(100, 0.3)
    assert int((ties >= fit_threshold(ties, 0.05)).sum()) == 0  # never more than asked, even on ties


def test_threshold_by_writer_counts_one_writers_odd_digits_as_a_writers_habit() -> None:
    # 20 writers of 100 digits; one writer's 8 score high. Per ink, 0.5 % of 2,000 digits may be turned
    # away (10), which the 8 fit; resampling writers, that writer is drawn twice in some draws of 20
    # (16 of 2,000 = 0.8 %), so the bound keeps all 8.
    scores = np.random.default_rng(1).random(2000) * 0.5
    scores[:8] = 0.99
    writers = np.repeat([f"w{i}" for i in range(20)], 100)
    assert (scores >= fit_threshold(scores, 0.005)).sum() == 10
    threshold = fit_threshold_by_writer(scores, writers, 0.005)
    assert (scores >= threshold).sum() == 0
    # Spread over every writer, the same share is a property of inks: the bound turns some away.
    spread = scores.copy()
    spread[:8], spread[::100] = 0.0, 0.99
    assert 0 < (spread >= fit_threshold_by_writer(spread, writers, 0.02)).sum() <= 40
    assert fit_threshold_by_writer(scores, writers, 0.005) == threshold  # seeded


def test_figures_set_look_alikes_apart_and_count_per_character() -> None:
    # Rows: two H turned away, one H read as 4, one O (a look-alike) read as 0.
    high, low = [0.0] * 10 + [9.0], [0.0] * 4 + [5.0] + [0.0] * 5 + [-9.0]
    zero = [5.0] + [0.0] * 9 + [-9.0]
    logits = np.array([high, high, low, zero], np.float32)
    chars = ["H", "H", "H", "O"]
    figures = rejection_figures(logits, 0.5, chars, np.array([c in LOOK_ALIKES for c in chars]))
    assert (figures["n"], figures["turned_away"]) == (3, 2)
    assert figures["rate"] == pytest.approx(2 / 3)
    assert figures["look_alikes"] == {"n": 1, "turned_away": 0, "rate": 0.0}
    assert figures["per_char"]["O"]["look_alike"] and not figures["per_char"]["H"]["look_alike"]
    assert figures["answered"]["not_a_digit"] == 2 and figures["answered"]["4"] == 1
