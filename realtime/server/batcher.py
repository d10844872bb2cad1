"""Dynamic batching: worker threads that preprocess frames and ask the model once per batch.

Handing each frame to a thread pool costs two thread wake-ups and anyio's bookkeeping per frame, which
on a 2-core machine costs more than classifying a stroke frame. Here the event loop appends frames to a
queue; a worker drains everything queued (up to ``max_batch`` frames), preprocesses each frame, runs one
:meth:`~shared.inference.Predictor.classify` for the batch, and hands all results back to the loop in
one ``call_soon_threadsafe``. Under load batches grow, so the per-frame cost falls as traffic rises.
Two workers by default, so one slow frame (a large image) never stalls every connection.

A frame that cannot change (``POST /predict``, :meth:`InferenceBatcher.submit`) is queued at once. A
WebSocket session's frame can: a newer snapshot replaces the pending one. So a connection registers as
a :class:`Source` instead (:meth:`InferenceBatcher.request`), and the loop asks it for its frame only
when fewer batches are queued or running than there are workers. The session then hands over its
newest frame: latest-wins stays the session's own rule (:class:`realtime.protocol.Session`), and
nothing queued is ever swapped. While any session waits, new fixed frames wait behind it in the same
line (first come, first served), so no stream of requests can hold a session back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from realtime.protocol import infer
from shared import errors
from shared.inference import Predictor
from shared.limits import Limits
from shared.number import is_number
from shared.preprocess import Frame, preprocess
from shared.schemas import Prediction

Outcome = Prediction | errors.MnistLiveError
Batch = list[tuple["Source", Frame]]


class Source(Protocol):
    """Something waiting for a worker; both methods are called on the event loop."""

    def take(self) -> Frame | None:
        """The frame to run now that a worker is free, or ``None`` when there is nothing left to run."""

    def deliver(self, outcome: Outcome) -> None:
        """The outcome of the frame :meth:`take` returned."""


class _Once:
    """A frame that cannot change; its outcome resolves a future (:meth:`InferenceBatcher.submit`)."""

    __slots__ = ("frame", "future")

    def __init__(self, frame: Frame, future: asyncio.Future[Outcome]) -> None:
        self.frame: Frame | None = frame
        self.future = future

    def take(self) -> Frame | None:
        frame, self.frame = self.frame, None
        return None if self.future.done() else frame  # a cancelled waiter's frame is not run

    def deliver(self, outcome: Outcome) -> None:
        if not self.future.done():  # the waiter may have gone away meanwhile (cancelled)
            self.future.set_result(outcome)


class InferenceBatcher:
    """Batched inference off the event loop.

    Args:
        predictor: Returns the loaded model, or ``None`` while it is not loaded (answers
            ``model_unavailable``).
        limits: Input limits for preprocessing.
        workers: Worker threads (default 2: one per core here).
        max_batch: Most frames per model call.
    """

    def __init__(
        self,
        predictor: Callable[[], Predictor | None],
        limits: Limits,
        workers: int = 2,
        max_batch: int = 32,
    ) -> None:
        self._predictor = predictor
        self._limits = limits
        self._workers = workers
        self._max_batch = max_batch
        self._waiting: collections.deque[Source] = collections.deque()  # on the loop only
        self._outstanding = 0  # batches queued or running, counted on the loop
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads = [
            threading.Thread(target=self._run, name=f"mnist-live-infer-{n}", daemon=True)
            for n in range(workers)
        ]
        for t in self._threads:
            t.start()

    async def submit(self, frame: Frame) -> Outcome:
        """Preprocess and classify ``frame``; errors are returned, not raised."""
        self._loop = loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        once = _Once(frame, future)
        if self._waiting:  # sessions are waiting: line up behind them, or a stream of these starves them
            self.request(once)
        else:
            self._put([(once, frame)])
        return await future

    def request(self, source: Source) -> None:
        """Wait for a worker (call on the event loop): ``source.take()`` is called once one is free."""
        self._loop = asyncio.get_running_loop()
        self._waiting.append(source)
        self._dispatch()

    def close(self) -> None:
        """Stop the workers after the batches already queued; sources still waiting are not run."""
        self._waiting.clear()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(5)

    def _put(self, batch: Batch) -> None:
        self._outstanding += 1
        self._queue.put(batch)

    def _dispatch(self) -> None:
        """While a worker would otherwise wait, queue one frame from each waiting source, oldest first."""
        while self._outstanding < self._workers and self._waiting:
            batch: Batch = []
            while self._waiting and len(batch) < self._max_batch:
                source = self._waiting.popleft()
                frame = source.take()
                if frame is not None:
                    batch.append((source, frame))
            if not batch:
                return
            self._put(batch)

    def _finished(self, batches: int, taken: Batch, outcomes: list[Outcome]) -> None:
        """On the loop: hand out a worker's outcomes, then let waiting sources in."""
        self._outstanding -= batches
        for (source, _), outcome in zip(taken, outcomes, strict=True):
            try:
                source.deliver(outcome)
            except Exception:  # one broken source must not keep the others' outcomes or the worker
                logging.getLogger("mnist_live").exception("deliver_failed")
        self._dispatch()

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            taken, batches = list(first), 1
            while len(taken) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # leave the stop signal for after this batch
                    break
                taken += more
                batches += 1
            frames = [frame for _, frame in taken]
            try:
                outcomes = self._classify(frames)
            except Exception:  # never lose a worker (its queued count) to a bug
                logging.getLogger("mnist_live").exception("inference_failed")
                outcomes = [errors.ServerError() for _ in frames]
            assert self._loop is not None  # set before anything was queued
            self._loop.call_soon_threadsafe(self._finished, batches, taken, outcomes)

    def _classify(self, frames: list[Frame]) -> list[Outcome]:
        """Outcomes in order: digit frames in one model call, each number-mode frame in one of its own."""
        if not any(map(is_number, frames)):
            return self._classify_digits(frames)
        digits = iter(self._classify_digits([f for f in frames if not is_number(f)]))
        predictor = self._predictor()
        return [infer(predictor, f, self._limits) if is_number(f) else next(digits) for f in frames]

    def _classify_digits(self, frames: list[Frame]) -> list[Outcome]:
        if not frames:
            return []
        predictor = self._predictor()
        outcomes: list[Outcome | None] = []
        tensors = []  # preprocessed frames that did not fail, in order (None: blank)
        for frame in frames:
            try:
                tensors.append(preprocess(frame, self._limits))
                outcomes.append(None)
            except errors.MnistLiveError as exc:
                outcomes.append(exc)
            except Exception:
                logging.getLogger("mnist_live").exception("preprocess_failed")
                outcomes.append(errors.ServerError())
        if predictor is None:  # malformed frames still get their own (4xx) error first
            return [o if o is not None else errors.ModelError("The model is not loaded.") for o in outcomes]
        try:
            predictions = iter(predictor.classify(tensors) if tensors else [])
        except errors.MnistLiveError as exc:
            return [o if o is not None else exc for o in outcomes]
        except Exception:
            logging.getLogger("mnist_live").exception("inference_failed")
            return [o if o is not None else errors.ServerError() for o in outcomes]
        return [o if o is not None else next(predictions) for o in outcomes]
