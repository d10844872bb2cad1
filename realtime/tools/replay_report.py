"""Replay reports: what the replayed people saw, summarized (:class:`ReplayReport`) and rendered."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from realtime.tools.replay_plan import ReplayOptions
from realtime.tools.replay_users import InkResult, _Recorder


def _percentiles(values: Sequence[float], qs: Sequence[int]) -> dict[str, float | None]:
    if not values:
        return {f"p{q}": None for q in qs}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


@dataclass
class ReplayReport:
    """The outcome of a replay (``to_dict`` is the JSON report).

    Attributes:
        url / transport: Target and ``"websocket"`` or ``"http"``.
        options: Settings of the run. duration_s: Wall time of the run, seconds.
        inks: Inks attempted. completed: Inks whose final frame was answered. correct: Right final digit.
        accuracy: ``correct / inks``.
        ttc_fraction / ttc_ms: Time-to-correct percentiles (p50, p90) over inks ending correct.
        ttc_fraction_p50_all: Median over all inks, counting inks never correct as not reached (None if
            fewer than half ended correct).
        round_trip_ms: p50/p95/p99/max of answered frames. final_latency_ms: p50/p99 of final frames.
        frames: sent, answered, coalesced (sent - answered), out_of_order (replies below one shown).
        errors: Count by code (server codes, plus ``connect_failed``, ``connection_closed``, ``timeout``).
        throughput: ``frames_answered_per_s``, ``inks_per_s``.
        per_digit: Accuracy per label. final_status: Inks by their final answer's status (``ok``,
            ``not_a_digit``, ``no_digit``; ``none``: never answered). results: Per-ink results, in order.
        connect_error: The last connection failure, for a one-line message.
    """

    url: str
    transport: str
    options: dict[str, Any]
    duration_s: float
    inks: int
    completed: int
    correct: int
    accuracy: float
    ttc_fraction: dict[str, float | None]
    ttc_ms: dict[str, float | None]
    ttc_fraction_p50_all: float | None
    never_correct: int
    round_trip_ms: dict[str, float | None]
    final_latency_ms: dict[str, float | None]
    frames: dict[str, int]
    errors: dict[str, int]
    throughput: dict[str, float]
    per_digit: dict[str, float]
    final_status: dict[str, int]
    results: list[InkResult]
    connect_error: str | None = None

    @property
    def error_count(self) -> int:
        """All errors of the run."""
        return sum(self.errors.values())

    def to_dict(self, include_inks: bool = True) -> dict[str, Any]:
        """The JSON report (per-ink results under ``"results"`` unless ``include_inks`` is False)."""
        out = asdict(self)
        if not include_inks:
            out.pop("results")
        return out


def summarize(
    url: str, transport: str, options: ReplayOptions, rec: _Recorder, duration_s: float
) -> ReplayReport:
    """Aggregate per-ink results and run-wide counters into a :class:`ReplayReport`."""
    results = sorted(rec.results, key=lambda r: r.index)
    n = len(results)
    correct = sum(r.correct for r in results)
    ttc_f = [r.ttc_fraction for r in results if r.ttc_fraction is not None]
    ttc_ms = [r.ttc_ms for r in results if r.ttc_ms is not None]
    all_f = sorted([*ttc_f, *([math.inf] * (n - len(ttc_f)))])  # never correct: not reached
    p50_all = (all_f[(n - 1) // 2] + all_f[n // 2]) / 2 if n else None
    by_digit: dict[str, list[bool]] = {}
    for r in results:
        key = str(r.label) if isinstance(r.label, int) else f"{len(r.label)} digits"
        by_digit.setdefault(key, []).append(r.correct)
    opts = asdict(options)
    opts["token"] = "***" if options.token else None
    opts["points_per_second"] = dict(options.points_per_second)
    seconds = max(duration_s, 1e-9)
    return ReplayReport(
        url=url,
        transport=transport,
        options=opts,
        duration_s=round(duration_s, 3),
        inks=n,
        completed=sum(r.final_latency_ms is not None for r in results),
        correct=correct,
        accuracy=round(correct / n, 4) if n else 0.0,
        ttc_fraction=_percentiles(ttc_f, (50, 90)),
        ttc_ms=_percentiles(ttc_ms, (50, 90)),
        ttc_fraction_p50_all=None if p50_all is None or math.isinf(p50_all) else round(p50_all, 4),
        never_correct=n - len(ttc_f),
        round_trip_ms={
            **_percentiles(rec.round_trips_ms, (50, 95, 99)),
            "max": round(max(rec.round_trips_ms), 3) if rec.round_trips_ms else None,
        },
        final_latency_ms=_percentiles(
            [r.final_latency_ms for r in results if r.final_latency_ms is not None], (50, 99)
        ),
        frames={
            "sent": rec.sent,
            "answered": rec.answered,
            "coalesced": rec.sent - rec.answered,
            "out_of_order": rec.out_of_order,
        },
        errors=dict(sorted(rec.errors.items())),
        throughput={
            "frames_answered_per_s": round(rec.answered / seconds, 2),
            "inks_per_s": round(n / seconds, 3),
        },
        per_digit={d: round(sum(v) / len(v), 4) for d, v in sorted(by_digit.items())},
        final_status=dict(sorted(Counter(r.status or "none" for r in results).items())),
        results=results,
        connect_error=rec.connect_error,
    )


# ---------------------------------------------------------------------------------------------------- CLI


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


def render_summary(report: ReplayReport) -> Any:
    """A rich table summarizing the report."""
    from rich.table import Table

    o = report.options
    table = Table(title=f"mnist-live replay · {report.url}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "inks",
        f"{report.inks} ({o['concurrency']} users, {o['fps']:g} fps, pen speed ×{o['speed']:g}, "
        f"{report.transport})",
    )
    table.add_row(
        "accuracy",
        f"{report.accuracy * 100:.1f} % ({report.correct}/{report.inks} right at pen-up)",
    )
    table.add_row("final answers", " · ".join(f"{k} {v}" for k, v in report.final_status.items()) or "none")
    f, ms = report.ttc_fraction, report.ttc_ms
    pct = {k: None if v is None else v * 100 for k, v in f.items()}
    table.add_row(
        "time-to-correct",
        f"p50 {_fmt(pct['p50'], ' % of ink', 0)} · {_fmt(ms['p50'], ' ms', 0)}   "
        f"p90 {_fmt(pct['p90'], ' %', 0)} · {_fmt(ms['p90'], ' ms', 0)}",
    )
    rt = report.round_trip_ms
    table.add_row(
        "round trip",
        f"p50 {_fmt(rt['p50'], ' ms')} · p95 {_fmt(rt['p95'], ' ms')} · p99 {_fmt(rt['p99'], ' ms')} · "
        f"max {_fmt(rt['max'], ' ms')}",
    )
    fl = report.final_latency_ms
    table.add_row("final frame", f"p50 {_fmt(fl['p50'], ' ms')} · p99 {_fmt(fl['p99'], ' ms')}")
    fr = report.frames
    table.add_row(
        "frames",
        f"sent {fr['sent']} · answered {fr['answered']} · coalesced {fr['coalesced']} · "
        f"out of order {fr['out_of_order']}",
    )
    errs = ", ".join(f"{k} {v}" for k, v in report.errors.items()) or "none"
    table.add_row("errors", errs)
    tp = report.throughput
    table.add_row(
        "throughput",
        f"{tp['frames_answered_per_s']:.0f} frames/s · {tp['inks_per_s']:.1f} inks/s "
        f"over {report.duration_s:.1f} s",
    )
    return table
