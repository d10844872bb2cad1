"""The local API Gateway emulator: event shapes, handshake rejection, route responses on two-way routes
only, @connections over real boto3 (Gone after the client left), frame limits, overlapping invocations,
the page."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import boto3
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.aws.lambda_types import TWO_WAY_ROUTES
from realtime.tools import gateway as gateway_module
from realtime.tools.gateway import (
    MAX_IN_FLIGHT,
    Gateway,
    Handler,
    lambda_handler_factory,
    new_connection_id,
    select_route,
)
from shared.inference import Predictor
from shared.settings import Settings
from tests.gateway import LiveGateway, run_gateway
from tests.logs import Records
from tests.realtime.aws.conftest import load_event
from tests.realtime.wsclient import recv, send, snapshot

LINE = [[[140, 40], [140, 240]]]


class Recorder:
    """Wraps the real Lambda handler: records every event, and can hold or observe invocations."""

    def __init__(self, settings: Settings, predictor: Predictor) -> None:
        self.inner_factory = lambda_handler_factory(settings, predictor)
        self.inner: Handler | None = None
        self.events: list[dict[str, Any]] = []
        self.before: Callable[[dict[str, Any]], None] | None = None
        self.after: Callable[[dict[str, Any]], None] | None = None
        self.disconnected = threading.Event()

    def factory(self, callback_url: str) -> Handler:
        self.inner = self.inner_factory(callback_url)
        return self.handle

    def handle(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(copy.deepcopy(event))
        if self.before is not None:
            self.before(event)
        assert self.inner is not None
        result = self.inner(event, context)
        if event["requestContext"]["eventType"] == "DISCONNECT":
            self.disconnected.set()
        if self.after is not None:
            self.after(event)
        return result

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["requestContext"]["eventType"] == event_type]


@pytest.fixture(scope="module")
def recorded(predictor: Predictor) -> Iterator[tuple[LiveGateway, Recorder]]:
    settings = Settings()
    recorder = Recorder(settings, predictor)
    with run_gateway(settings, handler_factory=recorder.factory) as gateway:
        yield gateway, recorder


@pytest.fixture
def gateway(recorded: tuple[LiveGateway, Recorder]) -> Iterator[tuple[LiveGateway, Recorder]]:
    _, recorder = recorded
    recorder.events.clear()
    recorder.disconnected.clear()
    recorder.before = recorder.after = None
    yield recorded
    recorder.before = recorder.after = None


def management(gateway: LiveGateway) -> Any:
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    return session.client("apigatewaymanagementapi", endpoint_url=gateway.callback_url)


def management_port(gateway: LiveGateway) -> int:
    """The ``@connections`` port, from the callback URL."""
    return int(gateway.callback_url.rsplit(":", 1)[1].split("/")[0])


async def only_connection_id(gateway: LiveGateway) -> str:
    (cid,) = gateway.gateway.connections
    return cid


def test_route_selection() -> None:
    assert select_route('{"action": "predict"}') == "predict"
    assert select_route('{"action": "ping", "seq": 1}') == "ping"
    assert select_route('{"action": "dance"}') == "$default"
    assert select_route('{"action": 3}') == "$default"
    assert select_route('["predict"]') == "$default"
    assert select_route("not json") == "$default"


def test_connection_ids_look_like_api_gateways() -> None:
    ids = {new_connection_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 16 and i.endswith("=") and "/" not in i and "+" not in i for i in ids)


@pytest.mark.asyncio
async def test_events_have_api_gateway_shapes(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, recorder = gateway
    async with connect(live.ws_url) as ws:
        for raw in ('{"action": "ping"}', json.dumps(snapshot(LINE, 1)), "not json", '{"action": "x"}'):
            await ws.send(raw)
            await recv(ws)
        await ws.close(1000, "bye")
    assert await asyncio.to_thread(recorder.disconnected.wait, 5)
    async with connect(live.ws_url + "?token=abc&lang=en") as ws:
        await send(ws, {"action": "ping"})
        await recv(ws)

    connect_plain, connect_query = recorder.of_type("CONNECT")
    messages = recorder.of_type("MESSAGE")[:4]  # the first connection's
    disconnect = recorder.of_type("DISCONNECT")[0]
    for emulated, recorded_name in [
        (connect_plain, "ws_connect_no_query"),
        (connect_query, "ws_connect"),
        (messages[1], "ws_message_predict"),
        (disconnect, "ws_disconnect"),
    ]:
        fixture = load_event(recorded_name)
        assert set(emulated) == set(fixture), recorded_name
        assert set(emulated["requestContext"]) - {"disconnectStatusCode", "disconnectReason"} == set(
            fixture["requestContext"]
        ) - {"disconnectStatusCode", "disconnectReason"}, recorded_name

    assert "queryStringParameters" not in connect_plain, "absent when the URL has no query string"
    assert connect_query["queryStringParameters"] == {"token": "abc", "lang": "en"}
    assert connect_query["multiValueQueryStringParameters"] == {"token": ["abc"], "lang": ["en"]}
    ctx = connect_plain["requestContext"]
    assert (ctx["routeKey"], ctx["eventType"], ctx["stage"], ctx["messageId"]) == (
        "$connect",
        "CONNECT",
        "prod",
        None,
    )
    assert ctx["domainName"].endswith(".execute-api.us-east-1.amazonaws.com") and ctx["apiId"]
    assert isinstance(ctx["connectedAt"], int) and ctx["requestId"] and ctx["connectionId"]
    assert "Sec-WebSocket-Key" in connect_plain["headers"] and "body" not in connect_plain

    assert [m["requestContext"]["routeKey"] for m in messages] == ["ping", "predict", "$default", "$default"]
    assert [m["body"] for m in messages][2:] == ["not json", '{"action": "x"}']
    assert all(m["isBase64Encoded"] is False and m["requestContext"]["messageId"] for m in messages)
    assert len({m["requestContext"]["requestId"] for m in messages}) == 4
    assert {m["requestContext"]["connectionId"] for m in messages} == {ctx["connectionId"]}

    dctx = disconnect["requestContext"]
    assert (dctx["disconnectStatusCode"], dctx["disconnectReason"]) == (1000, "bye")


@pytest.mark.asyncio
async def test_non_2xx_connect_rejects_the_handshake(predictor: Predictor) -> None:
    settings = Settings(auth_token="s3cret", allowed_origins=["https://digits.example.com"])
    with run_gateway(settings, predictor) as live:
        for url, origin, status in [
            (live.ws_url, None, 401),
            (live.ws_url + "?token=wrong", None, 401),
            (live.ws_url + "?token=s3cret", "https://evil.example", 403),
        ]:
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, origin=origin):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == status
        async with connect(live.ws_url + "?token=s3cret", origin="https://digits.example.com") as ws:  # type: ignore[arg-type]
            await send(ws, {"action": "ping"})
            assert await recv(ws) == {"type": "pong"}


@pytest.mark.asyncio
async def test_connections_api_over_boto3(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, recorder = gateway
    client = management(live)
    async with connect(live.ws_url, user_agent_header="test-agent/1") as ws:
        cid = await only_connection_id(live)
        info = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "test-agent/1"}
        assert info["ConnectedAt"] <= info["LastActiveAt"]
        await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b'{"hello": 1}')
        assert await recv(ws) == {"hello": 1}
        await asyncio.to_thread(client.delete_connection, ConnectionId=cid)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert await asyncio.to_thread(recorder.disconnected.wait, 5), "$disconnect follows DeleteConnection"
    for call in (client.post_to_connection, client.get_connection, client.delete_connection):
        kwargs: dict[str, Any] = {"ConnectionId": cid}
        if call == client.post_to_connection:
            kwargs["Data"] = b"{}"
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(call, **kwargs)


@pytest.mark.asyncio
async def test_connections_api_paths(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, _ = gateway
    base = live.callback_url.rsplit("/", 1)[0]
    async with connect(live.ws_url) as ws, httpx.AsyncClient() as http:
        cid = await only_connection_id(live)
        assert "%3D" in quote(cid, safe="")
        for url in (f"{live.callback_url}/@connections/{quote(cid, safe='')}", f"{base}/@connections/{cid}"):
            ok = await http.post(url, content=b'{"n": 1}')
            assert ok.status_code == 200, url
            assert await recv(ws) == {"n": 1}
        gone = await http.post(f"{live.callback_url}/@connections/nope%3D", content=b"{}")
        assert gone.status_code == 410 and gone.headers["x-amzn-ErrorType"] == "GoneException"
        stage = await http.post(f"{base}/dev/@connections/{quote(cid, safe='')}", content=b"{}")
        assert stage.status_code == 403
        big = await http.post(f"{live.callback_url}/@connections/{cid}", content=b"x" * (128 * 1024 + 1))
        assert big.status_code == 413
        assert big.headers["x-amzn-ErrorType"] == "PayloadTooLargeException"
        for response, status in [
            (await http.get(f"{live.callback_url}/connections/{cid}"), 404),
            (await http.get(f"{live.callback_url}/@connections/{cid}/"), 404),
            (await http.put(f"{live.callback_url}/@connections/{cid}", content=b"{}"), 405),
        ]:
            assert response.status_code == status, response.request.url
            assert response.json()["message"] and response.headers["x-amzn-ErrorType"].endswith("Exception")


@pytest.mark.asyncio
async def test_a_connections_api_failure_is_logged_and_answered(
    gateway: tuple[LiveGateway, Recorder], records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, _ = gateway

    async def describe(connection_id: str) -> dict[str, Any] | None:
        raise RuntimeError("emulator bug")

    monkeypatch.setattr(live.gateway, "describe", describe)
    async with httpx.AsyncClient() as http:
        failed = await http.get(f"{live.callback_url}/@connections/nope%3D")
    assert failed.status_code == 500 and failed.json() == {"message": "Internal server error"}
    assert failed.headers["x-amzn-ErrorType"] == "InternalServerErrorException"
    (event,) = records.events("gateway_management_failed")
    assert event.exc_info is not None and isinstance(event.exc_info[1], RuntimeError)


@pytest.mark.asyncio
async def test_a_reply_to_a_client_that_left_is_dropped(
    gateway: tuple[LiveGateway, Recorder], records: Records
) -> None:
    live, recorder = gateway
    answered: list[Any] = []
    done = threading.Event()

    def hold_messages(event: dict[str, Any]) -> None:
        if event["requestContext"]["eventType"] == "MESSAGE":  # answer only once this client has gone
            cid = event["requestContext"]["connectionId"]  # (not any: an earlier test's may land late)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                e["requestContext"]["connectionId"] == cid for e in recorder.of_type("DISCONNECT")
            ):
                time.sleep(0.01)

    def after(event: dict[str, Any]) -> None:
        if event["requestContext"]["eventType"] == "MESSAGE":
            answered.append(event)
            done.set()

    recorder.before, recorder.after = hold_messages, after
    async with connect(live.ws_url) as ws:
        await send(ws, snapshot(LINE, 1))
    assert await asyncio.to_thread(done.wait, 10), "the handler answered after the client left"
    await asyncio.sleep(0.2)  # the emulator's attempt to deliver the route response
    assert not records.events("gateway_message_failed") and not records.events("ws_handler_failed")
    assert not records.events("gateway_message_crashed")


@pytest.mark.asyncio
async def test_invocations_overlap(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, recorder = gateway
    recorder.before = lambda event: (
        time.sleep(0.3) if event["requestContext"]["eventType"] == "MESSAGE" else None
    )
    async with connect(live.ws_url) as ws:
        start = time.monotonic()
        for seq in range(1, 5):
            await send(ws, snapshot(LINE, seq))
        seqs = {(await recv(ws))["seq"] for _ in range(4)}
        elapsed = time.monotonic() - start
    assert seqs == {1, 2, 3, 4}
    assert elapsed < 1.0, f"4 invocations of 0.3 s took {elapsed:.2f} s: they did not overlap"


@pytest.mark.asyncio
async def test_frame_limits(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, _ = gateway
    async with connect(live.ws_url) as ws:
        near = {**snapshot(LINE, 1), "padding": "x" * (32 * 1024 - 200)}
        await send(ws, near)
        assert (await recv(ws))["seq"] == 1, "a frame just under 32 KB reaches the handler"
        await ws.send("x" * (32 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    async with connect(live.ws_url) as ws:
        await ws.send(b"{}")
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1003


@pytest.mark.asyncio
async def test_handler_exception_gives_the_generic_error(predictor: Predictor) -> None:
    def factory(callback_url: str) -> Handler:
        def handler(event: dict[str, Any], context: Any) -> Any:
            if event["requestContext"]["eventType"] == "MESSAGE":
                raise RuntimeError("boom")
            return {"statusCode": 200}

        return handler

    with run_gateway(Settings(), handler_factory=factory) as live:
        async with connect(live.ws_url) as ws:
            await send(ws, {"action": "ping"})
            reply = await recv(ws)
    assert reply["message"] == "Internal server error"
    assert reply["connectionId"] and reply["requestId"]


@pytest.mark.asyncio
async def test_two_way_routes_return_the_body() -> None:
    def factory(callback_url: str) -> Handler:
        return lambda event, context: {
            "statusCode": 200,
            "body": json.dumps({"route": event["requestContext"]["routeKey"]}),
        }

    with run_gateway(Settings(), handler_factory=factory, two_way_routes=frozenset({"ping"})) as live:
        async with connect(live.ws_url) as ws:
            await send(ws, {"action": "predict"})  # one-way: the body is dropped
            await send(ws, {"action": "ping"})
            assert await recv(ws) == {"route": "ping"}


@pytest.mark.asyncio
async def test_the_templates_routes_are_two_way(gateway: tuple[LiveGateway, Recorder]) -> None:
    """By default the emulator's two-way routes are the template's: every message route answers."""
    live, _ = gateway
    assert live.gateway.two_way_routes == TWO_WAY_ROUTES == {"predict", "ping", "$default"}
    async with connect(live.ws_url) as ws:
        await send(ws, snapshot(LINE, 4))
        assert (await recv(ws))["seq"] == 4
        await send(ws, {"action": "ping"})
        assert await recv(ws) == {"type": "pong"}
        await ws.send("not json")
        assert (await recv(ws))["error"]["code"] == "invalid_json"


@pytest.mark.asyncio
async def test_the_handlers_replies_are_dropped_on_one_way_routes(predictor: Predictor) -> None:
    """Deployed without route responses, the real handler's replies would never reach the client."""
    settings = Settings()
    recorder = Recorder(settings, predictor)
    returned = threading.Event()
    recorder.after = lambda event: (
        returned.set() if event["requestContext"]["eventType"] == "MESSAGE" else None
    )
    with run_gateway(settings, handler_factory=recorder.factory, two_way_routes=frozenset()) as live:
        async with connect(live.ws_url) as ws:
            await send(ws, snapshot(LINE, 1))
            assert await asyncio.to_thread(returned.wait, 10)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)
    (message,) = recorder.of_type("MESSAGE")
    assert message["requestContext"]["routeKey"] == "predict"


