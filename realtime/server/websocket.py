"""The local server's WebSocket endpoint: checks, then one :class:`WebSocketConnection` per client."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from realtime import access, logs
from realtime.messages import ServerMessage, encode
from realtime.protocol import Session, parse
from realtime.server.batcher import Outcome
from realtime.server.runtime import Runtime
from shared import errors
from shared.preprocess import Frame

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
OFF_LOOP_PARSE_CHARS = 16 * 1024
"""Frames longer than this are parsed in a worker thread (~1 ms per 12 KB here) so other connections
never wait behind one client's big snapshots."""


async def serve_websocket(websocket: WebSocket, runtime: Runtime) -> None:
    """Run one WebSocket connection: checks, then a reader and a writer over a :class:`Session`."""
    settings = runtime.settings
    log = logs.get_logger()
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    try:
        access.check_origin(
            websocket.headers.get("origin"), websocket.headers.get("host"), settings.allowed_origins
        )
        access.check_token(websocket.query_params.get("token"), runtime.token_secret)
    except errors.ClientError as exc:
        log.info("ws_refused", extra={"code": exc.code, "peer": peer})
        await websocket.close(code=CLOSE_POLICY_VIOLATION)  # before accept: the handshake gets 403
        return
    if runtime.connections >= settings.max_connections:
        await websocket.accept()
        await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="Too many connections; try again later.")
        log.info("ws_refused", extra={"code": "too_many_connections", "peer": peer})
        return
    await websocket.accept()
    runtime.connections += 1
    conn = WebSocketConnection(websocket, runtime)
    log.info("ws_connected", extra={"conn": conn.id, "peer": peer})
    try:
        await conn.run()
    finally:
        runtime.connections -= 1
        s = conn.session.stats
        log.info(
            "ws_disconnected",
            extra={
                "conn": conn.id,
                "close": conn.close_code,
                "received": s.received,
                "answered": s.answered,
                "coalesced": s.coalesced,
                "stale": s.stale,
                "errors": s.errors,
            },
        )


class WebSocketConnection:
    """The I/O around one :class:`~realtime.protocol.Session`: it owns the timers and the tasks.

    It is also the session's :class:`~realtime.server.batcher.Source`: while the session has a frame
    pending and none in flight, the connection waits for an inference worker, and hands over the
    session's newest frame only when one is free.
    """

    _ids = 0

    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        WebSocketConnection._ids += 1
        self.id = WebSocketConnection._ids
        self.ws = websocket
        self.runtime = runtime
        settings = runtime.settings
        self.loop = asyncio.get_running_loop()
        self.session = Session(self.loop.time(), runtime.session_config)
        self.outbox: asyncio.Queue[ServerMessage] = asyncio.Queue(maxsize=settings.send_queue_frames)
        self.close_code: int | None = None
        self.closing = asyncio.Event()
        self._reading: asyncio.Timeout | None = None
        self._waiting = False  # registered with the inference workers, not yet taken
        self._closer: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Read frames until the peer leaves, the connection idles out or is closed for flow control."""
        writer = asyncio.create_task(self._writer())
        try:
            while not self.closing.is_set():
                # One timeout per frame, no extra tasks: _stop_reading() expires it early to close.
                try:
                    async with asyncio.timeout_at(self.session.idle_deadline()) as self._reading:
                        message = await self.ws.receive()
                except TimeoutError:
                    if not self.closing.is_set():
                        await self._close(CLOSE_GOING_AWAY, "Idle timeout.")
                    break
                finally:
                    self._reading = None
                if message["type"] == "websocket.disconnect":
                    self.close_code = message.get("code")
                    break
                text = message.get("text")
                if text is None:  # API Gateway closes on binary frames (1003); here: an error, kept open
                    binary = errors.InvalidJSON("Send JSON as a text frame.")
                    outs = self.session.refuse(binary, self.loop.time())
                else:
                    parsed = None
                    if OFF_LOOP_PARSE_CHARS < len(text) <= self.session.config.max_message_bytes:
                        parsed = await anyio.to_thread.run_sync(parse, text)  # big frames: keep the loop free
                    outs = self.session.receive(text, self.loop.time(), parsed)
                for out in outs:
                    self._enqueue(out)
                if not self.outbox.empty():
                    # receive() does not suspend while frames are buffered: let the writer send
                    # before reading on, or a burst of pings fills the outbox of a healthy reader.
                    await asyncio.sleep(0)
                self._request_worker()
        except WebSocketDisconnect as exc:
            self.close_code = exc.code
        finally:
            self.closing.set()  # a worker freed later takes nothing from this connection
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            if self._closer is not None:  # send the close frame (1008) before the server drops the socket
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._closer

    def take(self) -> Frame | None:
        """A worker is free: the session's pending frame goes in flight (``None`` once closing)."""
        self._waiting = False
        job = None if self.closing.is_set() else self.session.next_job()
        return None if job is None else job.frame

    def deliver(self, outcome: Outcome) -> None:
        """The in-flight job's outcome: reply, then wait for a worker again if a newer frame came."""
        job = self.session.in_flight  # what take() handed over
        if job is None or self.closing.is_set():
            return
        for out in self.session.complete(job, outcome, self.loop.time()):
            self._enqueue(out)
        self._request_worker()

    def _request_worker(self) -> None:
        session = self.session
        if not self._waiting and session.in_flight is None and session.pending is not None:
            self._waiting = True
            self.runtime.batcher.request(self)

    def _enqueue(self, message: ServerMessage) -> None:
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self._slow_consumer()

    def _slow_consumer(self) -> None:
        if not self.closing.is_set():
            logs.get_logger().info("ws_slow_consumer", extra={"conn": self.id})
            self.close_code = CLOSE_POLICY_VIOLATION
            self._stop_reading()
            self._closer = asyncio.ensure_future(self._close(CLOSE_POLICY_VIOLATION, "Slow consumer."))

    def _stop_reading(self) -> None:
        """Set ``closing`` and wake the reader if it is waiting for a frame."""
        self.closing.set()
        reading = self._reading
        if reading is not None and not reading.expired():
            with contextlib.suppress(RuntimeError):  # already leaving the block
                reading.reschedule(self.loop.time())

    async def _writer(self) -> None:
        timeout = self.runtime.settings.slow_consumer_timeout_s
        while True:
            message = await self.outbox.get()
            try:
                async with asyncio.timeout(timeout):
                    await self.ws.send_text(encode(message))
            except TimeoutError:
                self._slow_consumer()
                return
            except Exception:  # the peer went away mid-send
                self._stop_reading()
                return

    async def _close(self, code: int, reason: str) -> None:
        self.close_code = code
        self._stop_reading()
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(code=code, reason=reason), 2.0)
