"""Lambda handler for HTTP events (Function URL / HTTP API, payload 2.0): Mangum over the FastAPI app.

The same app as the local server (:func:`realtime.server.app.create_app`): ``POST /predict``, ``/healthz``,
``/readyz``, ``/model``, the page. The predictor is loaded once per container, at import (Lambda's init
phase), and handed to the app, so the per-invocation lifespan only runs the cheap warm-up. WebSocket
events go to :mod:`realtime.aws.websocket_handler` instead (Mangum cannot serve them).
"""

from __future__ import annotations

from mangum import Mangum

from realtime.server.app import create_app
from shared import errors
from shared.inference import Predictor
from shared.settings import Settings


def build_handler(settings: Settings | None = None, predictor: Predictor | None = None) -> Mangum:
    """Wrap a fresh app in Mangum.

    Args:
        settings: Configuration (default: read from ``MNIST_LIVE_*``).
        predictor: A loaded model; default: load ``settings.model_path`` now (``None`` on failure, then
            ``/readyz`` and ``/predict`` answer 503).

    Returns:
        The Lambda handler ``(event, context) -> response``.
    """
    settings = settings or Settings()
    if predictor is None:
        try:
            predictor = Predictor.of(settings)
        except errors.ModelError:
            predictor = None  # create_app's lifespan retries and logs model_load_failed
    return Mangum(create_app(settings, predictor), lifespan="auto", api_gateway_base_path="/")


handler = build_handler()
"""The Lambda entry point (``ImageConfig.Command: ["realtime.aws.http_handler.handler"]``)."""
