"""Replay recorded pen inks against a server, as people drawing, and measure what they would feel.

``mnist-live replay FILE --url URL`` runs virtual users concurrently (asyncio). Each user draws inks one
after another on one connection, at the recorded pace, and sends full canvas snapshots like the page
(``site/app.js``): at most ``fps`` per second while the pen moves, and always one at each pen-up. It reads
the live predictions and reports final accuracy, time-to-correct, round-trip percentiles, coalescing,
errors and throughput (a rich table and a JSON report).

Transports, by URL scheme:

- ``ws://`` / ``wss://``: protocol v1 (``docs/protocol.md``); the URL is used as given (local server:
  ``ws://127.0.0.1:8000/ws``; API Gateway: ``wss://{api}.execute-api.{region}.amazonaws.com/{stage}``).
- ``http://`` / ``https://``: ``POST /predict`` (appended unless the path already ends with it), the
  final snapshot of each ink; with ``http_intermediate`` also snapshots while drawing, one request in
  flight at a time and the newest snapshot next, as the page's HTTP fallback does.

Pace. Recordings may carry per-point timestamps ``t`` (ms). UNIPEN has none: its points are evenly spaced
at the source's ``POINTS_PER_SECOND`` (``unipen1a_sources.json``, read from beside the recording), and
sources not listed there use :data:`DEFAULT_POINTS_PER_SECOND`. Pen-up gaps between strokes are not
recorded either; they last :data:`DEFAULT_PEN_UP_MS`. ``speed`` divides every duration.

Placement. Each ink is laid on the 280 x 280 canvas at a random size and position
(:func:`shared.inks.random_placement`), seeded by ``seed`` and the ink's index so a run is reproducible
whatever the interleaving of users.

Definitions (per ink):

- *Displayed answer*: as on the page, a reply is shown only if its ``seq`` is above every reply received
  before (out-of-order replies from a stateless backend are ignored), and a ``not_a_digit`` reply to a frame
  sent while the pen is down is shown only if ``not_a_digit`` is already shown (a digit's first strokes
  often read as no digit; the page holds what it shows until the pen lifts).
- *Time-to-correct*: the first displayed answer from which every displayed answer up to the end of the
  ink is the right digit. ``ttc_fraction`` is the share of the ink's points in that answer's snapshot;
  ``ttc_ms`` is the time from the first pen-down to that answer's arrival, ms. None if the final answer
  is wrong. Over HTTP without intermediate snapshots only the whole ink is sent, so it is 1.0.
- *Round trip*: send of a frame to arrival of the reply with its ``seq``, ms; only answered frames count.
- *Coalesced*: frames sent but never answered (the local server keeps only the newest pending frame).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from shared.inks import Ink, Strokes, drawn_prefix, load_inks, random_placement

DEFAULT_POINTS_PER_SECOND = 100.0
"""Pen sampling rate for inks without timestamps from sources of unknown rate, points per second."""

DEFAULT_PEN_UP_MS = 200.0
"""Time between a stroke's last point and the next stroke's first when not recorded, ms."""

CANVAS = 280
"""The page's logical canvas side, px (``site/app.js``)."""

STROKE_WIDTH = 16.0
"""The page's pen diameter, px."""

