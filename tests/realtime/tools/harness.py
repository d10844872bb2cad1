"""Replay pen inks against any protocol v1 server URL from a test (local server or gateway emulator).

Usage from any test module (pytest-asyncio, strict mode)::

    from tests.realtime.tools.harness import replay_inks

    @pytest.mark.asyncio(loop_scope="function")
    async def test_x(live_server, pen_inks_200):
        report = await replay_inks(live_server.ws_url, pen_inks_200[:20])
        assert report.error_count == 0

or through the ``replayer`` fixture of ``tests/realtime/tools/conftest.py``, which also knows the UNIPEN
sources' pen rates. The helper is URL-agnostic: ``ws://``/``wss://`` speak protocol v1, ``http://`` posts to
``/predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from realtime.tools.replay import SOURCES_FILE, ReplayOptions, ReplayReport, load_source_rates, replay
from shared.inks import Ink

TEST_SPEED = 2.0
"""Pen speed multiplier used by tests: twice the recorded pace keeps 200 inks at 16 users fast."""


def source_rates(data_dir: Path | None) -> dict[str, float]:
    """UNIPEN per-source pen rates (points/s) from ``data_dir/pen``, or {} when absent."""
    if data_dir is None:
        return {}
    path = data_dir / "pen" / SOURCES_FILE
    return load_source_rates(path) if path.is_file() else {}


async def replay_inks(
    url: str,
    inks: Sequence[Ink],
    *,
    concurrency: int = 16,
    fps: float = 30.0,
    speed: float = TEST_SPEED,
    seed: int = 0,
    rates: Mapping[str, float] | None = None,
    **options: Any,
) -> ReplayReport:
    """Replay ``inks`` against ``url`` and return the report (see :func:`realtime.tools.replay.replay`).

    Args:
        url: ``ws://.../ws``, ``wss://...`` or ``http://host:port``.
        inks: The recordings.
        concurrency: Virtual users. fps: Snapshot cap per user while drawing.
        speed: Pen speed multiplier. seed: Placement seed.
        rates: Points/s per source for inks without timestamps.
        **options: Any other :class:`~realtime.tools.replay.ReplayOptions` field.

    Returns:
        The report.
    """
    opts = ReplayOptions(
        concurrency=concurrency,
        fps=fps,
        speed=speed,
        seed=seed,
        points_per_second=dict(rates or {}),
        **options,
    )
    return await replay(url, inks, opts)


def assert_clean(report: ReplayReport) -> None:
    """Invariants of any replay without faults: every ink's final frame answered, no errors."""
    assert report.error_count == 0, f"errors: {report.errors}"
    assert report.completed == report.inks, f"{report.inks - report.completed} inks without a final answer"
    assert report.frames["answered"] <= report.frames["sent"]
    for r in report.results:
        assert r.final_latency_ms is not None and r.final_latency_ms >= 0
        assert 1 <= r.frames_answered <= r.frames_sent
        assert r.digit is not None
