"""``mnist-live serve --workers N`` on Linux: N uvicorn processes, each with its own listening socket.

uvicorn's own supervisor binds one socket in the parent and every worker accepts from it: whichever
worker wins each ``accept()`` race takes the connection. WebSockets live for a whole drawing session,
so they pile onto whichever worker happened to be quickest: 32 connections opened together split
9/23, 17/15 and 21/11 between two workers here, and the loaded worker's tail latency doubled. With
``SO_REUSEPORT`` each worker binds its own socket on the same port and Linux spreads new connections
over them by a hash of the peer's address and port (the approach of encode/uvicorn#2472, not merged).
Other systems do not balance ``SO_REUSEPORT`` sockets, so :func:`supported` is false there and the
CLI uses uvicorn's supervisor.

This supervisor only starts, watches and stops the workers; each worker is a plain
:class:`uvicorn.Server`. ``SO_REUSEPORT`` would let a second server started by the same user share
the port silently, so the supervisor holds a per-port lock (an abstract Unix socket) and a second
``mnist-live serve`` on that port exits with status 2. A worker that exits is started again (after
:data:`RESTART_DELAY_S` if it had run less than :data:`CRASH_LOOP_S`), unless it reports a start-up
failure (status :data:`STARTUP_FAILURE`: the socket cannot be bound, or the app's lifespan failed),
which stops them all. SIGINT, SIGTERM and SIGHUP stop the workers gracefully; workers also stop if the
supervisor itself dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

STARTUP_FAILURE = 3
"""Worker exit status for "cannot start" (uvicorn's ``STARTUP_FAILURE``): the supervisor stops."""
CRASH_LOOP_S = 10.0
"""A worker that exits sooner than this after starting is restarted only after a delay."""
RESTART_DELAY_S = 1.0
"""The delay before restarting a worker that exited soon after starting (no hot restart loop)."""
STOP_GRACE_S = 10.0
"""How long stopping waits for each worker's graceful shutdown (SIGTERM) before killing it."""
_PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when its parent dies (``linux/prctl.h``)."""


def supported() -> bool:
    """Whether the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def family(host: str) -> socket.AddressFamily:
    """``AF_INET6`` for an IPv6 literal (``::1``, ``[::1]``), else ``AF_INET``."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT`` (not yet listening).

    Raises:
        OSError: the address cannot be bound (in use by a socket without ``SO_REUSEPORT``, ...).
    """
    sock = socket.socket(family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def port_lock(port: int) -> socket.socket | None:
    """Hold the per-port lock of mnist-live supervisors: ``None`` if another one holds it.

    An abstract-namespace Unix socket, so the kernel releases it when the holder exits, however.
    """
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        lock.bind(f"\0mnist-live-serve-port-{port}")
    except OSError:
        lock.close()
        return None
    return lock


class AnnouncingServer(uvicorn.Server):
    """A :class:`uvicorn.Server` that prints ``announce`` to stderr once its sockets listen.

    uvicorn's own "running on" line is an INFO log, hidden at the CLI's default log level; and printing
    before :meth:`run` would claim a port that answers nothing while the model loads.
    """

    def __init__(self, config: uvicorn.Config, announce: str | None) -> None:
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Uvicorn's start-up (lifespan, then bind and listen), then the announcement."""
        await super().startup(sockets)
        if self.started and self.announce:
            print(self.announce, file=sys.stderr, flush=True)


def run(
    workers: int,
    host: str,
    port: int,
    options: dict[str, Any],
    restart_delay_s: float = RESTART_DELAY_S,
    *,
    announce: str | None = None,
) -> int:
    """Serve ``realtime.server.app:create_app`` from ``workers`` processes until SIGINT, SIGTERM or SIGHUP.

    Args:
        workers: Worker processes, >= 1.
        host: Bind address.
        port: Port, > 0 (every worker binds the same one).
        options: Further :class:`uvicorn.Config` keyword arguments (log level, limits, ...).
        restart_delay_s: Delay before restarting a worker that exited soon after starting.
        announce: Printed to stderr once the first worker listens (``None``: nothing).

    Returns:
        The exit status: 0 after a signal, 1 when a worker could not start, 2 when another
        mnist-live supervisor serves this port.
    """
    lock = port_lock(port)
    if lock is None:
        print(f"mnist-live: another mnist-live server is already serving port {port}", file=sys.stderr)
        return 2
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, request_stop) for sig in handled}

    def start(index: int) -> tuple[BaseProcess, float]:
        process = context.Process(
            target=_serve_one,
            args=(host, port, options, os.getpid(), announce if index == 0 else None),
            name=f"mnist-live-worker-{index}",
        )
        process.start()
        return process, time.monotonic()

    status = 0
    procs = [start(i) for i in range(workers)]
    restart_at: dict[int, float] = {}
    try:
        while not stop.wait(0.2):
            now = time.monotonic()
            for i, (process, started) in enumerate(procs):
                if i in restart_at:
                    if now >= restart_at[i]:
                        del restart_at[i]
                        procs[i] = start(i)
                    continue
                if process.exitcode is None:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    print(f"mnist-live: worker {process.pid} could not start; stopping", file=sys.stderr)
                    status = 1
                    stop.set()
                    break
                delay = restart_delay_s if now - started < CRASH_LOOP_S else 0.0
                print(
                    f"mnist-live: worker {process.pid} exited ({process.exitcode}); restarting it",
                    file=sys.stderr,
                )
                restart_at[i] = now + delay
    finally:
        _stop_all([process for process, _ in procs])
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        lock.close()
    return status


def _stop_all(processes: list[BaseProcess]) -> None:
    """Stop the workers: SIGTERM, then SIGKILL those still running after :data:`STOP_GRACE_S` s.

    On SIGTERM uvicorn closes its connections and runs the lifespan's end.
    """
    for process in processes:
        if process.exitcode is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()


def _serve_one(
    host: str, port: int, options: dict[str, Any], supervisor: int, announce: str | None = None
) -> None:
    """One worker: bind its own ``SO_REUSEPORT`` socket and serve the app on it.

    ``announce`` is printed once this worker listens (:class:`AnnouncingServer`).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # stop when the supervisor dies, even by SIGKILL
    if os.getppid() != supervisor:  # it died before prctl took effect
        return
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"mnist-live: worker cannot bind {host}:{port} ({exc.strerror or exc})", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config("realtime.server.app:create_app", factory=True, host=host, port=port, **options)
    AnnouncingServer(config, announce).run(sockets=[sock])