SOURCES_FILE = "unipen1a_sources.json"
"""Per-source metadata looked up beside a recording (``POINTS_PER_SECOND`` per UNIPEN source)."""


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay.

    Attributes:
        concurrency: Virtual users drawing at the same time.
        fps: Most snapshots per second each user sends while drawing (the page sends ~30); pen-ups are
            never throttled.
        speed: Pen speed multiplier (2 draws twice as fast as recorded).
        seed: Seed of the canvas placement (size and position of each ink).
        points_per_second: Sampling rate per ``source`` id for inks without timestamps, points/s.
        default_points_per_second: Rate for sources not in ``points_per_second``, points/s.
        pen_up_ms: Gap between strokes when not recorded, ms (before ``speed``).
        box_range: Range of the drawn digit's longer side, canvas px.
        http_intermediate: Over HTTP, also post snapshots while drawing (one request in flight).
        timeout_s: Longest wait for the answer to an ink's final frame, seconds.
        drain_s: After a user's last ink, how long a silence ends the wait for replies still expected
            (late replies from a stateless backend), seconds.
        token: Access token (``?token=`` on WebSocket URLs, ``Authorization: Bearer`` over HTTP).
    """

    concurrency: int = 16
    fps: float = 30.0
    speed: float = 1.0
    seed: int = 0
    points_per_second: Mapping[str, float] = field(default_factory=dict)
    default_points_per_second: float = DEFAULT_POINTS_PER_SECOND
    pen_up_ms: float = DEFAULT_PEN_UP_MS
    box_range: tuple[float, float] = (90.0, 230.0)
    http_intermediate: bool = False
    timeout_s: float = 10.0
    drain_s: float = 0.5
    token: str | None = None


# ----------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedFrame:
    """One snapshot a user sends.

    Attributes:
        t_ms: Send time after the ink's first pen-down, ms.
        points: Points drawn so far (the snapshot is the first ``points`` points in drawing order).
        pen_up: True for a frame sent at a pen-up (never throttled).
    """

    t_ms: float
    points: int
    pen_up: bool


@dataclass(frozen=True)
class InkPlan:
    """An ink laid on the canvas with its timeline and the frames to send.

    Attributes:
        index: Position in the recording. label: The digit written (a number: its digits, a string).
        strokes: Canvas px, y down. times_ms: Per-point times after the first pen-down, ms, per stroke.
        frames: What to send, in order; the last one is at the final pen-up.
        width: Canvas width, px (280 px high). mode: ``"digit"``, or ``"number"`` (number mode).
    """

    index: int
    label: int | str
    strokes: Strokes
    times_ms: list[list[float]]
    frames: list[PlannedFrame]
    width: float = CANVAS
    mode: str = "digit"

    @property
    def total_points(self) -> int:
        """Points in the whole ink."""
        return sum(len(s) for s in self.strokes)

    @property
    def duration_ms(self) -> float:
        """Time from first pen-down to last pen-up, ms."""
        return self.times_ms[-1][-1] if self.times_ms and self.times_ms[-1] else 0.0

    def snapshot(self, points: int) -> Strokes:
        """The first ``points`` points, as strokes (canvas px, y down)."""
        return drawn_prefix(self.strokes, points)


def load_source_rates(path: str | Path) -> dict[str, float]:
    """Read ``POINTS_PER_SECOND`` per source from a ``unipen1a_sources.json`` file.

    A source with several header values (``unipen1a-syn``: 100 and 200) gets the most common one, the
    lowest on a tie.

    Args:
        path: The JSON file (``{source: {"header_values": [{"POINTS_PER_SECOND": "100", ...}]}}``).

    Returns:
        Points per second by source id.

    Raises:
        OSError: the file cannot be read. ValueError: it is not in that format.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object keyed by source id")
    rates: dict[str, float] = {}
    for source, meta in data.items():
        values = [
            float(h["POINTS_PER_SECOND"])
            for h in (meta.get("header_values") or [])
            if isinstance(h, dict) and "POINTS_PER_SECOND" in h
        ]
        if values:
            counts = Counter(values)
            rates[source] = min(counts, key=lambda v: (-counts[v], v))
    return rates


def ink_times_ms(ink: Ink, options: ReplayOptions) -> list[list[float]]:
    """Per-point times of an ink after its first pen-down, ms, per stroke (already divided by speed).

    Recorded timestamps (``ink.times``) are used when present and consistent with the strokes; otherwise
    points are evenly spaced at the source's rate and strokes are separated by ``options.pen_up_ms``.

    Args:
        ink: The recording.
        options: Rates, pen-up gap and speed.

    Returns:
        One list of non-decreasing times per stroke, starting at 0.
    """
    if len(ink.times) == len(ink.strokes) and all(
        len(t) == len(s) for t, s in zip(ink.times, ink.strokes, strict=True)
    ):
        t0 = float(ink.times[0][0]) if ink.times and ink.times[0] else 0.0
        out: list[list[float]] = []
        last = 0.0
        for stroke_times in ink.times:
            row = []
            for t in stroke_times:
                last = max(last, (float(t) - t0) / options.speed)  # tolerate clock jitter
                row.append(last)
            out.append(row)
        return out
    rate = options.points_per_second.get(ink.source, options.default_points_per_second)
    step = 1000.0 / rate / options.speed
    gap = options.pen_up_ms / options.speed
    out = []
    cursor = 0.0
    for k, stroke in enumerate(ink.strokes):
        if k:
            cursor += gap
        out.append([cursor + j * step for j in range(len(stroke))])
        cursor = out[-1][-1] if out[-1] else cursor
    return out


def schedule_frames(times_ms: Sequence[Sequence[float]], fps: float) -> list[PlannedFrame]:
    """The snapshots a page sends for this timeline (``site/app.js``'s throttle).

    A change sends a frame at once if the previous frame left at least ``1/fps`` s ago; otherwise one
    frame goes out when that interval has passed, with every point drawn by then. A pen-up always sends
    a frame at once.

    Args:
        times_ms: Per-point times, ms, per stroke.
        fps: Most frames per second while drawing.

    Returns:
        Frames in time order; the last one is at the last pen-up.
    """
    interval = 1000.0 / fps
    frames: list[PlannedFrame] = []
    last = -math.inf
    pending = False
    drawn = 0
    for stroke in times_ms:
        for j, t in enumerate(stroke):
            if pending and last + interval < t:
                last = last + interval
                frames.append(PlannedFrame(last, drawn, False))
                pending = False
            drawn += 1
            if j == len(stroke) - 1:
                frames.append(PlannedFrame(t, drawn, True))
                last, pending = t, False
            elif t - last >= interval:
                frames.append(PlannedFrame(t, drawn, False))
                last, pending = t, False
            else:
                pending = True
    return frames


