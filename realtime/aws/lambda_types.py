"""Typed API Gateway WebSocket events and the Lambda context (AWS shapes, ``aws-websocket.md``).

Only the fields the handler reads are modelled; everything else is ignored. Field names follow Python,
keys follow AWS (``requestContext.routeKey`` → ``WebSocketEvent.request_context.route_key``). Kept
free of FastAPI and pydantic: this module is on the WebSocket cold-start path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, cast, get_args

EventType = Literal["CONNECT", "MESSAGE", "DISCONNECT"]
"""``requestContext.eventType``."""
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

CONNECT_ROUTE = "$connect"
DISCONNECT_ROUTE = "$disconnect"
DEFAULT_ROUTE = "$default"
MESSAGE_ROUTES = ("predict", "ping")
"""Custom route keys, selected by ``$request.body.action``; anything else goes to ``$default``."""
ROUTES = (CONNECT_ROUTE, DISCONNECT_ROUTE, DEFAULT_ROUTE, *MESSAGE_ROUTES)
"""Every route key of the API (also declared in ``infra/template.yaml``)."""
MAX_FRAME_BYTES = 32 * 1024
"""API Gateway's WebSocket frame size, bytes (AWS quotas: "WebSocket frame size", 32 KB;
``../shared/docs/aws-websocket.md``): every outgoing frame stays below it; a larger incoming frame
closes the connection (1009)."""
MAX_MESSAGE_BYTES = 128 * 1024
"""API Gateway's WebSocket message payload size, bytes (AWS quotas: 128 KB), also the ``@connections``
POST limit; the default of ``MNIST_LIVE_WS_MAX_MESSAGE_BYTES`` (``shared/settings.py``)."""
TWO_WAY_ROUTES = frozenset({DEFAULT_ROUTE, *MESSAGE_ROUTES})
"""Routes with a ``$default`` route response (``infra/template.yaml``): the integration's ``body`` is
sent to the client. ``$connect`` and ``$disconnect`` stay one-way."""


class MalformedEvent(ValueError):
    """The event is not an API Gateway WebSocket event (a required field is missing or mistyped)."""


_REQUIRED = object()
"""Default of :func:`_field` for a key that must be present."""


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """``obj[key]`` if it has type ``kind`` (bools are not ints), ``default`` if absent or null."""
    value = obj.get(key)
    if value is None:
        if default is _REQUIRED:
            raise MalformedEvent(f"{key} is required")
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedEvent(f"{key} has the wrong type")
    return value


def _str_map(obj: dict[str, Any], key: str) -> dict[str, str] | None:
    value = _field(obj, key, dict)
    if value is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MalformedEvent(f"{key} must map strings to strings")
    return cast("dict[str, str] | None", value)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """``event["requestContext"]`` of a WebSocket event.

    Attributes:
        route_key: ``$connect``, ``$disconnect``, ``$default``, ``predict`` or ``ping``.
        event_type: ``CONNECT``, ``MESSAGE`` or ``DISCONNECT``.
        connection_id: API Gateway's id of the connection (base64-like, may hold ``=``).
        request_id: This invocation's API Gateway request id.
        domain_name: ``{apiId}.execute-api.{region}.amazonaws.com`` (or a custom domain).
        stage: The stage name (``prod``).
        api_id: The API's id.
        connected_at: Epoch milliseconds of the handshake.
        message_id: Set on MESSAGE events only.
        disconnect_status_code: The close code, DISCONNECT only.
        disconnect_reason: The close reason, DISCONNECT only.
    """

    route_key: str
    event_type: EventType
    connection_id: str
    request_id: str = ""
    domain_name: str = ""
    stage: str = ""
    api_id: str | None = None
    connected_at: int | None = None
    message_id: str | None = None
    disconnect_status_code: int | None = None
    disconnect_reason: str | None = None


@dataclass(frozen=True, slots=True)
class WebSocketEvent:
    """A Lambda proxy event from an API Gateway WebSocket API.

    A frozen dataclass read straight from the event dict, not a pydantic model: the event comes from
    API Gateway, not from a client, and this module is on the WebSocket cold-start path (the same
    choice as AWS Lambda Powertools' event source data classes). Client data (``body``) is validated
    by :mod:`realtime.messages`.

    Attributes:
        request_context: See :class:`RequestContext`.
        headers: CONNECT and DISCONNECT only (the client's handshake headers on CONNECT).
        query_string_parameters: CONNECT only, and absent when the URL has no query string.
        body: MESSAGE only: the frame's text.
        is_base64_encoded: ``True`` when ``body`` is base64 (binary payloads).
    """

    request_context: RequestContext
    headers: dict[str, str] | None = None
    query_string_parameters: dict[str, str] | None = None
    body: str | None = None
    is_base64_encoded: bool = False

    @classmethod
    def parse(cls, event: Any) -> WebSocketEvent:
        """Read the fields the handler uses from a raw event; other fields are ignored.

        Args:
            event: The decoded JSON event Lambda passes to the handler.

        Raises:
            MalformedEvent: not a dict, no ``requestContext``, a required field (``routeKey``,
                ``eventType``, ``connectionId``) missing, an unknown ``eventType``, or a mistyped field.
        """
        if not isinstance(event, dict):
            raise MalformedEvent("the event must be an object")
        ctx = _field(event, "requestContext", dict, _REQUIRED)
        event_type = _field(ctx, "eventType", str, _REQUIRED)
        if event_type not in EVENT_TYPES:
            raise MalformedEvent("eventType must be CONNECT, MESSAGE or DISCONNECT")
        return cls(
            request_context=RequestContext(
                route_key=_field(ctx, "routeKey", str, _REQUIRED),
                event_type=event_type,
                connection_id=_field(ctx, "connectionId", str, _REQUIRED),
                request_id=_field(ctx, "requestId", str, ""),
                domain_name=_field(ctx, "domainName", str, ""),
                stage=_field(ctx, "stage", str, ""),
                api_id=_field(ctx, "apiId", str),
                connected_at=_field(ctx, "connectedAt", int),
                message_id=_field(ctx, "messageId", str),
                disconnect_status_code=_field(ctx, "disconnectStatusCode", int),
                disconnect_reason=_field(ctx, "disconnectReason", str),
            ),
            headers=_str_map(event, "headers"),
            query_string_parameters=_str_map(event, "queryStringParameters"),
            body=_field(event, "body", str),
            is_base64_encoded=_field(event, "isBase64Encoded", bool, False),
        )

    def header(self, name: str) -> str | None:
        """A header's value, matched case-insensitively (API Gateway keeps the client's spelling)."""
        wanted = name.lower()
        for key, value in (self.headers or {}).items():
            if key.lower() == wanted:
                return value
        return None


class LambdaResponse(TypedDict, total=False):
    """What a proxy integration returns.

    ``body`` reaches the client, as one text frame, only on two-way routes (:data:`TWO_WAY_ROUTES`).
    """

    statusCode: int
    body: str


class LambdaContext(Protocol):
    """The part of the Lambda context object the handlers use (``awslambdaric``'s ``LambdaContext``)."""

    aws_request_id: str
    function_name: str

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out."""
        ...


RawEvent = dict[str, Any]
"""An event as Lambda passes it: decoded JSON."""
