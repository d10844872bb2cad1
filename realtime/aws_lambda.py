"""Lambda handler for the API Gateway WebSocket API: a native dispatcher over the sans-I/O protocol.

Routes (``requestContext.routeKey``):

* ``$connect``: Origin allowlist (403) and ``?token=`` (401, constant time), else 200.
* ``$disconnect``: 200 (delivery is best-effort, nothing to clean up: the handler is stateless).
* ``predict``, ``ping``, ``$default``: a fresh :class:`~realtime.protocol.Session` per MESSAGE event:
  feed the body, run the job synchronously, complete it, and push each reply with
  ``post_to_connection`` through a :class:`Sender`. Replies are pushed, not returned: route responses
  only exist on two-way routes. Invocations run concurrently, so replies may arrive out of order; every
  frame carries its own ``seq`` and full snapshot (``docs/protocol.md``, "Ordering and coalescing").

Failures while sending: :class:`ConnectionGone` (410, the client left) is logged at info and dropped;
:class:`SendThrottled` (429) is retried :class:`RetryPolicy` times with jittered backoff; anything else is
logged with the connection and request ids and fails that message only. The handler never raises: an
uncaught exception would give the client API Gateway's generic ``Internal server error``.

Cold start: this module imports neither FastAPI, starlette nor uvicorn, and boto3 only when the first
client is built. The predictor (warmed up) and the boto3 client are created once per container, during
the init phase when running on Lambda (see :func:`get_handler`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from realtime import access, logs
from realtime.lambda_types import (
    CONNECT_ROUTE,
    DISCONNECT_ROUTE,
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

MAX_FRAME_BYTES = 32 * 1024
"""API Gateway's WebSocket frame limit, bytes; every outgoing frame must stay below it."""

THROTTLING_CODES = frozenset(
    {"TooManyRequestsException", "LimitExceededException", "ThrottlingException", "Throttling"}
)
"""botocore error codes that mean "slow down" (retried)."""
GONE_CODES = frozenset({"GoneException"})
"""botocore error codes that mean "the client left" (dropped)."""


class SendError(Exception):
    """Posting to a connection failed.

    Args:
        connection_id: The API Gateway connection id.
        reason: A short description (an AWS error code, never the payload).
    """

    def __init__(self, connection_id: str, reason: str = "") -> None:
        super().__init__(f"{reason} ({connection_id})" if reason else connection_id)
        self.connection_id = connection_id
        self.reason = reason


class ConnectionGone(SendError):
    """410 ``GoneException``: the client has disconnected. Not a server fault; never retried."""


class SendThrottled(SendError):
    """429 ``TooManyRequestsException`` / ``LimitExceededException``: retry after a backoff."""


class SendFailed(SendError):
    """Any other failure (4xx/5xx, network, credentials)."""


class Sender(Protocol):
    """Pushes one frame to one WebSocket connection (``post_to_connection``)."""

    def post(self, connection_id: str, data: bytes) -> None:
        """Send ``data`` (UTF-8 JSON text) to ``connection_id``.

        Raises:
            ConnectionGone: the connection no longer exists.
            SendThrottled: API Gateway throttled the call.
            SendFailed: anything else.
        """
        ...


