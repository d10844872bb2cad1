"""What live drawing costs on AWS (API Gateway WebSocket API + Lambda), from measured figures (not a test).

Per page send rate (``--fps``, the page's ``?fps=``), for the pen inks of
``../shared/data/pen/unipen1a_dev_200.jsonl`` drawn at their recorded pace:

1. Frames per drawing: the snapshots the page sends (``realtime.tools.replay.plan_ink``: at most ``fps`` per
   second while the pen moves, one per pen-up), their JSON size, and the drawing's duration.
2. Handler milliseconds per frame: every distinct snapshot of those plans as a MESSAGE event through
   the warm ``realtime.aws.websocket_handler.WebSocketHandler`` (import, model and warm-up excluded), in a
   child
   process of the venv that holds only ``requirements-lambda.txt`` (``--lambda-python``, as
   ``bench/bench_cold_start.py --setup`` builds it): numpy kernels, as in the image. Medians of
   ``--repeat`` passes per event; a ping event likewise.
3. Time-to-correct (``--ttc``): ``mnist-live gateway`` (the Lambda handler behind the API Gateway
   emulator, every frame answered) replayed with ``realtime.tools.replay`` at each rate.
4. The local server's capacity on this machine (``--local 32,96``): ``mnist-live serve --workers 2``
   replayed by that many users at once (every third ink of ``unipen1a_dev_3000.jsonl``, 30 fps, recorded
   pace), drawings answered per second; the replay client shares the 2 cores, so this is a floor.
5. Cost: AWS's published prices (:data:`PRICES`) applied to those figures, with the assumptions in
   :data:`ASSUMPTIONS`; Lambda duration at 512 / 1024 / 2048 MB scales the handler time by the CPU
   share the memory buys (1,769 MB = 1 vCPU; the handler is single-threaded, so 2,048 MB runs at 1 vCPU).

Prints markdown tables (``docs/cost.md`` quotes them) and, with ``--json FILE``, every figure.

    .venv/bin/python bench/cost_model.py --ttc --local 32,96 --json /tmp/cost.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.tools.replay import (  # noqa: E402
    SOURCES_FILE,
    InkPlan,
    ReplayOptions,
    load_source_rates,
    plan_ink,
    replay,
)
from shared.canvas import CANVAS_PX, PEN_WIDTH_PX  # noqa: E402
from shared.inks import Ink, load_inks  # noqa: E402
from shared.settings import Settings  # noqa: E402

PRICES = {
    "ws_message_usd": 1.00 / 1e6,
    "ws_connection_minute_usd": 0.25 / 1e6,
    "lambda_request_usd": 0.20 / 1e6,
    "lambda_gb_second_x86_usd": 0.0000166667,
    "lambda_gb_second_arm64_usd": 0.0000133334,
}
"""US East (N. Virginia), on-demand, free tiers left out.

API Gateway WebSocket: $1.00 per million messages (sent or received, metered in 32 KB increments; the
first billion a month; less beyond) and $0.25 per million connection minutes,
https://aws.amazon.com/api-gateway/pricing/ (the page's WebSocket pricing example; transcribed from the
page on 2026-09-20 in github.com/api-evangelist/amazon-web-services,
plans/amazon-web-services-plans-pricing.yml).
Lambda: $0.20 per million requests, $0.0000166667 per GB-second on x86 (first 6 billion GB-s a month)
and $0.0000133334 on arm64, billed per 1 ms, https://aws.amazon.com/lambda/pricing/ (transcribed on
2026-05-05 in github.com/api-evangelist/aws-lambda, plans/aws-lambda-plans-pricing.yml; the arm64 rate
from git.mcrn.ar/mariano/lambda_local_runner docs/lambdas-md/lambda-13-cost.md, 2026-05-11).
"""

MESSAGE_METER_BYTES = 32 * 1024
"""API Gateway meters WebSocket messages in 32 KB increments (pricing page above)."""
FULL_VCPU_MB = 1769
"""Lambda memory that buys one full vCPU (AWS Lambda documentation, "memory and computing power")."""
MEMORY_MB = (512, 1024, 2048)
PING_INTERVAL_S = 20.0
"""The page pings every 20 s while connected (``site/app.js`` ``PING_INTERVAL_MS``)."""
ASSUMPTIONS = {
    "pause_s": 3.0,
    "drawings_per_session": 10,
}
"""Not measured: the time a person leaves between drawings (the socket stays open, pings continue), and
drawings per page visit (each visit is one ``$connect`` and one ``$disconnect`` invocation)."""


@dataclass(frozen=True)
class RateFigures:
    """Measured figures for one send rate, per drawing (means over the inks)."""

    fps: float
    frames: float
    frame_bytes: float
    metered_messages: float
    drawing_s: float
    handler_ms: float
    billed_ms: dict[int, float]
    ttc: dict[str, Any] | None = None


def plans(inks: Sequence[Ink], fps: float, rates: dict[str, float]) -> list[InkPlan]:
    """The page's frames for every ink at ``fps`` (same canvas placement for every rate: seed 0)."""
    options = ReplayOptions(fps=fps, points_per_second=rates)
    return [plan_ink(ink, i, options) for i, ink in enumerate(inks)]


