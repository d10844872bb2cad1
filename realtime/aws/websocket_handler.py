"""Lambda handler for the API Gateway WebSocket API: a native dispatcher over the sans-I/O protocol.

Routes (``requestContext.routeKey``):

* ``$connect``: Origin allowlist (403) and ``?token=`` (401, constant time), else 200.
* ``$disconnect``: 200 (delivery is best-effort, nothing to clean up: the handler is stateless).
* ``predict``, ``ping``, ``$default``: a fresh :class:`~realtime.protocol.Session` per MESSAGE event:
  feed the body, run the job synchronously, complete it, and return the one reply frame as the route
  response, ``{"statusCode": 200, "body": "<JSON frame>"}``. The three routes are two-way
  (``infra/template.yaml``: ``RouteResponseSelectionExpression: $default`` and a ``$default`` route
  response each), so API Gateway sends that body to the client: one invocation per frame, no second
  call (AWS, "Set up route responses for WebSocket APIs in API Gateway"). Invocations run concurrently,
  so replies may arrive out of order; every frame carries its own ``seq`` and full snapshot
  (``docs/protocol.md``, "Ordering and coalescing").

Nothing is pushed with ``post_to_connection``: a MESSAGE gets exactly one reply (a fresh session answers
at once, or runs one job that answers), nothing can be sent during ``$connect`` and the connection is gone
by ``$disconnect``, and the server never speaks first. So this module needs no boto3, no callback URL
and no ``execute-api:ManageConnections`` permission.

The handler never raises: an uncaught exception would give the client API Gateway's generic
``Internal server error``; a failure while answering a MESSAGE is logged and answered with an
``internal_error`` frame instead.

Cold start: this module imports neither FastAPI, starlette, uvicorn, boto3 nor pydantic
(``tests/realtime/aws``). The predictor is loaded and warmed up once per container, during the init phase
when running on Lambda (see :func:`get_handler`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import os
import time
from collections.abc import Callable
from typing import Any

from realtime import access, logs, messages
from realtime.aws.lambda_types import (
    CONNECT_ROUTE,
    DISCONNECT_ROUTE,
    MAX_FRAME_BYTES,
    LambdaContext,
    LambdaResponse,
    MalformedEvent,
    RawEvent,
    WebSocketEvent,
)
from realtime.messages import ErrorMessage, ServerMessage
from realtime.protocol import Session, SessionConfig, infer
from shared import errors
from shared.inference import Predictor
from shared.settings import Settings


def encode(message: ServerMessage) -> str:
    """A server message as one JSON frame, replaced by ``internal_error`` if it would reach 32 KB."""
    text = messages.encode(message)
    if len(text.encode()) >= MAX_FRAME_BYTES:
        logs.get_logger().error("ws_frame_too_large", extra={"bytes": len(text.encode())})
        seq = getattr(message, "seq", None)
        text = messages.encode(ErrorMessage.of(errors.ServerError(), seq))
    return text


class WebSocketHandler:
    """The Lambda handler object: ``handler(event, context) -> {"statusCode": ..., "body": ...}``.

    Args:
        settings: Configuration (token, origins, limits, model path, threads).
        predictor: A loaded model; default: load ``settings.model_path`` now and warm it up.
        clock: Monotonic seconds (``time.monotonic``).
    """

    def __init__(
        self,
        settings: Settings,
        predictor: Predictor | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        start = time.perf_counter()
        self.settings = settings
        self.log = logs.configure(settings.log_level)
        self.clock = clock
        self.session_config = SessionConfig.of(settings)
        self._secret = access.token_secret(settings)
        self.predictor = predictor if predictor is not None else self._load_model()
        self.log.info("ws_handler_ready", extra={"ms": logs.elapsed_ms(start)})
        gc.freeze()  # init built what the container keeps: out of the cyclic collector (see realtime.server)

    def _load_model(self) -> Predictor | None:
        try:
            predictor = Predictor.of(self.settings)
            predictor.warm_up()
        except errors.ModelError as exc:
            self.log.error("model_load_failed", extra={"reason": exc.message})
            return None
        return predictor

    def __call__(self, event: RawEvent, context: LambdaContext | None = None) -> LambdaResponse:
        """Handle one WebSocket event; never raises.

        Args:
            event: The API Gateway event (``requestContext.eventType`` CONNECT, MESSAGE or DISCONNECT).
            context: The Lambda context (its ``aws_request_id`` is logged).

        Returns:
            CONNECT: ``{"statusCode": 200}``, or 401/403 to refuse the handshake. DISCONNECT:
            ``{"statusCode": 200}``. MESSAGE: ``{"statusCode": 200, "body": frame}``, the reply frame
            (JSON text under :data:`MAX_FRAME_BYTES`; an ``internal_error`` frame if answering failed).
            ``{"statusCode": 400}`` for a malformed event.
        """
        start = time.perf_counter()
        extra: dict[str, Any] = {"aws_request_id": getattr(context, "aws_request_id", None)}
        try:
            parsed = WebSocketEvent.parse(event)
        except MalformedEvent:
            self.log.error("ws_bad_event", extra=extra)
            return {"statusCode": 400}
        ctx = parsed.request_context
        extra.update(connection_id=ctx.connection_id, request_id=ctx.request_id, route=ctx.route_key)
        response: LambdaResponse
        try:
            if ctx.event_type == "CONNECT" or ctx.route_key == CONNECT_ROUTE:
                response = {"statusCode": self._connect(parsed, extra)}
            elif ctx.event_type == "DISCONNECT" or ctx.route_key == DISCONNECT_ROUTE:
                self.log.info(
                    "ws_disconnected",
                    extra={**extra, "code": ctx.disconnect_status_code, "reason": ctx.disconnect_reason},
                )
                response = {"statusCode": 200}
            else:
                response = {"statusCode": 200, "body": encode(self._message(parsed))}
        except Exception:
            self.log.exception("ws_handler_failed", extra=extra)
            if ctx.event_type != "MESSAGE":
                return {"statusCode": 500}
            response = {"statusCode": 200, "body": encode(ErrorMessage.of(errors.ServerError()))}
        self.log.info(
            "ws_event", extra={**extra, "status": response["statusCode"], "ms": logs.elapsed_ms(start)}
        )
        return response

    def _connect(self, event: WebSocketEvent, extra: dict[str, Any]) -> int:
        token = (event.query_string_parameters or {}).get("token")
        try:
            access.check_origin(event.header("origin"), event.header("host"), self.settings.allowed_origins)
            access.check_token(token, self._secret)
        except errors.ClientError as exc:
            self.log.info("ws_refused", extra={**extra, "code": exc.code})
            return exc.http_status
        self.log.info("ws_connected", extra=extra)
        return 200

    def _message(self, event: WebSocketEvent) -> ServerMessage:
        """The one reply to a MESSAGE: a fresh session answers at once or runs one job that answers."""
        data = _body_bytes(event)
        now = self.clock()
        session = Session(now, self.session_config)
        replies = session.receive(data, now) if data is not None else [ErrorMessage.of(errors.InvalidJSON())]
        job = session.next_job()
        if job is not None:
            outcome = infer(self.predictor, job.frame, self.settings.limits)
            replies += session.complete(job, outcome, self.clock())
        if len(replies) != 1:  # a protocol change broke "one frame, one reply": answered internal_error
            raise RuntimeError(f"a fresh session gave {len(replies)} replies")
        return replies[0]


def _body_bytes(event: WebSocketEvent) -> bytes | None:
    """The MESSAGE body as bytes (so size limits count bytes), or ``None`` if it cannot be decoded."""
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return None


@functools.cache
def get_handler() -> WebSocketHandler:
    """The container's handler, built once from ``MNIST_LIVE_*`` settings (the model loaded and warmed up)."""
    return WebSocketHandler(Settings())


def handler(event: RawEvent, context: LambdaContext | None = None) -> LambdaResponse:
    """The Lambda entry point (``CMD ["realtime.aws.websocket_handler.handler"]``); never raises."""
    try:
        ws_handler = get_handler()
    except Exception:  # invalid settings: log, answer 500, and try again on the next event
        logs.configure().exception("ws_init_failed")
        return {"statusCode": 500}
    return ws_handler(event, context)


if "AWS_LAMBDA_RUNTIME_API" in os.environ:  # on Lambda: load the model during init
    with contextlib.suppress(Exception):  # a failure is logged and retried by handler(), which answers 500
        get_handler()
