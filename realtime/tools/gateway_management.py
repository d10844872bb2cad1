"""The ``@connections`` management API of the emulator: a small keep-alive HTTP/1.1 server.

``POST``, ``GET`` and ``DELETE /{stage}/@connections/{id}`` (percent-encoded id) as on AWS: 200; 413 over
128 KB, decided from ``Content-Length`` before reading; 400 for a malformed one, 411 for chunked; 410 with
``x-amzn-ErrorType: GoneException`` for unknown ids. It runs on the gateway's own event loop, not in a
ThreadingHTTPServer: each ``post_to_connection`` then costs no thread hand-offs (HTTP thread -> loop ->
HTTP thread), which under the GIL were most of a reply's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import unquote

from realtime.aws.lambda_types import MAX_MESSAGE_BYTES

MANAGEMENT_TIMEOUT_S = 10.0
"""How long the ``@connections`` server waits for a request's head or body, seconds, before dropping it."""
MAX_HEADER_BYTES = 64 * 1024
"""Largest ``@connections`` request head, bytes (larger: the connection is dropped)."""


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


class ManagementApi:
    """The ``@connections`` HTTP server for one gateway's connections."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.log = connections.log
        self.port = 0
        self._server: asyncio.Server | None = None
        self._streams: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: ephemeral); returns the port."""
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEADER_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Stop listening and close keep-alive connections."""
        if self._server is None:
            return
        self._server.close()  # stops listening; keep-alive connections are closed below
        for writer in self._streams.values():
            writer.close()  # its reader sees EOF and the task ends (cancelling it would log noise)
        if self._streams:
            await asyncio.wait(list(self._streams), timeout=5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve keep-alive requests on one connection until the client or an error closes it."""
        task = asyncio.current_task()
        if task is not None:
            self._streams[task] = writer
        try:
            while await self._request(reader, writer):
                pass
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # stalled, gone, or oversized headers: drop the connection
        except Exception:
            self.log.exception("gateway_management_failed")
            with contextlib.suppress(Exception):
                _write_response(
                    writer, 500, {"message": "Internal server error"}, "InternalServerErrorException"
                )
        finally:
            writer.close()
            if task is not None:
                self._streams.pop(task, None)

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read, answer and flush one request; ``False`` when the connection must close."""
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), MANAGEMENT_TIMEOUT_S)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            _write_response(writer, 400, {"message": "Bad Request"}, "BadRequestException", close=True)
            return False
        method, target, version = parts
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.setdefault(name.strip().lower(), []).append(value.strip())
        connection = ",".join(headers.get("connection", [])).lower()
        keep_alive = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
        length = 0
        if method == "POST" or "content-length" in headers or "transfer-encoding" in headers:
            checked = _content_length(headers)
            if isinstance(checked, tuple):  # refused before reading: the unread body ends the connection
                _write_response(writer, *checked, close=True)
                await writer.drain()
                return False
            length = checked
        body = await asyncio.wait_for(reader.readexactly(length), MANAGEMENT_TIMEOUT_S) if length else b""
        status, reply, error_type = await self._manage(method, target, body)
        _write_response(writer, status, reply, error_type, close=not keep_alive)
        await writer.drain()
        return keep_alive

    async def _manage(
        self, method: str, target: str, body: bytes
    ) -> tuple[int, dict[str, Any] | None, str | None]:
        """``(status, JSON body, x-amzn-ErrorType)`` for one ``@connections`` call."""
        match = _CONNECTIONS_PATH.match(target.partition("?")[0])
        if match is None:
            return 404, {"message": "Not Found"}, "NotFoundException"
        if match["stage"] is not None and match["stage"] != self.connections.stage:
            return 403, {"message": "Forbidden"}, "ForbiddenException"
        connection_id = unquote(match["id"])
        gone = (410, {"message": None}, "GoneException")
        if method == "POST":
            return (200, None, None) if await self.connections.post_to(connection_id, body) else gone
        if method == "GET":
            info = await self.connections.describe(connection_id)
            return (200, info, None) if info is not None else gone
        if method == "DELETE":
            return (204, None, None) if await self.connections.disconnect(connection_id) else gone
        return 405, {"message": "Method Not Allowed"}, "MethodNotAllowedException"


_DIGITS = re.compile(r"[0-9]+")
_CONNECTIONS_PATH = re.compile(r"^(?:/(?P<stage>[^/@]+))?/@connections/(?P<id>[^/]+)$")


def _content_length(headers: Mapping[str, list[str]]) -> int | tuple[int, dict[str, Any], str]:
    """The request body's size in bytes, or the refusal ``(status, body, error type)`` to send unread.

    400 for a malformed or conflicting ``Content-Length``, 411 for ``Transfer-Encoding`` (chunked
    bodies are not supported), 413 over :data:`MAX_MESSAGE_BYTES` (decided from the header alone).
    """
    values = headers.get("content-length", [])
    if headers.get("transfer-encoding"):
        return 411, {"message": "Length Required"}, "BadRequestException"
    if len(set(values)) > 1 or not all(_DIGITS.fullmatch(v) for v in values):
        return 400, {"message": "Invalid Content-Length"}, "BadRequestException"
    if values and (len(values[0]) > 9 or int(values[0]) > MAX_MESSAGE_BYTES):  # never int("9" * 5000)
        return 413, {"message": "Request Entity Too Large"}, "PayloadTooLargeException"
    return int(values[0]) if values else 0


def _write_response(
    writer: asyncio.StreamWriter,
    status: int,
    body: dict[str, Any] | None = None,
    error_type: str | None = None,
    *,
    close: bool = False,
) -> None:
    """Write one HTTP/1.1 response with a JSON body (empty for ``None``) and AWS's headers."""
    data = json.dumps(body).encode() if body is not None else b""
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        "Server: mnist-live-gateway",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        f"x-amzn-RequestId: {uuid.uuid4()}",
    ]
    if error_type:
        lines.append(f"x-amzn-ErrorType: {error_type}")
    if close:
        lines.append("Connection: close")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