def message(plan: InkPlan, points: int, seq: int) -> str:
    """The ``predict`` frame the page sends for the first ``points`` points (``site/app.js`` shape)."""
    strokes = plan.snapshot(points)
    body = {"action": "predict", "seq": seq, "strokes": strokes, "width": CANVAS_PX, "height": CANVAS_PX}
    return json.dumps({**body, "stroke_width": PEN_WIDTH_PX}, separators=(",", ":"))


HANDLER_TIMER = """
import json, statistics, sys, time
from realtime.aws.websocket_handler import WebSocketHandler
from shared.settings import Settings
bodies, repeat = json.load(open(sys.argv[1])), int(sys.argv[2])
event = json.load(open(sys.argv[3]))
handler = WebSocketHandler(Settings())
def run(body):
    event["body"] = body
    event["requestContext"]["routeKey"] = "ping" if '"ping"' in body else "predict"
    start = time.perf_counter()
    response = handler(event, None)
    ms = (time.perf_counter() - start) * 1000
    assert response["statusCode"] == 200 and json.loads(response["body"])["type"] in ("prediction", "pong")
    return ms
for body in bodies[:50]:
    run(body)
passes = [[run(body) for body in bodies] for _ in range(repeat)]
print(json.dumps([statistics.median(p[i] for p in passes) for i in range(len(bodies))]))
"""


def handler_ms(python: Path, bodies: list[str], repeat: int) -> list[float]:
    """Warm handler milliseconds per MESSAGE body, in the Lambda-only venv under the image's environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "MNIST_LIVE_MODEL_PATH": str(ROOT / "model" / "mnist_cnn.onnx"),
        "MNIST_LIVE_INTRA_OP_NUM_THREADS": "1",
        "MNIST_LIVE_LOG_LEVEL": "WARNING",  # a log line per event would time the terminal, not the handler
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bodies.json"
        path.write_text(json.dumps(bodies))
        event = ROOT / "tests" / "events" / "ws_message_predict.json"
        argv = [str(python), "-c", HANDLER_TIMER, str(path), str(repeat), str(event)]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cost_model: the handler timing failed:\n{done.stderr[-2000:]}")
    timings: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return timings


def billed_ms(ms: float, memory_mb: int) -> int:
    """Lambda's billed duration for ``ms`` measured here: scaled by the CPU share, rounded up to 1 ms."""
    return math.ceil(ms * max(1.0, FULL_VCPU_MB / memory_mb))


@contextlib.contextmanager
def child_server(command: list[str], path: str, settle_s: float = 0.0) -> Iterator[str]:
    """``mnist-live <command>`` on a free port in a child process; yields its ``ws://`` URL + ``path``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "realtime.tools.cli", *command, "--port", str(port)]
    env = {**os.environ, "MNIST_LIVE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"cost_model: mnist-live {command[0]} did not start")
            time.sleep(0.2)
        time.sleep(settle_s)  # every worker has loaded the model and accepts connections
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        proc.terminate()
        proc.wait(10)


def gateway() -> contextlib.AbstractContextManager[str]:
    """The Lambda handler behind the API Gateway emulator (every frame answered, as on AWS)."""
    return child_server(["gateway", "--management-port", "0"], "/prod")


def local_capacity(
    inks: Sequence[Ink], rates: dict[str, float], users: Sequence[int]
) -> list[dict[str, Any]]:
    """Drawings per second the local server answers on this machine (``serve --workers 2``), at the page's
    pace and send rate, ``users`` drawing at once; the replay client shares the machine's 2 cores."""
    rows = []
    with child_server(["serve", "--workers", "2"], "/ws", settle_s=3.0) as url:
        for n in users:
            options = ReplayOptions(concurrency=n, fps=30.0, points_per_second=rates, timeout_s=30.0)
            report = asyncio.run(replay(url, inks, options))
            rows.append(
                {
                    "users": n,
                    "drawings_per_s": report.throughput["inks_per_s"],
                    "frames_answered_per_s": report.throughput["frames_answered_per_s"],
                    "coalesced_share": report.frames["coalesced"] / max(report.frames["sent"], 1),
                    "final_latency_ms": report.final_latency_ms,
                    "accuracy": report.accuracy,
                    "errors": report.error_count,
                }
            )
    return rows