class Boto3Sender:
    """:class:`Sender` over boto3's ``apigatewaymanagementapi`` client.

    Args:
        client: An ``apigatewaymanagementapi`` client (its ``endpoint_url`` is the callback URL).
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def for_endpoint(cls, endpoint_url: str, session: Any = None) -> Boto3Sender:
        """Build the client for ``https://{domain}/{stage}`` (or a custom callback URL).

        botocore's own retries are off: :func:`deliver` retries throttling itself, and never retries
        anything else.

        Args:
            endpoint_url: The ``@connections`` base URL, stage included.
            session: A ``boto3.session.Session`` (default: the environment's credentials and region).
        """
        import boto3  # deferred: ~0.1 s, only the WebSocket path needs it
        from botocore.config import Config

        config = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
        factory = session if session is not None else boto3.session.Session()
        return cls(factory.client("apigatewaymanagementapi", endpoint_url=endpoint_url, config=config))

    def post(self, connection_id: str, data: bytes) -> None:
        """``post_to_connection``, with botocore's errors translated to :class:`SendError`s."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in GONE_CODES or status == 410:
                raise ConnectionGone(connection_id, code or "410") from exc
            if code in THROTTLING_CODES or status == 429:
                raise SendThrottled(connection_id, code or "429") from exc
            raise SendFailed(connection_id, code or str(status)) from exc
        except BotoCoreError as exc:
            raise SendFailed(connection_id, type(exc).__name__) from exc


class MemorySender:
    """In-memory :class:`Sender` for tests: records frames, simulates gone clients and failures.

    Attributes:
        sent: Frames posted, per connection id, in order.
        gone: Connection ids that answer :class:`ConnectionGone`.
        failures: Errors raised by the next posts, in order (then posts succeed).
    """

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = {}
        self.gone: set[str] = set()
        self.failures: deque[SendError] = deque()
        self.calls = 0

    def post(self, connection_id: str, data: bytes) -> None:
        """Record ``data`` unless a failure is scripted or the connection is gone."""
        self.calls += 1
        if self.failures:
            raise self.failures.popleft()
        if connection_id in self.gone:
            raise ConnectionGone(connection_id, "GoneException")
        self.sent.setdefault(connection_id, []).append(data)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retry for throttled sends: ``attempts`` tries, delays from ``base_s`` up to ``cap_s``.

    The delay before retry ``n`` (1-based) is ``min(cap_s, base_s * 4**(n-1))`` scaled by a random
    factor in [0.5, 1) (jitter): about 50 ms, then 200 ms with the defaults.
    """

    attempts: int = 3
    base_s: float = 0.05
    cap_s: float = 0.2

    def delay(self, retry: int, rand: float) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), given ``rand`` in [0, 1)."""
        return float(min(self.cap_s, self.base_s * 4.0 ** (retry - 1)) * (0.5 + rand / 2))


def deliver(
    sender: Sender,
    connection_id: str,
    data: bytes,
    *,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    log_extra: dict[str, Any] | None = None,
) -> bool:
    """Post one frame; never raises.

    Args:
        sender: Where to post.
        connection_id: The target connection.
        data: The frame (UTF-8 JSON), under :data:`MAX_FRAME_BYTES`.
        retry: The throttling retry policy.
        sleep: ``time.sleep`` (injected by tests).
        log_extra: Fields added to every log line (connection and request ids).

    Returns:
        ``True`` when the frame was accepted by API Gateway.
    """
    log = logs.get_logger()
    extra = {"connection_id": connection_id, **(log_extra or {})}
    for attempt in range(1, retry.attempts + 1):
        try:
            sender.post(connection_id, data)
        except ConnectionGone:
            log.info("ws_gone", extra=extra)
            return False
        except SendThrottled as exc:
            if attempt == retry.attempts:
                log.warning("ws_send_throttled", extra={**extra, "attempts": attempt, "reason": exc.reason})
                return False
            sleep(retry.delay(attempt, random.random()))
        except SendError as exc:
            log.error("ws_send_failed", extra={**extra, "reason": exc.reason})
            return False
        except Exception as exc:  # a Sender bug must not take the invocation down
            log.error("ws_send_failed", extra={**extra, "reason": type(exc).__name__})
            return False
        else:
            return True
    return False  # pragma: no cover - the loop always returns


def encode(message: ServerMessage) -> bytes:
    """A server message as one UTF-8 JSON frame, replaced by ``internal_error`` if it would be too big."""
    data = message.model_dump_json().encode()
    if len(data) >= MAX_FRAME_BYTES:
        logs.get_logger().error("ws_frame_too_large", extra={"bytes": len(data)})
        seq = getattr(message, "seq", None)
        data = ErrorMessage.of(errors.ServerError(), seq).model_dump_json().encode()
    return data


class WebSocketHandler:
    """The Lambda handler object: ``handler(event, context) -> {"statusCode": ...}``.

    Args:
        settings: Configuration (token, origins, limits, ``callback_url``, model path, threads).
        predictor: A loaded model; default: load ``settings.model_path`` now and warm it up.
        sender: Where replies go; default: a :class:`Boto3Sender` per callback URL, created once and
            cached (``settings.callback_url``, else ``https://{domainName}/{stage}`` from the event).
        sender_factory: Builds the sender for a callback URL when ``sender`` is not given (the local
            emulator passes one with dummy credentials).
        retry: Throttling retry policy.
        sleep: ``time.sleep`` (tests inject a recorder).
        clock: Monotonic seconds (``time.monotonic``).
    """

    def __init__(
        self,
        settings: Settings,
        predictor: Predictor | None = None,
        sender: Sender | None = None,
        *,
        sender_factory: Callable[[str], Sender] = Boto3Sender.for_endpoint,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        start = time.perf_counter()
        self.settings = settings
        self.log = logs.configure(settings.log_level)
        self.retry = retry
        self.sleep = sleep
        self.clock = clock
        self.session_config = SessionConfig(
            settings.ws_max_message_bytes, settings.rate_limit_fps, settings.idle_timeout_s
        )
        self._secret = settings.auth_token.get_secret_value() if settings.auth_token else None
        self._sender = sender
        self._sender_factory = sender_factory
        self._senders: dict[str, Sender] = {}
        self.predictor = predictor if predictor is not None else self._load_model()
        if sender is None and settings.callback_url:
            try:  # build the client at init, not on the first message; retried then if this fails
                self.sender_for(settings.callback_url)
            except Exception as exc:
                self.log.error("ws_client_failed", extra={"reason": type(exc).__name__})
        self.log.info("ws_handler_ready", extra={"ms": logs.elapsed_ms(start)})
        gc.freeze()  # init built what the container keeps: out of the cyclic collector (see realtime.local)

    def _load_model(self) -> Predictor | None:
        try:
            predictor = Predictor(self.settings.model_path, self.settings.intra_op_num_threads)
            predictor.warm_up()
        except errors.ModelError as exc:
            self.log.error("model_load_failed", extra={"reason": exc.message})
            return None
        return predictor

    def sender_for(self, endpoint_url: str) -> Sender:
        """The sender for ``endpoint_url``, created on first use and reused for the container's life."""
        if self._sender is not None:
            return self._sender
        sender = self._senders.get(endpoint_url)
        if sender is None:
            sender = self._senders[endpoint_url] = self._sender_factory(endpoint_url)
        return sender

    def __call__(self, event: RawEvent, context: LambdaContext | None = None) -> LambdaResponse:
        """Handle one WebSocket event; never raises.

        Args:
            event: The API Gateway event (``requestContext.eventType`` CONNECT, MESSAGE or DISCONNECT).
            context: The Lambda context (its ``aws_request_id`` is logged).

        Returns:
            ``{"statusCode": 200}``, or 401/403 to refuse a ``$connect``, 400 for a malformed event, 500
            when the handler itself failed.
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
        try:
            if ctx.event_type == "CONNECT" or ctx.route_key == CONNECT_ROUTE:
                status = self._connect(parsed, extra)
            elif ctx.event_type == "DISCONNECT" or ctx.route_key == DISCONNECT_ROUTE:
                self.log.info(
                    "ws_disconnected",
                    extra={**extra, "code": ctx.disconnect_status_code, "reason": ctx.disconnect_reason},
                )
                status = 200
            else:
                status = self._message(parsed, extra)
        except Exception:
            self.log.exception("ws_handler_failed", extra=extra)
            return {"statusCode": 500}
        self.log.info("ws_event", extra={**extra, "status": status, "ms": logs.elapsed_ms(start)})
        return {"statusCode": status}

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

    def _message(self, event: WebSocketEvent, extra: dict[str, Any]) -> int:
        ctx = event.request_context
        data = _body_bytes(event)
        now = self.clock()
        session = Session(now, self.session_config)
        replies = session.receive(data, now) if data is not None else [ErrorMessage.of(errors.InvalidJSON())]
        job = session.next_job()
        if job is not None:
            outcome = infer(self.predictor, job.frame, self.settings.limits)
            replies += session.complete(job, outcome, self.clock())
        if not replies:
            return 200
        sender = self.sender_for(self.settings.callback_url or f"https://{ctx.domain_name}/{ctx.stage}")
        for reply in replies:
            if not deliver(
                sender,
                ctx.connection_id,
                encode(reply),
                retry=self.retry,
                sleep=self.sleep,
                log_extra={k: v for k, v in extra.items() if k != "connection_id"},
            ):
                break  # gone or failed: the rest of this message's replies would fail the same way
        return 200


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
    """The container's handler, built once from ``MNIST_LIVE_*`` settings (model and client included)."""
    return WebSocketHandler(Settings())


def handler(event: RawEvent, context: LambdaContext | None = None) -> LambdaResponse:
    """The Lambda entry point (``CMD ["realtime.aws_lambda.handler"]``); never raises."""
    try:
        ws_handler = get_handler()
    except Exception:  # invalid settings: log, answer 500, and try again on the next event
        logs.configure().exception("ws_init_failed")
        return {"statusCode": 500}
    return ws_handler(event, context)


if "AWS_LAMBDA_RUNTIME_API" in os.environ:  # on Lambda: load the model and client during init
    with contextlib.suppress(Exception):  # a failure is logged and retried by handler(), which answers 500
        get_handler()
