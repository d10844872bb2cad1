"""The ``@connections`` management API of the emulator: a Starlette app served by uvicorn.

``POST``, ``GET`` and ``DELETE /{stage}/@connections/{id}`` (percent-encoded id) as on AWS: 200 (GET's body
is ``GetConnection``'s: connectedAt, lastActiveAt, identity), 204 for DELETE, 410 with
``x-amzn-ErrorType: GoneException`` for unknown ids, 403 for another stage; other paths are 404 and other
methods 405, with AWS's ``{"message": ...}`` bodies and ``x-amzn-ErrorType``.

Request bodies: 413 over 128 KB, decided from ``Content-Length`` before reading; 411 for
``Transfer-Encoding`` (chunked bodies are not supported). uvicorn then skips the unread body (framed by
its ``Content-Length`` or chunks, so never parsed as a request) and keeps the connection, so a client
that sends its whole body before reading the answer gets the 413, not a reset connection. A malformed
``Content-Length`` (not digits, over 20 digits, two that differ) is refused before the app runs by
uvicorn's HTTP/1.1 parser (h11): a plain-text 400 and the connection closes.

uvicorn runs as a task on the gateway's own event loop (:meth:`uvicorn.Server.serve`), not in a thread:
each ``post_to_connection`` then costs no thread hand-offs (HTTP thread -> loop -> HTTP thread), which
under the GIL would be most of a reply's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime import logs
from realtime.aws.lambda_types import MAX_MESSAGE_BYTES

KEEP_ALIVE_TIMEOUT_S = 10
"""How long an idle keep-alive ``@connections`` connection stays open, seconds (uvicorn's
``timeout_keep_alive``; boto3 reuses its connections)."""
SHUTDOWN_TIMEOUT_S = 5
"""How long :meth:`ManagementApi.stop` lets requests in progress finish, seconds, before cancelling them
(uvicorn's ``timeout_graceful_shutdown``)."""
MAX_HEADER_BYTES = 64 * 1024
"""Largest ``@connections`` request head, bytes (uvicorn's ``h11_max_incomplete_event_size``; larger:
a 400 and the connection closes)."""

_ERROR_TYPES = {404: "NotFoundException", 405: "MethodNotAllowedException"}


class Connections(Protocol):
    """The live connections the management API acts on (the gateway)."""

    stage: str
    log: logging.Logger

    async def post_to(self, connection_id: str, data: bytes) -> bool:
        """Send one frame; ``False`` when the connection is gone."""

    async def describe(self, connection_id: str) -> dict[str, Any] | None:
        """``GetConnection``'s body, or ``None`` when gone."""

    async def disconnect(self, connection_id: str) -> bool:
        """Close the connection; ``False`` when gone."""


class _EmbeddedServer(uvicorn.Server):
    """A :class:`uvicorn.Server` that shares its event loop with the gateway.

    It installs no signal handlers (the gateway's CLI owns Ctrl-C; uvicorn's would stop this server
    only), and sets :attr:`listening` once it accepts connections.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave the process's signal handlers alone."""
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Uvicorn's start-up, then :attr:`listening` is set."""
        await super().startup(sockets)
        self.listening.set()


class ManagementApi:
    """The ``@connections`` HTTP server for one gateway's connections."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.log = connections.log
        self.port = 0
        self.app = Starlette(
            routes=[
                Route(path, self._endpoint, methods=["GET", "POST", "DELETE"])
                for path in ("/@connections/{connection_id}", "/{stage}/@connections/{connection_id}")
            ],
            exception_handlers={HTTPException: _http_error},
        )
        self.app.router.redirect_slashes = False  # a trailing slash is another path (404), as on AWS
        self._server: _EmbeddedServer | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: ephemeral) and serve on this event loop; returns the port.

        Raises:
            OSError: The address cannot be resolved or bound (``socket.gaierror`` for a bad host).
        """
        sock = await _listen(host, port)
        config = uvicorn.Config(
            self.app,
            http="h11",  # the parser whose limits are set here, whatever else is installed
            ws="none",
            lifespan="off",
            log_config=logs.UVICORN_LOG_CONFIG,  # JSON lines, like the gateway's own log
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_TIMEOUT_S,
            timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        )
        self._server = _EmbeddedServer(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[sock]))
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._serving, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():  # uvicorn ended before it listened (its app or options failed to load)
            listening.cancel()
            sock.close()
            self._serving.result()
            raise RuntimeError("the @connections server stopped before listening")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening, close keep-alive connections and wait for uvicorn to finish."""
        if self._server is None or self._serving is None:
            return
        self._server.should_exit = True
        await self._serving

    async def _endpoint(self, request: Request) -> Response:
        """One ``@connections`` call; a failure of the emulator is logged and answered with a 500."""
        try:
            return await self._manage(request)
        except Exception:
            self.log.exception("gateway_management_failed")
            return _response(500, {"message": "Internal server error"}, "InternalServerErrorException")

    async def _manage(self, request: Request) -> Response:
        stage = request.path_params.get("stage")
        if stage is not None and stage != self.connections.stage:
            return _response(403, {"message": "Forbidden"}, "ForbiddenException")
        refusal = _refuse_body(request.headers)
        if refusal is not None:
            return refusal
        connection_id = request.path_params["connection_id"]
        gone = _response(410, {"message": None}, "GoneException")
        if request.method == "POST":
            sent = await self.connections.post_to(connection_id, await request.body())
            return _response(200) if sent else gone
        if request.method == "DELETE":
            return _response(204) if await self.connections.disconnect(connection_id) else gone
        info = await self.connections.describe(connection_id)  # GET (and HEAD)
        return _response(200, info) if info is not None else gone


async def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on the first address ``host`` resolves to.

    Bound here rather than by uvicorn, whose start-up turns a bind error into ``sys.exit``: an
    :class:`OSError` from here reaches the caller (the CLI's "cannot listen" line).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return socket.create_server(address, family=family)


def _refuse_body(headers: Headers) -> Response | None:
    """The refusal to send without reading the body, or ``None`` when the body may be read.

    411 for ``Transfer-Encoding``, 413 for a ``Content-Length`` over :data:`MAX_MESSAGE_BYTES` (h11 has
    already checked it is at most 20 digits).
    """
    if "transfer-encoding" in headers:
        return _response(411, {"message": "Length Required"}, "BadRequestException")
    if int(headers.get("content-length", "0")) > MAX_MESSAGE_BYTES:
        return _response(413, {"message": "Request Entity Too Large"}, "PayloadTooLargeException")
    return None


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's 404 (no route) and 405 (other methods) with AWS's JSON body and error type."""
    assert isinstance(exc, HTTPException)
    response = _response(exc.status_code, {"message": exc.detail}, _ERROR_TYPES.get(exc.status_code))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _response(status: int, body: dict[str, Any] | None = None, error_type: str | None = None) -> Response:
    """A JSON response (empty for ``None``) with AWS's ``x-amzn-RequestId`` and ``x-amzn-ErrorType``.

    The ``x-amzn-*`` names keep AWS's spelling on the wire (Starlette would lower-case them).
    """
    response = Response(json.dumps(body) if body is not None else b"", status, media_type="application/json")
    response.raw_headers.append((b"x-amzn-RequestId", str(uuid.uuid4()).encode()))
    if error_type:
        response.raw_headers.append((b"x-amzn-ErrorType", error_type.encode()))
    return response
