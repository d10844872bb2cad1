"""The local server: one FastAPI app serving the page, the WebSocket, the HTTP fallback and health.

Routes: ``/`` (the page, ``site/``), ``/ws`` (protocol v1, ``docs/protocol.md``), ``POST /predict``,
``GET /healthz`` (liveness), ``GET /readyz`` (model loaded and warmed up), ``GET /model`` (metadata),
``/docs`` (OpenAPI). The model session is created once, in the lifespan, never per request. The same app
runs on Lambda behind Mangum (:mod:`realtime.aws.http_handler`).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from fastapi import FastAPI, WebSocket
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from realtime import logs
from realtime.paths import site_dir
from realtime.server.http_errors import install_error_handlers
from realtime.server.middleware import CORS, BodyLimit
from realtime.server.predict import ErrorResponse, PredictFastPath, add_predict_routes
from realtime.server.runtime import Runtime
from realtime.server.websocket import serve_websocket
from shared import errors
from shared.inference import Predictor
from shared.schemas import Models
from shared.settings import Settings


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

    app = FastAPIOffline(  # FastAPI whose /docs (Swagger UI) assets are served from here, not a CDN
        redoc_url=None,  # ReDoc would still fetch its logo from cdn.redoc.ly
        title="mnist-live",
        version="1.0.0",
        summary="Live handwritten-digit recognition: WebSocket protocol v1 at /ws, HTTP at /predict.",
        lifespan=_lifespan(runtime, log),
    )
    app.state.runtime = runtime
    install_error_handlers(app)
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

    _add_health_routes(app, runtime)
    add_predict_routes(app, runtime)

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await serve_websocket(websocket, runtime)

    app.mount("/", StaticFiles(directory=site_dir(), html=True), name="site")
    return app


def _lifespan(
    runtime: Runtime, log: logging.Logger
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: load and warm up the model unless given one, then stop the workers at exit."""
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        start = time.perf_counter()
        if runtime.predictor is None:
            try:
                runtime.predictor = await anyio.to_thread.run_sync(Predictor.of, settings)
            except errors.ModelError as exc:
                runtime.load_error = exc.message
                log.error("model_load_failed", extra={"reason": exc.message})
        if runtime.predictor is not None:
            await anyio.to_thread.run_sync(runtime.predictor.warm_up)
            runtime.ready = True
            log.info(
                "model_ready",
                extra={
                    "sha256": runtime.predictor.models.image.sha256,
                    "strokes_sha256": runtime.predictor.models.strokes.sha256,
                    "ms": logs.elapsed_ms(start),
                },
            )
        # Everything built so far lives as long as the process: imports, numba's kernels, the model.
        # Keep it out of the cyclic collector: a full collection over those ~140,000 objects took
        # 135 ms here, a pause for every open connection (WebSocket p99, bench/README.md).
        gc.freeze()
        try:
            yield
        finally:
            runtime.close()

    return lifespan


def _add_health_routes(app: FastAPI, runtime: Runtime) -> None:
    """``GET /healthz`` (liveness), ``GET /readyz`` (readiness) and ``GET /model`` (metadata)."""

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
    async def model_info() -> Models:
        """The loaded models, one per frame form: name, version, sha256, tensor contract and metadata."""
        if runtime.predictor is None:
            raise errors.ModelError("The model is not loaded.")
        return runtime.predictor.models
