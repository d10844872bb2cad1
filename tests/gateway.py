"""Run the API Gateway emulator (:mod:`realtime.tools.gateway`) on 127.0.0.1 in a background thread.

The gateway counterpart of :func:`tests.servers.run_server`: the Lambda WebSocket handler runs
in-process and answers through route responses on the template's two-way routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from realtime.tools.gateway import Gateway, Handler, lambda_handler_factory
from shared.inference import Predictor
from shared.settings import Settings


@dataclass(frozen=True)
class LiveGateway:
    """A running emulator: ``ws_url`` (``ws://127.0.0.1:PORT/prod``), the page, the callback URL."""

    ws_url: str
    http_url: str
    callback_url: str
    settings: Settings
    gateway: Gateway


@contextlib.contextmanager
def run_gateway(
    settings: Settings,
    predictor: Predictor | None = None,
    handler_factory: Callable[[str], Handler] | None = None,
    **gateway_options: Any,
) -> Iterator[LiveGateway]:
    """Serve the Lambda WebSocket handler behind the emulator until the ``with`` block ends."""
    gateway = Gateway(handler_factory or lambda_handler_factory(settings, predictor), **gateway_options)
    started = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            await gateway.start("127.0.0.1", 0, 0)
        except BaseException as exc:
            failure.append(exc)
            started.set()
            raise
        started.set()
        await stop.wait()
        await gateway.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(30) or failure:
        raise RuntimeError("the gateway did not start") from (failure[0] if failure else None)
    try:
        yield LiveGateway(gateway.ws_url, gateway.http_url, gateway.callback_url, settings, gateway)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
