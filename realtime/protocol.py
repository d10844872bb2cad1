"""Sans-I/O WebSocket protocol core: one :class:`Session` per connection, no sockets, no clocks.

The adapter feeds each received text frame plus the current monotonic time to :meth:`Session.receive`
and sends what it returns (pongs and errors go out at once, never behind inference). Inference work is
pulled with :meth:`Session.next_job`, run off the event loop, and handed back to :meth:`Session.complete`,
which returns the reply. The local server (:mod:`realtime.server.app`) and the Lambda handler
(:mod:`realtime.aws.websocket_handler`) both drive this class unchanged.

Latest-wins coalescing (per connection): while a job is in flight, a newer frame replaces the pending
one (at most one pending, the replaced one is counted as coalesced). A frame whose ``seq`` is at or below
the highest seq already answered, in flight or pending is stale and dropped silently, so reply seqs
strictly increase. Rate limiting is a token bucket of ``rate_limit_fps`` tokens refilled per second
(burst: one second's worth); a frame over the limit gets a ``rate_limited`` error and is dropped. Errors
about a message itself (size, parse, rate) go out at once with ``seq: null``; only replies that carry a
seq are ordered, and they strictly increase.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from realtime.messages import (
    MAX_SEQ,
    ErrorMessage,
    PingMessage,
    PongMessage,
    PredictionMessage,
    PredictMessage,
    ServerMessage,
    parse_client_message,
)
from shared import errors
from shared.inference import Predictor
from shared.limits import Limits
from shared.number import is_number, read_number
from shared.preprocess import Frame, preprocess
from shared.schemas import Prediction
from shared.segment import segment
from shared.settings import Settings

Parsed = PredictMessage | PingMessage | errors.ClientError
"""A parsed frame, or the client error that parsing it raised."""


def parse(data: str | bytes) -> Parsed:
    """Parse one frame, returning (not raising) the client error; safe to run in a worker thread."""
    try:
        return parse_client_message(data)
    except errors.ClientError as exc:
        return exc


def byte_length(data: str | bytes) -> int:
    """Size of a frame in bytes (UTF-8), the unit of API Gateway's limits; cheap for ASCII text."""
    if isinstance(data, bytes) or data.isascii():
        return len(data)
    return len(data.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Per-connection limits.

    Attributes:
        max_message_bytes: Largest accepted frame, bytes (API Gateway's 128 KiB message limit);
            larger frames get ``payload_too_large`` and the connection stays open.
        rate_limit_fps: Frames per second allowed (token bucket; burst = one second's worth).
        idle_timeout_s: Seconds without a received frame before the adapter closes with 1001.
    """

    max_message_bytes: int = 128 * 1024
    rate_limit_fps: float = 120.0
    idle_timeout_s: float = 600.0

    @classmethod
    def of(cls, settings: Settings) -> SessionConfig:
        """The limits ``settings`` set: what every adapter's sessions use.

        From ``MNIST_LIVE_WS_MAX_MESSAGE_BYTES``, ``MNIST_LIVE_RATE_LIMIT_FPS`` and
        ``MNIST_LIVE_IDLE_TIMEOUT_S``.
        """
        return cls(settings.ws_max_message_bytes, settings.rate_limit_fps, settings.idle_timeout_s)


@dataclass(frozen=True, slots=True)
class Job:
    """One frame to preprocess and classify.

    Attributes:
        seq: The frame's sequence number. frame: The core input. received_at: Monotonic seconds.
    """

    seq: int
    frame: Frame
    received_at: float


@dataclass(slots=True)
class SessionStats:
    """Counters for logs and the replay harness."""

    received: int = 0
    answered: int = 0
    coalesced: int = 0
    stale: int = 0
    rate_limited: int = 0
    errors: int = 0


@dataclass
class Session:
    """Protocol state of one connection.

    Args:
        now: Monotonic seconds at connect.
        config: Limits.
    """

    now: float
    config: SessionConfig = field(default_factory=SessionConfig)
    last_answered: int = -1
    last_received: int = -1
    pending: Job | None = None
    in_flight: Job | None = None
    stats: SessionStats = field(default_factory=SessionStats)

    def __post_init__(self) -> None:
        self.last_activity = self.now
        self._tokens = self.config.rate_limit_fps
        self._refilled_at = self.now

    def receive(self, data: str | bytes, now: float, parsed: Parsed | None = None) -> list[ServerMessage]:
        """Take one received frame.

        Errors about the message itself (too large, unparsable, over the rate limit) are answered at once
        with ``seq: null``, so they never overtake the reply to an earlier frame still in flight; errors
        about a frame's content come from its job, carrying its seq, in order with predictions.

        Args:
            data: The frame's payload: JSON text (bytes are read as UTF-8).
            now: Monotonic seconds.
            parsed: ``parse(data)`` when the adapter already parsed it (off the event loop).

        Returns:
            Messages to send at once: a pong, an error, or nothing (the frame became the pending job).
        """
        self.last_activity = now
        self.stats.received += 1
        if byte_length(data) > self.config.max_message_bytes:
            return self._error(
                errors.PayloadTooLarge(f"Messages are limited to {self.config.max_message_bytes} bytes."),
                None,
            )
        message = parse(data) if parsed is None else parsed
        if isinstance(message, errors.ClientError):
            return self._error(message, None)
        if isinstance(message, PingMessage):
            return [PongMessage()]
        if not self._take_token(now):
            self.stats.rate_limited += 1
            return self._error(errors.RateLimited(), None)
        if message.seq is not None:
            seq = message.seq
        elif self.last_received < MAX_SEQ:
            seq = self.last_received + 1
        else:
            return self._error(errors.InvalidFieldType("'seq' ran past 2^53 - 1; send it explicitly."), None)
        newest = max(
            self.last_answered,
            self.in_flight.seq if self.in_flight else -1,
            self.pending.seq if self.pending else -1,
        )
        if seq <= newest:
            self.stats.stale += 1
            return []
        if self.pending is not None:
            self.stats.coalesced += 1
        self.pending = Job(seq, message.to_frame(), now)
        self.last_received = max(self.last_received, seq)
        return []

    def refuse(self, error: errors.ClientError, now: float) -> list[ServerMessage]:
        """Answer a frame the adapter could not pass on (e.g. a binary frame) with an error frame."""
        self.last_activity = now
        self.stats.received += 1
        return self._error(error, None)

    def next_job(self) -> Job | None:
        """Move the pending frame in flight and return it; ``None`` if busy or nothing is pending."""
        if self.in_flight is not None or self.pending is None:
            return None
        self.in_flight, self.pending = self.pending, None
        return self.in_flight

    def complete(
        self, job: Job, outcome: Prediction | errors.MnistLiveError, now: float
    ) -> list[ServerMessage]:
        """Finish the in-flight job.

        Args:
            job: What :meth:`next_job` returned.
            outcome: The prediction, or the error preprocessing/inference raised.
            now: Monotonic seconds.

        Returns:
            The reply (a prediction or an error frame carrying the job's seq).
        """
        if self.in_flight is job:
            self.in_flight = None
        if job.seq <= self.last_answered:
            self.stats.stale += 1
            return []
        self.last_answered = job.seq
        if isinstance(outcome, errors.MnistLiveError):
            return self._error(outcome, job.seq)
        self.stats.answered += 1
        return [PredictionMessage.of(job.seq, outcome, (now - job.received_at) * 1000.0)]

    def idle_deadline(self) -> float:
        """Monotonic time at which the adapter should close the idle connection (1001)."""
        return self.last_activity + self.config.idle_timeout_s

    def _take_token(self, now: float) -> bool:
        rate = self.config.rate_limit_fps
        self._tokens = min(rate, self._tokens + (now - self._refilled_at) * rate)
        self._refilled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _error(self, error: errors.MnistLiveError, seq: int | None) -> list[ServerMessage]:
        self.stats.errors += 1
        return [ErrorMessage.of(error, seq)]


def infer(predictor: Predictor | None, frame: Frame, limits: Limits) -> Prediction | errors.MnistLiveError:
    """Run one job for :meth:`Session.complete`: preprocess and classify, returning errors, not raising.

    Called off the event loop by the local server and inline by the Lambda handler. A number-mode
    frame (:func:`shared.number.is_number`) is read as a number (:func:`shared.number.read_number`).

    Args:
        predictor: The loaded model, or ``None`` when loading failed (answers ``model_unavailable``).
        frame: The job's frame.
        limits: Input limits.

    Returns:
        The prediction, the client's error (``ClientError``, also when no model is loaded), or a
        ``ServerError`` (``ModelError`` without a model; anything unexpected is logged with its type,
        never sent to the client).
    """
    try:
        number = is_number(frame)
        if predictor is None:
            # a malformed frame is still the client's mistake (4xx), not a 503
            if number:
                segment(frame, limits)
            else:
                preprocess(frame, limits)
            return errors.ModelError("The model is not loaded.")
        if number:
            return read_number(predictor, frame, limits)
        return predictor.predict([frame], limits)[0]
    except errors.MnistLiveError as exc:
        return exc
    except Exception:
        logging.getLogger("mnist_live").exception("inference_failed")
        return errors.ServerError()
