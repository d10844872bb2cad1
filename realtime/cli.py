"""``mnist-live`` command line.

Each sub-command lives in its own module exposing ``add_command(subparsers)``, listed in
:data:`COMMAND_MODULES`; its handler takes the parsed ``argparse.Namespace`` and returns an exit code.
Modules are imported only when the parser is built, and heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.settings import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from realtime import workers

    settings = Settings()
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    try:  # fail before loading anything, and say so plainly, when the port is taken
        with socket.create_server((host.strip("[]"), port), family=workers.family(host)) as probe:
            port = port or probe.getsockname()[1]  # port 0: every worker must share one free port
    except OSError as exc:
        print(
            f"mnist-live: cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "choose another port with --port or MNIST_LIVE_PORT",
            file=sys.stderr,
        )
        return 2
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    print(
        f"mnist-live: serving the page at http://{shown}:{port}/ (WebSocket /ws, POST /predict)",
        file=sys.stderr,
    )
    _compile_notice()
    from realtime.local import uvicorn_options  # imports the core: compiles its kernels on a first start

    options = {"log_level": args.log_level.lower(), "access_log": args.access_log}
    options.update(uvicorn_options(settings))
    if args.workers > 1 and workers.supported():  # one socket per worker: the kernel balances connections
        return workers.run(args.workers, host, port, options)
    app = "realtime.local:create_app"
    uvicorn.run(app, factory=True, host=host, port=port, workers=args.workers, **options)
    return 0


def _compile_notice() -> None:
    """Say so when this start compiles the preprocessing kernels (numba, no cache beside the code yet).

    The compiled code is cached in ``shared/__pycache__`` (``kernels.*.nbi`` / ``.nbc``), so this is the
    first start on a machine, or after ``shared/kernels.py`` changed: 5-30 s with nothing listening yet.
    """
    kernels = importlib.util.find_spec("shared.kernels")
    if kernels is None or kernels.origin is None or importlib.util.find_spec("numba") is None:
        return
    if os.environ.get("NUMBA_CACHE_DIR") or any(
        (Path(kernels.origin).parent / "__pycache__").glob("kernels.*.nbi")
    ):
        return
    print(
        "mnist-live: first start here: compiling the preprocessing kernels with numba (5-30 s, once)",
        file=sys.stderr,
    )


COMMAND_MODULES: list[str] = ["realtime.replay", "realtime.predict_cli", "realtime.gateway"]
"""Modules adding sub-commands besides ``serve`` (e.g. ``"realtime.replay"``)."""


def add_command(sub: Any) -> None:
    """Register ``serve``."""
    serve = sub.add_parser("serve", help="run the local server: page at /, WebSocket at /ws, POST /predict")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1, MNIST_LIVE_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000, MNIST_LIVE_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); on Linux each gets its own SO_REUSEPORT socket",
    )
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=_serve)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="mnist-live", description="Live handwritten-digit recognition.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mnist-live`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ValidationError as exc:  # a bad MNIST_LIVE_* value: say which, without a traceback
        for error in exc.errors():
            name = "MNIST_LIVE_" + "_".join(str(part) for part in error["loc"]).upper()
            print(f"mnist-live: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
