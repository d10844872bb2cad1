"""The local server: one FastAPI app serving the page, the WebSocket, the HTTP fallback and health.

Routes: ``/`` (the page, ``site/``), ``/ws`` (protocol v1, ``docs/protocol.md``), ``POST /predict``,
``GET /healthz`` (liveness), ``GET /readyz`` (model loaded and warmed up), ``GET /model`` (metadata),
``/docs`` (OpenAPI). The model session is created once, in the lifespan, never per request. The same app
runs on Lambda behind Mangum (:mod:`realtime.http_handler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, TypeAdapter
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect, WebSocketState

from realtime import access, logs
from realtime.batcher import InferenceBatcher, Outcome, Ticket
from realtime.messages import PredictRequest, ServerMessage, encode, encode_json, parse_predict_request
from realtime.protocol import Session, SessionConfig, infer, parse
from shared import errors
from shared.inference import Predictor, top_k
from shared.number import CharacterReading, as_number
from shared.preprocess import Frame, ImageFrame, StrokesFrame
from shared.schemas import ModelInfo
from shared.settings import REPO_ROOT, Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
OFF_LOOP_PARSE_CHARS = 16 * 1024
"""Frames longer than this are parsed in a worker thread (~1 ms per 12 KB here) so other connections
never wait behind one client's big snapshots."""


def site_dir() -> Path:
    """The page's folder: ``site/`` in a checkout, ``realtime/site`` in an installed wheel."""
    checkout = REPO_ROOT / "site"
    return checkout if (checkout / "index.html").is_file() else Path(__file__).parent / "site"


class TopK(BaseModel):
    """One of the most probable classes."""

    digit: int
    probability: float


class PredictResponse(BaseModel):
    """``POST /predict`` answer: the core :class:`~shared.schemas.Prediction` plus top-3 and latency."""

    status: Literal["ok", "no_digit", "not_a_digit"]
    digit: int | None
    probabilities: list[float] | None
    confidence: float | None
    not_a_digit_score: float | None
    top_k: list[TopK]
    latency_ms: float


class NumberPredictResponse(PredictResponse):
    """``POST /predict`` answer in number mode.

    ``digit``, ``probabilities``, ``confidence`` and ``not_a_digit_score`` null, ``top_k`` empty, plus
    ``"mode": "number"``, ``number`` and ``digits`` (as the WebSocket reply).
    """

    mode: Literal["number"] = "number"
    number: str | None
    digits: list[CharacterReading]


class ErrorResponse(BaseModel):
    """``{"error": {"code", "message"}}``."""

    error: dict[str, str]


class BodyLimit:
    """ASGI middleware bounding request bodies.

    Refuses bodies over ``max_bytes`` (413), by header or while streaming, and bodies whose chunks arrive
    more than ``timeout_s`` apart (408, slowloris).
    """

    def __init__(
        self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int, timeout_s: float
    ) -> None:
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
                await _error_response(too_large)(scope, receive, send)
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
            return _error_response(errors.ForbiddenOrigin("This origin may not call this server."))
        return _error_response(errors.ClientError("This method or header is not allowed across origins."))


def _error_response(error: errors.MnistLiveError) -> JSONResponse:
    return JSONResponse({"error": error.to_dict()}, status_code=error.http_status)


def _taxonomy_response(error: errors.MnistLiveError, path: str) -> JSONResponse:
    """:func:`_error_response`, logging server-side faults (5xx) first; clients' mistakes are not."""
    if error.http_status >= 500:
        logs.get_logger().error("server_error", extra={"code": error.code, "path": path})
    return _error_response(error)


INLINE_MAX_POINTS = 256
"""Strokes frames with at most this many points may be classified on the event loop instead of being
handed to a worker thread. Typical pen digits have 50-110 points and cost about 0.5 ms of CPU here; the
worst 256-point frame (a zig-zag that simplification cannot thin) about 3 ms. The hand-off to a worker
and back costs more than a typical frame under load: each side waits for the GIL while the other runs
Python. Measured with ``bench/bench_server.py``: strokes requests/s rose by about 40 %."""
INLINE_SHARE = 0.5
"""At most this share of the event loop's time goes to inline classification (:class:`InlineBudget`)."""
INLINE_BURST_S = 0.005
"""At most this much inline classification back to back, seconds, before the loop serves others."""


