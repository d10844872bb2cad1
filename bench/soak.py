"""Soak / load test (a benchmark, not a test).

Runs ``mnist-live serve`` and, at the same time for ``--seconds`` (default 60):
64 WebSocket users replaying pen inks at 30 frames/s, and HTTP ``POST /predict`` (strokes) at
concurrency 32 (``wrk``, Debian package). Reports errors, latency p99 and the server's RSS (whole process
tree) before and after. Target: 0 errors and RSS growth <= 30 MB.

Usage: ``.venv/bin/python bench/soak.py [--seconds 60] [--users 64] [--fps 30] [--http-concurrency 32]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_server import free_port, start_server, wrk_post, ws_scenario

from shared.inks import load_inks, random_placement
from shared.settings import Settings


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, MB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--fps", type=float, default=30)
    ap.add_argument("--http-concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("soak needs wrk (apt-get install wrk)")

    inks = load_inks(Settings().data_dir / "pen" / "unipen1a_dev_200.jsonl")
    rng = np.random.default_rng(1)
    strokes_list = [random_placement(ink, rng) for ink in inks]
    body = json.dumps({"strokes": strokes_list[0], "width": 280, "height": 280, "stroke_width": 16}).encode()

    port = free_port()
    proc = start_server(port, args.workers)
    try:
        # warm up every code path once, then take the baseline
        httpx.post(
            f"http://127.0.0.1:{port}/predict", content=body, headers={"content-type": "application/json"}
        )
        asyncio.run(ws_scenario(f"ws://127.0.0.1:{port}/ws", strokes_list, 4, args.fps, 3))
        time.sleep(1)
        rss_before = tree_rss_mb(proc.pid)
        http_result: dict[str, float] = {}

        def http_load() -> None:
            http_result.update(
                wrk_post(
                    f"http://127.0.0.1:{port}/predict",
                    body,
                    "application/json",
                    args.seconds,
                    args.http_concurrency,
                )
            )

        t = threading.Thread(target=http_load)
        t.start()
        ws_result = asyncio.run(
            ws_scenario(f"ws://127.0.0.1:{port}/ws", strokes_list, args.users, args.fps, args.seconds)
        )
        t.join()
        time.sleep(2)
        rss_after = tree_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "seconds": args.seconds,
        "websocket": ws_result,
        "http": http_result,
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "rss_growth_mb": round(rss_after - rss_before, 1),
    }
    print(json.dumps(result, indent=2, default=float))
    errors = int(ws_result["errors"]) + int(http_result.get("errors", 0))
    print(f"\nerrors: {errors} (target 0)   RSS growth: {rss_after - rss_before:.1f} MB (target <= 30 MB)")
    http_p99 = http_result.get("p99_ms", float("nan"))
    print(f"WS final-frame p99: {ws_result['final_p99_ms']:.1f} ms   HTTP p99: {http_p99:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
