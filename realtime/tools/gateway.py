"""Local API Gateway WebSocket emulator: ``mnist-live gateway [--host 127.0.0.1] [--port 8001]``.

Runs the Lambda WebSocket entrypoint (:class:`realtime.aws.websocket_handler.WebSocketHandler`) in-process
behind a WebSocket server, so the Lambda code path is driven by API Gateway's event shapes and answers through
route responses, as deployed (``../shared/docs/aws-websocket.md``, §2 and "Exact Lambda event fields").
What it reproduces:

* ``$connect`` is invoked during the handshake; a non-2xx ``statusCode`` rejects it with that status.
  A request that is not a valid upgrade (no key, version other than 13, no ``Connection: Upgrade``, not
  GET) is refused (400/426/405) without invoking ``$connect``, as on AWS. CONNECT events carry
  ``headers``/``multiValueHeaders``, and ``queryStringParameters`` only when the URL has a query string.
* Route selection on ``$request.body.action`` (``predict``, ``ping``); anything that does not parse
  (invalid, too deeply nested) or names no route → ``$default``. Each message is one invocation on a pool
  of :data:`INVOKE_WORKERS` threads, so invocations overlap and replies may arrive out of order, as on
  Lambda. Route responses: the integration's ``body`` is sent to the client as one text frame only on
  two-way routes (default: :data:`~realtime.aws.lambda_types.TWO_WAY_ROUTES`, the template's), and dropped
  on one-way routes. A handler exception (or an emulator bug, which is logged) sends
  ``{"message": "Internal server error", ...}``.
* Back-pressure: at most :data:`MAX_IN_FLIGHT` invocations per connection. While they are all busy the
  emulator stops reading that socket, so a flooding client's sends block (TCP back-pressure) instead of
  the emulator queueing work and memory without bound.
* Frames over 32 KB close with 1009 (messages over 128 KiB too), binary frames with 1003.
* ``$disconnect`` gets ``disconnectStatusCode``/``disconnectReason`` after the connection is gone.
* The ``@connections`` management API on a second port (``/{stage}/@connections/{id}``, percent-encoded
  id): POST (200; 413 over 128 KB, decided from ``Content-Length`` before reading; 400 for a malformed
  one, 411 for chunked), GET (connectedAt, lastActiveAt, identity), DELETE (204); 410 with
  ``x-amzn-ErrorType: GoneException`` for unknown ids. A client that stops reading is dropped once a
  POST or DELETE has waited :data:`SEND_TIMEOUT_S` for it. A second port because the WebSocket server
  cannot read request bodies. It is a Starlette app served by uvicorn on the gateway's event loop
  (:mod:`realtime.tools.gateway_management`). The handler does not call it (its replies are route
  responses); it is there for clients of the management API, as on AWS.
* Plain GETs on the WebSocket port serve the page (``site/``); its default ``ws://host/ws`` works
  because any path upgrades, like a custom domain's mapping. Paths outside ``site/`` or not valid file
  names (``%00``) are 404.

* Idle connections close with 1001 after 10 min (``idle_timeout_s``).

Not emulated: the 2 h maximum connection duration, stage throttling (429 ``Limit Exceeded`` frames; the
per-connection bound above only slows a client down), authorizers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http
import mimetypes
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtime import logs
from realtime.aws.lambda_types import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES, TWO_WAY_ROUTES, RawEvent
from realtime.paths import site_dir
from realtime.tools import argtypes
from realtime.tools.gateway_events import (
    Api,
    EmulatedContext,
    connect_event,
    connection_info,
    disconnect_event,
    internal_error,
    message_event,
    new_connection_id,
    select_route,
    short_id,
    status_of,
)
from realtime.tools.gateway_management import ManagementApi

Handler = Callable[[RawEvent, Any], Any]
"""A Lambda handler: ``(event, context) -> {"statusCode": ...}``."""

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
IDLE_TIMEOUT_S = 600.0
"""API Gateway's idle timeout, seconds."""
DEFAULT_PORT = 8001
HANDSHAKE_WAIT_S = 5.0
"""How long an @connections call waits for a just-accepted connection's handshake to finish."""
SEND_TIMEOUT_S = 5.0
"""How long an ``@connections`` POST or DELETE waits for a client that is not reading, seconds; then
the connection is dropped and the call answers (410 for a POST)."""
STOP_WAIT_S = 2.0
"""How long :meth:`Gateway.stop` waits for connections to finish closing, seconds; then they are aborted
(a peer that stopped reading would hold websockets' ``close_timeout``, or for ever once cancelled)."""
MAX_IN_FLIGHT = 8
"""Invocations per connection running or waiting for a worker; beyond it the socket is not read."""
INVOKE_WORKERS = 8
"""Threads running handler invocations (more only adds GIL contention on a small machine)."""


