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
:class:`uvicorn.Server`. A worker that exits is started again, unless it exits within
:data:`CRASH_LOOP_S` of starting (a bind or start-up failure would recur), which stops all of them.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

CRASH_LOOP_S = 10.0
"""A worker that exits sooner than this after starting is not restarted: the supervisor stops."""
STOP_GRACE_S = 10.0
"""How long stopping waits for each worker's graceful shutdown (SIGTERM) before killing it."""


def supported() -> bool:
    """Whether the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux)."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT`` (not yet listening).

    Raises:
        OSError: the address cannot be bound (in use by a socket without ``SO_REUSEPORT``, ...).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    return sock


def run(
    workers: int, host: str, port: int, options: dict[str, Any], crash_loop_s: float = CRASH_LOOP_S
) -> int:
    """Serve ``realtime.local:create_app`` from ``workers`` processes until SIGINT or SIGTERM.

    Args:
        workers: Worker processes, >= 1.
        host: Bind address.
        port: Port, > 0 (every worker binds the same one).
        options: Further :class:`uvicorn.Config` keyword arguments (log level, limits, ...).
        crash_loop_s: A worker exiting sooner than this after its start stops the supervisor.

    Returns:
        The exit status: 0 after a signal, 1 when a worker failed right after starting.
    """
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start(index: int) -> tuple[BaseProcess, float]:
        process = context.Process(
            target=_serve_one, args=(host, port, options), name=f"mnist-live-worker-{index}"
        )
        process.start()
        return process, time.monotonic()

    status = 0
    procs = [start(i) for i in range(workers)]
    try:
        while not stop.wait(0.5):
            for i, (process, started) in enumerate(procs):
                if process.exitcode is None:
                    continue
                if time.monotonic() - started < crash_loop_s:
                    print(
                        f"mnist-live: worker {process.pid} exited with {process.exitcode} right after "
                        "starting; stopping",
                        file=sys.stderr,
                    )
                    status = 1
                    stop.set()
                    break
                print(
                    f"mnist-live: worker {process.pid} exited ({process.exitcode}); restarting",
                    file=sys.stderr,
                )
                procs[i] = start(i)
    finally:
        for process, _ in procs:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: uvicorn closes connections and runs the lifespan's end
        deadline = time.monotonic() + STOP_GRACE_S
        for process, _ in procs:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def _serve_one(host: str, port: int, options: dict[str, Any]) -> None:
    """One worker: bind its own ``SO_REUSEPORT`` socket and serve the app on it."""
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config("realtime.local:create_app", factory=True, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])