def plan_ink(ink: Ink, index: int, options: ReplayOptions) -> InkPlan:
    """Lay an ink on the canvas (seeded by ``options.seed`` and ``index``) and schedule its frames."""
    rng = np.random.default_rng([options.seed, index])
    strokes = random_placement(ink, rng, CANVAS, options.box_range)
    times = ink_times_ms(ink, options)
    return InkPlan(index, ink.label, strokes, times, schedule_frames(times, options.fps))


# ------------------------------------------------------------------------------------------------ results


@dataclass
class InkResult:
    """What one user saw while drawing one ink.

    Attributes:
        index: Position in the recording. label: The digit written (a number's digits, in number
            mode). writer: Writer pseudonym.
        points: Points in the ink. duration_ms: Drawing time, ms (after ``speed``).
        digit: The final displayed digit, or number in number mode (None: no answer, no_digit or
            not_a_digit).
        correct: ``digit == label``.
        status: The final displayed answer's status (``ok``, ``not_a_digit``, ``no_digit``; None: no answer).
        ttc_fraction: Time-to-correct as a share of the ink's points (see the module docstring).
        ttc_ms: Time-to-correct after the first pen-down, ms.
        final_latency_ms: Final frame's send to its reply, ms.
        frames_sent / frames_answered: Frames of this ink sent and answered.
        errors: Error codes received or raised for this ink.
    """

    index: int
    label: int | str
    writer: str
    points: int
    duration_ms: float
    digit: int | str | None = None
    status: str | None = None
    correct: bool = False
    ttc_fraction: float | None = None
    ttc_ms: float | None = None
    final_latency_ms: float | None = None
    frames_sent: int = 0
    frames_answered: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Shown:
    """A displayed answer: its seq, digit, snapshot fraction and arrival time after pen-down (ms)."""

    seq: int
    digit: int | str | None
    fraction: float
    at_ms: float
    status: str | None = None


class _InkRun:
    """Book-keeping of one ink being drawn: sent frames, displayed answers, round trips."""

    def __init__(self, plan: InkPlan, ink: Ink, start: float) -> None:
        self.plan = plan
        self.start = start
        self.result = InkResult(plan.index, plan.label, ink.writer, plan.total_points, plan.duration_ms)
        self.shown: list[_Shown] = []
        self.last_seq = 0  # the newest reply received (shown or held)
        self.pen_up_seqs: set[int] = set()  # frames sent at a pen-up
        self.final_seq: int | None = None
        self.done = asyncio.Event()

    def answer(
        self, seq: int, digit: int | str | None, fraction: float, now: float, status: str | None = None
    ) -> None:
        """Record a prediction (its digit or number, and status); show it, as the page would, if newest.

        As on the page (``site/app.js``), a ``not_a_digit`` reply to a frame sent while the pen is down is
        held (what is shown stays) unless ``not_a_digit`` is already shown.
        """
        self.result.frames_answered += 1
        if seq <= self.last_seq:
            return
        self.last_seq = seq
        showing = self.shown[-1].status if self.shown else None
        if status == "not_a_digit" and seq not in self.pen_up_seqs and showing != "not_a_digit":
            return
        self.shown.append(_Shown(seq, digit, fraction, (now - self.start) * 1000.0, status))

    def finish(self) -> None:
        """Compute the final digit and time-to-correct from the displayed answers."""
        r = self.result
        if not self.shown:
            return
        r.digit, r.status = self.shown[-1].digit, self.shown[-1].status
        r.correct = r.digit == r.label
        if not r.correct:
            return
        first = len(self.shown) - 1
        while first > 0 and self.shown[first - 1].digit == r.label:
            first -= 1
        r.ttc_fraction = round(self.shown[first].fraction, 4)
        r.ttc_ms = round(self.shown[first].at_ms, 2)


class _Recorder:
    """Run-wide counters shared by all users."""

    def __init__(self, on_ink: Callable[[InkResult], None] | None) -> None:
        self.round_trips_ms: list[float] = []
        self.results: list[InkResult] = []
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.answered = 0
        self.out_of_order = 0
        self.on_ink = on_ink
        self.last_answer_at = 0.0
        self.connect_error: str | None = None

    def error(self, code: str, run: _InkRun | None) -> None:
        self.errors[code] += 1
        if run is not None:
            run.result.errors.append(code)

    def done(self, run: _InkRun) -> None:
        run.finish()
        self.results.append(run.result)
        if self.on_ink is not None:
            self.on_ink(run.result)


# ------------------------------------------------------------------------------------------------ clients