@dataclass(slots=True)
class _Connection:
    id: str
    ws: ServerConnection | None
    connected_at: float
    last_active_at: float
    source_ip: str
    user_agent: str
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))

    async def open_ws(self) -> ServerConnection | None:
        """The socket once the handshake completed (``None`` if it does not within 5 s)."""
        if self.ws is not None and not self.opened.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.opened.wait(), HANDSHAKE_WAIT_S)
        return self.ws if self.opened.is_set() else None


class Gateway:
    """The emulator: a WebSocket server plus the ``@connections`` API, around one Lambda handler.

    Args:
        handler_factory: Builds the handler given the ``@connections`` callback URL
            (``http://host:port/{stage}``), for a handler that pushes with ``post_to_connection``.
        stage: The stage name (``prod``).
        api_id: The API id used in ``domainName`` (``{api_id}.execute-api.{region}.amazonaws.com``).
        region: The AWS region in ``domainName``.
        two_way_routes: Routes whose handler ``body`` is sent back (default: ``infra/template.yaml``'s,
            ``predict``, ``ping`` and ``$default``); on the others it is dropped.
        site: Folder served at ``/`` (default: the page, ``site/``).
        idle_timeout_s: Seconds without a client frame before closing with 1001 (API Gateway: 10 min).
        max_in_flight: Invocations per connection in progress before the emulator stops reading that
            socket (TCP back-pressure: the client's sends block, as under throttling).
        invoke_workers: Threads running invocations, shared by all connections.
    """

    def __init__(
        self,
        handler_factory: Callable[[str], Handler],
        *,
        stage: str = "prod",
        api_id: str = "local00001",
        region: str = "us-east-1",
        two_way_routes: frozenset[str] = TWO_WAY_ROUTES,
        site: Path | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_in_flight: int = MAX_IN_FLIGHT,
        invoke_workers: int = INVOKE_WORKERS,
    ) -> None:
        self.handler_factory = handler_factory
        self.idle_timeout_s = idle_timeout_s
        self.max_in_flight = max_in_flight
        self.invoke_workers = invoke_workers
        self._executor: ThreadPoolExecutor | None = None
        self.handler: Handler | None = None
        self.stage = stage
        self.api_id = api_id
        self.region = region
        self.two_way_routes = two_way_routes
        self.site = site if site is not None else site_dir()
        self.connections: dict[str, _Connection] = {}
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.management_port = 0
        self.log = logs.get_logger()
        self._management = ManagementApi(self)

    @property
    def api(self) -> Api:
        """The API the events name (stage, id, region)."""
        return Api(self.stage, self.api_id, self.region)

    @property
    def domain_name(self) -> str:
        """``domainName`` of the events, as on AWS (not reachable: nothing may call it)."""
        return self.api.domain_name

    @property
    def ws_url(self) -> str:
        """``ws://host:port/{stage}`` (any path is accepted)."""
        return f"ws://{self.host}:{self.port}/{self.stage}"

    @property
    def http_url(self) -> str:
        """The page: ``http://host:port/``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def callback_url(self) -> str:
        """The ``@connections`` endpoint for boto3's ``endpoint_url``: ``http://host:mport/{stage}``."""
        return f"http://{self.host}:{self.management_port}/{self.stage}"

    async def start(
        self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, management_port: int = 0
    ) -> None:
        """Start both servers (port 0: ephemeral) and build the handler (loads the model)."""
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.invoke_workers, thread_name_prefix="gateway-invoke")
        self.host = host
        self.management_port = await self._management.start(host, management_port)
        self.handler = await asyncio.to_thread(self.handler_factory, self.callback_url)
        self._server = await serve(
            self._serve,
            host,
            port,
            process_request=self._process_request,
            process_response=self._process_response,
            max_size=(MAX_MESSAGE_BYTES, MAX_FRAME_BYTES),
            ping_interval=None,
            compression=None,
        )
        self.port = self._server.sockets[0].getsockname()[1] if port == 0 else port

    async def stop(self) -> None:
        """Close every connection (their ``$disconnect`` runs), then both servers."""
        if self._server is not None:
            await _close_within(self._server, STOP_WAIT_S)
        tasks = [t for c in self.connections.values() for t in c.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await self._management.stop()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _slots(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(self.max_in_flight)

    async def _invoke(self, event: RawEvent) -> Any:
        assert self.handler is not None
        assert self._loop is not None
        return await self._loop.run_in_executor(self._executor, self.handler, event, EmulatedContext())

    # -- WebSocket side ---------------------------------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            return static_file(self.site, connection, request)
        # API Gateway invokes $connect only for valid upgrades: validate the handshake first, with the
        # library's own checks (405 method, 426 Connection/Upgrade, 400 key/version), and send its
        # rejection without invoking $connect. accept() only computes; websockets calls it again below.
        check = connection.protocol.accept(request)
        if check.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            return check
        now = time.time()
        peer = connection.remote_address[0] if connection.remote_address else "127.0.0.1"
        agent = request.headers.get("User-Agent", "")
        conn = _Connection(new_connection_id(), None, now, now, peer, agent, in_flight=self._slots())
        query = request.path.partition("?")[2]
        event = connect_event(self.api, conn, list(request.headers.raw_items()), query, now)
        try:
            result = await self._invoke(event)
        except Exception:
            self.log.exception("gateway_connect_failed", extra={"connection_id": conn.id})
            return connection.respond(http.HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error\n")
        status = status_of(result)
        if not 200 <= status < 300:
            return connection.respond(status, f"{http.HTTPStatus(status).phrase}\n")
        conn.ws = connection
        self.connections[conn.id] = conn  # exists once $connect returned 2xx, as on AWS
        return None

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:  # refused after $connect: forget it
            for conn in [c for c in self.connections.values() if c.ws is connection]:
                del self.connections[conn.id]

    async def _serve(self, connection: ServerConnection) -> None:
        conn = next(c for c in self.connections.values() if c.ws is connection)
        conn.opened.set()
        try:
            while True:
                try:
                    message = await asyncio.wait_for(connection.recv(), self.idle_timeout_s)
                except TimeoutError:
                    await connection.close(CLOSE_GOING_AWAY, "Idle timeout.")
                    break
                conn.last_active_at = time.time()
                if isinstance(message, bytes):
                    await connection.close(CLOSE_UNSUPPORTED_DATA, "Binary frames are not supported.")
                    break
                # At most max_in_flight invocations per connection: while full, the socket is not read,
                # so websockets' queue fills, it pauses the transport, and the client's sends block.
                await conn.in_flight.acquire()
                task = asyncio.create_task(self._message(conn, message))
                conn.tasks.add(task)
                task.add_done_callback(functools.partial(self._message_done, conn))
        except ConnectionClosed:
            pass
        finally:
            self.connections.pop(conn.id, None)
            await connection.wait_closed()
            event = disconnect_event(
                self.api, conn, connection.close_code, connection.close_reason or "", time.time()
            )
            try:
                await self._invoke(event)
            except Exception:
                self.log.exception("gateway_disconnect_failed", extra={"connection_id": conn.id})

    def _message_done(self, conn: _Connection, task: asyncio.Task[None]) -> None:
        """Free the connection's slot; log a task that failed (no exception is left unretrieved)."""
        conn.tasks.discard(task)
        conn.in_flight.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.log.error(
                "gateway_message_crashed",
                exc_info=(type(exc), exc, exc.__traceback__),
                extra={"connection_id": conn.id},
            )

    async def _message(self, conn: _Connection, text: str) -> None:
        try:
            await self._route_message(conn, text)
        except Exception:  # an emulator bug: answer like API Gateway, log, keep the connection
            self.log.exception("gateway_message_failed", extra={"connection_id": conn.id})
            if conn.ws is not None:
                with contextlib.suppress(ConnectionClosed):
                    await conn.ws.send(internal_error(conn.id, short_id()))

    async def _route_message(self, conn: _Connection, text: str) -> None:
        route = select_route(text)
        event = message_event(self.api, conn, route, text, time.time())
        try:
            result = await self._invoke(event)
        except Exception:
            self.log.exception("gateway_message_failed", extra={"connection_id": conn.id})
            reply: str | None = internal_error(conn.id, event["requestContext"]["requestId"])
        else:
            body = result.get("body") if isinstance(result, Mapping) else None
            reply = body if route in self.two_way_routes and isinstance(body, str) else None
        if reply is not None and conn.ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await conn.ws.send(reply)

    async def post_to(self, connection_id: str, data: bytes) -> bool:
        """Send ``data`` as one frame (text when UTF-8); ``False`` when the connection is gone."""
        conn = self.connections.get(connection_id)
        ws = await conn.open_ws() if conn is not None else None
        if ws is None:
            return False
        try:
            payload: str | bytes = data.decode()
        except UnicodeDecodeError:
            payload = data
        return await _send_or_drop(ws, payload)

    async def describe(self, connection_id: str) -> dict[str, Any] | None:
        """``GetConnection``'s body, or ``None`` when gone."""
        conn = self.connections.get(connection_id)
        return connection_info(conn, conn.last_active_at) if conn is not None else None

    async def disconnect(self, connection_id: str) -> bool:
        """``DeleteConnection``: close it (its ``$disconnect`` follows); ``False`` when gone."""
        conn = self.connections.get(connection_id)
        ws = await conn.open_ws() if conn is not None else None
        if ws is None:
            return False
        with contextlib.suppress(TimeoutError):  # a client that stopped reading cannot stall the call
            await asyncio.wait_for(ws.close(1000, "Goodbye"), SEND_TIMEOUT_S)
        ws.transport.abort()  # closed by now, or stuck: drop it (a no-op on a closed transport)
        return True


async def _close_within(server: Server, seconds: float) -> None:
    """Close ``server`` and its connections, aborting peers that have not finished closing in ``seconds``."""
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(server.wait_closed()), seconds)
        return
    for connection in list(server.all_connections):
        connection.transport.abort()  # the handler then ends, $disconnect included
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), seconds)