class InlineBudget:
    """A token bucket of event-loop time for inline classification.

    Tokens (seconds) accrue at ``share`` per second of wall time, up to ``burst``; each inline
    classification spends its measured duration. While the bucket is empty frames go to the inference
    workers instead. So a flood of frames, however heavy, holds the loop at most ``burst`` plus one
    frame at a time and at most ``share`` of its time overall, and WebSocket pings and other requests
    are not kept waiting (a flood of 512-point frames from 64 clients delayed pings by 0.7 s without
    this budget).

    Args:
        share: Long-run share of wall time inline work may take, in (0, 1].
        burst: Bucket size, seconds.
        clock: Monotonic clock, seconds (tests pass a fake one).
    """

    def __init__(
        self,
        share: float = INLINE_SHARE,
        burst: float = INLINE_BURST_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.share = share
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self._last = clock()

    def available(self) -> bool:
        """Whether a frame may be classified inline now (the bucket is not empty)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.share)
        self._last = now
        return self.tokens > 0

    def spend(self, seconds: float) -> None:
        """Charge ``seconds`` of inline work to the bucket."""
        self.tokens -= seconds


def runs_inline(frame: Frame) -> bool:
    """Whether ``frame`` is cheap enough to classify on the event loop (see :data:`INLINE_MAX_POINTS`).

    Images never are: their decoding time depends on content the header does not bound tightly.
    """
    if not isinstance(frame, StrokesFrame) or not isinstance(frame.strokes, list):
        return False
    points = 0
    for stroke in frame.strokes:
        points += len(stroke) if isinstance(stroke, list) else 0
        if points > INLINE_MAX_POINTS:
            return False
    return len(frame.strokes) <= INLINE_MAX_POINTS


class Runtime:
    """What the lifespan builds: the predictor, the inference workers and the connection count."""

    def __init__(self, settings: Settings, predictor: Predictor | None) -> None:
        self.settings = settings
        self.predictor = predictor
        self.ready = False
        self.load_error: str | None = None  # why the model could not be loaded, for /readyz
        self.connections = 0
        self._batcher: InferenceBatcher | None = None
        self.inline_budget = InlineBudget()

    async def infer(self, frame: Frame) -> Outcome:
        """Preprocess and classify one frame; errors are returned, not raised.

        A small strokes frame (:func:`runs_inline`) is classified right here, on the event loop, while
        :attr:`inline_budget` allows; any other frame goes to the inference workers.
        """
        if runs_inline(frame) and self.inline_budget.available():
            start = time.perf_counter()
            outcome = infer(self.predictor, frame, self.settings.limits)
            self.inline_budget.spend(time.perf_counter() - start)
            return outcome
        return await self.enqueue(frame).future

    def enqueue(self, frame: Frame) -> Ticket:
        """Queue one frame for inference; ``await ticket.future`` (see :meth:`InferenceBatcher.enqueue`)."""
        if self._batcher is None:
            self._batcher = InferenceBatcher(
                lambda: self.predictor,
                self.settings.limits,
                workers=self.settings.inference_threads,
                max_batch=self.settings.inference_max_batch,
            )
        return self._batcher.enqueue(frame)

    def replace(self, ticket: Ticket, frame: Frame) -> bool:
        """Swap a queued ticket's frame if no worker took it yet (:meth:`InferenceBatcher.replace`)."""
        return self._batcher is not None and self._batcher.replace(ticket, frame)

    def close(self) -> None:
        """Stop the inference workers."""
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options every server of this app uses (``mnist-live serve`` and the tests' servers).

    WebSocket keepalive pings are off (the protocol has its own ``ping`` action, and API Gateway sends
    none); frames above ``ws_hard_max_bytes`` close the connection (1009); permessage-deflate is only
    offered when ``ws_per_message_deflate`` is set.
    """
    return {
        "ws_max_size": settings.ws_hard_max_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "ws_ping_interval": None,
        "limit_concurrency": settings.max_concurrency,
        "proxy_headers": False,
    }


def create_app(settings: Settings | None = None, predictor: Predictor | None = None) -> FastAPI:
    """Build the app.

    Args:
        settings: Configuration (default: read from ``MNIST_LIVE_*``).
        predictor: A loaded model to use instead of loading ``settings.model_path`` (tests).

    Returns:
        The FastAPI application; serve it with uvicorn (``mnist-live serve``).
    """
    settings = settings or Settings()
    log = logs.configure(settings.log_level)
    runtime = Runtime(settings, predictor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start = time.perf_counter()
        if runtime.predictor is None:
            try:
                runtime.predictor = await anyio.to_thread.run_sync(
                    Predictor, settings.model_path, settings.intra_op_num_threads
                )
            except errors.ModelError as exc:
                runtime.load_error = exc.message
                log.error("model_load_failed", extra={"reason": exc.message})
        if runtime.predictor is not None:
            await anyio.to_thread.run_sync(runtime.predictor.warm_up)
            runtime.ready = True
            log.info(
                "model_ready", extra={"sha256": runtime.predictor.info.sha256, "ms": logs.elapsed_ms(start)}
            )
        # Everything built so far lives as long as the process: imports, numba's kernels, the model.
        # Keep it out of the cyclic collector: a full collection over those ~140,000 objects took
        # 135 ms here, a pause for every open connection (WebSocket p99, bench/README.md).
        gc.freeze()
        try:
            yield
        finally:
            runtime.close()

    app = FastAPIOffline(  # FastAPI whose /docs (Swagger UI) assets are served from here, not a CDN
        redoc_url=None,  # ReDoc would still fetch its logo from cdn.redoc.ly
        title="mnist-live",
        version="1.0.0",
        summary="Live handwritten-digit recognition: WebSocket protocol v1 at /ws, HTTP at /predict.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    _install_error_handlers(app)
    app.add_middleware(PredictFastPath, runtime=runtime)  # innermost: CORS and body limits still apply
    app.add_middleware(
        CORS,
        allow_origins=list(settings.allowed_origins),
        allow_origin_regex=r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?",
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(
        BodyLimit, max_bytes=settings.http_max_body_bytes, timeout_s=settings.http_body_timeout_s
    )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"model": ErrorResponse}})
    async def readyz() -> dict[str, str]:
        """Readiness: the model is loaded and warmed up."""
        if not runtime.ready:
            raise errors.ModelError(runtime.load_error or "The model is not loaded yet.")
        return {"status": "ready"}

    @app.get("/model", tags=["model"], responses={503: {"model": ErrorResponse}})
    async def model_info() -> ModelInfo:
        """The loaded model's name, version, sha256, tensor contract and metadata."""
        if runtime.predictor is None:
            raise errors.ModelError("The model is not loaded.")
        return runtime.predictor.info

    @app.post(
        "/predict",
        tags=["predict"],
        response_model=PredictResponse | NumberPredictResponse,
        responses={code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 422, 503)},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": TypeAdapter(PredictRequest).json_schema()},
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            },
            "parameters": [
                {
                    "name": "mode",
                    "in": "query",
                    "required": False,
                    "description": "'number' reads the snapshot as a number (JSON bodies may use "
                    "their 'mode' field instead)",
                    "schema": {"enum": ["digit", "number"], "default": "digit"},
                }
            ],
        },
    )
    async def predict(request: Request) -> Response:
        """Classify one canvas snapshot: JSON strokes or image, a raw ``image/*`` body, or a file upload.

        ``"mode": "number"`` in a JSON body, or ``?mode=number`` with an image or upload body, reads
        the snapshot as a number.

        JSON and ``image/*`` bodies are answered by :class:`PredictFastPath` before they get here; this
        route serves multipart uploads and documents the endpoint in OpenAPI. Both answer alike.
        """
        start = time.perf_counter()
        access.check_token(access.bearer_token(request.headers.get("authorization")), _secret(settings))
        frame = _query_mode(request.url.query, await _read_frame(request))
        return Response(await _answer(runtime, frame, start), media_type="application/json")

    @app.api_route(
        "/predict", methods=["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def predict_wrong_method() -> None:
        """Answer 405 here rather than letting the page mount at ``/`` answer 404."""
        raise StarletteHTTPException(405, headers={"Allow": "POST"})

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await _serve_websocket(websocket, runtime)

    app.mount("/", StaticFiles(directory=site_dir(), html=True), name="site")
    return app


def _secret(settings: Settings) -> str | None:
    return settings.auth_token.get_secret_value() if settings.auth_token else None


async def _answer(runtime: Runtime, frame: Frame, start: float) -> bytes:
    """Classify ``frame`` and serialize the :class:`PredictResponse` (JSON bytes).

    Raises:
        MnistLiveError: the frame is malformed, or the model is unavailable or failed.
    """
    outcome = await runtime.infer(frame)
    if isinstance(outcome, errors.MnistLiveError):
        raise outcome
    probs = outcome.probabilities
    ranked = [{"digit": d, "probability": p} for d, p in top_k(probs)] if probs else []
    return encode_json({**outcome.reply_fields(), "top_k": ranked, "latency_ms": logs.elapsed_ms(start)})


def _media_type(content_type: str) -> str:
    """``Content-Type`` header value to its lower-case media type, parameters dropped."""
    return content_type.split(";", maxsplit=1)[0].strip().lower()


def _query_mode(query: str, frame: Frame) -> Frame:
    """``frame`` in number mode when the query string says ``mode=number``.

    Any body: a JSON body may say it in its ``mode`` field instead.

    Raises:
        InvalidFieldType: ``mode`` is neither ``digit`` nor ``number``.
    """
    if "mode=" not in query:
        return frame
    modes = [v for k, v in urllib.parse.parse_qsl(query) if k == "mode"]
    if not modes or modes[-1] == "digit":
        return frame
    if modes[-1] != "number":
        raise errors.InvalidFieldType("'mode' must be 'digit' or 'number'.")
    return as_number(frame)


def _body_frame(media_type: str, body: bytes) -> Frame:
    """A JSON (``application/json``, ``text/json``, ``*+json`` or none) or ``image/*`` body as a frame.

    Raises:
        UnsupportedMediaType: any other media type.
        ClientError: the JSON body is malformed (see :func:`realtime.messages.parse_predict_request`).
    """
    if media_type in ("", "application/json", "text/json") or media_type.endswith("+json"):
        return parse_predict_request(body).to_frame()
    if media_type.startswith("image/"):
        return ImageFrame(body)
    raise errors.UnsupportedMediaType()


async def _read_frame(request: Request) -> Frame:
    """Turn the request body into a core frame, by Content-Type."""
    ctype = _media_type(request.headers.get("content-type", ""))
    if ctype != "multipart/form-data":
        return _body_frame(ctype, await request.body())
    try:
        form = await request.form(max_files=1, max_fields=16)
    except (errors.MnistLiveError, ClientDisconnect):
        raise
    except Exception as exc:  # python-multipart / starlette parse errors
        raise errors.InvalidFieldType("The multipart body is malformed.") from exc
    try:
        for value in form.values():
            if isinstance(value, UploadFile):
                return ImageFrame(await value.read())
    finally:
        await form.close()
    raise errors.MissingField("Upload the image as a file field (e.g. 'file').")


class PredictFastPath:
    """ASGI middleware answering ``POST /predict`` with a JSON or ``image/*`` body itself.

    The same steps as the FastAPI route (token, body, frame, :func:`_answer`, taxonomy errors as
    ``{"error": {"code", "message"}}``), without FastAPI's routing, dependency, exception and response
    layers. py-spy on this 2-core machine put about two thirds of the event loop's time per strokes
    request in those layers, and the loop was the server's bottleneck. Multipart uploads and every other
    route go on to the app. It sits inside :class:`BodyLimit` and CORS, so those still apply.

    Args:
        app: The FastAPI app (everything this does not answer).
        runtime: The app's :class:`Runtime`.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.secret = _secret(runtime.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``POST /predict`` (JSON or image body), pass anything else on."""
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request = Request(scope, receive)
        media_type = _media_type(request.headers.get("content-type", ""))
        if media_type == "multipart/form-data":
            await self.app(scope, receive, send)
            return
        try:
            access.check_token(access.bearer_token(request.headers.get("authorization")), self.secret)
            frame = _query_mode(request.url.query, _body_frame(media_type, await request.body()))
            content = await _answer(self.runtime, frame, start)
        except errors.MnistLiveError as exc:
            await _taxonomy_response(exc, "/predict")(scope, receive, send)
            return
        except ClientDisconnect:
            _log_client_gone("/predict")
            return  # nobody is listening
        await Response(content, media_type="application/json")(scope, receive, send)


def _log_client_gone(path: str) -> None:
    logs.get_logger().info("http_client_disconnected", extra={"path": path})


def _install_error_handlers(app: FastAPI) -> None:
    """Map the taxonomy (and Starlette's own errors) to ``{"error": {"code", "message"}}`` once."""

    async def taxonomy(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.MnistLiveError)
        return _taxonomy_response(exc, request.url.path)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        message = {404: "There is nothing at this path.", 405: "This method is not allowed here."}.get(
            exc.status_code, "The request is not valid."
        )
        return JSONResponse(
            {"error": {"code": code, "message": message}}, status_code=exc.status_code, headers=exc.headers
        )

    async def client_gone(request: Request, exc: Exception) -> Response:
        _log_client_gone(request.url.path)
        return Response(status_code=400)  # nobody is listening; nothing to log as a fault

    async def validation(request: Request, exc: Exception) -> Response:
        return _error_response(errors.InvalidFieldType("A parameter has the wrong type or value."))

    async def unexpected(request: Request, exc: Exception) -> Response:
        logs.get_logger().error(
            "unhandled_exception", extra={"path": request.url.path, "exc_type": type(exc).__name__}
        )
        return _error_response(errors.ServerError())

    app.add_exception_handler(errors.MnistLiveError, taxonomy)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)


async def _serve_websocket(websocket: WebSocket, runtime: Runtime) -> None:
    """Run one WebSocket connection: checks, then reader + worker + writer over a :class:`Session`."""
    settings = runtime.settings
    log = logs.get_logger()
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    try:
        access.check_origin(
            websocket.headers.get("origin"), websocket.headers.get("host"), settings.allowed_origins
        )
        access.check_token(websocket.query_params.get("token"), _secret(settings))
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
    """The I/O around one :class:`~realtime.protocol.Session`: it owns the timers and the tasks."""

    _ids = 0

    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        WebSocketConnection._ids += 1
        self.id = WebSocketConnection._ids
        self.ws = websocket
        self.runtime = runtime
        settings = runtime.settings
        self.loop = asyncio.get_running_loop()
        self.session = Session(
            self.loop.time(),
            SessionConfig(settings.ws_max_message_bytes, settings.rate_limit_fps, settings.idle_timeout_s),
        )
        self.outbox: asyncio.Queue[ServerMessage] = asyncio.Queue(maxsize=settings.send_queue_frames)
        self.close_code: int | None = None
        self.closing = asyncio.Event()
        self._reading: asyncio.Timeout | None = None
        self._ticket: Ticket | None = None  # the in-flight frame's place in the inference queue
        self._closer: asyncio.Future[None] | None = None

    async def run(self) -> None:
        """Read frames until the peer leaves, the connection idles out or is closed for flow control."""
        writer = asyncio.create_task(self._writer())
        worker: asyncio.Task[None] | None = None
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
                pending = self.session.pending
                # The in-flight frame still waits in the queue: run the newer one in its place.
                if (
                    pending is not None
                    and self._ticket is not None
                    and self.runtime.replace(self._ticket, pending.frame)
                ):
                    self.session.supersede()
                if self.session.pending is not None and (worker is None or worker.done()):
                    worker = asyncio.create_task(self._work())
        except WebSocketDisconnect as exc:
            self.close_code = exc.code
        finally:
            for task in (worker, writer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self._closer is not None:  # send the close frame (1008) before the server drops the socket
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._closer

    async def _work(self) -> None:
        while (job := self.session.next_job()) is not None:
            self._ticket = self.runtime.enqueue(job.frame)
            try:
                outcome = await self._ticket.future
            finally:
                self._ticket = None
            job = self.session.in_flight or job  # the reader may have swapped in a newer frame
            for out in self.session.complete(job, outcome, self.loop.time()):
                self._enqueue(out)

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
