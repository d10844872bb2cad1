"""HTTP errors, mapped once: the taxonomy (:mod:`shared.errors`) to ``{"error": {"code", "message"}}``.

Every HTTP error this server sends is built by :func:`error_response`: the taxonomy's own errors, Starlette's
404 and 405 (as :class:`~shared.errors.NotFound` and :class:`~shared.errors.MethodNotAllowed`), request
validation, the body limit and refused CORS preflights (:mod:`realtime.server.middleware`).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from realtime import logs
from shared import errors

STARLETTE_ERRORS: dict[int, type[errors.ClientError]] = {404: errors.NotFound, 405: errors.MethodNotAllowed}
"""Starlette's routing errors as taxonomy classes; any other status Starlette raises is a ``bad_request``."""


def error_response(
    error: errors.MnistLiveError, headers: Mapping[str, str] | None = None, status: int | None = None
) -> JSONResponse:
    """``{"error": {"code", "message"}}`` with the error's HTTP status (or ``status``: Starlette's own)."""
    return JSONResponse({"error": error.to_dict()}, status_code=status or error.http_status, headers=headers)


def taxonomy_response(error: errors.MnistLiveError, path: str) -> JSONResponse:
    """:func:`error_response`, logging server-side faults (5xx) first; clients' mistakes are not."""
    if error.http_status >= 500:
        logs.get_logger().error("server_error", extra={"code": error.code, "path": path})
    return error_response(error)


def log_client_gone(path: str) -> None:
    """Log that the client left before its answer (not a fault)."""
    logs.get_logger().info("http_client_disconnected", extra={"path": path})


def install_error_handlers(app: FastAPI) -> None:
    """Map the taxonomy (and Starlette's own errors) to ``{"error": {"code", "message"}}`` once."""

    async def taxonomy(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.MnistLiveError)
        return taxonomy_response(exc, request.url.path)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        error = STARLETTE_ERRORS.get(exc.status_code, errors.ClientError)()
        return error_response(error, exc.headers, status=exc.status_code)

    async def client_gone(request: Request, exc: Exception) -> Response:
        log_client_gone(request.url.path)
        return Response(status_code=400)  # nobody is listening; nothing to log as a fault

    async def validation(request: Request, exc: Exception) -> Response:
        return error_response(errors.InvalidFieldType("A parameter has the wrong type or value."))

    async def unexpected(request: Request, exc: Exception) -> Response:
        logs.get_logger().error(
            "unhandled_exception", extra={"path": request.url.path, "exc_type": type(exc).__name__}
        )
        return error_response(errors.ServerError())

    app.add_exception_handler(errors.MnistLiveError, taxonomy)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)
