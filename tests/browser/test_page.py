"""The drawing page in a real browser (Debian's Chromium via Playwright) against the real local server.

Scenarios: mouse and touch drawing with live updates before pen-up, no page scroll while
drawing, Clear (button, Escape, keyboard), HTTP fallback, stale replies ignored, reconnecting, pings,
no console errors, probabilities summing to 1, the accessibility tree. The desktop test saves the
README screenshot, ``docs/screenshot.png``.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import WebSocketRoute, expect

from tests.browser.conftest import Digit, Opened, Strokes
from tests.servers import LiveServer

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
REPORT_SHOT = Path(__file__).resolve().parents[2] / "reports" / "screenshot.png"
DIGIT = '[data-testid="digit"]'
SETTLED = "() => window.mnistLive.lastSeq > 0 && window.mnistLive.shownSeq === window.mnistLive.lastSeq"
HAS_DIGIT = f"() => document.querySelector('{DIGIT}').dataset.digit !== ''"
QUIET = "() => !window.mnistLive.unsent && window.mnistLive.shownSeq === window.mnistLive.lastSeq"
"""Every snapshot drawn so far is sent and answered: no reply in flight can change what is shown."""


# ---------------------------------------------------------------------------------------------- helpers


def canvas_box(page: Any) -> dict[str, float]:
    box: dict[str, float] = page.get_by_test_id("canvas").bounding_box()
    return box


def to_viewport(box: dict[str, float], x: float, y: float) -> tuple[float, float]:
    """Logical canvas px (280 x 280) to viewport CSS px."""
    k = box["width"] / 280
    return box["x"] + x * k, box["y"] + y * k


def draw_with_mouse(page: Any, strokes: Strokes, while_down: Callable[[], None] | None = None) -> int:
    """Draw strokes with mouse moves; call ``while_down`` at the end of the first stroke, pen still down.

    Returns:
        The number of mouse moves made.
    """
    box = canvas_box(page)
    moves = 0
    for i, stroke in enumerate(strokes):
        page.mouse.move(*to_viewport(box, *stroke[0]))
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(*to_viewport(box, x, y))
            moves += 1
        if i == 0 and while_down is not None:
            while_down()
        page.mouse.up()
    return moves


def draw_with_touch(
    page: Any, cdp: Any, strokes: Strokes, while_down: Callable[[], None] | None = None
) -> None:
    """Draw strokes with touch events (CDP ``Input.dispatchTouchEvent``), one finger."""
    box = canvas_box(page)
    for i, stroke in enumerate(strokes):
        x, y = to_viewport(box, *stroke[0])
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for px, py in stroke[1:]:
            x, y = to_viewport(box, px, py)
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        if i == 0 and while_down is not None:
            while_down()
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def capture_ws_frames(page: Any) -> list[dict[str, Any]]:
    """Every JSON frame the page sends over its WebSockets, in order."""
    sent: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(json.loads(payload))))
    return sent


SEND_LOG = """
(() => {
  window.__frame = 0;
  const tick = () => { window.__frame++; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  window.__sends = [];
  // The page reads the clock once per send decision (pump), then builds and sends the frame: log that
  // reading, the one its throttle compares, not a later one shifted by JSON.stringify or a GC pause.
  const clock = performance.now.bind(performance);
  performance.now = () => (window.__lastNow = clock());
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const during = window.event ? window.event.type : null;
    window.__sends.push({frame: window.__frame, t: window.__lastNow, during, msg: JSON.parse(data)});
    return send.call(this, data);
  };
})();
"""
"""Init script: log every WebSocket send with its animation frame, the page's send-decision time (ms) and
the event being handled."""


def logged_predicts(page: Any) -> list[dict[str, Any]]:
    sends: list[dict[str, Any]] = page.evaluate("window.__sends")
    return [s for s in sends if s["msg"].get("action") == "predict"]


def assert_throttled(sends: list[dict[str, Any]], strokes: int) -> None:
    """While drawing: at most one snapshot per animation frame, 33 ms apart at least (site/app.js
    MIN_SEND_INTERVAL_MS, by the page's own clock readings); one more per pen-up."""
    live = [s for s in sends if s["during"] is None]
    finals = [s for s in sends if s["during"] == "pointerup"]
    frames = [s["frame"] for s in live]
    assert len(frames) == len(set(frames)), f"two snapshots in one animation frame: {frames}"
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(live)]
    assert all(g >= 33 for g in gaps), f"snapshots closer than 33 ms: {gaps}"
    assert len(finals) == strokes, "exactly one final snapshot per pen-up, sent at once"
    assert sends[-1]["during"] == "pointerup"