def transport_of(url: str) -> str:
    """``"websocket"`` or ``"http"`` by URL scheme.

    Raises:
        ValueError: not a ws, wss, http or https URL with a host.
    """
    parts = urlsplit(url)
    if not parts.netloc:
        raise ValueError(f"not a URL with a host: {url!r}")
    if parts.scheme in ("ws", "wss"):
        return "websocket"
    if parts.scheme in ("http", "https"):
        return "http"
    raise ValueError(f"unsupported URL scheme {parts.scheme!r} (use ws://, wss://, http:// or https://)")


def predict_endpoint(url: str) -> str:
    """The ``POST /predict`` URL for a server base URL (kept if it already ends with ``/predict``)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/predict"):
        path += "/predict"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    from urllib.parse import quote

    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + "token=" + quote(token, safe="")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _message(plan: InkPlan, frame: PlannedFrame, seq: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "strokes": plan.snapshot(frame.points),
        "width": plan.width,
        "height": CANVAS,
        "stroke_width": STROKE_WIDTH,
    }
    if plan.mode != "digit":
        body["mode"] = plan.mode
    if seq is not None:
        body = {"action": "predict", "seq": seq, **body}
    return body


class _WebSocketUser:
    """One virtual user on one WebSocket connection (reconnects after a lost connection)."""

    def __init__(self, url: str, options: ReplayOptions, rec: _Recorder) -> None:
        self.url = _with_token(url, options.token)
        self.options = options
        self.rec = rec
        self.loop = asyncio.get_running_loop()
        self.seq = 0
        self.sent: dict[int, tuple[float, float, _InkRun]] = {}  # seq -> (send time, fraction, ink)
        self.run: _InkRun | None = None
        self.closed = False
        self.replied = asyncio.Event()

    async def draw_all(self, work: Iterator[tuple[Ink, InkPlan]]) -> None:
        from websockets.asyncio.client import connect

        ws: Any = None
        reader: asyncio.Task[None] | None = None
        try:
            for ink, plan in work:
                if ws is None:
                    try:
                        ws = await asyncio.wait_for(
                            connect(self.url, open_timeout=None, max_size=1 << 20, ping_interval=None),
                            self.options.timeout_s,
                        )
                    except Exception as exc:
                        self.rec.error("connect_failed", None)
                        self.rec.connect_error = _describe(exc)
                        self._fail(ink, plan, "connect_failed")
                        continue
                    self.closed = False
                    reader = asyncio.create_task(self._read(ws))
                if not await self._draw(ws, ink, plan):
                    await _close(ws, reader)  # lost: the next ink reconnects
                    ws, reader = None, None
            await self._drain()
        finally:
            await _close(ws, reader)

    def _fail(self, ink: Ink, plan: InkPlan, code: str) -> None:
        run = _InkRun(plan, ink, self.loop.time())
        run.result.errors.append(code)
        self.rec.done(run)

    async def _draw(self, ws: Any, ink: Ink, plan: InkPlan) -> bool:
        """Draw one ink; False if the connection was lost."""
        run = _InkRun(plan, ink, self.loop.time())
        self.run = run
        try:
            for frame in plan.frames:
                delay = run.start + frame.t_ms / 1000.0 - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.seq += 1
                text = json.dumps(_message(plan, frame, self.seq), separators=(",", ":"))
                self.sent[self.seq] = (self.loop.time(), frame.points / plan.total_points, run)
                if frame.pen_up:
                    run.pen_up_seqs.add(self.seq)
                await ws.send(text)
                run.result.frames_sent += 1
                self.rec.sent += 1
            run.final_seq = self.seq
            if not self.closed:
                await asyncio.wait_for(run.done.wait(), self.options.timeout_s)
            if run.result.final_latency_ms is None and self.closed:
                self.rec.error("connection_closed", run)
                return False
            return True
        except TimeoutError:
            self.rec.error("timeout", run)
            return True
        except Exception:
            self.rec.error("connection_closed", run)
            return False
        finally:
            self.rec.done(run)

    async def _drain(self) -> None:
        """Wait for replies still expected while they keep coming.

        A stateless backend answers every frame, possibly late; the local server never answers
        coalesced frames. So stop once no reply came for ``drain_s`` (or after ``timeout_s``).
        """
        deadline = self.loop.time() + self.options.timeout_s
        while self.sent and not self.closed:
            remaining = min(self.options.drain_s, deadline - self.loop.time())
            if remaining <= 0:
                break
            self.replied.clear()
            try:
                await asyncio.wait_for(self.replied.wait(), remaining)
            except TimeoutError:
                break

    async def _read(self, ws: Any) -> None:
        """Dispatch replies until the connection ends; then wake the ink waiting for its answer."""
        try:
            async for raw in ws:
                self._on_reply(raw, self.loop.time())
                self.replied.set()
        except Exception:
            pass  # closed abnormally: the ink being drawn records connection_closed
        finally:
            self.closed = True
            if self.run is not None:
                self.run.done.set()

    def _on_reply(self, raw: str | bytes, now: float) -> None:
        try:
            msg = json.loads(raw)
        except (TypeError, ValueError):
            self.rec.error("client_bad_reply", self.run)
            return
        kind = msg.get("type")
        seq = msg.get("seq")
        entry = self.sent.pop(seq, None) if isinstance(seq, int) else None
        if kind == "pong":
            return
        if kind == "error":
            code = str((msg.get("error") or {}).get("code", "unknown"))
            self.rec.error(code, entry[2] if entry else self.run)
            if entry is not None:
                self._settle(entry[2], seq)
            return
        if kind != "prediction" or entry is None:
            self.rec.error("client_unexpected_reply", self.run)
            return
        sent_at, fraction, run = entry
        self.rec.round_trips_ms.append((now - sent_at) * 1000.0)
        self.rec.answered += 1
        self.rec.last_answer_at = now
        if seq < run.last_seq:
            self.rec.out_of_order += 1
        run.answer(seq, _reading(msg), fraction, now, msg.get("status"))
        if seq == run.final_seq:
            run.result.final_latency_ms = round((now - sent_at) * 1000.0, 3)
        self._settle(run, seq)

    @staticmethod
    def _settle(run: _InkRun, seq: int) -> None:
        if run.final_seq is not None and seq >= run.final_seq:
            run.done.set()


async def _close(ws: Any, reader: asyncio.Task[None] | None) -> None:
    """Stop a connection's reader (waiting for it, so it cannot touch the next connection) and close."""
    if reader is not None:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
    if ws is not None:
        with contextlib.suppress(Exception):
            await ws.close()


