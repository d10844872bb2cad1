"""``mnist-live serve --workers N`` on Linux: one SO_REUSEPORT listening socket per worker process,
workers restarted when they die, all stopped by SIGTERM (``realtime/workers.py``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from realtime import workers

pytestmark = pytest.mark.skipif(not workers.supported(), reason="SO_REUSEPORT balancing is Linux-only")

ROOT = Path(__file__).resolve().parents[2]


def test_two_sockets_can_bind_one_port() -> None:
    first = workers.listening_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        second = workers.listening_socket("127.0.0.1", port)
        second.close()
    finally:
        first.close()


def test_a_port_held_without_reuseport_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as plain, pytest.raises(OSError, match="in use"):
        workers.listening_socket("127.0.0.1", plain.getsockname()[1]).close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry))
    return out


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (state 0A in /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _wait_ready(port: int, proc: subprocess.Popen[bytes], expected_listeners: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the supervisor exited"
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
                and len(_listening_inodes(port)) == expected_listeners
            ):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the workers did not become ready")


@pytest.fixture
def supervisor() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    code = (
        "import sys; from realtime import workers; "
        f"sys.exit(workers.run(2, '127.0.0.1', {port}, {{'log_level': 'warning'}}, crash_loop_s=1.0))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    try:
        _wait_ready(port, proc, expected_listeners=2)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            for child in _children(proc.pid):
                os.kill(child, signal.SIGKILL)
            proc.wait(10)


def test_each_worker_listens_on_its_own_socket(supervisor: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = supervisor
    listeners = _listening_inodes(port)
    assert len(listeners) == 2
    owners = [pid for pid in _children(proc.pid) if _socket_inodes(pid) & listeners]
    assert len(owners) == 2, "two worker processes, one listening socket each"
    assert all(len(_socket_inodes(pid) & listeners) == 1 for pid in owners)
    assert not _socket_inodes(proc.pid) & listeners, "the supervisor itself accepts nothing"


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(
    supervisor: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = supervisor
    listeners = _listening_inodes(port)
    victim = next(pid for pid in _children(proc.pid) if _socket_inodes(pid) & listeners)
    time.sleep(1.2)  # past crash_loop_s: a crash now is restarted, not a start-up failure
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        owners = [pid for pid in _children(proc.pid) if _socket_inodes(pid) & _listening_inodes(port)]
        if len(owners) == 2 and victim not in owners:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the killed worker was not replaced")
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not any(_is_running(pid) for pid in owners), "every worker has exited"
    assert not _listening_inodes(port)


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_worker_failing_at_start_stops_the_supervisor() -> None:
    """A worker that cannot bind (the port is held by a socket without SO_REUSEPORT) exits at once:
    the supervisor stops with status 1 instead of restarting it forever."""
    with socket.create_server(("127.0.0.1", 0)) as plain:
        port = plain.getsockname()[1]
        code = (
            "import sys; from realtime import workers; "
            f"sys.exit(workers.run(2, '127.0.0.1', {port}, {{'log_level': 'warning'}}))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert "right after starting" in result.stderr