async def _send_or_drop(ws: ServerConnection, payload: str | bytes) -> bool:
    """Send one frame; a client that does not take it within :data:`SEND_TIMEOUT_S` is dropped.

    Returns:
        ``True`` when sent, ``False`` when the connection was or is now gone.
    """
    try:
        await asyncio.wait_for(ws.send(payload), SEND_TIMEOUT_S)
    except ConnectionClosed:
        return False
    except TimeoutError:  # it stopped reading: API Gateway would not hold the caller either
        ws.transport.abort()
        return False
    return True


def static_file(site: Path, connection: ServerConnection, request: Request) -> Response:
    """A plain GET on the WebSocket port: a file under ``site``.

    404 for anything outside it, missing, or not a valid path.
    """
    path = unquote(request.path.partition("?")[0])
    if path.endswith("/"):
        path += "index.html"
    body = None
    if "\x00" not in path:  # pathlib raises ValueError on NUL ("/index.html%00"): not a file
        try:
            root = site.resolve()
            target = (root / path.lstrip("/")).resolve()
            if target.is_relative_to(root) and target.is_file():
                body = target.read_bytes()
        except (OSError, ValueError):  # name too long, permission, a loop of symlinks
            body = None
    if body is None:
        return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = Headers(
        [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),  # websockets closes the socket after any HTTP response
        ]
    )
    return Response(200, "OK", headers, body)