def bars(page: Any) -> list[tuple[str, float, bool]]:
    """The chart's rows: (data-digit, data-p, highlighted)."""
    rows: list[tuple[str, float, bool]] = [
        (d, float(p), top)
        for d, p, top in page.eval_on_selector_all(
            '[data-testid="probabilities"] > *',
            "els => els.map(e => [e.dataset.digit, e.dataset.p, e.classList.contains('is-top')])",
        )
    ]
    return rows


def shown_digit(page: Any) -> str:
    text: str = page.locator(DIGIT).inner_text()
    return text


def assert_prediction_shown(page: Any, digit: int) -> None:
    expect(page.locator(DIGIT)).to_have_text(str(digit))
    expect(page.locator(DIGIT)).to_have_attribute("data-digit", str(digit))
    rows = bars(page)
    assert [d for d, _, _ in rows] == [str(i) for i in range(10)]
    assert math.isclose(sum(p for _, p, _ in rows), 1.0, abs_tol=1e-6)
    assert [top for _, _, top in rows] == [i == digit for i in range(10)]
    assert max(range(10), key=lambda i: rows[i][1]) == digit


def assert_cleared(page: Any) -> None:
    expect(page.locator(DIGIT)).to_have_text("—")
    expect(page.locator(DIGIT)).to_have_attribute("data-digit", "")
    assert [(d, p, top) for d, p, top in bars(page)] == [(str(i), 0.0, False) for i in range(10)]
    assert page.get_by_test_id("probabilities").evaluate(
        "el => [...el.children].every(c => c.dataset.p === '0')"
    )
    ink = page.get_by_test_id("canvas").evaluate(
        """c => { const o = document.createElement('canvas'); o.width = c.width; o.height = c.height;
                  const x = o.getContext('2d', {willReadFrequently: true}); x.drawImage(c, 0, 0);
                  const d = x.getImageData(0, 0, c.width, c.height).data;
                  for (let i = 4; i < d.length; i += 4)
                    if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) return true;
                  return false; }"""
    )
    assert not ink, "the canvas still shows ink"


def model_answer(server: LiveServer, frame: dict[str, Any]) -> dict[str, Any]:
    """The server's own answer over HTTP for the strokes the page sent."""
    body = {k: frame[k] for k in ("strokes", "width", "height", "stroke_width")}
    r = httpx.post(f"{server.http_url}/predict", json=body, timeout=10)
    r.raise_for_status()
    answer: dict[str, Any] = r.json()
    return answer


def record_digit_changes(page: Any) -> None:
    page.evaluate(
        """() => { const el = document.querySelector('[data-testid="digit"]'); window.__digits = [];
                   new MutationObserver(() => window.__digits.push(el.textContent))
                     .observe(el, {childList: true, characterData: true, subtree: true}); }"""
    )


