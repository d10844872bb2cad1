"""API Gateway's WebSocket events, built as AWS builds them: pure functions, no I/O.

Field by field after ``../shared/docs/aws-websocket.md`` ("Exact Lambda event fields"): the
``requestContext`` every event carries, the CONNECT event's headers and query string, the DISCONNECT
event's close code and reason, and route selection on ``$request.body.action``.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl

from realtime.aws.lambda_types import (
    CONNECT_ROUTE,
    DEFAULT_ROUTE,
    DISCONNECT_ROUTE,
    MESSAGE_ROUTES,
    RawEvent,
)


class Peer(Protocol):
    """What an event says about the connection it comes from."""

    id: str
    connected_at: float
    source_ip: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class Api:
    """The WebSocket API an event names: its stage, id and region."""

    stage: str = "prod"
    api_id: str = "local00001"
    region: str = "us-east-1"

    @property
    def domain_name(self) -> str:
        """``domainName`` of the events, as on AWS (not reachable: nothing may call it)."""
        return f"{self.api_id}.execute-api.{self.region}.amazonaws.com"


@dataclass(frozen=True, slots=True)
class EmulatedContext:
    """The parts of Lambda's context object the handlers read, for one emulated invocation."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "mnist-live-ws"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:mnist-live-ws"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left (API Gateway's integration timeout, 29 s)."""
        return 29_000


def new_connection_id() -> str:
    """An id shaped like API Gateway's (16 base64 characters ending in ``=``, e.g. ``XaVSDeXSDoECF1g=``)."""
    while True:
        cid = base64.b64encode(os.urandom(11)).decode()
        if "/" not in cid and "+" not in cid:
            return cid


def select_route(text: str, routes: tuple[str, ...] = MESSAGE_ROUTES) -> str:
    """``$request.body.action``: the message's ``action`` when it names a route, else ``$default``.

    Any parse failure routes to ``$default``, not only invalid JSON: deeply nested arrays raise
    :class:`RecursionError`, and the handler answers ``invalid_json`` for them too.
    """
    try:
        body = json.loads(text)
    except Exception:  # ValueError, RecursionError (nesting), MemoryError: all are "not routable JSON"
        return DEFAULT_ROUTE
    action = body.get("action") if isinstance(body, dict) else None
    return action if isinstance(action, str) and action in routes else DEFAULT_ROUTE


def iso(epoch_s: float) -> str:
    """ISO 8601 time in UTC with milliseconds (``GetConnection``'s ``connectedAt``)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def request_time(epoch_s: float) -> str:
    """``requestTime``'s CLF format (``07/Dec/2026:07:40:08 +0000``)."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def short_id() -> str:
    """A request or message id shaped like API Gateway's (15 characters, base64 alphabet)."""
    return base64.b64encode(os.urandom(11)).decode().replace("/", "A").replace("+", "B")


def status_of(result: Any) -> int:
    """A proxy integration result's ``statusCode`` (a malformed result is API Gateway's 502)."""
    if isinstance(result, Mapping):
        status = result.get("statusCode", 200)
        if isinstance(status, int) and 100 <= status <= 599:
            return status
    return 502


def request_context(
    api: Api, peer: Peer, route: str, event_type: str, now: float, *, message_id: str | None = None
) -> dict[str, Any]:
    """The ``requestContext`` of one event; ``now`` in epoch seconds."""
    request_id = short_id()
    return {
        "routeKey": route,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": int(peer.connected_at * 1000),
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": peer.id,
        "apiId": api.api_id,
        "messageId": message_id,
    }


def connect_event(
    api: Api, peer: Peer, raw_headers: list[tuple[str, str]], query: str, now: float
) -> RawEvent:
    """The CONNECT event: the upgrade request's headers (``X-Forwarded-For`` added) and query string.

    ``queryStringParameters`` only when the URL has a query string, as on AWS.
    """
    headers: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in raw_headers:
        headers[name] = value
        multi.setdefault(name, []).append(value)
    headers.setdefault("X-Forwarded-For", peer.source_ip)
    multi.setdefault("X-Forwarded-For", [peer.source_ip])
    event: RawEvent = {
        "headers": headers,
        "multiValueHeaders": multi,
        "requestContext": {
            **request_context(api, peer, CONNECT_ROUTE, "CONNECT", now),
            "disconnectStatusCode": None,
            "disconnectReason": None,
        },
        "isBase64Encoded": False,
    }
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        event["queryStringParameters"] = dict(pairs)
        event["multiValueQueryStringParameters"] = {
            k: [v for key, v in pairs if key == k] for k in dict(pairs)
        }
    return event


def disconnect_event(api: Api, peer: Peer, close_code: int | None, close_reason: str, now: float) -> RawEvent:
    """The DISCONNECT event, sent after the connection is gone, with its close code and reason."""
    return {
        "headers": {"Host": api.domain_name, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""},
        "multiValueHeaders": {
            "Host": [api.domain_name],
            "x-api-key": [""],
            "X-Forwarded-For": [""],
            "x-restapi": [""],
        },
        "requestContext": {
            **request_context(api, peer, DISCONNECT_ROUTE, "DISCONNECT", now),
            "disconnectStatusCode": close_code,
            "disconnectReason": close_reason,
        },
        "isBase64Encoded": False,
    }


def message_event(api: Api, peer: Peer, route: str, text: str, now: float) -> RawEvent:
    """A MESSAGE event carrying one text frame on ``route`` (:func:`select_route`)."""
    context = request_context(api, peer, route, "MESSAGE", now, message_id=short_id())
    return {"requestContext": context, "body": text, "isBase64Encoded": False}


def connection_info(peer: Peer, last_active_at: float) -> dict[str, Any]:
    """``GetConnection``'s body: ``connectedAt``, ``lastActiveAt`` (ISO 8601) and ``identity``."""
    return {
        "connectedAt": iso(peer.connected_at),
        "lastActiveAt": iso(last_active_at),
        "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
    }


def internal_error(connection_id: str, request_id: str) -> str:
    """The frame API Gateway sends when the integration fails."""
    return json.dumps(
        {"message": "Internal server error", "connectionId": connection_id, "requestId": request_id}
    )
