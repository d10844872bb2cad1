"""Local server hardening: Origin, token, rate limit, connection cap, slow consumer, disconnects."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image, ImageDraw
from starlette.websockets import WebSocketState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.logs import JsonFormatter
from realtime.server.runtime import Runtime
from realtime.server.websocket import WebSocketConnection
from shared.inference import Predictor
from shared.settings import Settings
from tests.logs import Records
from tests.realtime.wsclient import recv, send, snapshot
from tests.servers import LiveServer, run_server

LINE = [[[140, 40], [140, 240]]]


def connections(server: LiveServer) -> int:
    count: int = server.app.state.runtime.connections
    return count


async def wait_for_zero_connections(server: LiveServer, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while connections(server) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert connections(server) == 0


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://127.0.0.2.evil.example", "http://[::1"]
)
@pytest.mark.asyncio
async def test_foreign_origin_is_refused_at_handshake(live_server: LiveServer, origin: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(live_server.ws_url, origin=origin):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403


@pytest.mark.parametrize("origin", [None, "http://localhost:5173", "http://127.0.0.1:8000"])
@pytest.mark.asyncio
async def test_local_and_absent_origins_are_allowed(live_server: LiveServer, origin: str | None) -> None:
    async with connect(live_server.ws_url, origin=origin) as ws:  # type: ignore[arg-type]
        await send(ws, {"action": "ping"})
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.asyncio
async def test_configured_origin_is_allowed(predictor: Predictor) -> None:
    settings = Settings(allowed_origins=["https://draw.example.com"])
    with run_server(settings, predictor) as server:
        async with connect(server.ws_url, origin="https://draw.example.com") as ws:  # type: ignore[arg-type]
            await send(ws, {"action": "ping"})
            assert await recv(ws) == {"type": "pong"}
        with pytest.raises(InvalidStatus):
            async with connect(server.ws_url, origin="https://other.example.com"):  # type: ignore[arg-type]
                pass


@pytest.mark.asyncio
async def test_websocket_token_refused_and_accepted(predictor: Predictor) -> None:
    settings = Settings(auth_token="t0ken")  # type: ignore[arg-type]
    with run_server(settings, predictor) as server:
        for url in (server.ws_url, server.ws_url + "?token=wrong"):
            with pytest.raises(InvalidStatus) as info:
                async with connect(url):
                    pass
            assert info.value.response.status_code == 403
        async with connect(server.ws_url + "?token=t0ken") as ws:
            await send(ws, snapshot(LINE, 1))
            assert (await recv(ws))["type"] == "prediction"


def test_cors_preflight_allows_local_and_configured_origins(live_server: LiveServer) -> None:
    headers = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    with httpx.Client(base_url=live_server.http_url) as c:
        ok = c.options("/predict", headers={**headers, "origin": "http://localhost:3000"})
        assert ok.headers.get("access-control-allow-origin") == "http://localhost:3000"
        bad = c.options("/predict", headers={**headers, "origin": "https://evil.example"})
        assert "access-control-allow-origin" not in bad.headers


@pytest.mark.asyncio
async def test_rate_limit_answers_rate_limited_and_keeps_the_connection(predictor: Predictor) -> None:
    with run_server(Settings(rate_limit_fps=10), predictor) as server:
        async with connect(server.ws_url) as ws:
            for i in range(1, 16):
                await send(ws, snapshot(LINE, i))
            codes: list[str] = []
            answered: list[int] = []
            while True:  # read until the server has been quiet for a while
                try:
                    msg = await recv(ws, 0.5)
                except TimeoutError:
                    break
                if msg["type"] == "error":
                    codes.append(msg["error"]["code"])
                else:
                    answered.append(msg["seq"])
            assert set(codes) == {"rate_limited"}
            assert 4 <= len(codes) <= 5  # 10-frame burst, then 15 - 10 frames over the limit
            assert answered[-1] >= 10
            await asyncio.sleep(0.5)  # tokens refill
            await send(ws, snapshot(LINE, 100))
            assert (await recv(ws))["seq"] == 100


@pytest.mark.asyncio
async def test_connection_cap_closes_with_1013(predictor: Predictor) -> None:
    with run_server(Settings(max_connections=2), predictor) as server:
        async with connect(server.ws_url), connect(server.ws_url):
            async with connect(server.ws_url) as third:
                with pytest.raises(ConnectionClosed) as info:
                    await recv(third)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        await wait_for_zero_connections(server)
        async with connect(server.ws_url) as ws:  # capacity is back
            await send(ws, {"action": "ping"})
            assert await recv(ws) == {"type": "pong"}


class StalledSocket:
    """A WebSocket whose peer stopped reading: ``send_text`` never completes."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.application_state = WebSocketState.CONNECTED
        self.sends_started = 0
        self.closed_with: int | None = None

    async def receive(self) -> dict[str, object]:
        if self.frames:
            await asyncio.sleep(0)
            return {"type": "websocket.receive", "text": self.frames.pop(0)}
        await asyncio.Event().wait()  # the client goes quiet
        raise AssertionError("unreachable")

    async def send_text(self, text: str) -> None:
        self.sends_started += 1
        await asyncio.Event().wait()  # blocked forever: the peer's receive window is full

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await asyncio.sleep(0.05)  # writing the close frame takes a moment: run() must wait for it
        self.closed_with = code
        self.application_state = WebSocketState.DISCONNECTED


