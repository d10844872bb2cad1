"""Run the real local server (uvicorn) on 127.0.0.1 with an ephemeral port, in a background thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from realtime.server.app import create_app
from realtime.server.runtime import uvicorn_options
from shared.inference import Predictor
from shared.settings import Settings


@dataclass(frozen=True)
class LiveServer:
    """A running server: ``http_url`` (``http://127.0.0.1:PORT``), ``ws_url`` (``.../ws``), the app."""

    http_url: str
    ws_url: str
    settings: Settings
    app: FastAPI


@contextlib.contextmanager
def run_server(settings: Settings, predictor: Predictor | None = None) -> Iterator[LiveServer]:
    """Serve ``create_app(settings, predictor)`` until the ``with`` block ends."""
    app = create_app(settings, predictor)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", settings, app)
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def run_server_process(env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``mnist-live serve`` in its own process on a free port; yield its ``http://127.0.0.1:PORT``.

    For tests whose own process must stay isolated from the server (e.g. hypothesis watches global
    state such as the ``random`` module, which server threads in the same process would touch).
    """
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("mnist-live")
    cmd = [str(exe), "serve", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server process did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
