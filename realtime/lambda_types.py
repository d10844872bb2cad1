"""Typed API Gateway WebSocket events and the Lambda context (AWS shapes, ``aws-websocket.md``).

Only the fields the handler reads are modelled; everything else is ignored. Field names follow Python,
aliases follow AWS (``requestContext.routeKey`` → ``WebSocketEvent.request_context.route_key``). Kept
FastAPI-free: this module is on the WebSocket cold-start path.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypedDict

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["CONNECT", "MESSAGE", "DISCONNECT"]
"""``requestContext.eventType``."""

CONNECT_ROUTE = "$connect"
DISCONNECT_ROUTE = "$disconnect"
DEFAULT_ROUTE = "$default"
MESSAGE_ROUTES = ("predict", "ping")
"""Custom route keys, selected by ``$request.body.action``; anything else goes to ``$default``."""
ROUTES = (CONNECT_ROUTE, DISCONNECT_ROUTE, DEFAULT_ROUTE, *MESSAGE_ROUTES)
"""Every route key of the API (also declared in ``infra/template.yaml``)."""


class _AwsModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class RequestContext(_AwsModel):
    """``event["requestContext"]`` of a WebSocket event.

    Attributes:
        route_key: ``$connect``, ``$disconnect``, ``$default``, ``predict`` or ``ping``.
        event_type: ``CONNECT``, ``MESSAGE`` or ``DISCONNECT``.
        connection_id: API Gateway's id of the connection (base64-like, may hold ``=``).
        request_id: This invocation's API Gateway request id.
        domain_name: ``{apiId}.execute-api.{region}.amazonaws.com`` (or a custom domain).
        stage: The stage name (``prod``).
        connected_at: Epoch milliseconds of the handshake.
        message_id: Set on MESSAGE events only.
        disconnect_status_code: The close code, DISCONNECT only.
        disconnect_reason: The close reason, DISCONNECT only.
    """

    route_key: str = Field(alias="routeKey")
    event_type: EventType = Field(alias="eventType")
    connection_id: str = Field(alias="connectionId")
    request_id: str = Field("", alias="requestId")
    domain_name: str = Field("", alias="domainName")
    stage: str = ""
    api_id: str | None = Field(None, alias="apiId")
    connected_at: int | None = Field(None, alias="connectedAt")
    message_id: str | None = Field(None, alias="messageId")
    disconnect_status_code: int | None = Field(None, alias="disconnectStatusCode")
    disconnect_reason: str | None = Field(None, alias="disconnectReason")


class WebSocketEvent(_AwsModel):
    """A Lambda proxy event from an API Gateway WebSocket API.

    Attributes:
        request_context: See :class:`RequestContext`.
        headers: CONNECT and DISCONNECT only (the client's handshake headers on CONNECT).
        query_string_parameters: CONNECT only, and absent when the URL has no query string.
        body: MESSAGE only: the frame's text.
        is_base64_encoded: ``True`` when ``body`` is base64 (binary payloads).
    """

    request_context: RequestContext = Field(alias="requestContext")
    headers: dict[str, str] | None = None
    query_string_parameters: dict[str, str] | None = Field(None, alias="queryStringParameters")
    body: str | None = None
    is_base64_encoded: bool = Field(False, alias="isBase64Encoded")

    def header(self, name: str) -> str | None:
        """A header's value, matched case-insensitively (API Gateway keeps the client's spelling)."""
        wanted = name.lower()
        for key, value in (self.headers or {}).items():
            if key.lower() == wanted:
                return value
        return None


class LambdaResponse(TypedDict, total=False):
    """What a proxy integration returns; ``body`` reaches the client only on two-way routes."""

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