@pytest.mark.asyncio
@pytest.mark.parametrize("pings", [3, 200])
async def test_slow_consumer_is_bounded_then_closed_with_1008(pings: int, records: Records) -> None:
    """3 pings: the blocked send times out; 200 pings: the bounded queue overflows first."""
    settings = Settings(send_queue_frames=4, slow_consumer_timeout_s=0.2)
    sock = StalledSocket(['{"action": "ping"}'] * pings)
    conn = WebSocketConnection(sock, Runtime(settings, None))  # type: ignore[arg-type]
    start = time.monotonic()
    await asyncio.wait_for(conn.run(), 5)
    assert sock.closed_with == 1008, "the close frame is sent before the connection is dropped"
    assert conn.close_code == 1008
    assert conn.outbox.qsize() <= settings.send_queue_frames, "memory stays bounded"
    assert sock.sends_started == 1, "nothing more is sent to a peer that does not read"
    if pings == 3:
        assert time.monotonic() - start >= 0.2
    assert any(r.getMessage() == "ws_slow_consumer" for r in records.records)


@pytest.mark.asyncio
async def test_disconnect_mid_inference_leaves_nothing_behind(
    live_server: LiveServer, records: Records
) -> None:
    img = Image.new("L", (2048, 2048), 255)
    ImageDraw.Draw(img).line([(1000, 200), (1000, 1800)], fill=0, width=120)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    heavy = base64.b64encode(buf.getvalue()).decode()  # a large canvas: ~tens of ms to decode
    assert len(heavy) < live_server.settings.ws_max_message_bytes
    for _ in range(3):
        ws = await connect(live_server.ws_url, max_size=None)
        await ws.send(json.dumps({"action": "predict", "seq": 1, "image": heavy}))
        await asyncio.sleep(0.01)
        await ws.close()
    await wait_for_zero_connections(live_server)
    await asyncio.sleep(0.5)  # let abandoned inferences finish
    problems = [r for r in records.records if r.levelno >= logging.WARNING]
    assert not problems, [r.getMessage() for r in problems]
    async with connect(live_server.ws_url) as ws:  # the server still serves
        await send(ws, snapshot(LINE, 1))
        assert (await recv(ws))["type"] == "prediction"


def _ws_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split unmasked server frames into (opcode, payload)."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, length, j = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if length == 126:
            length, j = int.from_bytes(data[j : j + 2], "big"), j + 2
        frames.append((opcode, data[j : j + length]))
        i = j + length
    return frames


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@contextlib.contextmanager
def _raw_ws(server: LiveServer) -> Iterator[tuple[socket.socket, bytes]]:
    """A raw socket upgraded to WebSocket on ``/ws``, and what came after the 101 response's head."""
    port = int(server.http_url.rsplit(":", 1)[1])
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 101")
        yield sock, data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("payload", [b'{"action": "ping"}', b"{nope"])
def test_a_burst_in_one_tcp_write_is_answered_in_full(live_server: LiveServer, payload: bytes) -> None:
    """300 frames arriving together: a client that reads gets every reply, and no 1008."""
    with _raw_ws(live_server) as (sock, head_rest):
        data = head_rest
        sock.sendall(_masked_text_frame(payload) * 300)
        deadline = time.monotonic() + 10
        while len(_ws_frames(data)) < 300 and time.monotonic() < deadline:
            data += sock.recv(65536)
    frames = _ws_frames(data)
    assert [op for op, _ in frames].count(8) == 0, "no close frame: the client is reading"
    replies = [json.loads(p) for op, p in frames if op == 1]
    assert len(replies) == 300
    expected = {"type": "pong"} if b"ping" in payload else "invalid_json"
    assert all(r == expected or r.get("error", {}).get("code") == expected for r in replies)


