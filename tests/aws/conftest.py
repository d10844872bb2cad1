"""Fixtures for the Lambda handlers: recorded events, an in-memory sender, captured JSON logs."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from realtime.aws_lambda import MemorySender, WebSocketHandler
from shared.inference import Predictor
from shared.settings import Settings

EVENTS = Path(__file__).resolve().parents[1] / "events"


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


class Sleeps(list[float]):
    """A ``time.sleep`` stand-in recording the requested delays."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_handler(
    predictor: Predictor, sleeps: Sleeps
) -> Callable[..., tuple[WebSocketHandler, MemorySender]]:
    """``make_handler(**settings) -> (handler, sender)``: the real handler over a :class:`MemorySender`."""

    def make(**overrides: Any) -> tuple[WebSocketHandler, MemorySender]:
        sender = MemorySender()
        return WebSocketHandler(Settings(**overrides), predictor, sender, sleep=sleeps), sender

    return make


def frames(sender: MemorySender, connection_id: str = "XaVSDeXSDoECF1g=") -> list[dict[str, Any]]:
    """The JSON frames posted to ``connection_id`` (the recorded events' connection), in order."""
    return [json.loads(data) for data in sender.sent.get(connection_id, [])]