def lambda_handler_factory(settings: Any, predictor: Any = None) -> Callable[[str], Handler]:
    """A :class:`Gateway` ``handler_factory`` building the real Lambda WebSocket handler.

    The handler answers through route responses, so it ignores the callback URL it is given.

    Args:
        settings: :class:`~shared.settings.Settings`.
        predictor: A loaded :class:`~shared.inference.Predictor`, or ``None`` to load the model.
    """

    def factory(callback_url: str) -> Handler:
        from realtime.aws.websocket_handler import WebSocketHandler

        return WebSocketHandler(settings, predictor)

    return factory


async def _run(args: argparse.Namespace) -> None:
    from shared.settings import Settings

    settings = Settings(log_level=args.log_level) if args.log_level else Settings()
    logs.configure(settings.log_level)
    gateway = Gateway(lambda_handler_factory(settings), stage=args.stage)
    mport = args.management_port if args.management_port is not None else (args.port + 1 if args.port else 0)
    await gateway.start(args.host, args.port, mport)
    print(
        f"mnist-live gateway: WebSocket {gateway.ws_url} (wscat -c {gateway.ws_url}), "
        f"page {gateway.http_url}, @connections {gateway.callback_url}",
        file=sys.stderr,
    )
    try:
        await asyncio.Future()
    finally:
        await gateway.stop()


def _gateway(args: argparse.Namespace) -> int:
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(args))
    except (OSError, OverflowError) as exc:  # a taken port, a bad host: one line, as ``serve`` says it
        reason = getattr(exc, "strerror", None) or exc
        print(f"mnist-live gateway: cannot listen on {args.host} ({reason})", file=sys.stderr)
        return 2
    return 0


def add_command(sub: Any) -> None:
    """Register ``mnist-live gateway``."""
    cmd = sub.add_parser(
        "gateway", help="run the Lambda WebSocket handler behind a local API Gateway emulator"
    )
    cmd.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    cmd.add_argument(
        "--port", type=argtypes.port, default=DEFAULT_PORT, help=f"WebSocket port (default {DEFAULT_PORT})"
    )
    cmd.add_argument(
        "--management-port",
        type=argtypes.port,
        default=None,
        help="@connections API port (default: --port + 1)",
    )
    cmd.add_argument("--stage", type=argtypes.stage_name, default="prod", help="stage name (default prod)")
    cmd.add_argument(
        "--log-level", default=None, help="handler log level (default MNIST_LIVE_LOG_LEVEL, INFO)"
    )
    cmd.set_defaults(func=_gateway)