class _HttpUser:
    """One virtual user posting snapshots to ``POST /predict``."""

    def __init__(self, client: Any, url: str, options: ReplayOptions, rec: _Recorder) -> None:
        self.client = client
        self.url = url
        self.options = options
        self.rec = rec
        self.loop = asyncio.get_running_loop()

    async def draw_all(self, work: Iterator[tuple[Ink, InkPlan]]) -> None:
        for ink, plan in work:
            run = _InkRun(plan, ink, self.loop.time())
            try:
                await self._draw(run)
            finally:
                self.rec.done(run)

    async def _draw(self, run: _InkRun) -> None:
        plan = run.plan
        frames = plan.frames if self.options.http_intermediate else plan.frames[-1:]
        nxt = 0
        seq = 0
        while nxt < len(frames):
            elapsed_ms = (self.loop.time() - run.start) * 1000.0
            due = nxt
            while due + 1 < len(frames) and frames[due + 1].t_ms <= elapsed_ms:
                due += 1  # newest snapshot drawn by now: older unsent ones are skipped, as on the page
            wait = frames[due].t_ms - elapsed_ms
            if wait > 0:
                await asyncio.sleep(wait / 1000.0)
                continue
            frame = frames[due]
            nxt = due + 1
            seq += 1
            final = nxt == len(frames)
            if final:
                run.final_seq = seq
            sent_at = self.loop.time()
            run.result.frames_sent += 1
            self.rec.sent += 1
            if frame.pen_up:
                run.pen_up_seqs.add(seq)
            try:
                response = await self.client.post(
                    self.url, json=_message(plan, frame, None), timeout=self.options.timeout_s
                )
            except Exception as exc:
                import httpx

                code = "timeout" if isinstance(exc, httpx.TimeoutException) else "connect_failed"
                if code == "connect_failed":
                    self.rec.connect_error = _describe(exc)
                self.rec.error(code, run)
                continue
            now = self.loop.time()
            body = _json_or_none(response)
            if response.status_code != 200 or not isinstance(body, dict):
                err = body.get("error") if isinstance(body, dict) else None
                server_code = err.get("code") if isinstance(err, dict) else None
                self.rec.error(str(server_code or f"http_{response.status_code}"), run)
                continue
            rtt = (now - sent_at) * 1000.0
            self.rec.round_trips_ms.append(rtt)
            self.rec.answered += 1
            self.rec.last_answer_at = now
            run.answer(seq, _reading(body), frame.points / plan.total_points, now, body.get("status"))
            if final:
                run.result.final_latency_ms = round(rtt, 3)


def _reading(reply: dict[str, Any]) -> Any:
    """The answer a reply displays: its ``number`` in number mode, else its ``digit``."""
    return reply.get("number") if reply.get("mode") == "number" else reply.get("digit")


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------- report


def _percentiles(values: Sequence[float], qs: Sequence[int]) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


