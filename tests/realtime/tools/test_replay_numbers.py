"""Replaying composed numbers in number mode against the local server and the API Gateway emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realtime.tools import cli
from realtime.tools.replay import ReplayOptions, replay
from realtime.tools.replay_numbers import plan_numbers
from realtime.tools.replay_users import _message
from shared.inks import Ink
from tests.realtime.tools.conftest import Target
from tests.servers import LiveServer


@pytest.mark.data
def test_numbers_are_planned_as_inks_in_number_mode(pen_inks_200: list[Ink]) -> None:
    options = ReplayOptions(seed=3)
    planned = plan_numbers(pen_inks_200, 5, options)
    again = plan_numbers(pen_inks_200, 5, options)
    assert [p.strokes for _, p in planned] == [p.strokes for _, p in again], "seeded"
    for ink, plan in planned:
        assert isinstance(plan.label, str) and 2 <= len(plan.label) <= 5 and plan.label.isdigit()
        assert plan.mode == "number" and ink.writer
        assert plan.width >= max(x for stroke in plan.strokes for x, _ in stroke), "the canvas holds it"
        assert plan.frames[-1].points == plan.total_points and plan.frames[-1].pen_up
        body = _message(plan, plan.frames[-1], 7)
        assert body["mode"] == "number" and body["width"] == plan.width and body["height"] == 280
        assert body["strokes"] == plan.strokes


@pytest.mark.data
@pytest.mark.asyncio(loop_scope="function")
async def test_replayed_numbers_are_read_over_websocket(target: Target, pen_inks_200: list[Ink]) -> None:
    options = ReplayOptions(concurrency=4, fps=target.fps, speed=4.0, seed=1)
    report = await replay(target.ws_url, pen_inks_200, options, numbers=8)
    assert report.inks == 8 and report.completed == 8 and report.errors == {}
    for r in report.results:
        assert isinstance(r.label, str) and (r.digit is None or isinstance(r.digit, str))
    assert report.correct == sum(r.digit == r.label for r in report.results)
    assert report.accuracy >= 0.75, [(r.label, r.digit) for r in report.results]
    assert set(report.per_digit) <= {"2 digits", "3 digits", "4 digits", "5 digits"}


@pytest.mark.data
def test_replay_command_draws_numbers_over_http(
    live_server: LiveServer, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path = tmp_path / "numbers.json"
    argv = ["replay", str(data_dir / "pen" / "unipen1a_dev_200.jsonl"), "--url", live_server.http_url]
    code = cli.main([*argv, "--numbers", "6", "--speed", "8", "--json", str(report_path), "--quiet"])
    assert "accuracy" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["inks"] == 6 and report["completed"] == 6 and report["errors"] == {}
    assert all(isinstance(r["label"], str) for r in report["results"])
    assert code == 0
