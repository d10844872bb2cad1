"""Server benchmark: HTTP requests/s and WebSocket live-drawing latency, side by side.

Starts ``mnist-live serve`` as a subprocess on 127.0.0.1 and measures, in one run:

* ``POST /predict`` requests/s at concurrency 8 for the PNG form (a 280x280 canvas PNG, raw
  ``image/png`` body) and the strokes form (JSON). Uses ``wrk`` (Debian package) when installed,
  else an asyncio httpx client (which is itself the bottleneck on 2 cores; the table says which).
* WebSocket: 32 users each replaying pen inks at 60 frames/s (full snapshots, final one at pen-up),
  reporting final-frame latency p50/p99 (pen-up send → its reply), frames answered/s and errors.

Usage: ``.venv/bin/python bench/bench_server.py [--workers 2] [--seconds 10] [--json out.json]``
Targets on this 2-core machine: PNG >= 800 req/s, strokes >= 1,500 req/s, WS final-frame p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shared.inks import drawn_prefix, load_inks, random_placement, render_png
from shared.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("mnist-live")
    cmd = [str(exe), "serve", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                # One worker answered; give the others time to load their model too, or the first
                # load generator's connections all land on the ready one (half the throughput).
                time.sleep(3)
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become ready")


def wrk_post(url: str, body: bytes, content_type: str, seconds: int, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'local f = io.open("{body_path}", "rb"); wrk.body = f:read("*a"); f:close()\n'
            f'wrk.method = "POST"; wrk.headers["Content-Type"] = "{content_type}"\n'
            "function done(summary, latency, requests)\n"
            '  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,'
            " summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write"
            " + summary.errors.timeout, latency:percentile(50), latency:percentile(99)))\n"
            "end\n"
        )
        out = subprocess.run(
            ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{seconds}s", "-s", str(script), url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    n, dur_us, errs, p50, p99 = (int(v) for v in line.split()[1:])
    return {
        "rps": n / (dur_us / 1e6),
        "requests": n,
        "errors": errs,
        "p50_ms": p50 / 1000,
        "p99_ms": p99 / 1000,
    }


async def httpx_post(
    url: str, body: bytes, content_type: str, seconds: int, concurrency: int
) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def user(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = await client.post(url, content=body, headers={"content-type": content_type})
            lat.append(time.perf_counter() - t)
            errors += r.status_code != 200

    start = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(user(client) for _ in range(concurrency)))
    dur = time.monotonic() - start
    q = np.percentile(lat, [50, 99]) * 1000
    return {"rps": len(lat) / dur, "requests": len(lat), "errors": errors, "p50_ms": q[0], "p99_ms": q[1]}


def _frame_tails(strokes_list: list[list[list[list[float]]]], fps: float) -> list[list[str]]:
    """Per ink, the JSON of each progressive snapshot after ``"seq":`` (drawn at 100 points/s).

    Encoded before the clock starts, so the load generator spends its CPU on sending, not on JSON.
    """
    tails = []
    for strokes in strokes_list:
        total = sum(len(s) for s in strokes)
        frames = max(2, int(total / 100 * fps))
        tails.append(
            [
                ',"strokes":'
                + json.dumps(drawn_prefix(strokes, max(1, round(total * f / frames))), separators=(",", ":"))
                + ',"width":280,"height":280,"stroke_width":16}'
                for f in range(1, frames + 1)
            ]
        )
    return tails


async def ws_scenario(
    ws_url: str, strokes_list: list[list[list[list[float]]]], users: int, fps: float, seconds: float
) -> dict[str, float]:
    final_lat: list[float] = []
    answered = 0
    errors = 0
    sent = 0
    tails = _frame_tails(strokes_list, fps)
    stop = time.monotonic() + seconds

    async def user(k: int) -> None:
        nonlocal answered, errors, sent
        async with connect(ws_url, max_size=None) as ws:
            seq = 0
            sent_at: dict[int, float] = {}
            i = k
            while time.monotonic() < stop:
                ink_frames = tails[i % len(tails)]
                i += users
                final_seq = seq + len(ink_frames)
                reader_done = asyncio.Event()

                async def reader(final_seq: int = final_seq, done: asyncio.Event = reader_done) -> None:
                    nonlocal answered, errors
                    while True:
                        msg = json.loads(await ws.recv())
                        if msg["type"] == "error":
                            errors += 1
                        else:
                            answered += 1
                        if msg.get("seq") == final_seq:
                            final_lat.append(time.perf_counter() - sent_at[final_seq])
                            done.set()
                            return

                task = asyncio.create_task(reader())
                for tail in ink_frames:
                    seq += 1
                    sent_at[seq] = time.perf_counter()
                    await ws.send('{"action":"predict","seq":' + str(seq) + tail)
                    sent += 1
                    await asyncio.sleep(1 / fps)
                await asyncio.wait_for(task, 10)

    start = time.monotonic()
    await asyncio.gather(*(user(k) for k in range(users)))
    dur = time.monotonic() - start
    q = np.percentile(final_lat, [50, 99]) * 1000 if final_lat else [float("nan")] * 2
    return {
        "users": users,
        "fps": fps,
        "inks": len(final_lat),
        "frames_sent": sent,
        "frames_answered": answered,
        "answered_per_s": answered / dur,
        "final_p50_ms": q[0],
        "final_p99_ms": q[1],
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--fps", type=float, default=60)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    inks = load_inks(Settings().data_dir / "pen" / "unipen1a_dev_200.jsonl")
    rng = np.random.default_rng(0)
    strokes_list = [random_placement(ink, rng) for ink in inks]
    strokes_body = json.dumps(
        {"strokes": strokes_list[0], "width": 280, "height": 280, "stroke_width": 16}
    ).encode()
    png_body = render_png(strokes_list[0])

    port = free_port()
    proc = start_server(port, args.workers)
    url = f"http://127.0.0.1:{port}/predict"
    tool = "wrk" if shutil.which("wrk") else "httpx"
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "workers": args.workers,
        "client": tool,
        "cpus": os.cpu_count(),
    }
    try:
        for name, body, ctype in (
            ("png", png_body, "image/png"),
            ("strokes", strokes_body, "application/json"),
        ):
            if tool == "wrk":
                results[name] = wrk_post(url, body, ctype, args.seconds, args.concurrency)
            else:
                results[name] = asyncio.run(httpx_post(url, body, ctype, args.seconds, args.concurrency))
        results["websocket"] = asyncio.run(
            ws_scenario(f"ws://127.0.0.1:{port}/ws", strokes_list, args.users, args.fps, args.seconds)
        )
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps(results, indent=2, default=float))
    png, st, ws = (dict(results[k]) for k in ("png", "strokes", "websocket"))  # type: ignore[call-overload]
    print(f"\n{'scenario':<34}{'result':>14}{'target':>12}")
    print(f"{'POST /predict PNG, c=8 (req/s)':<34}{png['rps']:>14.0f}{'>= 800':>12}")
    print(f"{'POST /predict strokes, c=8 (req/s)':<34}{st['rps']:>14.0f}{'>= 1500':>12}")
    print(f"{'WS 32 users @60fps final p50 (ms)':<34}{ws['final_p50_ms']:>14.1f}")
    print(f"{'WS 32 users @60fps final p99 (ms)':<34}{ws['final_p99_ms']:>14.1f}{'<= 50':>12}")
    print(f"{'WS frames answered/s':<34}{ws['answered_per_s']:>14.0f}")
    print(f"{'WS errors':<34}{ws['errors']:>14d}{'0':>12}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
