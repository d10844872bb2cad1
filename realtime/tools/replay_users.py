"""Replay users: one simulated person per concurrent drawing, over WebSocket or HTTP.

A :class:`_WebSocketUser` keeps one connection and sends its plans' frames on schedule, reading replies
as the page does; an :class:`_HttpUser` posts each pen-up's snapshot (and, optionally, the frames
between). Each ink's replies become an :class:`InkResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from realtime.tools.replay_plan import InkPlan, PlannedFrame, ReplayOptions
from shared.canvas import CANVAS_PX, PEN_WIDTH_PX
from shared.inks import Ink


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
        "height": CANVAS_PX,
        "stroke_width": PEN_WIDTH_PX,
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
