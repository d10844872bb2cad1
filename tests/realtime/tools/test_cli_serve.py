"""``serve`` start-up: bad flags or settings give one line and status 2; "serving" means listening."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from realtime.tools.cli import main
from shared.settings import REPO_ROOT, Settings
from tests.servers import run_server


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--port", "80000"], "mnist-live: invalid --port:"),
        (["--port", "-1"], "mnist-live: invalid --port:"),
        (["--port", "abc"], "mnist-live serve: error: argument --port:"),
        (["--host", "no such host"], "mnist-live: cannot listen on no such host:"),
        (["--host", "999.1.1.1"], "mnist-live: cannot listen on 999.1.1.1:"),
        (["--workers", "0"], "mnist-live serve: error: argument --workers:"),
    ],
)
def test_a_bad_serve_flag_is_one_line_and_status_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["serve", *argv])
    except SystemExit as exc:  # argparse's own refusals exit from inside parse_args
        code = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MNIST_LIVE_PORT", "80000", "mnist-live: invalid setting MNIST_LIVE_PORT:"),
        ("MNIST_LIVE_PORT", "-1", "mnist-live: invalid setting MNIST_LIVE_PORT:"),
        ("MNIST_LIVE_HOST", "no such host", "mnist-live: cannot listen on no such host:"),
        ("MNIST_LIVE_LOG_LEVEL", "LOUD", "mnist-live: invalid setting MNIST_LIVE_LOG_LEVEL:"),
        ("MNIST_LIVE_ALLOWED_ORIGINS", "notjson", "mnist-live: invalid setting MNIST_LIVE_ALLOWED_ORIGINS:"),
        ("MNIST_LIVE_MODEL_PATH", "/nonexistent/m.onnx", "mnist-live: no model file at /nonexistent/m.onnx"),
        (
            "MNIST_LIVE_STROKES_MODEL_PATH",
            str(REPO_ROOT / "model" / "mnist_cnn.onnx"),  # the image model, given for strokes
            "mnist-live: mnist_cnn.onnx: the model's input must be one (N, 7, 28, 28) float32 tensor.",
        ),
        (
            "MNIST_LIVE_MODEL_PATH",
            str(REPO_ROOT / "README.md"),
            "mnist-live: onnxruntime cannot load README.md.",
        ),
    ],
)
def test_a_bad_address_setting_is_one_line_and_status_2(
    variable: str,
    value: str,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1 and "Traceback" not in err


def test_a_flag_overrides_a_bad_setting_and_is_named_when_it_is_the_bad_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MNIST_LIVE_PORT", "80000")
    assert main(["serve", "--port", "70000"]) == 2
    assert capsys.readouterr().err.startswith("mnist-live: invalid --port:")


@pytest.mark.slow
def test_serve_announces_the_address_only_once_it_answers() -> None:
    """The moment the "serving" line is printed, readiness and the page answer at once (no retry), and a
    first-start compile notice, when there is one, came before it."""
    exe = Path(sys.executable).with_name("mnist-live")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "MNIST_LIVE_LOG_LEVEL": "WARNING"},
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"serving the page at (http://127\.0\.0\.1:(\d+)/)", line)
            if found:
                assert int(found.group(2)) > 0
                assert httpx.get(found.group(1) + "readyz", timeout=2).status_code == 200
                assert httpx.get(found.group(1), timeout=2).status_code == 200
                break
        else:
            pytest.fail(f"no announcement within 60 s: {lines}")
        assert "serving" in lines[-1], lines
        compiling = [i for i, text in enumerate(lines) if "compiling" in text]
        assert all(i < len(lines) - 1 for i in compiling)  # a compile notice comes before, never after
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # drains and closes stderr


def test_readiness_says_why_the_model_could_not_be_loaded(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with run_server(Settings(model_path=broken)) as server:
        r = httpx.get(f"{server.http_url}/readyz")
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
    assert "not loaded yet" not in r.json()["error"]["message"]


def _serve_until_announced() -> tuple[subprocess.Popen[str], str]:
    exe = Path(sys.executable).with_name("mnist-live")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving the page at http://127\.0\.0\.1:(\d+)/", proc.stderr.readline())
        if found:
            return proc, found.group(1)
    proc.kill()
    pytest.fail("no announcement within 60 s")


@pytest.mark.parametrize("trickling_client", [False, True])
def test_ctrl_c_stops_the_server_soon_and_without_a_traceback(trickling_client: bool) -> None:
    """SIGINT (what Ctrl-C sends) exits 130 quietly, within the graceful-shutdown bound even while a
    client trickles a request body."""
    import socket

    from realtime.server.runtime import GRACEFUL_SHUTDOWN_S

    proc, port = _serve_until_announced()
    with contextlib.ExitStack() as stack:
        if trickling_client:
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", int(port))))
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
            time.sleep(0.3)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=GRACEFUL_SHUTDOWN_S + 10)
    assert time.monotonic() - start < GRACEFUL_SHUTDOWN_S + 3
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest[-500:]
    assert proc.returncode == 130