def time_to_correct(
    url: str, inks: Sequence[Ink], fps: float, rates: dict[str, float], users: int
) -> dict[str, Any]:
    """Replay ``inks`` at ``fps`` and keep what the cost trade-off needs."""
    options = ReplayOptions(concurrency=users, fps=fps, points_per_second=rates, timeout_s=30.0)
    report = asyncio.run(replay(url, inks, options))
    return {
        "accuracy": report.accuracy,
        "ttc_fraction_p50": report.ttc_fraction["p50"],
        "ttc_ms_p50": report.ttc_ms["p50"],
        "ttc_ms_p90": report.ttc_ms["p90"],
        "round_trip_ms_p50": report.round_trip_ms["p50"],
        "errors": report.error_count,
    }


def cost_per_drawing(r: RateFigures, memory_mb: int, ping_ms: float, arch: str = "x86") -> dict[str, float]:
    """USD per drawing, by meter (``ping_ms``: handler ms of a ping measured here)."""
    connected_s = r.drawing_s + ASSUMPTIONS["pause_s"]
    pings = connected_s / PING_INTERVAL_S
    sessions = 1 / ASSUMPTIONS["drawings_per_session"]
    gb = memory_mb / 1024
    ping_billed = billed_ms(ping_ms, memory_mb)
    gb_s = gb * (r.billed_ms[memory_mb] * r.frames + ping_billed * pings + CONNECT_MS * 2 * sessions) / 1000
    return {
        "ws_messages": (r.metered_messages + 2 * pings) * PRICES["ws_message_usd"],
        "ws_connection_minutes": connected_s / 60 * PRICES["ws_connection_minute_usd"],
        "lambda_requests": (r.frames + pings + 2 * sessions) * PRICES["lambda_request_usd"],
        "lambda_duration": gb_s * PRICES[f"lambda_gb_second_{arch}_usd"],
    }


