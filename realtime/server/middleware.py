"""ASGI middleware of the local server: the request body limit and CORS with taxonomy errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.datastructures import Headers

from realtime.server.http_errors import error_response
from shared import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware bounding request bodies.

    Refuses bodies over ``max_bytes`` (413), by header or while streaming, and bodies whose chunks arrive
    more than ``timeout_s`` apart (408, slowloris).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, counting request body bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = errors.PayloadTooLarge(f"Request bodies are limited to {self.max_bytes} bytes.")
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(too_large)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            try:
                async with asyncio.timeout(self.timeout_s):  # no task per chunk, unlike wait_for
                    message = await receive()
            except TimeoutError:
                raise errors.RequestTimeout(
                    f"Each part of the body must arrive within {self.timeout_s:g} s."
                ) from None
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise too_large
            return message

        await self.app(scope, limited, send)


class CORS(CORSMiddleware):
    """Starlette's CORS middleware, with failed preflights answered in the taxonomy's JSON.

    Starlette answers a refused preflight with a plain-text 400 (``Disallowed CORS origin``); here an
    origin outside the allowlist gets ``forbidden_origin`` (403) and a refused method or header
    ``bad_request`` (400), as ``{"error": {"code", "message"}}``. Allowed preflights are unchanged.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer, unless it is a refusal (then a taxonomy error)."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        if not self.is_allowed_origin(origin=request_headers["origin"]):
            return error_response(errors.ForbiddenOrigin("This origin may not call this server."))
        return error_response(errors.ClientError("This method or header is not allowed across origins."))
