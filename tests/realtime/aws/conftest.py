"""Fixtures for the Lambda handlers: recorded events, the handler over the session's model, its replies."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from realtime.aws.lambda_types import LambdaResponse
from realtime.aws.websocket_handler import WebSocketHandler
from shared.inference import Predictor
from shared.settings import Settings

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str, **body: Any) -> dict[str, Any]:
    """A recorded event from ``tests/events/{name}.json`` (a fresh copy; ``body`` replaces the body)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    if body:
        event["body"] = json.dumps(body)
    return copy.deepcopy(event)


def message_event(body: str | None, route: str = "$default") -> dict[str, Any]:
    """The recorded MESSAGE event with another body (``None`` removes it) and route key."""
    event = load_event("ws_message_predict")
    event["requestContext"]["routeKey"] = route
    if body is None:
        del event["body"]
    else:
        event["body"] = body
    return event


@pytest.fixture
def make_handler(predictor: Predictor) -> Callable[..., WebSocketHandler]:
    """``make_handler(**settings) -> handler``: the real handler over the session's model."""

    def make(**overrides: Any) -> WebSocketHandler:
        return WebSocketHandler(Settings(**overrides), predictor)

    return make


def reply(response: LambdaResponse) -> dict[str, Any]:
    """The frame a MESSAGE's route response carries: a 200 whose ``body`` is one JSON object."""
    assert response["statusCode"] == 200, response
    frame: dict[str, Any] = json.loads(response["body"])
    return frame
