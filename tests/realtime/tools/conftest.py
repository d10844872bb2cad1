"""Fixtures of the replay tests.

``replayer`` replays inks against any URL with the UNIPEN pen rates; ``target`` runs a test against the
local server and against the Lambda handler behind the API Gateway emulator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from realtime.tools.replay import ReplayReport
from shared.inks import Ink
from shared.settings import Settings
from tests.realtime.tools.harness import replay_inks, source_rates

Replayer = Callable[..., Awaitable[ReplayReport]]


@pytest.fixture(scope="session")
def pen_rates(settings: Settings) -> dict[str, float]:
    """Points/s per UNIPEN source ({} without the shared data: the default rate applies)."""
    return source_rates(settings.data_dir)


@pytest.fixture
def replayer(pen_rates: dict[str, float]) -> Replayer:
    """``await replayer(url, inks, concurrency=16, ...)`` → :class:`~realtime.tools.replay.ReplayReport`."""

    async def run(url: str, inks: Sequence[Ink], **kwargs: Any) -> ReplayReport:
        kwargs.setdefault("rates", pen_rates)
        return await replay_inks(url, inks, **kwargs)

    return run


@dataclass(frozen=True)
class Target:
    """A server to replay against.

    Attributes:
        kind: ``local`` (latest-wins coalescing, replies in seq order) or ``gateway`` (stateless: every
            frame answered, possibly out of order).
        ws_url: Its WebSocket URL.
        fps: Snapshot rate the tests use (the page's 30 on both).
        speed: Pen speed of the 200-ink acceptance replay: the recorded pace on the local server (the
            time-to-correct threshold is measured there); twice that on the emulator, which answers
            every frame (no coalescing) in one Python process and would otherwise take ~25 s on 2 shared
            cores.
    """

    kind: Literal["local", "gateway"]
    ws_url: str
    fps: float
    speed: float


@pytest.fixture(scope="session", params=["local", "gateway"])
def target(request: pytest.FixtureRequest) -> Target:
    if request.param == "local":
        return Target("local", request.getfixturevalue("live_server").ws_url, 30.0, 1.0)
    return Target("gateway", request.getfixturevalue("live_gateway").ws_url, 30.0, 2.0)
