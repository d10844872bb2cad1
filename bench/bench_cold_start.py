"""Cold start of the two Lambda entry points, each in a fresh process (not a test).

Variants (interleaved, ``--runs`` times each; medians reported):

* ``ws+boto3``: import ``realtime.aws_lambda``, build the container's handler (model load + warm-up, a
  real boto3 ``apigatewaymanagementapi`` client with ``post_to_connection`` stubbed by botocore's
  ``Stubber``), answer the recorded MESSAGE event. This is what a Lambda cold start does.
* ``ws+memory``: the same with the in-memory sender (no boto3 import): the handler's own cost.
* ``http``: import ``realtime.http_handler`` (FastAPI app behind Mangum, model load), answer the
  recorded HTTP payload 2.0 ``POST /predict`` event.
* ``python``: ``python -c pass``, the interpreter's own start-up, for reference.

Measured per process: wall time from spawn to exit, and user+sys CPU time (less sensitive to other load
on a shared machine). Target (issue 5): the WebSocket path takes <= 0.45x as long as the HTTP path.

    .venv/bin/python bench/bench_cold_start.py --runs 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "tests" / "events"

WS_BOTO3 = """
import json
import realtime.aws_lambda as lam
from botocore.stub import ANY, Stubber
event = json.load(open({event!r}))
handler = lam.get_handler()
ctx = event["requestContext"]
sender = handler.sender_for(f"https://{{ctx['domainName']}}/{{ctx['stage']}}")
with Stubber(sender.client) as stub:
    stub.add_response("post_to_connection", {{}}, {{"ConnectionId": ctx["connectionId"], "Data": ANY}})
    assert lam.handler(event, None) == {{"statusCode": 200}}
    stub.assert_no_pending_responses()
"""

WS_MEMORY = """
import json
from realtime.aws_lambda import MemorySender, WebSocketHandler
from shared.settings import Settings
event = json.load(open({event!r}))
sender = MemorySender()
assert WebSocketHandler(Settings(), sender=sender)(event, None) == {{"statusCode": 200}}
assert json.loads(next(iter(sender.sent.values()))[0])["type"] == "prediction"
"""

HTTP = """
import json
from realtime.http_handler import handler
response = handler(json.load(open({event!r})), None)
assert response["statusCode"] == 200 and json.loads(response["body"])["status"] == "ok"
"""

VARIANTS = {
    "ws+boto3": WS_BOTO3.format(event=str(EVENTS / "ws_message_predict.json")),
    "ws+memory": WS_MEMORY.format(event=str(EVENTS / "ws_message_predict.json")),
    "http": HTTP.format(event=str(EVENTS / "http_v2_predict.json")),
    "python": "pass",
}


def run_once(code: str) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of one fresh ``python -c code``."""
    env = {
        **os.environ,
        "MNIST_LIVE_LOG_LEVEL": "WARNING",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "PYTHONDONTWRITEBYTECODE": "",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",  # as the container image sets it (Dockerfile), all variants
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    for code in VARIANTS.values():  # warm the OS page cache and .pyc files once
        run_once(code)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(args.runs):
        for name, code in VARIANTS.items():
            samples[name].append(run_once(code))
    med = {
        name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
        for name, s in samples.items()
    }
    print(f"{'variant':<10} {'wall ms':>9} {'cpu ms':>8}   (median of {args.runs}, fresh process each)")
    for name, (wall, cpu) in med.items():
        print(f"{name:<10} {wall * 1000:9.0f} {cpu * 1000:8.0f}")
    for ws in ("ws+boto3", "ws+memory"):
        print(
            f"{ws} / http: wall {med[ws][0] / med['http'][0]:.2f}x, cpu {med[ws][1] / med['http'][1]:.2f}x"
            f" (target <= 0.45x)"
        )
    if args.json:
        print(json.dumps({k: {"wall_ms": v[0] * 1000, "cpu_ms": v[1] * 1000} for k, v in med.items()}))


if __name__ == "__main__":
    main()
