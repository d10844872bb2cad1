"""``mnist-live`` command line.

Each sub-command lives in its own module exposing ``add_command(subparsers)``, listed in
:data:`COMMAND_MODULES`; its handler takes the parsed ``argparse.Namespace`` and returns an exit code.
Modules are imported only when the parser is built, and heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from realtime.tools import argtypes
from shared.settings import InvalidSetting, Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from realtime.server import workers

    flags = {"host": args.host, "port": args.port}
    try:  # the flags go through the settings' own validation, so --port 80000 fails as MNIST_LIVE_PORT does
        settings = Settings(**{name: value for name, value in flags.items() if value is not None})
    except InvalidSetting as exc:
        _print_invalid(exc, flags)
        return 2
    for path, name in (
        (settings.model_path, "MODEL_PATH"),
        (settings.strokes_model_path, "STROKES_MODEL_PATH"),
    ):
        if not path.is_file():  # the server would start but never be ready: refuse now
            print(f"mnist-live: no model file at {path} (MNIST_LIVE_{name})", file=sys.stderr)
            return 2
    host, port = settings.host, settings.port
    try:  # fail before loading anything, and say so plainly, when the port is taken or the host is bad
        with socket.create_server((host.strip("[]"), port), family=workers.family(host)) as probe:
            port = port or probe.getsockname()[1]  # port 0: every worker must share one free port
    except (OSError, ValueError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        print(
            f"mnist-live: cannot listen on {host}:{port} ({reason}); "
            "choose another address with --host/--port or MNIST_LIVE_HOST/MNIST_LIVE_PORT",
            file=sys.stderr,
        )
        return 2
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    announce = f"mnist-live: serving the page at http://{shown}:{port}/ (WebSocket /ws, POST /predict)"
    _compile_notice()
    # Importing the server imports the core, which compiles its kernels on a first start.
    from realtime.server.app import create_app
    from realtime.server.runtime import uvicorn_options
    from shared.errors import ModelError
    from shared.inference import Predictor

    try:  # a file that is there but is no model of its form: refuse now, not answer 503 to every frame
        predictor = Predictor.of(settings)
    except ModelError as exc:
        print(
            f"mnist-live: {exc.message} (MNIST_LIVE_MODEL_PATH, MNIST_LIVE_STROKES_MODEL_PATH)",
            file=sys.stderr,
        )
        return 2

    options = {"log_level": args.log_level.lower(), "access_log": args.access_log}
    options.update(uvicorn_options(settings))
    if args.workers > 1 and workers.supported():  # one socket per worker: the kernel balances connections
        return workers.run(args.workers, host, port, options, announce=announce)
    if args.workers > 1:  # uvicorn's own supervisor: no hook for "listening", so say it before
        print(announce, file=sys.stderr)
        factory = "realtime.server.app:create_app"
        uvicorn.run(factory, factory=True, host=host, port=port, workers=args.workers, **options)
        return 0
    # One process: it serves the models just checked instead of loading them again.
    config = uvicorn.Config(create_app(settings, predictor), host=host, port=port, **options)
    server = workers.AnnouncingServer(config, announce)
    server.run()
    return 0 if server.started else workers.STARTUP_FAILURE


def _print_invalid(exc: InvalidSetting, flags: dict[str, Any]) -> None:
    """One line for an invalid value of :class:`Settings`, named as the user gave it: flag or variable."""
    if flags.get(exc.field) is not None:
        source = "--" + exc.field.replace("_", "-")
    else:
        source = "setting MNIST_LIVE_" + exc.field.upper()
    print(f"mnist-live: invalid {source}: {exc.reason}", file=sys.stderr)


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


COMMAND_MODULES: list[str] = ["realtime.tools.replay", "realtime.tools.predict_cli", "realtime.tools.gateway"]
"""Modules adding sub-commands besides ``serve`` (e.g. ``"realtime.tools.replay"``)."""


def add_command(sub: Any) -> None:
    """Register ``serve``."""
    serve = sub.add_parser("serve", help="run the local server: page at /, WebSocket at /ws, POST /predict")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1, MNIST_LIVE_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port, 0-65535 (default 8000, MNIST_LIVE_PORT)")
    serve.add_argument(
        "--workers",
        type=argtypes.worker_count,
        default=1,
        help="worker processes (default 1); on Linux each gets its own SO_REUSEPORT socket",
    )
    serve.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=_serve)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit status 2.

    argparse's default prints the whole usage first; a bad flag then looks like the bad settings do
    (``mnist-live: invalid setting ...``): one line that says what to fix.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    """The installed distribution's version (``pyproject.toml``), or ``unknown`` when run uninstalled."""
    try:
        return importlib.metadata.version("mnist-live")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = OneLineParser(prog="mnist-live", description="Live handwritten-digit recognition.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_command(sub)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(sub)
    for command in sub.choices.values():  # an unknown flag is then reported with its command's usage
        command.set_defaults(command_parser=command)
    return parser


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line; an unknown flag is a usage error of the sub-command it follows.

    Raises:
        SystemExit: status 2 with one line (:class:`OneLineParser`), e.g. ``mnist-live predict: error:
            unrecognized arguments: --bogus (see mnist-live predict --help)``.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mnist-live`` console script."""
    try:
        args = parse(argv)  # imports every command's module: Ctrl-C may come here
        code: int = args.func(args)
    except InvalidSetting as exc:  # a bad MNIST_LIVE_* value: say which, without a traceback
        _print_invalid(exc, {})
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the server has already shut down gracefully; no traceback
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
