"""Benchmark: what virtual users feel as concurrency grows (round trips, coalescing, time-to-correct).

Run from the repository root::

    .venv/bin/python bench/bench_replay.py [--url ws://127.0.0.1:8000/ws] [--users 4,16,64]
        [--limit 200] [--speed 1] [--fps 30] [--json bench.json]

Without ``--url`` it starts ``mnist-live serve`` on a free port in a separate process (so the server
does not share the replay client's interpreter) and stops it at the end. Each level replays the first
``--limit`` inks of ``../shared/data/pen/unipen1a_dev_200.jsonl`` at the recorded pace (UNIPEN
source rates) with that many concurrent users, and prints one row per level. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.tools.replay import SOURCES_FILE, ReplayOptions, load_source_rates, replay
from shared.inks import load_inks
from shared.settings import REPO_ROOT, Settings


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    """``mnist-live serve`` on a free port in a child process; yields its ``ws://`` URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.tools.cli", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench_replay: the server did not start")
            time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--users", default="4,16,64")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    pen = Settings().data_dir / "pen"
    inks = load_inks(pen / "unipen1a_dev_200.jsonl", args.limit)
    rates = load_source_rates(pen / SOURCES_FILE)
    rows = []
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(local_server())
        print(f"{len(inks)} inks, {args.fps:g} fps, pen speed x{args.speed:g}, {url}")
        head = "users  acc%  ttc%p50  ttc_ms_p50  rtt_p50  rtt_p95  rtt_p99  final_p99  coalesced  frames/s"
        print(head)
        for users in [int(u) for u in args.users.split(",")]:
            opts = ReplayOptions(concurrency=users, fps=args.fps, speed=args.speed, points_per_second=rates)
            r = asyncio.run(replay(url, inks, opts))
            rows.append({"users": users, **r.to_dict(include_inks=False)})
            rt, f = r.round_trip_ms, r.frames
            print(
                f"{users:5d}  {r.accuracy * 100:4.1f}  {(r.ttc_fraction['p50'] or 0) * 100:7.0f}  "
                f"{r.ttc_ms['p50'] or 0:10.0f}  {rt['p50'] or 0:7.1f}  {rt['p95'] or 0:7.1f}  "
                f"{rt['p99'] or 0:7.1f}  {r.final_latency_ms['p99'] or 0:9.1f}  "
                f"{f['coalesced'] / max(f['sent'], 1) * 100:8.0f}%  "
                f"{r.throughput['frames_answered_per_s']:8.0f}" + (f"  errors {r.errors}" if r.errors else "")
            )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
