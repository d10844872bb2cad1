"""The page's send rate while drawing: ``?fps=`` sets it (the cost model's knob), the default stays ~30."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Opened
from tests.browser.test_page import SEND_LOG, canvas_box, logged_predicts, to_viewport
from tests.servers import LiveServer

pytestmark = pytest.mark.browser


def draw_slowly(page: Any, moves: int = 40, pause_ms: int = 25) -> None:
    """One stroke of ``moves`` mouse moves ``pause_ms`` apart (about a second), then pen-up."""
    box = canvas_box(page)
    page.mouse.move(*to_viewport(box, 40, 140))
    page.mouse.down()
    for i in range(1, moves + 1):
        page.mouse.move(*to_viewport(box, 40 + i * 5, 140 + (i % 7)))
        page.wait_for_timeout(pause_ms)
    page.mouse.up()


def live_gaps(page: Any) -> list[float]:
    """Milliseconds between the snapshots sent while the pen moved (the pen-up one excluded)."""
    sends = logged_predicts(page)
    assert sends[-1]["during"] == "pointerup", "the pen-up snapshot is always sent"
    live = [s for s in sends if s["during"] is None]
    return [b["t"] - a["t"] for a, b in itertools.pairwise(live)]


@pytest.mark.parametrize(("query", "interval_ms"), [("?fps=5", 200.0), ("?fps=abc", 33.0), ("", 33.0)])
def test_fps_parameter_sets_the_interval_between_snapshots(
    open_page: Callable[..., Opened], live_server: LiveServer, query: str, interval_ms: float
) -> None:
    page = open_page(live_server.http_url + "/" + query).page
    page.add_init_script(SEND_LOG)
    page.reload()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    draw_slowly(page)
    gaps = live_gaps(page)
    assert gaps and min(gaps) >= interval_ms - 0.01, f"closer than {interval_ms} ms: {gaps}"
    # the pen moves every 25-50 ms (slower on a loaded machine), so a typical gap is one interval, or the
    # time to the next move for the default rate: never throttled to a fraction of the asked rate
    assert statistics.median(gaps) < max(2 * interval_ms, 150), f"throttled harder than asked: {gaps}"
