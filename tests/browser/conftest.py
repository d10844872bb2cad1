"""Browser fixtures: Debian's Chromium driven by Playwright (sync API), against the real local server.

Playwright's own browser downloads do not work here; the suite uses ``/usr/bin/chromium`` (``apt-get
install chromium``) and skips with a reason when it is absent, unless ``MNIST_LIVE_REQUIRE_BROWSER=1``
(CI) makes that an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.inference import Predictor
from shared.inks import Ink, fit_to_canvas
from shared.preprocess import StrokesFrame

CHROMIUM = Path(os.environ.get("MNIST_LIVE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER_ENV = "MNIST_LIVE_REQUIRE_BROWSER"

Strokes = list[list[list[float]]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module.

    Module scope, not session: Playwright's sync API keeps its event loop marked running while it is
    open, which breaks every pytest-asyncio test collected after the browser tests.
    """
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(reason + f"; {REQUIRE_BROWSER_ENV}=1 makes this an error")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Console:
    """Everything the page logged, threw or requested."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def errors(self, allow: Callable[[str], bool] = lambda _: False) -> list[str]:
        """Console errors and warnings plus uncaught exceptions, minus the allowed ones."""
        bad = [f"{kind}: {text}" for kind, text in self.messages if kind in ("error", "warning")]
        return [m for m in bad + self.page_errors if not allow(m)]


@dataclass
class Opened:
    page: Any
    context: Any
    console: Console


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Opened]]:
    """Open the page in a fresh browser context: ``open_page(url, **context_options)``."""
    contexts: list[Any] = []

    def _open(url: str, **options: Any) -> Opened:
        options.setdefault("viewport", {"width": 1000, "height": 720})
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        console = Console()
        page.on("console", lambda m: console.messages.append((m.type, m.text)))
        page.on("pageerror", lambda e: console.page_errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: console.requests.append(r.url))
        page.goto(url)
        return Opened(page, context, console)

    yield _open
    for c in contexts:
        c.close()


@dataclass(frozen=True)
class Digit:
    """A recorded ink laid on the 280 px canvas, and the model's own answer for it."""

    ink: Ink
    strokes: Strokes
    label: int
    confidence: float


def place(ink: Ink, step: float = 3.0) -> Strokes:
    """The ink centred on the canvas at a natural size (200 px box), points at least ``step`` px apart.

    Thinning keeps the shape (the pen is 16 px wide) and keeps each drawing to a few dozen input events.
    """
    out: Strokes = []
    for stroke in fit_to_canvas(ink, 200, 40, 40):
        kept = [stroke[0]]
        for pt in stroke[1:-1]:
            if math.dist(pt, kept[-1]) >= step:
                kept.append(pt)
        if len(stroke) > 1 and stroke[-1] != kept[-1]:
            kept.append(stroke[-1])
        out.append(kept)
    return out


@pytest.fixture(scope="session")
def confident_digits(pen_inks_200: list[Ink], predictor: Predictor) -> list[Digit]:
    """Inks the shipped model gets right with confidence >= 0.9, one per digit where it has one,
    shortest (fewest points, so fewest input events) first.

    The model is swapped for a stronger one later; asserting against inks it reads correctly keeps
    the tests about the page, not about the model's accuracy.
    """
    found: dict[int, Digit] = {}
    for ink in pen_inks_200:
        if ink.label in found:
            continue
        strokes = place(ink)
        if len(strokes[0]) < 12:  # the first stroke must be long enough to predict before pen-up
            continue
        p = predictor.predict([StrokesFrame(strokes, 280, 280, 16)])[0]
        if p.digit == ink.label and p.confidence is not None and p.confidence >= 0.9:
            found[ink.label] = Digit(ink, strokes, ink.label, p.confidence)
    if len(found) < 3:
        pytest.fail(f"the model reads too few pen inks confidently: {sorted(found)}")
    return sorted(found.values(), key=lambda d: sum(map(len, d.strokes)))
