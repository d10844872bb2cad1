"""Lambda cold start: our WebSocket handler against the seed's Mangum handler, fresh processes (not a test).

Each run starts a fresh ``python`` that imports one Lambda entry point and answers one event, the way a
Lambda container's init phase plus its first invocation do. Variants, interleaved ``--runs`` times after
one warm-up round (page cache, bytecode); medians reported:

* ``ours``: ``realtime.aws.websocket_handler.handler`` on the recorded MESSAGE event (a strokes
  ``predict`` frame,
  ``tests/events/ws_message_predict.json``); its route response must be a ``prediction``. Runs in a venv
  holding only ``requirements-lambda.txt`` (``--lambda-python``) with the checkout on ``PYTHONPATH``,
  under the Dockerfile's ``ENV`` (``/var/task`` mapped to the checkout) and the template's log level.
* ``ours-png``: the same handler on a ``predict`` frame carrying the PNG the seed gets.
* ``seed``: the seed's handler (``../shared/anchors/seed-backend/app.py``: FastAPI behind Mangum),
  run from its folder in its own venv (``--seed-python``, built as ``../shared/anchors/README.md``
  says), on an HTTP API payload 2.0 ``POST /predict`` with ``{"image": <base64 PNG>}``: a 280x280
  canvas PNG of a drawn 7 (``shared.inks.render_png``). Its Dockerfile sets no environment.
* ``python``: ``python -c pass`` in the Lambda venv, the interpreter's own start-up.

Measured per process: the time from spawn to the answer (what a Lambda cold start waits for: interpreter
start-up, imports, init and the event), from spawn to exit (adds the interpreter's teardown, which Lambda
never waits for), the process's CPU time (user+sys) to the answer and to exit (less sensitive to other
load on a shared machine), and the in-process time from the script's first line to the answer.
Target: ``ours`` at most 0.5x ``seed``, to the answer.

    .venv/bin/python bench/bench_cold_start.py --setup   # once: both venvs under /tmp
    .venv/bin/python bench/bench_cold_start.py --runs 11
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.inks import render_png  # noqa: E402

SEED = ROOT.parent / "shared" / "anchors" / "seed-backend"
LAMBDA_VENV = Path("/tmp/mnist-live-lambda-venv")
SEED_VENV = Path("/tmp/seed-venv")
SEED_PACKAGES = [
    "fastapi",
    "uvicorn[standard]",
    "mangum",
    "numpy<2.0.0",
    "onnxruntime",
    "pillow",
    "python-multipart",
]
"""The seed's install line (``../shared/anchors/README.md``)."""
SEVEN = [[[70, 50], [210, 50], [120, 240]]]
"""The drawn digit both handlers answer, canvas px."""

OURS = """
import time
t0 = time.perf_counter()
import json, sys
from realtime.aws.websocket_handler import handler
response = handler(json.load(open(sys.argv[1])), None)
answered, cpu = time.monotonic(), time.process_time()
ms = (time.perf_counter() - t0) * 1000
assert response["statusCode"] == 200 and json.loads(response["body"])["type"] == "prediction", response
print(json.dumps({"ms": ms, "answered": answered, "cpu_ms": cpu * 1000}))
"""

SEED_CODE = """
import time
t0 = time.perf_counter()
import json, sys
from app import handler
response = handler(json.load(open(sys.argv[1])), None)
answered, cpu = time.monotonic(), time.process_time()
ms = (time.perf_counter() - t0) * 1000
assert response["statusCode"] == 200 and 0 <= json.loads(response["body"])["digit"] <= 9, response
print(json.dumps({"ms": ms, "answered": answered, "cpu_ms": cpu * 1000}))
"""


def dockerfile_env() -> dict[str, str]:
    """The Dockerfile's ``ENV`` variables, ``/var/task`` replaced by the checkout."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r"(\w+)=(\S+)", line):
                env[key] = value.replace("/var/task", str(ROOT))
    return env


def template_log_level() -> str:
    """``MNIST_LIVE_LOG_LEVEL`` as ``infra/template.yaml`` sets it."""
    match = re.search(r"MNIST_LIVE_LOG_LEVEL: (\w+)", (ROOT / "infra" / "template.yaml").read_text())
    return match.group(1) if match else "INFO"


def base_env() -> dict[str, str]:
    """A clean environment: nothing of this shell's but PATH, HOME and a UTF-8 locale."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
    }


