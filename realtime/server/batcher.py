"""Dynamic batching: worker threads that preprocess queued frames and ask the model once per batch.

Handing each frame to a thread pool costs two thread wake-ups and anyio's bookkeeping per frame, which
on a 2-core machine costs more than classifying a stroke frame. Here the event loop appends jobs to a
queue; a worker drains everything queued (up to ``max_batch``), preprocesses each frame, runs one
:meth:`~shared.inference.Predictor.classify` for the batch, and hands all results back to the loop in
one ``call_soon_threadsafe``. Under load batches grow, so the per-frame cost falls as traffic rises.
Two workers by default, so one slow frame (a large image) never stalls every connection.

A queued job's frame can be swapped for a newer one until a worker takes it (:meth:`InferenceBatcher.
replace`): a WebSocket connection whose newer snapshot arrives while its previous one still waits in the
queue keeps its place in line instead of paying for the stale frame and queueing again.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

from realtime.protocol import infer
from shared import errors
from shared.inference import Predictor
from shared.limits import Limits
from shared.number import is_number
from shared.preprocess import Frame, preprocess
from shared.schemas import Prediction

Outcome = Prediction | errors.MnistLiveError


class Ticket:
    """A queued frame: ``await ticket.future`` for its outcome.

    Attributes:
        frame: The frame a worker will classify (swappable until taken).
        future: Resolved on the event loop with the :data:`Outcome`.
        taken: Set by the worker that took the job (under the batcher's lock).
    """

    __slots__ = ("frame", "future", "taken")

    def __init__(self, frame: Frame, future: asyncio.Future[Outcome]) -> None:
        self.frame = frame
        self.future = future
        self.taken = False


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
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"mnist-live-infer-{n}", daemon=True)
            for n in range(workers)
        ]
        for t in self._threads:
            t.start()

    async def submit(self, frame: Frame) -> Outcome:
        """Preprocess and classify ``frame``; errors are returned, not raised."""
        return await self.enqueue(frame).future

    def enqueue(self, frame: Frame) -> Ticket:
        """Queue ``frame`` (call on the event loop); ``await ticket.future`` for the outcome."""
        ticket = Ticket(frame, asyncio.get_running_loop().create_future())
        self._queue.put(ticket)
        return ticket

    def replace(self, ticket: Ticket, frame: Frame) -> bool:
        """Swap a queued ticket's frame for ``frame`` if no worker has taken it yet.

        Returns:
            ``True`` when swapped: the ticket's outcome will be ``frame``'s.
        """
        with self._lock:
            if ticket.taken:
                return False
            ticket.frame = frame
            return True

    def close(self) -> None:
        """Stop the workers after the jobs already queued."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # leave the stop signal for after this batch
                    break
                batch.append(job)
            with self._lock:
                for ticket in batch:
                    ticket.taken = True
                frames = [ticket.frame for ticket in batch]
            outcomes = self._classify(frames)
            loop = batch[0].future.get_loop()
            loop.call_soon_threadsafe(_deliver, [ticket.future for ticket in batch], outcomes)

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


def _deliver(futures: list[asyncio.Future[Outcome]], outcomes: list[Outcome]) -> None:
    for future, outcome in zip(futures, outcomes, strict=True):
        if not future.done():  # the connection may have gone away meanwhile (cancelled)
            future.set_result(outcome)
