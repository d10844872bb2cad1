"""Replay pen inks as virtual users against the real local server and the API Gateway emulator."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from realtime.tools import cli
from shared.inks import Ink
from shared.settings import Settings
from tests.realtime.tools.conftest import Replayer, Target
from tests.realtime.tools.harness import assert_clean
from tests.servers import LiveServer, run_server


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.data
@pytest.mark.slow
def test_acceptance_200_inks_16_users_over_websocket(
    target: Target, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accuracy >= 97 %, no errors, JSON report; median TTC <= 80 %.

    The time-to-correct threshold applies at the recorded pace on the local server; the emulator run
    (twice the pace) must report it too.
    """
    report_path = tmp_path / "replay.json"
    start = time.monotonic()
    code = cli.main(
        [
            "replay",
            str(data_dir / "pen" / "unipen1a_dev_200.jsonl"),
            "--url",
            target.ws_url,
            "--concurrency",
            "16",
            "--fps",
            str(target.fps),
            "--speed",
            str(target.speed),
            "--json",
            str(report_path),
            "--quiet",
        ]
    )
    elapsed = time.monotonic() - start
    out = capsys.readouterr().out
    assert "accuracy" in out and "time-to-correct" in out and "round trip" in out and "final answers" in out
    report = json.loads(report_path.read_text())
    # Every ink ends on one status; the right digits are among the ok ones.
    assert sum(report["final_status"].values()) == 200
    assert report["final_status"].get("ok", 0) >= report["correct"]
    summary = (
        f"{target.kind}: accuracy {report['accuracy']:.3f}, ttc p50 {report['ttc_fraction']['p50']}, "
        f"rtt {report['round_trip_ms']}, {elapsed:.1f} s"
    )
    print(summary)
    assert report["inks"] == 200 and report["completed"] == 200, summary
    assert report["errors"] == {} and code in (0, 1), summary
    if target.kind == "local":
        assert report["frames"]["out_of_order"] == 0, "the local server answers in seq order"
    assert report["frames"]["answered"] + report["frames"]["coalesced"] == report["frames"]["sent"]
    assert report["accuracy"] >= 0.97, summary
    assert report["ttc_fraction"]["p50"] is not None and report["ttc_ms"]["p50"] is not None
    if target.kind == "local":
        assert report["ttc_fraction"]["p50"] <= 0.80, summary
    assert code == 0


@pytest.mark.data
@pytest.mark.asyncio(loop_scope="function")
async def test_websocket_replay_metrics(target: Target, pen_inks_200: list[Ink], replayer: Replayer) -> None:
    report = await replayer(target.ws_url, pen_inks_200[::10], concurrency=4, fps=target.fps * 2)
    assert_clean(report)
    assert report.transport == "websocket" and report.inks == 20
    assert report.frames["sent"] > report.inks, "snapshots are sent while drawing, not only at pen-up"
    if target.kind == "local":
        assert report.frames["out_of_order"] == 0, "replies strictly increase"
    else:
        assert report.frames["coalesced"] == 0, "a stateless backend answers every frame"
    assert report.round_trip_ms["p50"] is not None
    assert report.round_trip_ms["p50"] <= report.round_trip_ms["p95"] <= report.round_trip_ms["p99"]
    assert report.final_latency_ms["p50"] is not None
    assert report.throughput["inks_per_s"] > 0
    for r in report.results:
        if r.correct:
            assert r.ttc_fraction is not None and 0 < r.ttc_fraction <= 1
            assert r.ttc_ms is not None and r.ttc_ms > 0
        else:
            assert r.ttc_fraction is None


@pytest.mark.data
@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("intermediate", [False, True])
async def test_http_replay(
    live_server: LiveServer, pen_inks_200: list[Ink], replayer: Replayer, intermediate: bool
) -> None:
    inks = pen_inks_200[5::20]
    report = await replayer(
        live_server.http_url, inks, concurrency=4, http_intermediate=intermediate, speed=6
    )
    assert_clean(report)
    assert report.transport == "http"
    assert report.frames["coalesced"] == 0, "every HTTP request is answered"
    if intermediate:
        assert report.frames["sent"] > len(inks)
    else:
        assert report.frames["sent"] == len(inks)
        assert all(r.ttc_fraction in (None, 1.0) for r in report.results)


@pytest.mark.data
@pytest.mark.asyncio(loop_scope="function")
async def test_errors_are_counted_by_code(pen_inks_200: list[Ink], replayer: Replayer) -> None:
    settings = Settings(rate_limit_fps=5)
    with run_server(settings) as server:
        report = await replayer(server.ws_url, pen_inks_200[:2], concurrency=1, fps=100, speed=1)
    assert report.errors.get("rate_limited", 0) > 0
    assert report.error_count == sum(len(r.errors) for r in report.results)


def test_cli_connection_refused_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ink = tmp_path / "one.jsonl"
    ink.write_text(json.dumps({"label": 1, "writer": "w", "strokes": [[[0, 0], [0, 10]]]}) + "\n")
    for url in (f"ws://127.0.0.1:{closed_port()}/ws", f"http://127.0.0.1:{closed_port()}"):
        code = cli.main(["replay", str(ink), "--url", url, "--quiet", "--timeout", "5"])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith("mnist-live replay: error: cannot connect to") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.jsonl"], "cannot read missing.jsonl"),
        (["{ink}", "--url", "ftp://x"], "unsupported URL scheme"),
        (["{ink}", "--fps", "0"], "--fps"),
    ],
)
def test_cli_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    ink = tmp_path / "one.jsonl"
    ink.write_text(json.dumps({"label": 1, "writer": "w", "strokes": [[[0, 0], [0, 10]]]}) + "\n")
    try:
        code = cli.main(["replay", *(a.format(ink=ink) for a in argv)])
    except SystemExit as exc:  # argparse refuses a bad flag value itself
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.data
@pytest.mark.asyncio(loop_scope="function")
async def test_refused_connections_are_errors_and_other_users_finish(
    pen_inks_200: list[Ink], replayer: Replayer
) -> None:
    """Over the connection cap the server closes with 1013: those inks are errors, the rest complete."""
    with run_server(Settings(max_connections=2)) as server:
        report = await replayer(server.ws_url, pen_inks_200[:12], concurrency=4, speed=4)
    assert report.errors.get("connection_closed", 0) > 0
    failed = [r for r in report.results if r.errors]
    assert all(r.errors == ["connection_closed"] and r.final_latency_ms is None for r in failed)
    assert report.completed == report.inks - len(failed) > 0


@pytest.mark.data
def test_cli_json_to_stdout_and_min_accuracy(
    live_server: LiveServer, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", str(data_dir / "pen" / "unipen1a_dev_200.jsonl"), "--url", live_server.http_url]
    code = cli.main([*argv, "--limit", "5", "--speed", "8", "--json", "-", "--min-accuracy", "1.01"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1, "accuracy below --min-accuracy"
    assert report["inks"] == 5 and report["transport"] == "http" and len(report["results"]) == 5
    assert "accuracy" in captured.err, "the table goes to stderr when the report takes stdout"
