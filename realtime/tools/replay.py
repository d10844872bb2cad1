"""Replay recorded pen inks against a server, as people drawing, and measure what they would feel.

``mnist-live replay FILE --url URL`` runs virtual users concurrently (asyncio). Each user draws inks one
after another on one connection, at the recorded pace, and sends full canvas snapshots like the page
(``site/app.js``): at most ``fps`` per second while the pen moves, and always one at each pen-up. It reads
the live predictions and reports final accuracy, time-to-correct, round-trip percentiles, coalescing,
errors and throughput (a rich table and a JSON report).

Transports, by URL scheme:

- ``ws://`` / ``wss://``: protocol v1 (``docs/protocol.md``); the URL is used as given (local server:
  ``ws://127.0.0.1:8000/ws``; API Gateway: ``wss://{api}.execute-api.{region}.amazonaws.com/{stage}``).
- ``http://`` / ``https://``: ``POST /predict`` (appended unless the path already ends with it), the
  final snapshot of each ink; with ``http_intermediate`` also snapshots while drawing, one request in
  flight at a time and the newest snapshot next, as the page's HTTP fallback does.

Pace. Recordings may carry per-point timestamps ``t`` (ms). UNIPEN has none: its points are evenly spaced
at the source's ``POINTS_PER_SECOND`` (``unipen1a_sources.json``, read from beside the recording), and
sources not listed there use :data:`DEFAULT_POINTS_PER_SECOND`. Pen-up gaps between strokes are not
recorded either; they last :data:`DEFAULT_PEN_UP_MS`. ``speed`` divides every duration.

Placement. Each ink is laid on the 280 x 280 canvas at a random size and position
(:func:`shared.inks.random_placement`), seeded by ``seed`` and the ink's index so a run is reproducible
whatever the interleaving of users.

Definitions (per ink):

- *Displayed answer*: as on the page, a reply is shown only if its ``seq`` is above every reply received
  before (out-of-order replies from a stateless backend are ignored), and a ``not_a_digit`` reply to a frame
  sent while the pen is down is shown only if ``not_a_digit`` is already shown (a digit's first strokes
  often read as no digit; the page holds what it shows until the pen lifts).
- *Time-to-correct*: the first displayed answer from which every displayed answer up to the end of the
  ink is the right digit. ``ttc_fraction`` is the share of the ink's points in that answer's snapshot;
  ``ttc_ms`` is the time from the first pen-down to that answer's arrival, ms. None if the final answer
  is wrong. Over HTTP without intermediate snapshots only the whole ink is sent, so it is 1.0.
- *Round trip*: send of a frame to arrival of the reply with its ``seq``, ms; only answered frames count.
- *Coalesced*: frames sent but never answered (the local server keeps only the newest pending frame).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from realtime.tools import argtypes
from realtime.tools.replay_plan import (
    DEFAULT_PEN_UP_MS,
    DEFAULT_POINTS_PER_SECOND,
    SOURCES_FILE,
    InkPlan,
    PlannedFrame,
    ReplayOptions,
    ink_times_ms,
    load_source_rates,
    plan_ink,
    schedule_frames,
)
from realtime.tools.replay_report import ReplayReport, render_summary, summarize
from realtime.tools.replay_users import (
    InkResult,
    _HttpUser,
    _Recorder,
    _WebSocketUser,
    predict_endpoint,
    transport_of,
)
from shared.inks import Ink, load_inks


async def replay(
    url: str,
    inks: Sequence[Ink],
    options: ReplayOptions | None = None,
    on_ink: Callable[[InkResult], None] | None = None,
    *,
    numbers: int = 0,
) -> ReplayReport:
    """Replay inks against a server with ``options.concurrency`` virtual users.

    Args:
        url: ``ws://``/``wss://`` WebSocket URL, or ``http://``/``https://`` server (``POST /predict``).
        inks: The recordings; each is drawn once, by the next free user.
        options: Pace, concurrency, placement (defaults: 16 users, 30 fps, recorded pace).
        on_ink: Called after each ink (progress).
        numbers: When above 0, draw this many numbers composed from ``inks`` instead, in number mode
            (:func:`realtime.tools.replay_numbers.plan_numbers`).

    Returns:
        The aggregated report.

    Raises:
        ValueError: a bad URL or option.
    """
    options = options or ReplayOptions()
    transport = transport_of(url)
    if options.concurrency < 1 or options.fps <= 0 or options.speed <= 0:
        raise ValueError("concurrency must be >= 1, fps and speed > 0")
    rec = _Recorder(on_ink)
    plans: Iterator[tuple[Ink, InkPlan]] = ((ink, plan_ink(ink, i, options)) for i, ink in enumerate(inks))
    if numbers > 0:
        from realtime.tools.replay_numbers import plan_numbers  # it builds on this module's plans

        plans = iter(plan_numbers(inks, numbers, options))
    users = min(options.concurrency, max(numbers or len(inks), 1))
    loop = asyncio.get_running_loop()
    start = loop.time()
    if transport == "websocket":
        await asyncio.gather(*(_WebSocketUser(url, options, rec).draw_all(plans) for _ in range(users)))
    else:
        import httpx

        headers = {"Authorization": f"Bearer {options.token}"} if options.token else {}
        limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
        async with httpx.AsyncClient(headers=headers, limits=limits) as client:
            endpoint = predict_endpoint(url)
            await asyncio.gather(
                *(_HttpUser(client, endpoint, options, rec).draw_all(plans) for _ in range(users))
            )
    end = max(rec.last_answer_at, start) if rec.answered else loop.time()
    return summarize(url, transport, options, rec, end - start)


def add_command(sub: Any) -> None:
    """Register ``replay``."""
    p = sub.add_parser(
        "replay",
        help="replay recorded pen inks against a server and measure accuracy, time-to-correct, latency",
        description=(__doc__ or "").split("\n\n")[0],
        epilog=(
            "Exit codes: 0 done without errors; 1 some frames or inks failed, or accuracy below "
            "--min-accuracy; 2 bad arguments, unreadable file or no connection at all; 130 interrupted."
        ),
    )
    p.add_argument("file", type=Path, help="JSON Lines recording (.jsonl or .jsonl.gz), like shared/data/pen")
    p.add_argument(
        "--url",
        default="ws://127.0.0.1:8000/ws",
        help="ws://, wss:// (protocol v1) or http(s):// (POST /predict) (default ws://127.0.0.1:8000/ws)",
    )
    p.add_argument(
        "--concurrency",
        "-c",
        type=argtypes.positive_int,
        default=16,
        help="virtual users at once (default 16)",
    )
    p.add_argument(
        "--fps",
        type=argtypes.positive_float,
        default=30.0,
        help="most snapshots per second while drawing (30)",
    )
    p.add_argument(
        "--speed",
        type=argtypes.positive_float,
        default=1.0,
        help="pen speed multiplier (default 1: recorded pace)",
    )
    p.add_argument("--limit", type=argtypes.positive_int, default=None, help="replay only the first K inks")
    p.add_argument(
        "--numbers",
        type=argtypes.non_negative_int,
        default=0,
        help="draw N numbers composed from the inks, in number mode",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the canvas placement (default 0)")
    p.add_argument(
        "--json",
        dest="json_path",
        metavar="REPORT",
        default=None,
        help="write the JSON report here ('-': stdout)",
    )
    p.add_argument(
        "--sources",
        type=Path,
        default=None,
        help=f"per-source POINTS_PER_SECOND file (default: {SOURCES_FILE} beside FILE, if any)",
    )
    p.add_argument(
        "--points-per-second",
        type=argtypes.positive_float,
        default=DEFAULT_POINTS_PER_SECOND,
        help="pen rate, points/s, for inks without timestamps from unlisted sources (default 100)",
    )
    p.add_argument(
        "--pen-up-ms",
        type=argtypes.non_negative_float,
        default=DEFAULT_PEN_UP_MS,
        help="unrecorded gap between strokes, ms (200)",
    )
    p.add_argument(
        "--http-intermediate", action="store_true", help="over HTTP, also post snapshots while drawing"
    )
    p.add_argument(
        "--timeout", type=argtypes.positive_float, default=10.0, help="wait for a final answer, seconds (10)"
    )
    p.add_argument("--token", default=None, help="access token (?token= / Authorization: Bearer)")
    p.add_argument("--min-accuracy", type=float, default=None, help="exit 1 if accuracy (0-1) is lower")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _fail(message: str, code: int = 2) -> int:
    print(f"mnist-live replay: error: {message}", file=sys.stderr)
    return code


def _options(args: argparse.Namespace) -> ReplayOptions | int:
    """The replay's options from the command line, or the exit code when the sources file is unreadable."""
    rates: dict[str, float] = {}
    sources = args.sources or args.file.parent / SOURCES_FILE
    if args.sources is not None or sources.is_file():
        try:
            rates = load_source_rates(sources)
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read {sources}: {exc}")
    options = ReplayOptions(
        concurrency=args.concurrency,
        fps=args.fps,
        speed=args.speed,
        seed=args.seed,
        points_per_second=rates,
        default_points_per_second=args.points_per_second,
        pen_up_ms=args.pen_up_ms,
        http_intermediate=args.http_intermediate,
        timeout_s=args.timeout,
        token=args.token,
    )
    return options


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        transport_of(args.url)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        inks = load_inks(args.file, args.limit)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _fail(f"cannot read {args.file}: {reason}")
    if not inks:
        return _fail(f"{args.file} holds no inks")
    options = _options(args)
    if isinstance(options, int):
        return options
    err = Console(stderr=True)
    show = not args.quiet and err.is_terminal
    progress = Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[acc]}"),
        TimeElapsedColumn(),
        console=err,
        disable=not show,
        transient=True,
    )
    state = {"done": 0, "correct": 0}

    def on_ink(result: InkResult) -> None:
        state["done"] += 1
        state["correct"] += result.correct
        acc = f"acc {state['correct'] / state['done'] * 100:.1f} %"
        progress.update(task, advance=1, acc=acc)

    with progress:
        task = progress.add_task("replay", total=args.numbers or len(inks), acc="")
        started = time.time()
        try:
            report = asyncio.run(replay(args.url, inks, options, on_ink, numbers=args.numbers))
        except KeyboardInterrupt:
            progress.stop()
            return _fail("interrupted", 130)
    if report.completed == 0 and report.connect_error:
        return _fail(f"cannot connect to {args.url}: {report.connect_error}")
    out = Console(stderr=args.json_path == "-")
    out.print(render_summary(report))
    if args.json_path:
        data = report.to_dict()
        data["file"] = str(args.file)
        data["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        text = json.dumps(data, indent=2)
        if args.json_path == "-":
            print(text)
        else:
            try:
                Path(args.json_path).write_text(text + "\n", encoding="utf-8")
            except OSError as exc:
                return _fail(f"cannot write {args.json_path}: {exc.strerror or exc}")
            out.print(f"report written to {args.json_path}")
    if report.error_count:
        return 1
    if args.min_accuracy is not None and report.accuracy < args.min_accuracy:
        return 1
    return 0


__all__ = [
    "InkPlan",
    "InkResult",
    "PlannedFrame",
    "ReplayOptions",
    "ReplayReport",
    "add_command",
    "ink_times_ms",
    "load_source_rates",
    "plan_ink",
    "predict_endpoint",
    "render_summary",
    "replay",
    "schedule_frames",
    "summarize",
    "transport_of",
]