def save_screenshot(png: bytes) -> None:
    """Keep the run's screenshot in ``reports/``; refresh the README's copy when asked.

    ``MNIST_LIVE_UPDATE_SCREENSHOT=1`` writes ``docs/screenshot.png`` too, so the README shows the real
    page from a test run without every run dirtying the checkout.
    """
    REPORT_SHOT.parent.mkdir(parents=True, exist_ok=True)
    REPORT_SHOT.write_bytes(png)
    if os.environ.get("MNIST_LIVE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(png)


def points(digit: Digit) -> int:
    return sum(map(len, digit.strokes))


def pick(digits: list[Digit], index: int) -> Digit:
    return digits[index % len(digits)]


def open_relayed_page(
    open_page: Callable[..., Opened],
    server: LiveServer,
    routes: list[WebSocketRoute],
    to_page: Callable[[str | bytes], str | bytes] = lambda m: m,
) -> Opened:
    """Open the page with its WebSocket relayed through Playwright (appended to ``routes``); the server's
    messages pass through ``to_page`` on their way."""

    def relay(ws: WebSocketRoute) -> None:
        upstream = ws.connect_to_server()
        ws.on_message(upstream.send)
        upstream.on_message(lambda message: ws.send(to_page(message)))
        routes.append(ws)

    opened = open_page("about:blank")
    opened.page.route_web_socket(re.compile(r"/ws$"), relay)
    opened.page.goto(server.http_url + "/")
    return opened


# ------------------------------------------------------------------------------------------------ tests


def test_mouse_drawing_updates_live_and_ends_on_the_right_digit(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    opened = open_page(live_server.http_url + "/", viewport={"width": 1000, "height": 620})
    page = opened.page
    page.add_init_script(SEND_LOG)
    sent = capture_ws_frames(page)
    page.reload()
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    expect(page.get_by_test_id("status")).to_have_text(re.compile("WebSocket"))
    assert_cleared(page)

    # The README screenshot comes from this drawing: the smoothest ink that is still quick to draw.
    digit = max(
        (d for d in confident_digits if points(d) <= 80), key=points, default=pick(confident_digits, 7)
    )
    shown_while_down: list[str] = []

    def still_down() -> None:
        page.wait_for_function(HAS_DIGIT)
        shown_while_down.append(shown_digit(page))

    moves = draw_with_mouse(page, digit.strokes, while_down=still_down)
    page.wait_for_function(SETTLED)

    assert shown_while_down and shown_while_down[0].isdigit(), "no prediction before pen-up"
    assert_prediction_shown(page, digit.label)

    predicts = [f for f in sent if f.get("action") == "predict"]
    seqs = [f["seq"] for f in predicts]
    assert seqs == sorted(set(seqs)), f"seq must strictly increase: {seqs}"
    assert 2 <= len(predicts) <= moves + len(digit.strokes)
    assert [s["msg"]["seq"] for s in logged_predicts(page)] == seqs
    assert_throttled(logged_predicts(page), len(digit.strokes))
    final = predicts[-1]
    assert (final["width"], final["height"], final["stroke_width"]) == (280, 280, 16)
    assert len(final["strokes"]) == len(digit.strokes)
    assert final["strokes"][-1][-1] == pytest.approx(digit.strokes[-1][-1], abs=0.51)
    assert all(round(v, 1) == v for s in final["strokes"] for pt in s for v in pt), "rounded to 0.1 px"

    # The page shows exactly what the server says for those strokes.
    answer = model_answer(live_server, final)
    assert answer["digit"] == digit.label
    assert [p for _, p, _ in bars(page)] == pytest.approx(answer["probabilities"], abs=1e-9)

    expect(page.get_by_test_id("latency")).to_have_text(re.compile(r"^\d+ ms"))
    expect(page.locator("#announce")).to_have_text(
        f"Prediction: {digit.label}, {page.locator('#confidence').inner_text()}."
    )
    assert opened.console.errors() == []
    assert all(u.startswith(live_server.http_url) for u in opened.console.requests), opened.console.requests

    save_screenshot(page.screenshot())


def test_pointer_bursts_within_a_frame_become_one_snapshot(
    open_page: Callable[..., Opened], live_server: LiveServer
) -> None:
    """Faster input than frames (a 240 Hz pen, coalesced events): one snapshot per frame at most.

    Real input from Playwright arrives at most once per frame, so bursts are synthetic PointerEvents.
    """
    opened = open_page("about:blank")
    page = opened.page
    page.add_init_script(SEND_LOG)
    page.goto(live_server.http_url + "/")
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    result = page.evaluate(
        """async () => {
          const c = document.querySelector('[data-testid="canvas"]');
          const r = c.getBoundingClientRect();
          let i = 0;
          const ev = (type) => { i++; return new PointerEvent(type, {pointerId: 7, pointerType: 'pen',
            isPrimary: true, button: 0, buttons: type === 'pointerup' ? 0 : 1, bubbles: true,
            cancelable: true, clientX: r.left + 40 + (i % 200), clientY: r.top + 40 + (i % 190)}); };
          const frame = () => new Promise(res => requestAnimationFrame(res));
          c.dispatchEvent(ev('pointerdown'));
          for (let f = 0; f < 12; f++) {
            for (let k = 0; k < 40; k++) c.dispatchEvent(ev('pointermove'));
            await frame();
          }
          const before = window.__sends.length;
          c.dispatchEvent(ev('pointerup'));
          return {moves: 12 * 40, finalSentAtOnce: window.__sends.length === before + 1};
        }"""
    )
    sends = logged_predicts(page)
    assert result["finalSentAtOnce"], "the pen-up snapshot is sent in the pointerup handler"
    assert 3 <= len(sends) <= 12 + 1, f"{len(sends)} snapshots for {result['moves']} moves in 12 frames"
    assert_throttled(sends, strokes=1)
    final = sends[-1]["msg"]
    assert len(final["strokes"]) == 1 and len(final["strokes"][0]) > 100, (
        "the final snapshot holds every point"
    )
    page.wait_for_function(SETTLED)
    assert opened.console.errors() == []


def test_touch_drawing_predicts_and_never_scrolls_the_page(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    opened = open_page(
        live_server.http_url + "/",
        viewport={"width": 390, "height": 700},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    box = canvas_box(page)
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, "the canvas fits the phone's width"
    backing = page.get_by_test_id("canvas").evaluate("c => [c.width, c.height]")
    assert backing == [round(box["width"] * 3)] * 2, "backing store scaled by devicePixelRatio"
    assert page.evaluate("document.documentElement.scrollHeight") > 700, "the page must be scrollable"

    cdp = opened.context.new_cdp_session(page)
    digit = pick(confident_digits, 3)
    shown_while_down: list[str] = []

    def still_down() -> None:
        page.wait_for_function(HAS_DIGIT)
        shown_while_down.append(shown_digit(page))

    # A vertical swipe over the canvas first: it draws, it does not scroll.
    draw_with_touch(page, cdp, [[[140, 260], [140, 200], [140, 140], [140, 80], [140, 20]]])
    page.wait_for_function(SETTLED)
    assert page.evaluate("scrollY") == 0
    page.get_by_test_id("clear").tap()
    assert_cleared(page)

    draw_with_touch(page, cdp, digit.strokes, while_down=still_down)
    page.wait_for_function(SETTLED)
    assert shown_while_down and shown_while_down[0].isdigit(), "no prediction before the finger lifted"
    assert_prediction_shown(page, digit.label)
    assert page.evaluate("scrollY") == 0

    # Control: the same swipe outside the canvas does scroll, so the check above means something.
    x = 20.0
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": 650}]})
    for i in range(1, 11):
        point = {"x": x, "y": 650 - 30 * i}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_function("() => scrollY > 0")
    assert opened.console.errors() == []


def test_clear_button_escape_and_keyboard_reset_digit_and_bars(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    opened = open_page(live_server.http_url + "/")
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    digit = pick(confident_digits, 0)

    draw_with_mouse(page, digit.strokes)
    page.wait_for_function(SETTLED)
    assert_prediction_shown(page, digit.label)
    page.get_by_test_id("clear").click()
    assert_cleared(page)

    # Escape, pressed while replies for the old drawing may still be in flight: they must not repaint it.
    record_digit_changes(page)
    draw_with_mouse(page, digit.strokes)
    page.keyboard.press("Escape")
    assert_cleared(page)
    page.wait_for_timeout(300)
    assert_cleared(page)

    # Escape mid-stroke: the rest of that stroke draws nothing and breaks nothing.
    box = canvas_box(page)
    page.mouse.move(*to_viewport(box, 60, 60))
    page.mouse.down()
    page.mouse.move(*to_viewport(box, 120, 120))
    page.keyboard.press("Escape")
    page.mouse.move(*to_viewport(box, 200, 200))
    page.mouse.up()
    page.wait_for_timeout(200)
    assert_cleared(page)

    # Keyboard only: Tab reaches Clear, it shows a focus ring, Enter activates it.
    draw_with_mouse(page, digit.strokes)
    page.wait_for_function(SETTLED)
    page.locator("body").focus()
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.testid") == "clear":
            break
    assert page.evaluate("document.activeElement.dataset.testid") == "clear", "Clear is not reachable by Tab"
    outline = page.get_by_test_id("clear").evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline not in ("", "none"), "Clear has no visible focus style"
    page.keyboard.press("Enter")
    assert_cleared(page)
    assert opened.console.errors() == []


def test_falls_back_to_http_when_the_websocket_is_unreachable(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    opened = open_page(live_server.http_url + "/?ws=ws://127.0.0.1:1/ws")
    page = opened.page
    posts: list[dict[str, Any]] = []
    page.on("request", lambda r: posts.append(json.loads(r.post_data)) if r.method == "POST" else None)
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "http")
    expect(page.get_by_test_id("status")).to_have_text("HTTP fallback")

    digit = pick(confident_digits, 5)
    shown_while_down: list[str] = []

    def still_down() -> None:
        page.wait_for_function(HAS_DIGIT)
        shown_while_down.append(shown_digit(page))

    draw_with_mouse(page, digit.strokes, while_down=still_down)
    page.wait_for_function(SETTLED)
    assert shown_while_down and shown_while_down[0].isdigit(), "no prediction before pen-up over HTTP"
    assert_prediction_shown(page, digit.label)
    assert len([p for p in posts if p["strokes"]]) >= 2, "live updates over HTTP too, not only on pen-up"
    assert set(posts[-1]) == {"strokes", "width", "height", "stroke_width"}
    assert len(posts[-1]["strokes"]) == len(digit.strokes), "the final snapshot went out on pen-up"
    expect(page.get_by_test_id("latency")).to_have_text(re.compile(r"^\d+ ms"))

    # Only the browser's own report of the refused WebSocket may appear in the console.
    refused = re.compile(r"WebSocket connection to 'ws://127\.0\.0\.1:1/ws' failed")
    assert opened.console.errors(allow=lambda m: bool(refused.search(m))) == []


def test_shows_offline_when_neither_websocket_nor_http_answers(
    open_page: Callable[..., Opened], live_server: LiveServer
) -> None:
    opened = open_page(live_server.http_url + "/?ws=ws://127.0.0.1:1/ws&api=http://127.0.0.1:1/predict")
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "offline")
    expect(page.get_by_test_id("status")).to_have_text("Offline")
    assert opened.console.page_errors == []


def test_a_reply_older_than_the_one_shown_is_ignored(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    routes: list[WebSocketRoute] = []
    opened = open_relayed_page(open_page, live_server, routes)
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")

    digit = pick(confident_digits, 2)
    draw_with_mouse(page, digit.strokes)
    page.wait_for_function(SETTLED)
    assert_prediction_shown(page, digit.label)
    shown = page.evaluate("window.mnistLive.shownSeq")
    assert shown >= 2
    record_digit_changes(page)

    def reply(seq: int, d: int) -> None:
        probs = [0.0] * 10
        probs[d] = 1.0
        routes[-1].send(
            json.dumps(
                {
                    "type": "prediction",
                    "seq": seq,
                    "status": "ok",
                    "digit": d,
                    "probabilities": probs,
                    "confidence": 1.0,
                    "latency_ms": 1.0,
                }
            )
        )

    stale, fresh, fresher = (digit.label + 1) % 10, (digit.label + 2) % 10, (digit.label + 3) % 10
    reply(shown - 1, stale)  # older than the one shown: ignored
    reply(shown, stale)  # a duplicate of the one shown: ignored
    reply(shown + 100, fresh)  # newer (server-side ordering, e.g. over AWS): shown
    reply(shown + 50, stale)  # arrives late, out of order: ignored
    reply(shown + 101, fresher)
    expect(page.locator(DIGIT)).to_have_text(str(fresher))
    changes = page.evaluate("window.__digits")
    assert str(stale) not in changes, changes
    assert changes == [str(fresh), str(fresher)]
    assert_prediction_shown(page, fresher)
    assert opened.console.errors() == []


def test_a_letter_is_not_a_digit_and_a_digit_drawn_after_it_is_shown(
    open_page: Callable[..., Opened],
    live_server: LiveServer,
    confident_digits: list[Digit],
    letter_h: Strokes,
) -> None:
    opened = open_page(live_server.http_url + "/")
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    draw_with_mouse(page, letter_h)
    page.wait_for_function(SETTLED)
    expect(page.locator(DIGIT)).to_have_text("Not a digit")
    expect(page.locator(DIGIT)).to_have_attribute("data-status", "not_a_digit")
    expect(page.locator(DIGIT)).to_have_attribute("data-digit", "")
    rows = bars(page)
    assert math.isclose(sum(p for _, p, _ in rows), 1.0, abs_tol=1e-6), "the digits' probabilities stay"
    assert not any(top for _, _, top in rows), "no digit is highlighted"
    expect(page.locator("#announce")).to_have_text(re.compile(r"^Not a digit, \d+(\.\d)?% sure\.$"))

    page.get_by_test_id("clear").click()
    assert_cleared(page)
    digit = pick(confident_digits, 1)
    draw_with_mouse(page, digit.strokes)
    page.wait_for_function(SETTLED)
    assert_prediction_shown(page, digit.label)
    expect(page.locator(DIGIT)).to_have_attribute("data-status", "ok")
    assert opened.console.errors() == []


def test_not_a_digit_mid_stroke_keeps_the_digit_and_shows_at_pen_up(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    # The relay turns the server's answers into not_a_digit once the digit is on screen, mid-stroke.
    convert = {"on": False}

    def rewrite(message: str | bytes) -> str | bytes:
        msg = json.loads(message)
        if convert["on"] and msg.get("type") == "prediction":
            msg.update(status="not_a_digit", digit=None, confidence=None, not_a_digit_score=0.97)
        return json.dumps(msg)

    opened = open_relayed_page(open_page, live_server, [], rewrite)
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    digit = pick(confident_digits, 0)
    shown: list[str] = []

    def still_down() -> None:
        page.wait_for_function(HAS_DIGIT)
        page.wait_for_function(QUIET)  # a reply still in flight may rightly show another digit
        shown.append(shown_digit(page))
        record_digit_changes(page)
        convert["on"] = True
        before = page.evaluate("window.mnistLive.lastSeq")
        box = canvas_box(page)
        for x, y in reversed(digit.strokes[0][-6:]):  # more ink, pen still down: new frames
            page.mouse.move(*to_viewport(box, x, y))
        page.wait_for_function(f"() => window.mnistLive.lastSeq > {before}")
        page.wait_for_function(SETTLED)
        assert page.evaluate("window.__digits") == [], "a mid-stroke not_a_digit replaced the digit"
        expect(page.locator(DIGIT)).to_have_text(shown[0])

    draw_with_mouse(page, digit.strokes[:1], while_down=still_down)
    page.wait_for_function(SETTLED)
    expect(page.locator(DIGIT)).to_have_text("Not a digit")  # the pen-up snapshot's answer is shown
    assert opened.console.errors() == []


def test_reconnects_and_switches_back_from_http_to_the_websocket(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    connections: list[WebSocketRoute] = []

    def flaky(ws: WebSocketRoute) -> None:
        connections.append(ws)
        if len(connections) == 1:
            ws.close(code=1011, reason="test: first connection drops")  # never reaches the server
        else:
            ws.connect_to_server()

    opened = open_page("about:blank")
    page = opened.page
    page.route_web_socket(re.compile(r"/ws$"), flaky)
    states: list[str] = []

    def on_state(state: str) -> None:  # expose_function needs a plain function
        states.append(state)

    page.expose_function("__state", on_state)
    page.add_init_script(
        """addEventListener('DOMContentLoaded', () => {
             const el = document.querySelector('[data-testid="status"]');
             new MutationObserver(() => window.__state(el.dataset.state))
               .observe(el, {attributes: true}); });"""
    )
    page.goto(live_server.http_url + "/")
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws", timeout=5_000)
    assert "http" in states and states[-1] == "ws", states
    assert len(connections) == 2

    digit = pick(confident_digits, 4)
    draw_with_mouse(page, digit.strokes)
    page.wait_for_function(SETTLED)
    assert_prediction_shown(page, digit.label)
    assert opened.console.errors() == []


def test_pings_every_twenty_seconds_and_gets_pongs(
    open_page: Callable[..., Opened], live_server: LiveServer
) -> None:
    opened = open_page("about:blank")
    page = opened.page
    frames: list[tuple[str, str]] = []
    page.on(
        "websocket",
        lambda ws: (
            ws.on("framesent", lambda p: frames.append(("sent", p))),
            ws.on("framereceived", lambda p: frames.append(("received", p))),
        ),
    )
    page.clock.install()
    page.goto(live_server.http_url + "/")
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    assert not any(p == '{"action":"ping"}' for _, p in frames)
    page.clock.run_for(21_000)
    for _ in range(100):  # the pong travels over a real socket: real time
        if any(k == "received" and json.loads(p).get("type") == "pong" for k, p in frames):
            break
        page.wait_for_timeout(20)
    assert ("sent", '{"action":"ping"}') in frames
    assert any(k == "received" and json.loads(p).get("type") == "pong" for k, p in frames)
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    assert opened.console.errors() == []


def test_accessibility_tree_names_every_control(
    open_page: Callable[..., Opened], live_server: LiveServer, confident_digits: list[Digit]
) -> None:
    opened = open_page(live_server.http_url + "/")
    page = opened.page
    expect(page.get_by_test_id("status")).to_have_attribute("data-state", "ws")
    expect(page.locator("body")).to_match_aria_snapshot(
        """
        - banner:
          - heading "mnist-live" [level=1]
          - status "Connection": /Live/
        - main:
          - region "Drawing area":
            - img "Drawing canvas, empty"
            - button "Clear"
          - region "Prediction":
            - paragraph: "Predicted digit:"
            - text: "—"
            - paragraph: draw a digit
            - list "Probability of each digit":
              - listitem: 0 0%
              - listitem: 1 0%
              - listitem: 2 0%
              - listitem: 3 0%
              - listitem: 4 0%
              - listitem: 5 0%
              - listitem: 6 0%
              - listitem: 7 0%
              - listitem: 8 0%
              - listitem: 9 0%
        """
    )
    digit = pick(confident_digits, 1)
    draw_with_mouse(page, digit.strokes)
    page.wait_for_function(SETTLED)
    canvas = page.get_by_role("img", name=re.compile(r"^Drawing canvas with your handwriting, \d+ strokes?$"))
    expect(canvas).to_be_visible()
    expect(page.get_by_role("list", name="Probability of each digit").get_by_role("listitem")).to_have_count(
        10
    )
    live = page.locator("[aria-live=polite]")
    expect(live).to_have_text(re.compile(rf"^Prediction: {digit.label}, \d+% sure\.$"))
    expect(page.get_by_role("button", name="Clear")).to_have_attribute("aria-keyshortcuts", "Escape")
    assert opened.console.errors() == []