CONNECT_MS = 1
"""Billed ms of a ``$connect`` or ``$disconnect`` invocation (origin and token checks; not timed)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", default="5,10,15,20,30", help="send rates to model (the page's ?fps=)")
    parser.add_argument("--inks", type=int, default=200, help="first N inks of unipen1a_dev_200.jsonl")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes per event (median)")
    parser.add_argument("--lambda-python", type=Path, default=Path("/tmp/mnist-live-lambda-venv/bin/python"))
    parser.add_argument("--ttc", action="store_true", help="also replay through the emulator per rate")
    parser.add_argument("--users", type=int, default=4, help="concurrent replay users (--ttc)")
    parser.add_argument(
        "--local", default="", help="users levels for the local server's capacity, e.g. 32,96"
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    rates_fps = [float(f) for f in args.fps.split(",")]
    pen = Settings().data_dir / "pen"
    inks = load_inks(pen / "unipen1a_dev_200.jsonl")[: args.inks]
    rates = load_source_rates(pen / SOURCES_FILE)
    if not args.lambda_python.exists():
        raise SystemExit(f"cost_model: {args.lambda_python} not found (bench/bench_cold_start.py --setup)")

    by_rate = {fps: plans(inks, fps, rates) for fps in rates_fps}
    distinct = sorted({(p.index, f.points) for ps in by_rate.values() for p in ps for f in p.frames})
    plan_of = {p.index: p for p in next(iter(by_rate.values()))}
    bodies = [message(plan_of[i], n, k) for k, (i, n) in enumerate(distinct)]
    started = time.monotonic()
    timings = handler_ms(args.lambda_python, [*bodies, '{"action":"ping"}'], args.repeat)
    ping_ms = timings.pop()
    ms_of = dict(zip(distinct, timings, strict=True))
    size_of = {key: len(body.encode()) for key, body in zip(distinct, bodies, strict=True)}
    print(f"timed {len(distinct)} distinct frames x {args.repeat} in {time.monotonic() - started:.0f} s")

    figures: list[RateFigures] = []
    ttc_url = gateway() if args.ttc else contextlib.nullcontext("")
    with ttc_url as url:
        for fps, ps in by_rate.items():
            keys = [(p.index, f.points) for p in ps for f in p.frames]
            n = len(ps)
            metered = sum(
                2 * math.ceil(size_of[k] / MESSAGE_METER_BYTES) for k in keys
            )  # frame in + reply out
            figures.append(
                RateFigures(
                    fps=fps,
                    frames=len(keys) / n,
                    frame_bytes=statistics.fmean(size_of[k] for k in keys),
                    metered_messages=metered / n,
                    drawing_s=statistics.fmean(p.duration_ms for p in ps) / 1000,
                    handler_ms=statistics.fmean(ms_of[k] for k in keys),
                    billed_ms={m: statistics.fmean(billed_ms(ms_of[k], m) for k in keys) for m in MEMORY_MB},
                    ttc=time_to_correct(url, inks, fps, rates, args.users) if url else None,
                )
            )
    report(figures, len(inks), ping_ms)
    capacity: list[dict[str, Any]] = []
    if args.local:
        more = load_inks(pen / "unipen1a_dev_3000.jsonl")[::3]  # sorted by label: every third, all digits
        capacity = local_capacity(more, rates, [int(u) for u in args.local.split(",")])
        print(
            f"\nLocal server (serve --workers 2) on this machine, {len(more)} inks at 30 fps,"
            " recorded pace:\n"
        )
        print(
            "| users | drawings / s | frames answered / s | coalesced | final frame p50 / p99 ms | errors |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in capacity:
            lat = row["final_latency_ms"]
            print(
                f"| {row['users']} | {row['drawings_per_s']:.1f} | {row['frames_answered_per_s']:,.0f} |"
                f" {row['coalesced_share']:.0%} | {lat['p50']} / {lat['p99']} | {row['errors']} |"
            )
    if args.json:
        out = {
            "prices": PRICES,
            "assumptions": ASSUMPTIONS,
            "ping_ms": ping_ms,
            "inks": len(inks),
            "local_capacity": capacity,
            "rates": [
                {**vars(r), "usd_per_drawing": {m: cost_per_drawing(r, m, ping_ms) for m in MEMORY_MB}}
                for r in figures
            ],
        }
        args.json.write_text(json.dumps(out, indent=1))


def report(figures: list[RateFigures], inks: int, ping_ms: float) -> None:
    """Print the markdown tables."""
    print(f"\nPer drawing, mean over {inks} inks at their recorded pace; handler ms measured here, warm.\n")
    print(
        "| fps | frames | frame bytes | drawing s | handler ms / frame"
        " | billed ms / frame at 512 / 1024 / 2048 MB |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in figures:
        billed = " / ".join(f"{r.billed_ms[m]:.2f}" for m in MEMORY_MB)
        row = f"| {r.fps:g} | {r.frames:.1f} | {r.frame_bytes:,.0f} | {r.drawing_s:.2f} | {r.handler_ms:.2f}"
        print(f"{row} | {billed} |")
    print(f"\nping: {ping_ms:.3f} ms. USD per 1,000,000 drawings by meter, then the totals:\n")
    print(
        "| fps | memory MB | WebSocket messages | connection minutes | Lambda requests | Lambda duration"
        " | USD / 1,000 drawings | USD / 1,000,000 drawings |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in figures:
        for m in MEMORY_MB:
            c = cost_per_drawing(r, m, ping_ms)
            total = sum(c.values())
            print(
                f"| {r.fps:g} | {m} | {c['ws_messages'] * 1e6:,.2f}"
                f" | {c['ws_connection_minutes'] * 1e6:,.2f} |"
                f" {c['lambda_requests'] * 1e6:,.2f} | {c['lambda_duration'] * 1e6:,.2f} |"
                f" {total * 1e3:.4f} | {total * 1e6:,.2f} |"
            )
    if any(r.ttc for r in figures):
        print(
            "\n| fps | frames / drawing | accuracy | time-to-correct p50, fraction of the ink"
            " | p50 ms | p90 ms | USD / 1M drawings, 1024 MB |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in figures:
            t = r.ttc or {}
            total = sum(cost_per_drawing(r, 1024, ping_ms).values()) * 1e6
            print(
                f"| {r.fps:g} | {r.frames:.1f} | {t.get('accuracy', 0):.3f} | {t.get('ttc_fraction_p50')} |"
                f" {t.get('ttc_ms_p50') or 0:.0f} | {t.get('ttc_ms_p90') or 0:.0f} | {total:,.0f} |"
            )


if __name__ == "__main__":
    main()
