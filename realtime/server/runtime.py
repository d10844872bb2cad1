"""What the local server's lifespan builds: the predictor, the inference workers, the inline budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from realtime import access, logs
from realtime.protocol import SessionConfig, infer
from realtime.server.batcher import InferenceBatcher, Outcome
from shared.inference import Predictor
from shared.preprocess import Frame, StrokesFrame
from shared.settings import Settings

INLINE_MAX_POINTS = 256
"""Strokes frames with at most this many points may be classified on the event loop instead of being
handed to a worker thread. Typical pen digits have 50-110 points and cost about 0.5 ms of CPU here; the
worst 256-point frame (a zig-zag that simplification cannot thin) about 3 ms. The hand-off to a worker
and back costs more than a typical frame under load: each side waits for the GIL while the other runs
Python. Measured with ``bench/bench_server.py``: strokes requests/s rose by about 40 %."""
INLINE_SHARE = 0.5
"""At most this share of the event loop's time goes to inline classification (:class:`InlineBudget`)."""
INLINE_BURST_S = 0.005
"""At most this much inline classification back to back, seconds, before the loop serves others."""


class InlineBudget:
    """A token bucket of event-loop time for inline classification.

    Tokens (seconds) accrue at ``share`` per second of wall time, up to ``burst``; each inline
    classification spends its measured duration. While the bucket is empty frames go to the inference
    workers instead. So a flood of frames, however heavy, holds the loop at most ``burst`` plus one
    frame at a time and at most ``share`` of its time overall, and WebSocket pings and other requests
    are not kept waiting (a flood of 512-point frames from 64 clients delayed pings by 0.7 s without
    this budget).

    Args:
        share: Long-run share of wall time inline work may take, in (0, 1].
        burst: Bucket size, seconds.
        clock: Monotonic clock, seconds (tests pass a fake one).
    """

    def __init__(
        self,
        share: float = INLINE_SHARE,
        burst: float = INLINE_BURST_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.share = share
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self._last = clock()

    def available(self) -> bool:
        """Whether a frame may be classified inline now (the bucket is not empty)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.share)
        self._last = now
        return self.tokens > 0

    def spend(self, seconds: float) -> None:
        """Charge ``seconds`` of inline work to the bucket."""
        self.tokens -= seconds


def runs_inline(frame: Frame) -> bool:
    """Whether ``frame`` is cheap enough to classify on the event loop (see :data:`INLINE_MAX_POINTS`).

    Images never are: their decoding time depends on content the header does not bound tightly.
    """
    if not isinstance(frame, StrokesFrame) or not isinstance(frame.strokes, list):
        return False
    points = 0
    for stroke in frame.strokes:
        points += len(stroke) if isinstance(stroke, list) else 0
        if points > INLINE_MAX_POINTS:
            return False
    return len(frame.strokes) <= INLINE_MAX_POINTS


class Runtime:
    """What the lifespan builds: the predictor, the inference workers and the connection count."""

    def __init__(self, settings: Settings, predictor: Predictor | None) -> None:
        self.settings = settings
        self.predictor = predictor
        self.ready = False
        self.load_error: str | None = None  # why the model could not be loaded, for /readyz
        self.connections = 0
        self._batcher: InferenceBatcher | None = None
        self.inline_budget = InlineBudget()
        self.session_config = SessionConfig.of(settings)
        """Every connection's session limits (built once, from the settings)."""
        self.token_secret = access.token_secret(settings)
        """The token clients must present, or None for open access."""

    async def infer(self, frame: Frame) -> Outcome:
        """Preprocess and classify one frame; errors are returned, not raised.

        A small strokes frame (:func:`runs_inline`) is classified right here, on the event loop, while
        :attr:`inline_budget` allows; any other frame goes to the inference workers.
        """
        if runs_inline(frame) and self.inline_budget.available():
            start = time.perf_counter()
            outcome = infer(self.predictor, frame, self.settings.limits)
            self.inline_budget.spend(time.perf_counter() - start)
            return outcome
        return await self.batcher.submit(frame)

    @property
    def batcher(self) -> InferenceBatcher:
        """The inference workers, started on first use."""
        if self._batcher is None:
            self._batcher = InferenceBatcher(
                lambda: self.predictor,
                self.settings.limits,
                workers=self.settings.inference_threads,
                max_batch=self.settings.inference_max_batch,
            )
        return self._batcher

    def close(self) -> None:
        """Stop the inference workers."""
        if self._batcher is not None:
            self._batcher.close()
            self._batcher = None


GRACEFUL_SHUTDOWN_S = 5.0
"""How long a stopping server (Ctrl-C, SIGTERM) lets requests in progress finish, seconds; then uvicorn
cancels them, so a client trickling a body cannot hold the shutdown."""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options every server of this app uses (``mnist-live serve`` and the tests' servers).

    WebSocket keepalive pings are off (the protocol has its own ``ping`` action, and API Gateway sends
    none); frames above ``ws_hard_max_bytes`` close the connection (1009); permessage-deflate is only
    offered when ``ws_per_message_deflate`` is set; shutdown waits at most :data:`GRACEFUL_SHUTDOWN_S`
    for requests in progress; uvicorn logs as JSON lines (:data:`realtime.logs.
    UVICORN_LOG_CONFIG`).
    """
    return {
        "ws_max_size": settings.ws_hard_max_bytes,
        "ws_per_message_deflate": settings.ws_per_message_deflate,
        "ws_ping_interval": None,
        "limit_concurrency": settings.max_concurrency,
        "proxy_headers": False,
        "log_config": logs.UVICORN_LOG_CONFIG,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