def test_a_text_frame_that_is_not_utf8_closes_1007_and_logs_one_json_line(live_server: LiveServer) -> None:
    """uvicorn refuses the frame (RFC 6455 §8.1); its log record is one JSON line, never a traceback."""
    records = Records()
    uvicorn_log = logging.getLogger("uvicorn")
    uvicorn_log.addHandler(records)
    try:
        with _raw_ws(live_server) as (sock, head_rest):
            data = head_rest
            sock.sendall(_masked_text_frame(b'{"strokes": "\xff\xfe"}'))
            deadline = time.monotonic() + 5
            while not any(op == 8 for op, _ in _ws_frames(data)) and time.monotonic() < deadline:
                data += sock.recv(4096)
    finally:
        uvicorn_log.removeHandler(records)
    closes = [payload for op, payload in _ws_frames(data) if op == 8]
    assert closes and int.from_bytes(closes[0][:2], "big") == 1007
    (record,) = [r for r in records.records if r.exc_info and r.exc_info[0] is UnicodeDecodeError]
    (handler,) = [h for h in uvicorn_log.handlers if isinstance(h.formatter, JsonFormatter)]
    line = handler.format(record)
    assert "\n" not in line and "Traceback" not in line
    assert json.loads(line)["exc_type"] == "UnicodeDecodeError"


def _raw_http(port: int, head: bytes, body_parts: list[bytes], pause: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
            time.sleep(pause)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_slow_body_gets_408(predictor: Predictor) -> None:
    with run_server(Settings(http_body_timeout_s=0.3), predictor) as server:
        port = int(server.http_url.rsplit(":", 1)[1])
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += b"Content-Length: 100\r\n\r\n"
        reply = _raw_http(port, head, [b"{"], 1.0)
    status_line, _, rest = reply.partition(b"\r\n")
    assert b" 408 " in status_line
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


def test_client_leaving_mid_body_is_not_a_server_error(live_server: LiveServer, records: Records) -> None:
    port = int(live_server.http_url.rsplit(":", 1)[1])
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            sock.sendall(b"Content-Length: 100\r\n\r\n{")
    time.sleep(0.5)
    with httpx.Client(base_url=live_server.http_url) as c:  # still serving
        assert c.post("/predict", json={"strokes": LINE, "width": 280, "height": 280}).status_code == 200
    assert not [r for r in records.records if r.levelno >= logging.WARNING]


def test_chunked_multipart_over_the_limit_is_413(live_server: LiveServer) -> None:
    def body() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(24):
            yield b"\0" * 65536
        yield b"\r\n--b--\r\n"

    with httpx.Client(base_url=live_server.http_url) as c:
        r = c.post("/predict", content=body(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.asyncio
async def test_ping_is_answered_during_an_http_strokes_flood(live_server: LiveServer) -> None:
    """Small strokes frames posted over HTTP are classified on the event loop (``runs_inline``); a
    flood of them from 8 clients still leaves a WebSocket ping answered promptly."""
    from realtime.server.runtime import runs_inline
    from shared.preprocess import StrokesFrame

    stroke = [[140 + (i % 7), 40 + 2 * i] for i in range(100)]
    body = {"strokes": [stroke], "width": 280, "height": 280}
    assert runs_inline(StrokesFrame(body["strokes"], 280, 280))
    stop = time.monotonic() + 2.0

    async def poster(client: httpx.AsyncClient) -> int:
        answered = 0
        while time.monotonic() < stop:
            r = await client.post("/predict", json=body)
            assert r.status_code == 200 and r.json()["status"] == "ok"
            answered += 1
        return answered

    async with (
        httpx.AsyncClient(base_url=live_server.http_url, timeout=10) as client,
        connect(live_server.ws_url) as ws,
    ):
        posters = [asyncio.create_task(poster(client)) for _ in range(8)]
        slowest = 0.0
        pings = 0
        while time.monotonic() < stop:
            sent = time.monotonic()
            await send(ws, {"action": "ping"})
            assert (await recv(ws))["type"] == "pong"
            slowest = max(slowest, time.monotonic() - sent)
            pings += 1
            await asyncio.sleep(0.05)
        answered = sum(await asyncio.gather(*posters))
    assert answered >= 16 and pings >= 5
    assert slowest < 1.0, f"a ping waited {slowest:.3f} s behind the HTTP flood"


def test_a_malformed_multipart_body_is_a_4xx_and_one_json_log_line(live_server: LiveServer) -> None:
    """The multipart parser's complaint about the client's body goes to the JSON log, not stderr text."""
    records = Records()
    parser_log = logging.getLogger("python_multipart")
    parser_log.addHandler(records)
    try:
        response = httpx.post(
            f"{live_server.http_url}/predict",
            content=b"--x\r\n",
            headers={"content-type": "multipart/form-data; boundary=zzz"},
        )
    finally:
        parser_log.removeHandler(records)
    assert 400 <= response.status_code < 500 and response.json()["error"]["code"]
    assert records.records, "the parser logged its complaint"
    (handler,) = [h for h in parser_log.handlers if isinstance(h.formatter, JsonFormatter)]
    assert all("\n" not in handler.format(r) for r in records.records)