@dataclass
class ReplayReport:
    """The outcome of a replay (``to_dict`` is the JSON report).

    Attributes:
        url / transport: Target and ``"websocket"`` or ``"http"``.
        options: Settings of the run. duration_s: Wall time of the run, seconds.
        inks: Inks attempted. completed: Inks whose final frame was answered. correct: Right final digit.
        accuracy: ``correct / inks``.
        ttc_fraction / ttc_ms: Time-to-correct percentiles (p50, p90) over inks ending correct.
        ttc_fraction_p50_all: Median over all inks, counting inks never correct as not reached (None if
            fewer than half ended correct).
        round_trip_ms: p50/p95/p99/max of answered frames. final_latency_ms: p50/p99 of final frames.
        frames: sent, answered, coalesced (sent - answered), out_of_order (replies below one shown).
        errors: Count by code (server codes, plus ``connect_failed``, ``connection_closed``, ``timeout``).
        throughput: ``frames_answered_per_s``, ``inks_per_s``.
        per_digit: Accuracy per label. final_status: Inks by their final answer's status (``ok``,
            ``not_a_digit``, ``no_digit``; ``none``: never answered). results: Per-ink results, in order.
        connect_error: The last connection failure, for a one-line message.
    """

    url: str
    transport: str
    options: dict[str, Any]
    duration_s: float
    inks: int
    completed: int
    correct: int
    accuracy: float
    ttc_fraction: dict[str, float | None]
    ttc_ms: dict[str, float | None]
    ttc_fraction_p50_all: float | None
    never_correct: int
    round_trip_ms: dict[str, float | None]
    final_latency_ms: dict[str, float | None]
    frames: dict[str, int]
    errors: dict[str, int]
    throughput: dict[str, float]
    per_digit: dict[str, float]
    final_status: dict[str, int]
    results: list[InkResult]
    connect_error: str | None = None

    @property
    def error_count(self) -> int:
        """All errors of the run."""
        return sum(self.errors.values())

    def to_dict(self, include_inks: bool = True) -> dict[str, Any]:
        """The JSON report (per-ink results under ``"results"`` unless ``include_inks`` is False)."""
        out = asdict(self)
        if not include_inks:
            out.pop("results")
        return out