@pytest.mark.asyncio
async def test_the_page_is_served(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, _ = gateway
    async with httpx.AsyncClient(base_url=live.http_url) as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (await http.get("/app.js")).status_code == 200
        assert (await http.get("/../pyproject.toml")).status_code == 404
        assert (await http.get("/nope.txt")).status_code == 404
    async with connect(live.http_url.replace("http", "ws") + "ws") as ws:  # the page's default URL
        await send(ws, {"action": "ping"})
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.asyncio
async def test_idle_connection_closes_with_1001(predictor: Predictor) -> None:
    with run_gateway(Settings(), predictor, idle_timeout_s=0.3) as live:
        async with connect(live.ws_url) as ws:
            await send(ws, {"action": "ping"})
            assert await recv(ws) == {"type": "pong"}
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


def raw_http(port: int, request: bytes, timeout: float = 3.0) -> bytes:
    """Send ``request`` as is on a fresh TCP connection; return what comes back until close or timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        out = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and out.startswith(b"HTTP/1.1 101"):
                    break
    return out


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:100]
    return int(response.split(b" ", 2)[1])


DEEP = "[" * 15000 + "]" * 15000  # 30 KB: under the frame limit, over json's recursion limit


def test_route_selection_survives_any_parse_failure() -> None:
    assert select_route(DEEP) == "$default"
    assert select_route('{"action": "predict", "a": ' + DEEP + "}") == "$default"
    assert select_route("\ud800") == "$default"


@pytest.mark.asyncio
async def test_deeply_nested_json_is_answered(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, recorder = gateway
    async with connect(live.ws_url) as ws:
        await ws.send(DEEP)
        reply = await recv(ws)
        await send(ws, {"action": "ping"})
        assert await recv(ws) == {"type": "pong"}
    assert reply["type"] == "error" and reply["error"]["code"] == "invalid_json"
    assert recorder.of_type("MESSAGE")[0]["requestContext"]["routeKey"] == "$default"


@pytest.mark.asyncio
async def test_an_emulator_failure_is_logged_and_answered(
    gateway: tuple[LiveGateway, Recorder], records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, _ = gateway

    def select(text: str) -> str:
        if text == "boom":
            raise RuntimeError("emulator bug")
        return select_route(text)

    monkeypatch.setattr(gateway_module, "select_route", select)
    async with connect(live.ws_url) as ws:
        await ws.send("boom")
        reply = await recv(ws)
        await send(ws, {"action": "ping"})
        assert await recv(ws) == {"type": "pong"}, "the connection survives"
    assert reply["message"] == "Internal server error" and reply["connectionId"] and reply["requestId"]
    (failed,) = records.events("gateway_message_failed")
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], RuntimeError)


@pytest.mark.asyncio
async def test_page_paths_that_are_not_files_give_404(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, _ = gateway
    port = int(live.http_url.rsplit(":", 1)[1].strip("/"))
    for path in (
        b"/%00",
        b"/index.html%00",
        b"/%00/../index.html",
        b"/../../etc/passwd",
        b"/%2e%2e/%2e%2e/etc/passwd",
        b"/..%2fpyproject.toml",
        b"/" + b"a" * 5000,
    ):
        response = await asyncio.to_thread(raw_http, port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(response) == 404, path
    ok = await asyncio.to_thread(raw_http, port, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(ok) == 200


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 response with a ``Content-Length`` body: ``(status, head, body)``."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return status_of(head), head, await asyncio.wait_for(reader.readexactly(length), 5)


@pytest.mark.asyncio
async def test_connections_api_refuses_malformed_content_length(
    gateway: tuple[LiveGateway, Recorder],
) -> None:
    live, _ = gateway
    mport = management_port(live)
    head = b"POST /prod/@connections/nope%3D HTTP/1.1\r\nHost: x\r\n"
    for headers in (
        b"Content-Length: abc\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Content-Length: " + b"9" * 5000 + b"\r\n",  # h11 reads at most 20 digits
    ):
        response = await asyncio.to_thread(raw_http, mport, head + headers + b"\r\n")
        assert status_of(response) == 400, headers
        assert b"connection: close" in response.lower(), "a body that cannot be framed ends the connection"


@pytest.mark.asyncio
async def test_connections_api_checks_content_length_before_reading(
    gateway: tuple[LiveGateway, Recorder],
) -> None:
    live, _ = gateway
    mport = management_port(live)
    async with connect(live.ws_url) as ws:
        cid = quote(await only_connection_id(live), safe="")
        head = f"POST /prod/@connections/{cid} HTTP/1.1\r\nHost: x\r\n".encode()
        over = 128 * 1024 + 1
        for headers, status, body in [
            (b"Transfer-Encoding: chunked\r\n", 411, b"7\r\n" + b'{"a":0}' + b"\r\n0\r\n\r\n"),
            (b"Content-Length: 100000000000\r\n", 413, None),
            (f"Content-Length: {over}\r\n".encode(), 413, b"x" * over),
        ]:
            reader, writer = await asyncio.open_connection("127.0.0.1", mport)
            try:
                writer.write(head + headers + b"\r\n")  # the body is not sent yet: it must not be awaited
                assert (await read_response(reader))[0] == status, headers
                if body is not None:  # the refused body is skipped, never parsed as a request
                    writer.write(body + head + b'Content-Length: 7\r\n\r\n{"a":1}')
                    assert (await read_response(reader))[0] == 200
                    assert await recv(ws) == {"a": 1}
            finally:
                writer.close()
                await writer.wait_closed()


@pytest.mark.asyncio
async def test_in_flight_invocations_per_connection_are_bounded(
    gateway: tuple[LiveGateway, Recorder],
) -> None:
    live, recorder = gateway
    release = threading.Event()
    recorder.before = lambda event: (
        release.wait(10) if event["requestContext"]["eventType"] == "MESSAGE" else None
    )
    try:
        async with connect(live.ws_url) as ws:
            conn = live.gateway.connections[await only_connection_id(live)]
            for _ in range(20):
                await send(ws, {"action": "ping"})
            await asyncio.sleep(0.5)
            in_flight = len(conn.tasks)
            release.set()
            replies = [await recv(ws) for _ in range(20)]
    finally:
        release.set()
    assert in_flight == MAX_IN_FLIGHT == 8, f"{in_flight} invocations in flight"
    assert replies == [{"type": "pong"}] * 20, "the rest is read once slots free up"


@pytest.mark.asyncio
async def test_invalid_handshakes_do_not_invoke_connect(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, recorder = gateway
    port = int(live.http_url.rsplit(":", 1)[1].strip("/"))
    key = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    for name, request, status in [
        ("no key", b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", 400),
        (
            "bad version",
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + key + b"Sec-WebSocket-Version: 8\r\n",
            400,
        ),
        ("no Connection", b"Upgrade: websocket\r\n" + key + b"Sec-WebSocket-Version: 13\r\n", 426),
        (
            "POST",
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + key + b"Sec-WebSocket-Version: 13\r\n",
            405,
        ),
    ]:
        method = b"POST" if name == "POST" else b"GET"
        response = await asyncio.to_thread(
            raw_http, port, method + b" /prod HTTP/1.1\r\nHost: x\r\n" + request + b"\r\n"
        )
        assert status_of(response) == status, name
    assert recorder.of_type("CONNECT") == [], "API Gateway does not invoke $connect for invalid upgrades"
    good = b"GET /prod HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + key
    response = await asyncio.to_thread(raw_http, port, good + b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert status_of(response) == 101
    assert len(recorder.of_type("CONNECT")) == 1


@pytest.mark.asyncio
async def test_connections_api_keeps_connections_alive(gateway: tuple[LiveGateway, Recorder]) -> None:
    live, _ = gateway
    mport = management_port(live)
    reader, writer = await asyncio.open_connection("127.0.0.1", mport)
    try:
        for _ in range(3):  # boto3 reuses its connections: every request on one socket is answered
            writer.write(b"GET /prod/@connections/nope%3D HTTP/1.1\r\nHost: x\r\n\r\n")
            status, head, _ = await read_response(reader)
            assert status == 410 and b"x-amzn-ErrorType: GoneException" in head
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_stop_does_not_wait_for_peers_that_never_close() -> None:
    """Clients holding a refused request's socket, or a connection they never close, must not stall the
    emulator's shutdown (Ctrl-C)."""
    gateway = Gateway(lambda url: lambda event, context: {"statusCode": 200}, stage="prod")
    await gateway.start("127.0.0.1", 0, 0)
    port = int(gateway.http_url.rstrip("/").rsplit(":", 1)[1])
    held = []
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")  # refused; held
        held.append(writer)
    reader, silent = await asyncio.open_connection("127.0.0.1", port)  # upgraded, then never answers
    silent.write(
        b"GET /prod HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    held.append(silent)
    await asyncio.sleep(0.2)
    start = time.monotonic()
    await gateway.stop()
    assert time.monotonic() - start < 2 * gateway_module.STOP_WAIT_S + 1.0
    assert gateway._server is not None and not gateway._server.all_connections, "every handler ended"
    for writer in held:
        writer.close()


@pytest.mark.asyncio
async def test_a_client_that_stopped_reading_cannot_stall_the_connections_api(
    gateway: tuple[LiveGateway, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each POST answers within the send timeout; once the client's buffers are full, it is dropped (410)."""
    live, _ = gateway
    monkeypatch.setattr(gateway_module, "SEND_TIMEOUT_S", 0.5)
    host, port = live.ws_url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port))) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.sendall(
            b"GET /prod HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert raw.recv(12) == b"HTTP/1.1 101"  # and never read again
        await asyncio.sleep(0.2)
        cid = await only_connection_id(live)
        url = f"{live.callback_url}/@connections/{quote(cid, safe='')}"
        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=10) as http:
            while len(statuses) < 200 and 410 not in statuses:
                start = time.monotonic()
                statuses.append((await http.post(url, content=b"x" * 120_000)).status_code)
                assert time.monotonic() - start < 3.0
            assert (await http.get(url)).status_code == 410, "the stuck connection was dropped"
    assert statuses[0] == 200 and statuses[-1] == 410
