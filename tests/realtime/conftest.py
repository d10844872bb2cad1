"""``ws_target``: the protocol tests run against the local server and the emulated API Gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from shared.settings import Settings


@dataclass(frozen=True)
class WsTarget:
    """Where a protocol test connects.

    Attributes:
        kind: ``local`` (uvicorn, one Session per connection, latest-wins coalescing) or ``gateway``
            (the Lambda handler behind the API Gateway emulator: stateless, every frame answered,
            replies possibly out of order, 32 KB frames, binary frames close with 1003).
        ws_url: The WebSocket URL.
        settings: The server's settings.
    """

    kind: Literal["local", "gateway"]
    ws_url: str
    settings: Settings


@pytest.fixture(scope="session", params=["local", "gateway"])
def ws_target(request: pytest.FixtureRequest) -> WsTarget:
    if request.param == "local":
        server = request.getfixturevalue("live_server")
        return WsTarget("local", server.ws_url, server.settings)
    gateway = request.getfixturevalue("live_gateway")
    return WsTarget("gateway", gateway.ws_url, gateway.settings)
