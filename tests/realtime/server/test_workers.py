"""``mnist-live serve --workers N`` on Linux: one SO_REUSEPORT listening socket per worker process,
workers restarted when they die, all stopped by SIGTERM (``realtime/server/workers.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from realtime.server import workers

pytestmark = pytest.mark.skipif(not workers.supported(), reason="SO_REUSEPORT balancing is Linux-only")

ROOT = Path(__file__).resolve().parents[3]


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


def _start_supervisor(port: int, workers: int = 2) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from realtime.server import workers; "
        f"sys.exit(workers.run({workers}, '127.0.0.1', {port}, {{'log_level': 'warning'}}, "
        "restart_delay_s=0.5))"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE)


def _stop_everything(proc: subprocess.Popen[bytes]) -> None:
    """Kill the supervisor and every process it started (workers, multiprocessing's resource tracker)."""
    kids = _children(proc.pid)
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    for pid in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if proc.stderr is not None:
        proc.stderr.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _workers_of(proc: subprocess.Popen[bytes], port: int) -> list[int]:
    listeners = _listening_inodes(port)
    return [pid for pid in _children(proc.pid) if _socket_inodes(pid) & listeners]


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def supervisor() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = _start_supervisor(port)
    try:
        _wait_ready(port, proc, expected_listeners=2)
        yield proc, port
    finally:
        _stop_everything(proc)


def test_each_worker_listens_on_its_own_socket(supervisor: tuple[subprocess.Popen[bytes], int]) -> None:
    proc, port = supervisor
    listeners = _listening_inodes(port)
    assert len(listeners) == 2
    owners = _workers_of(proc, port)
    assert len(owners) == 2, "two worker processes, one listening socket each"
    assert all(len(_socket_inodes(pid) & listeners) == 1 for pid in owners)
    assert not _socket_inodes(proc.pid) & listeners, "the supervisor itself accepts nothing"


def test_a_second_server_on_the_port_is_refused(supervisor: tuple[subprocess.Popen[bytes], int]) -> None:
    """SO_REUSEPORT would let a second server of the same user share the port; the supervisor's lock
    refuses it (status 2), and the CLI's probe does too."""
    _, port = supervisor
    _assert_exits(_start_supervisor(port), 2, b"already serving port")
    assert len(_listening_inodes(port)) == 2


def test_dead_workers_are_replaced_and_sigterm_stops_all(
    supervisor: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = supervisor
    victim = _workers_of(proc, port)[0]
    for _ in range(2):  # then kill the replacement, which has just started: it is replaced again
        before = set(_workers_of(proc, port))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            now = set(_workers_of(proc, port))  # one snapshot per poll
            if len(now) == 2 and not now & {victim} and now - before:
                break
            assert time.monotonic() < deadline, "the killed worker was not replaced"
            time.sleep(0.2)
        (victim,) = now - before
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    owners = _workers_of(proc, port)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not any(_is_running(pid) for pid in owners), "every worker has exited"
    assert not _listening_inodes(port)


@pytest.mark.parametrize("how", ["SIGHUP", "SIGKILL"])
def test_workers_stop_with_the_supervisor(supervisor: tuple[subprocess.Popen[bytes], int], how: str) -> None:
    """SIGHUP (a closed terminal) stops the workers gracefully; if the supervisor is killed outright the
    workers get SIGTERM from the kernel (PR_SET_PDEATHSIG) instead of serving on as orphans."""
    proc, port = supervisor
    owners = _workers_of(proc, port)
    proc.send_signal(getattr(signal, how))
    proc.wait(30)
    _wait_for(lambda: not any(_is_running(pid) for pid in owners), "the workers to exit", timeout=30)
    assert not _listening_inodes(port)


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_worker_failing_at_start_stops_the_supervisor() -> None:
    """A worker that cannot bind (the port is held by a socket without SO_REUSEPORT) exits with the
    start-up failure status: the supervisor stops with status 1 instead of restarting it forever."""
    with socket.create_server(("127.0.0.1", 0)) as plain:
        _assert_exits(_start_supervisor(plain.getsockname()[1]), 1, b"could not start")


def _assert_exits(proc: subprocess.Popen[bytes], status: int, says: bytes) -> None:
    """The supervisor exits by itself with ``status`` and ``says`` on stderr."""
    try:
        assert proc.wait(60) == status
        assert proc.stderr is not None
        assert says in proc.stderr.read()
    finally:
        _stop_everything(proc)
