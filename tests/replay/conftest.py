"""Fixtures of the replay tests: ``replayer`` replays inks against any URL with the UNIPEN pen rates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest

from realtime.replay import ReplayReport
from shared.inks import Ink
from shared.settings import Settings
from tests.replay.harness import replay_inks, source_rates

Replayer = Callable[..., Awaitable[ReplayReport]]


@pytest.fixture(scope="session")
def pen_rates(settings: Settings) -> dict[str, float]:
    """Points/s per UNIPEN source ({} without the shared data: the default rate applies)."""
    return source_rates(settings.data_dir)


@pytest.fixture
def replayer(pen_rates: dict[str, float]) -> Replayer:
    """``await replayer(url, inks, concurrency=16, ...)`` → :class:`~realtime.replay.ReplayReport`."""

    async def run(url: str, inks: Sequence[Ink], **kwargs: Any) -> ReplayReport:
        kwargs.setdefault("rates", pen_rates)
        return await replay_inks(url, inks, **kwargs)

    return run
