"""Scripted wscat sessions (the README's commands) against the local server and the gateway emulator.

wscat 6 is found in ``./node_modules`` (``npm install --no-save wscat@6``, as ``.ci/run`` does), in npx's
cache (where the README's ``npx --yes wscat@6`` put it) or on PATH. Without it the test skips with a
reason, except in CI (``MNIST_LIVE_REQUIRE_DATA=1`` or ``CI=true``), where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shared.inference import Predictor
from shared.preprocess import StrokesFrame
from shared.settings import REPO_ROOT
from tests.realtime.tools.conftest import Target

ONE = [[[140, 40], [140, 240]]]
SEVEN = [[[70, 50], [210, 50], [120, 240]]]


def npx_wscat() -> Path | None:
    """wscat 6 from npx's cache (``$NPM_CONFIG_CACHE`` or ``~/.npm``, folder ``_npx/<hash>``), if there."""
    cache = Path(os.environ.get("NPM_CONFIG_CACHE") or Path.home() / ".npm") / "_npx"
    for package in sorted(cache.glob("*/node_modules/wscat/package.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(package.read_text())["version"].startswith("6."):
                exe = package.parents[1] / ".bin" / "wscat"
                if exe.is_file():
                    return exe
    return None


@pytest.fixture(scope="session")
def wscat() -> str:
    local = REPO_ROOT / "node_modules" / ".bin" / "wscat"
    candidates = [local if local.is_file() else None, npx_wscat()]
    found = next((str(c) for c in candidates if c is not None), None) or shutil.which("wscat")
    if found is None:
        reason = (
            f"wscat not found in {local.parent}, npx's cache or on PATH "
            "(run: npm install --no-audit --no-fund --no-save wscat@6, or npx --yes wscat@6 --version)"
        )
        if os.environ.get("MNIST_LIVE_REQUIRE_DATA") == "1" or os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI requires it (.ci/run installs it)")
        pytest.skip(reason)
    return found


def run_wscat(wscat: str, url: str, *messages: str, wait: float = 2) -> list[dict[str, Any]]:
    """``wscat -c URL -x MSG ... -w WAIT``; return the JSON messages it printed.

    wscat quits as soon as its stdin closes, so stdin stays an open pipe, as a terminal would be.
    """
    argv = [wscat, "-c", url]
    for m in messages:
        argv += ["-x", m]
    argv += ["-w", str(wait)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        proc.wait(timeout=wait + 20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"wscat did not exit: {argv}")
    finally:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.close()
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0, f"wscat exited {proc.returncode}: {err}"
    lines = [line for line in out.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def expected_digit(predictor: Predictor, strokes: list[Any]) -> int:
    digit = predictor.predict([StrokesFrame(strokes, 280, 280, 16)])[0].digit
    assert digit is not None
    return digit


def test_scripted_session_prints_the_prediction(target: Target, wscat: str, predictor: Predictor) -> None:
    message = json.dumps(
        {"action": "predict", "seq": 1, "strokes": ONE, "width": 280, "height": 280},
        separators=(",", ":"),
    )
    (reply,) = run_wscat(wscat, target.ws_url, message)
    assert reply["type"] == "prediction" and reply["seq"] == 1 and reply["status"] == "ok"
    assert reply["digit"] == 1 == expected_digit(predictor, ONE)
    assert sum(reply["probabilities"]) == pytest.approx(1.0)


def test_scripted_session_without_seq_and_ping(target: Target, wscat: str, predictor: Predictor) -> None:
    seven = json.dumps({"action": "predict", "strokes": SEVEN, "width": 280, "height": 280})
    replies = run_wscat(wscat, target.ws_url, seven, '{"action":"ping"}')
    assert {"type": "pong"} in replies
    (prediction,) = [r for r in replies if r["type"] == "prediction"]
    assert prediction["digit"] == 7 == expected_digit(predictor, SEVEN)
    assert isinstance(prediction["seq"], int)