def summarize(
    url: str, transport: str, options: ReplayOptions, rec: _Recorder, duration_s: float
) -> ReplayReport:
    """Aggregate per-ink results and run-wide counters into a :class:`ReplayReport`."""
    results = sorted(rec.results, key=lambda r: r.index)
    n = len(results)
    correct = sum(r.correct for r in results)
    ttc_f = [r.ttc_fraction for r in results if r.ttc_fraction is not None]
    ttc_ms = [r.ttc_ms for r in results if r.ttc_ms is not None]
    all_f = sorted([*ttc_f, *([math.inf] * (n - len(ttc_f)))])  # never correct: not reached
    p50_all = (all_f[(n - 1) // 2] + all_f[n // 2]) / 2 if n else None
    by_digit: dict[str, list[bool]] = {}
    for r in results:
        key = str(r.label) if isinstance(r.label, int) else f"{len(r.label)} digits"
        by_digit.setdefault(key, []).append(r.correct)
    opts = asdict(options)
    opts["token"] = "***" if options.token else None
    opts["points_per_second"] = dict(options.points_per_second)
    seconds = max(duration_s, 1e-9)
    return ReplayReport(
        url=url,
        transport=transport,
        options=opts,
        duration_s=round(duration_s, 3),
        inks=n,
        completed=sum(r.final_latency_ms is not None for r in results),
        correct=correct,
        accuracy=round(correct / n, 4) if n else 0.0,
        ttc_fraction=_percentiles(ttc_f, (50, 90)),
        ttc_ms=_percentiles(ttc_ms, (50, 90)),
        ttc_fraction_p50_all=None if p50_all is None or math.isinf(p50_all) else round(p50_all, 4),
        never_correct=n - len(ttc_f),
        round_trip_ms={
            **_percentiles(rec.round_trips_ms, (50, 95, 99)),
            "max": round(max(rec.round_trips_ms), 3) if rec.round_trips_ms else None,
        },
        final_latency_ms=_percentiles(
            [r.final_latency_ms for r in results if r.final_latency_ms is not None], (50, 99)
        ),
        frames={
            "sent": rec.sent,
            "answered": rec.answered,
            "coalesced": rec.sent - rec.answered,
            "out_of_order": rec.out_of_order,
        },
        errors=dict(sorted(rec.errors.items())),
        throughput={
            "frames_answered_per_s": round(rec.answered / seconds, 2),
            "inks_per_s": round(n / seconds, 3),
        },
        per_digit={d: round(sum(v) / len(v), 4) for d, v in sorted(by_digit.items())},
        final_status=dict(sorted(Counter(r.status or "none" for r in results).items())),
        results=results,
        connect_error=rec.connect_error,
    )


async def replay(
    url: str,
    inks: Sequence[Ink],
    options: ReplayOptions | None = None,
    on_ink: Callable[[InkResult], None] | None = None,
    *,
    numbers: int = 0,
) -> ReplayReport:
    """Replay inks against a server with ``options.concurrency`` virtual users.

    Args:
        url: ``ws://``/``wss://`` WebSocket URL, or ``http://``/``https://`` server (``POST /predict``).
        inks: The recordings; each is drawn once, by the next free user.
        options: Pace, concurrency, placement (defaults: 16 users, 30 fps, recorded pace).
        on_ink: Called after each ink (progress).
        numbers: When above 0, draw this many numbers composed from ``inks`` instead, in number mode
            (:func:`realtime.replay_numbers.plan_numbers`).

    Returns:
        The aggregated report.

    Raises:
        ValueError: a bad URL or option.
    """
    options = options or ReplayOptions()
    transport = transport_of(url)
    if options.concurrency < 1 or options.fps <= 0 or options.speed <= 0:
        raise ValueError("concurrency must be >= 1, fps and speed > 0")
    rec = _Recorder(on_ink)
    plans: Iterator[tuple[Ink, InkPlan]] = ((ink, plan_ink(ink, i, options)) for i, ink in enumerate(inks))
    if numbers > 0:
        from realtime.replay_numbers import plan_numbers  # it builds on this module's plans

        plans = iter(plan_numbers(inks, numbers, options))
    users = min(options.concurrency, max(numbers or len(inks), 1))
    loop = asyncio.get_running_loop()
    start = loop.time()
    if transport == "websocket":
        await asyncio.gather(*(_WebSocketUser(url, options, rec).draw_all(plans) for _ in range(users)))
    else:
        import httpx

        headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
        limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
        async with httpx.AsyncClient(headers=headers, limits=limits) as client:
            endpoint = predict_endpoint(url)
            await asyncio.gather(
                *(_HttpUser(client, endpoint, options, rec).draw_all(plans) for _ in range(users))
            )
    end = max(rec.last_answer_at, start) if rec.answered else loop.time()
    return summarize(url, transport, options, rec, end - start)


# ---------------------------------------------------------------------------------------------------- CLI


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def render_summary(report: ReplayReport) -> Any:
    """A rich table summarizing the report."""
    from rich.table import Table

    o = report.options
    table = Table(title=f"mnist-live replay · {report.url}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "inks",
        f"{report.inks} ({o['concurrency']} users, {o['fps']:g} fps, pen speed ×{o['speed']:g}, "
        f"{report.transport})",
    )
    table.add_row(
        "accuracy",
        f"{report.accuracy * 100:.1f} % ({report.correct}/{report.inks} right at pen-up)",
    )
    table.add_row("final answers", " · ".join(f"{k} {v}" for k, v in report.final_status.items()) or "none")
    f, ms = report.ttc_fraction, report.ttc_ms
    pct = {k: None if v is None else v * 100 for k, v in f.items()}
    table.add_row(
        "time-to-correct",
        f"p50 {_fmt(pct['p50'], ' % of ink', 0)} · {_fmt(ms['p50'], ' ms', 0)}   "
        f"p90 {_fmt(pct['p90'], ' %', 0)} · {_fmt(ms['p90'], ' ms', 0)}",
    )
    rt = report.round_trip_ms
    table.add_row(
        "round trip",
        f"p50 {_fmt(rt['p50'], ' ms')} · p95 {_fmt(rt['p95'], ' ms')} · p99 {_fmt(rt['p99'], ' ms')} · "
        f"max {_fmt(rt['max'], ' ms')}",
    )
    fl = report.final_latency_ms
    table.add_row("final frame", f"p50 {_fmt(fl['p50'], ' ms')} · p99 {_fmt(fl['p99'], ' ms')}")
    fr = report.frames
    table.add_row(
        "frames",
        f"sent {fr['sent']} · answered {fr['answered']} · coalesced {fr['coalesced']} · "
        f"out of order {fr['out_of_order']}",
    )
    errs = ", ".join(f"{k} {v}" for k, v in report.errors.items()) or "none"
    table.add_row("errors", errs)
    tp = report.throughput
    table.add_row(
        "throughput",
        f"{tp['frames_answered_per_s']:.0f} frames/s · {tp['inks_per_s']:.1f} inks/s "
        f"over {report.duration_s:.1f} s",
    )
    return table


def add_command(sub: Any) -> None:
    """Register ``replay``."""
    p = sub.add_parser(
        "replay",
        help="replay recorded pen inks against a server and measure accuracy, time-to-correct, latency",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=(
            "Exit codes: 0 done without errors; 1 some frames or inks failed, or accuracy below "
            "--min-accuracy; 2 bad arguments, unreadable file or no connection at all; 130 interrupted."
        ),
    )
    p.add_argument("file", type=Path, help="JSON Lines recording (.jsonl or .jsonl.gz), like shared/data/pen")
    p.add_argument(
        "--url",
        default="ws://127.0.0.1:8000/ws",
        help="ws://, wss:// (protocol v1) or http(s):// (POST /predict) (default ws://127.0.0.1:8000/ws)",
    )
    p.add_argument("--concurrency", "-c", type=int, default=16, help="virtual users at once (default 16)")
    p.add_argument("--fps", type=float, default=30.0, help="most snapshots per second while drawing (30)")
    p.add_argument("--speed", type=float, default=1.0, help="pen speed multiplier (default 1: recorded pace)")
    p.add_argument("--limit", type=int, default=None, help="replay only the first K inks")
    p.add_argument(
        "--numbers", type=int, default=0, help="draw N numbers composed from the inks, in number mode"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the canvas placement (default 0)")
    p.add_argument(
        "--json",
        dest="json_path",
        metavar="REPORT",
        default=None,
        help="write the JSON report here ('-': stdout)",
    )
    p.add_argument(
        "--sources",
        type=Path,
        default=None,
        help=f"per-source POINTS_PER_SECOND file (default: {SOURCES_FILE} beside FILE, if any)",
    )
    p.add_argument(
        "--points-per-second",
        type=float,
        default=DEFAULT_POINTS_PER_SECOND,
        help="pen rate, points/s, for inks without timestamps from unlisted sources (default 100)",
    )
    p.add_argument(
        "--pen-up-ms", type=float, default=DEFAULT_PEN_UP_MS, help="unrecorded gap between strokes, ms (200)"
    )
    p.add_argument(
        "--http-intermediate", action="store_true", help="over HTTP, also post snapshots while drawing"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="wait for a final answer, seconds (10)")
    p.add_argument("--token", default=None, help="access token (?token= / Authorization: Bearer)")
    p.add_argument("--min-accuracy", type=float, default=None, help="exit 1 if accuracy (0-1) is lower")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _fail(message: str, code: int = 2) -> int:
    print(f"mnist-live replay: error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        transport_of(args.url)
    except ValueError as exc:
        return _fail(str(exc))
    if args.concurrency < 1 or args.fps <= 0 or args.speed <= 0 or args.points_per_second <= 0:
        return _fail("--concurrency must be >= 1; --fps, --speed and --points-per-second > 0")
    if args.numbers < 0:
        return _fail("--numbers must be >= 0")
    try:
        inks = load_inks(args.file, args.limit)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _fail(f"cannot read {args.file}: {reason}")
    if not inks:
        return _fail(f"{args.file} holds no inks")
    rates: dict[str, float] = {}
    sources = args.sources or args.file.parent / SOURCES_FILE
    if args.sources is not None or sources.is_file():
        try:
            rates = load_source_rates(sources)
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read {sources}: {exc}")
    options = ReplayOptions(
        concurrency=args.concurrency,
        fps=args.fps,
        speed=args.speed,
        seed=args.seed,
        points_per_second=rates,
        default_points_per_second=args.points_per_second,
        pen_up_ms=args.pen_up_ms,
        http_intermediate=args.http_intermediate,
        timeout_s=args.timeout,
        token=args.token,
    )
    err = Console(stderr=True)
    show = not args.quiet and err.is_terminal
    progress = Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[acc]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=True,
    )
    state = {"done": 0, "correct": 0}

    def on_ink(result: InkResult) -> None:
        state["done"] += 1
        state["correct"] += result.correct
        acc = f"acc {state['correct'] / state['done'] * 100:.1f} %"
        progress.update(task, advance=1, acc=acc)

    with progress:
        task = progress.add_task("replay", total=args.numbers or len(inks), acc="")
        started = time.time()
        try:
            report = asyncio.run(replay(args.url, inks, options, on_ink, numbers=args.numbers))
        except KeyboardInterrupt:
            progress.stop()
            return _fail("interrupted", 130)
    if report.completed == 0 and report.connect_error:
        return _fail(f"cannot connect to {args.url}: {report.connect_error}")
    out = Console(stderr=args.json_path == "-")
    out.print(render_summary(report))
    if args.json_path:
        data = report.to_dict()
        data["file"] = str(args.file)
        data["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        text = json.dumps(data, indent=2)
        if args.json_path == "-":
            print(text)
        else:
            try:
                Path(args.json_path).write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                return _fail(f"cannot write {args.json_path}: {exc.strerror or exc}")
            out.print(f"report written to {args.json_path}")
    if report.error_count:
        return 1
    if args.min_accuracy is not None and report.accuracy < args.min_accuracy:
        return 1
    return 0


__all__ = [
    "InkPlan",
    "InkResult",
    "PlannedFrame",
    "ReplayOptions",
    "ReplayReport",
    "add_command",
    "ink_times_ms",
    "load_source_rates",
    "plan_ink",
    "predict_endpoint",
    "render_summary",
    "replay",
    "schedule_frames",
    "summarize",
    "transport_of",
]
