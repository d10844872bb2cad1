"""Number mode on the drawing page, in Chromium against the real local server: a three-digit number written
with the mouse is read while it is written, each character boxed on the canvas; undo and clear."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from shared.inference import Predictor
from shared.inks import fit_to_canvas
from shared.number import read_number
from shared.preprocess import StrokesFrame
from tests.browser.conftest import Digit, Opened, Strokes
from tests.browser.test_page import capture_ws_frames
from tests.servers import LiveServer

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 840, 280
"""The number canvas, logical px (``site/number.js``)."""
DIGIT_HEIGHT = 150.0
SETTLED = "() => window.mnistLive.lastSeq > 0 && window.mnistLive.shownSeq === window.mnistLive.lastSeq"


def thinned(strokes: Strokes, step: float = 4.0) -> Strokes:
    out: Strokes = []
    for stroke in strokes:
        kept = [stroke[0]]
        kept += [pt for pt in stroke[1:-1] if math.dist(pt, kept[-1]) >= step] if len(stroke) > 2 else []
        if len(stroke) > 1:
            kept.append(stroke[-1])
        out.append(kept)
    return out


def write_number(digits: tuple[Digit, ...]) -> tuple[Strokes, list[int]]:
    """Lay the digits' inks left to right on the wide canvas; return the strokes and strokes per digit."""
    strokes: Strokes = []
    counts = []
    left = 60.0
    for d in digits:
        placed = thinned(fit_to_canvas(d.ink, DIGIT_HEIGHT, left, 60.0))
        strokes += placed
        counts.append(len(placed))
        left = max(p[0] for s in placed for p in s) + 0.3 * DIGIT_HEIGHT
    return strokes, counts


@pytest.fixture(scope="module")
def number(confident_digits: list[Digit], predictor: Predictor) -> tuple[str, Strokes, list[int]]:
    """Three confident digits, the last written in one stroke, that the model reads right as a number."""
    for combo in itertools.permutations(confident_digits, 3):
        if len(combo[2].ink.strokes) != 1:
            continue
        strokes, counts = write_number(combo)
        text = "".join(str(d.label) for d in combo)
        if read_number(predictor, StrokesFrame(strokes, WIDTH, HEIGHT, 16)).number == text:
            return text, strokes, counts
    pytest.fail("no three confident digits read right as a number")


def to_viewport(box: dict[str, float], x: float, y: float) -> tuple[float, float]:
    k = box["width"] / WIDTH
    return box["x"] + x * k, box["y"] + y * k


def shown(page: Any) -> tuple[str, list[str]]:
    """The number shown (``data-number``) and the digits of the boxes drawn over the canvas."""
    number = page.get_by_test_id("number").get_attribute("data-number")
    boxes = page.eval_on_selector_all('[data-testid="boxes"] .box', "els => els.map(e => e.dataset.digit)")
    return number, boxes


def test_a_number_written_with_the_mouse_is_read_while_it_is_written(
    open_page: Callable[..., Opened], live_server: LiveServer, number: tuple[str, Strokes, list[int]]
) -> None:
    text, strokes, counts = number
    opened = open_page(live_server.http_url + "/?mode=number", viewport={"width": 1000, "height": 760})
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    expect(page.get_by_test_id("mode")).to_have_attribute("aria-pressed", "true")
    box = page.get_by_test_id("canvas").bounding_box()
    assert box["width"] / box["height"] == pytest.approx(3, rel=0.02), "the wide canvas"

    seen_while_writing: list[tuple[str, list[str]]] = []
    ends = list(itertools.accumulate(counts))
    for i, stroke in enumerate(strokes):
        page.mouse.move(*to_viewport(box, *stroke[0]))
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(*to_viewport(box, x, y))
        if i == len(strokes) - 1:  # the last stroke, pen still down: the first two digits are read
            page.wait_for_function(
                f"() => document.querySelectorAll('[data-testid=\"boxes\"] .box').length === 3"
                f" && document.querySelector('[data-testid=\"number\"]').textContent.startsWith('{text[:2]}')"
            )
            seen_while_writing.append(shown(page))
        page.mouse.up()
        if i + 1 in ends[:-1]:  # a digit finished: the number so far is on screen
            done = ends.index(i + 1) + 1
            page.wait_for_function(SETTLED)
            seen_while_writing.append(shown(page))
            assert shown(page) == (text[:done], list(text[:done]))

    page.wait_for_function(SETTLED)
    assert shown(page) == (text, list(text))
    assert len(seen_while_writing) == 3
    readings = page.get_by_test_id("readings").locator("li")
    expect(readings).to_have_count(3)
    assert [readings.nth(k).get_attribute("data-digit") for k in range(3)] == list(text)
    expect(page.locator("#announce")).to_have_text(f"Number: {text}.")

    page.get_by_test_id("undo").click()  # the last digit was one stroke: it goes
    page.wait_for_function(SETTLED)
    expect(page.get_by_test_id("number")).to_have_attribute("data-number", text[:2])
    assert shown(page) == (text[:2], list(text[:2]))

    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("number")).to_have_attribute("data-number", "")
    assert shown(page) == ("", [])
    assert opened.console.errors() == []


def test_the_mode_button_switches_canvas_and_frames(
    open_page: Callable[..., Opened], live_server: LiveServer
) -> None:
    opened = open_page(live_server.http_url + "/")
    page = opened.page
    sent = capture_ws_frames(page)
    page.reload()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    square = page.get_by_test_id("canvas").bounding_box()
    assert square["width"] == pytest.approx(square["height"], rel=0.02)
    expect(page.get_by_test_id("number")).to_be_hidden()

    page.get_by_test_id("mode").click()
    expect(page.get_by_test_id("mode")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("number")).to_be_visible()
    wide = page.get_by_test_id("canvas").bounding_box()
    assert wide["width"] / wide["height"] == pytest.approx(3, rel=0.02)
    draw_line(page, wide, 600.0)  # a 1 near the right end: inside the wide canvas only
    page.wait_for_function(SETTLED)
    expect(page.get_by_test_id("number")).to_have_attribute("data-number", "1")
    number_frame = [f for f in sent if f.get("action") == "predict"][-1]
    assert (number_frame["mode"], number_frame["width"], number_frame["height"]) == ("number", WIDTH, HEIGHT)
    assert number_frame["strokes"][0][0][0] == pytest.approx(600.0, abs=1.0)

    page.get_by_test_id("mode").click()
    expect(page.get_by_test_id("digit")).to_be_visible()
    expect(page.get_by_test_id("boxes").locator(".box")).to_have_count(0)
    square = page.get_by_test_id("canvas").bounding_box()
    draw_line(page, square, 140.0, width=280)
    page.wait_for_function(SETTLED)
    digit_frame = [f for f in sent if f.get("action") == "predict"][-1]
    assert "mode" not in digit_frame and digit_frame["width"] == 280
    expect(page.get_by_test_id("digit")).to_have_attribute("data-digit", "1")
    assert opened.console.errors() == []


def draw_line(page: Any, box: dict[str, float], x: float, width: int = WIDTH) -> None:
    """A vertical stroke at logical ``x`` from y 60 to 220 (a 1) on a canvas ``width`` px wide."""
    k = box["width"] / width
    page.mouse.move(box["x"] + x * k, box["y"] + 60 * k)
    page.mouse.down()
    for y in range(80, 240, 20):
        page.mouse.move(box["x"] + x * k, box["y"] + y * k)
    page.mouse.up()
