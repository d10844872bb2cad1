"""Replay planning and scoring, without sockets: timelines, the page's throttle, time-to-correct."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.tools.replay_plan import (
    ReplayOptions,
    ink_times_ms,
    load_source_rates,
    plan_ink,
    schedule_frames,
)
from realtime.tools.replay_report import summarize
from realtime.tools.replay_users import InkResult, _InkRun, _Recorder, predict_endpoint, transport_of
from shared.canvas import CANVAS_PX
from shared.inks import Ink

SEVEN = Ink(label=7, writer="w", strokes=[[[0, 100], [100, 100], [40, 0]]], source="s")
TWO_STROKES = Ink(label=4, writer="w", strokes=[[[0, 0], [0, 50], [50, 50]], [[40, 80], [40, 0]]], source="s")


def test_even_spacing_at_the_source_rate_with_a_pen_up_gap() -> None:
    opts = ReplayOptions(points_per_second={"s": 50.0}, pen_up_ms=200.0)
    assert ink_times_ms(TWO_STROKES, opts) == [[0.0, 20.0, 40.0], [240.0, 260.0]]
    fast = ReplayOptions(points_per_second={"s": 50.0}, pen_up_ms=200.0, speed=2.0)
    assert ink_times_ms(TWO_STROKES, fast) == [[0.0, 10.0, 20.0], [120.0, 130.0]]


def test_unknown_source_uses_the_default_rate() -> None:
    assert ink_times_ms(SEVEN, ReplayOptions()) == [[0.0, 10.0, 20.0]]  # 100 points/s


def test_recorded_timestamps_win_and_start_at_zero() -> None:
    ink = Ink(label=1, writer="w", strokes=TWO_STROKES.strokes, times=[[1000, 1010, 1030], [1500, 1505]])
    assert ink_times_ms(ink, ReplayOptions(speed=2)) == [[0.0, 5.0, 15.0], [250.0, 252.5]]


def test_inconsistent_timestamps_are_ignored() -> None:
    ink = Ink(label=1, writer="w", strokes=TWO_STROKES.strokes, times=[[0, 1]])
    assert ink_times_ms(ink, ReplayOptions(pen_up_ms=0)) == [[0.0, 10.0, 20.0], [20.0, 30.0]]


def test_throttle_like_the_page() -> None:
    # one stroke, a point every 10 ms for 100 ms, 20 fps (50 ms): t=0 sent, t=50 flushed, pen-up at 100
    frames = schedule_frames([[float(t) for t in range(0, 101, 10)]], fps=20)
    assert [(f.t_ms, f.points, f.pen_up) for f in frames] == [(0, 1, False), (50, 6, False), (100, 11, True)]


def test_every_pen_up_sends_unthrottled() -> None:
    frames = schedule_frames([[0.0, 1.0], [2.0, 3.0]], fps=1)
    assert [(f.t_ms, f.points, f.pen_up) for f in frames] == [(0, 1, False), (1, 2, True), (3, 4, True)]


@given(
    st.lists(st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=40), min_size=1, max_size=5),
    st.floats(1, 240),
)
def test_schedule_invariants(gaps: list[list[float]], fps: float) -> None:
    t, times = 0.0, []
    for stroke in gaps:
        row = []
        for g in stroke:
            t += g
            row.append(t)
        times.append(row)
    frames = schedule_frames(times, fps)
    total = sum(len(s) for s in times)
    assert frames[-1].pen_up and frames[-1].points == total and frames[-1].t_ms == times[-1][-1]
    assert sum(f.pen_up for f in frames) == len(times)
    assert all(a.points < b.points and a.t_ms <= b.t_ms for a, b in itertools.pairwise(frames))
    throttled = [f for f in frames if not f.pen_up]
    interval = 1000 / fps
    for a, b in itertools.pairwise(frames):
        if not b.pen_up:
            assert b.t_ms - a.t_ms >= interval - 1e-6, "at most fps frames per second while drawing"
    assert len(throttled) <= total


def test_plan_is_seeded_and_inside_the_canvas() -> None:
    opts = ReplayOptions(seed=3)
    a, b = plan_ink(TWO_STROKES, 5, opts), plan_ink(TWO_STROKES, 5, opts)
    assert a.strokes == b.strokes
    assert plan_ink(TWO_STROKES, 6, opts).strokes != a.strokes
    pts = [p for s in a.strokes for p in s]
    assert all(0 <= x <= CANVAS_PX and 0 <= y <= CANVAS_PX for x, y in pts)
    assert a.snapshot(4) == [a.strokes[0], a.strokes[1][:1]]
    assert a.snapshot(a.total_points) == a.strokes
    # y up (UNIPEN): the second stroke goes from y=80 down to y=0, so its canvas y (down) grows
    assert a.strokes[1][1][1] > a.strokes[1][0][1]


def _run_with(shown: list[tuple[int, int | None, float]], label: int = 7) -> InkResult:
    async def go() -> InkResult:
        run = _InkRun(plan_ink(SEVEN, 0, ReplayOptions()), Ink(label, "w", SEVEN.strokes), 0.0)
        for seq, digit, t in shown:
            run.answer(seq, digit, seq / 10, t)
        run.finish()
        return run.result

    return asyncio.run(go())


def test_time_to_correct_is_where_it_becomes_and_stays_right() -> None:
    r = _run_with([(1, 1, 0.1), (2, 7, 0.2), (3, 1, 0.3), (4, 7, 0.4), (5, 7, 0.5)])
    assert r.correct and r.digit == 7
    assert r.ttc_fraction == 0.4 and r.ttc_ms == pytest.approx(400.0)


def test_out_of_order_replies_are_not_shown() -> None:
    # seq 3 (wrong) arrives after seq 4 (right): the page ignores it, so the answer stayed right
    r = _run_with([(1, 7, 0.1), (4, 7, 0.2), (3, 1, 0.3)])
    assert r.correct and r.ttc_fraction == 0.1


def test_wrong_at_the_end_has_no_time_to_correct() -> None:
    r = _run_with([(1, 7, 0.1), (2, 1, 0.2)])
    assert not r.correct and r.ttc_fraction is None and r.ttc_ms is None and r.digit == 1


def test_summary_percentiles_and_counts() -> None:
    rec = _Recorder(None)
    rec.round_trips_ms = [float(i) for i in range(1, 101)]
    rec.sent, rec.answered = 120, 100
    rec.errors["rate_limited"] = 2
    for i in range(4):
        rec.results.append(
            InkResult(
                i,
                i,
                "w",
                10,
                100.0,
                digit=i if i else 9,
                correct=bool(i),
                ttc_fraction=0.5 if i else None,
                ttc_ms=50.0 if i else None,
                final_latency_ms=10.0,
            )
        )
    report = summarize("ws://x/ws", "websocket", ReplayOptions(token="secret"), rec, 2.0)
    assert report.accuracy == 0.75 and report.never_correct == 1
    assert report.round_trip_ms["p50"] == pytest.approx(50.5)
    assert report.round_trip_ms["p99"] == pytest.approx(99.01)
    assert report.frames == {"sent": 120, "answered": 100, "coalesced": 20, "out_of_order": 0}
    assert report.throughput == {"frames_answered_per_s": 50.0, "inks_per_s": 2.0}
    assert report.ttc_fraction["p50"] == 0.5 and report.ttc_fraction_p50_all == 0.5
    data = json.loads(json.dumps(report.to_dict()))
    assert data["options"]["token"] == "***" and len(data["results"]) == 4
    assert data["errors"] == {"rate_limited": 2}


def test_urls() -> None:
    assert transport_of("ws://127.0.0.1:8000/ws") == "websocket"
    assert transport_of("wss://abc.execute-api.eu-west-1.amazonaws.com/prod") == "websocket"
    assert transport_of("http://127.0.0.1:8000") == "http"
    for bad in ("ftp://x", "127.0.0.1:8000", "ws:///ws"):
        with pytest.raises(ValueError, match="URL"):
            transport_of(bad)
    assert predict_endpoint("http://h:1") == "http://h:1/predict"
    assert predict_endpoint("http://h:1/prod/") == "http://h:1/prod/predict"
    assert predict_endpoint("https://h/predict") == "https://h/predict"


def test_source_rates_take_the_most_common_value(tmp_path: Path) -> None:
    path = tmp_path / "sources.json"
    path.write_text(
        json.dumps(
            {
                "a": {"header_values": [{"POINTS_PER_SECOND": "60"}]},
                "syn": {"header_values": [{"POINTS_PER_SECOND": "200"}, {"POINTS_PER_SECOND": "100"}]},
                "x": {"header_values": []},
            }
        )
    )
    assert load_source_rates(path) == {"a": 60.0, "syn": 100.0}


@pytest.mark.data
def test_unipen_source_rates(data_dir: Path) -> None:
    rates = load_source_rates(data_dir / "pen" / "unipen1a_sources.json")
    assert rates["unipen1a-apb"] == 60 and rates["unipen1a-tos"] == 200 and len(rates) == 17


@pytest.mark.parametrize(("right", "expected"), [(0, None), (1, None), (2, 0.5), (3, 0.5)])
def test_median_over_all_inks_counts_never_correct_as_not_reached(right: int, expected: float | None) -> None:
    rec = _Recorder(None)
    for i in range(3):
        ok = i < right
        rec.results.append(
            InkResult(
                i,
                1,
                "w",
                10,
                100.0,
                digit=1 if ok else 2,
                correct=ok,
                ttc_fraction=0.5 if ok else None,
                ttc_ms=5.0 if ok else None,
            )
        )
    report = summarize("ws://x/ws", "websocket", ReplayOptions(), rec, 1.0)
    assert report.ttc_fraction_p50_all == expected
    assert report.round_trip_ms["p50"] is None and report.final_latency_ms["p99"] is None


def test_not_a_digit_while_the_pen_is_down_is_held_as_on_the_page() -> None:
    async def go() -> InkResult:
        run = _InkRun(plan_ink(SEVEN, 0, ReplayOptions()), Ink(7, "w", SEVEN.strokes), 0.0)
        run.pen_up_seqs.update({3, 6})
        run.answer(1, None, 0.1, 0.1, "not_a_digit")  # mid-stroke, nothing shown: held
        run.answer(2, 7, 0.2, 0.2, "ok")
        run.answer(3, None, 0.3, 0.3, "not_a_digit")  # at pen-up: shown
        run.answer(4, 7, 0.4, 0.4, "ok")
        run.answer(5, None, 0.5, 0.5, "not_a_digit")  # mid-stroke after a digit: held, 7 stays
        run.answer(6, 7, 0.6, 0.6, "ok")
        run.finish()
        assert [(s.seq, s.status) for s in run.shown] == [(2, "ok"), (3, "not_a_digit"), (4, "ok"), (6, "ok")]
        return run.result

    r = asyncio.run(go())
    assert r.correct and r.status == "ok" and r.ttc_fraction == 0.4