def events(folder: Path) -> dict[str, Path]:
    """Write the three events; return their paths."""
    png = base64.b64encode(render_png(SEVEN)).decode()
    message = json.loads((ROOT / "tests" / "events" / "ws_message_predict.json").read_text())
    message_png = {**message, "body": json.dumps({"action": "predict", "seq": 1, "image": png})}
    http = json.loads((ROOT / "tests" / "events" / "http_v2_predict.json").read_text())
    body = json.dumps({"image": png})
    http = {**http, "body": body, "headers": {**http["headers"], "content-length": str(len(body))}}
    paths = {}
    for name, event in [("message", message), ("message_png", message_png), ("http", http)]:
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(event))
    return paths


Sample = tuple[float, float, float, float, float]
"""Milliseconds: spawn to answer, spawn to exit (wall), CPU to answer, CPU to exit (user+sys), in-process
(first line to answer)."""


def run_once(argv: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """One fresh process (``time.monotonic`` is the system-wide monotonic clock on both sides)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = (time.monotonic() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench_cold_start: {argv[:3]} failed:\n{done.stderr[-2000:]}")
    cpu = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) * 1000
    out = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    if out is None:  # python -c pass: no answer, its exit is the figure
        return wall, wall, cpu, cpu, 0.0
    return (out["answered"] - start) * 1000, wall, out["cpu_ms"], cpu, out["ms"]


def setup(lambda_venv: Path, seed_venv: Path) -> None:
    """Create both venvs with pip (the Lambda one from ``requirements-lambda.txt`` only)."""
    for venv, packages in [
        (lambda_venv, ["-r", str(ROOT / "requirements-lambda.txt")]),
        (seed_venv, SEED_PACKAGES),
    ]:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *packages], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--lambda-python", type=Path, default=LAMBDA_VENV / "bin" / "python")
    parser.add_argument("--seed-python", type=Path, default=SEED_VENV / "bin" / "python")
    parser.add_argument("--setup", action="store_true", help="create both venvs first (pip)")
    parser.add_argument("--json", action="store_true", help="also print the medians as JSON")
    args = parser.parse_args()
    if args.setup:
        setup(args.lambda_python.parents[1], args.seed_python.parents[1])
    for python in (args.lambda_python, args.seed_python):
        if not python.exists():
            raise SystemExit(f"bench_cold_start: {python} not found (run with --setup once)")
    ours_env = {
        **base_env(),
        **dockerfile_env(),
        "MNIST_LIVE_LOG_LEVEL": template_log_level(),
        "PYTHONPATH": str(ROOT),
    }
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = events(Path(tmp))
        variants = {
            "ours": ([str(args.lambda_python), "-c", OURS, str(paths["message"])], ROOT, ours_env),
            "ours-png": ([str(args.lambda_python), "-c", OURS, str(paths["message_png"])], ROOT, ours_env),
            "seed": ([str(args.seed_python), "-c", SEED_CODE, str(paths["http"])], SEED, base_env()),
            "python": ([str(args.lambda_python), "-c", "pass"], ROOT, base_env()),
        }
        for argv, cwd, env in variants.values():  # warm the page cache and bytecode once
            run_once(argv, cwd, env)
        samples: dict[str, list[Sample]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, (argv, cwd, env) in variants.items():
                samples[name].append(run_once(argv, cwd, env))
    med = {name: [statistics.median(x[i] for x in s) for i in range(5)] for name, s in samples.items()}
    print(
        f"load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}; medians of {args.runs}"
    )
    head = ("to answer ms", "to exit ms", "CPU to answer", "CPU to exit", "in-process ms")
    print(f"{'variant':<9} " + " ".join(f"{h:>13}" for h in head))
    for name, values in med.items():
        print(f"{name:<9} " + " ".join(f"{v:13.0f}" for v in values))
    for name in ("ours", "ours-png"):
        r = [med[name][i] / med["seed"][i] for i in range(5)]
        print(f"{name} / seed: " + ", ".join(f"{h} {x:.2f}x" for h, x in zip(head, r, strict=True)))
    print("target: ours / seed <= 0.5x (to answer: what a Lambda cold start waits for)")
    if args.json:
        keys = ("to_answer_ms", "to_exit_ms", "cpu_to_answer_ms", "cpu_to_exit_ms", "in_process_ms")
        print(json.dumps({name: dict(zip(keys, values, strict=True)) for name, values in med.items()}))


if __name__ == "__main__":
    main()
