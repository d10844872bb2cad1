"""The batching inference workers: order, errors, blanks and model failures, batched or not."""

from __future__ import annotations

import asyncio
import threading

import pytest

from realtime.server.batcher import InferenceBatcher
from shared import errors
from shared.inference import Predictor
from shared.limits import DEFAULT_LIMITS
from shared.preprocess import ImageFrame, StrokesFrame
from shared.schemas import Prediction

ONE = StrokesFrame([[[140, 40], [140, 240]]], 280, 280, 16)
SEVEN = StrokesFrame([[[70, 50], [210, 50], [120, 240]]], 280, 280, 16)
BLANK = StrokesFrame([], 280, 280, 16)
BAD = ImageFrame("@@not base64@@")


@pytest.mark.asyncio
async def test_concurrent_frames_get_their_own_answers(predictor: Predictor) -> None:
    batcher = InferenceBatcher(lambda: predictor, DEFAULT_LIMITS, workers=2, max_batch=8)
    try:
        frames = [ONE, SEVEN, BLANK, BAD] * 10
        outcomes = await asyncio.gather(*(batcher.submit(f) for f in frames))
    finally:
        batcher.close()
    expected = [predictor.predict([f])[0] for f in (ONE, SEVEN, BLANK)]
    for i, outcome in enumerate(outcomes):
        if frames[i] is BAD:
            assert isinstance(outcome, errors.InvalidBase64)
        else:
            assert isinstance(outcome, Prediction)
            assert outcome.status == expected[i % 4].status
            assert outcome.digit == expected[i % 4].digit


@pytest.mark.asyncio
async def test_a_waiting_source_is_asked_for_its_frame_only_when_a_worker_is_free(
    predictor: Predictor,
) -> None:
    """Latest-wins needs no swapping: a source gives its newest frame at the moment a worker takes it."""
    gate = threading.Event()

    class Gated:
        def classify(self, tensors: list[object]) -> list[Prediction]:
            gate.wait(5)
            return predictor.classify(tensors)  # type: ignore[arg-type]

    class Latest:
        def __init__(self, frame: StrokesFrame) -> None:
            self.frame = frame
            self.taken: list[StrokesFrame] = []
            self.outcomes: list[object] = []

        def take(self) -> StrokesFrame:
            self.taken.append(self.frame)
            return self.frame

        def deliver(self, outcome: object) -> None:
            self.outcomes.append(outcome)

    batcher = InferenceBatcher(Gated, DEFAULT_LIMITS, workers=1, max_batch=1)  # type: ignore[arg-type,return-value]
    busy, waiting = Latest(ONE), Latest(ONE)
    try:
        batcher.request(busy)  # taken at once, then held at the gate
        batcher.request(waiting)  # the only worker is busy: not asked yet
        assert busy.taken == [ONE] and waiting.taken == []
        waiting.frame = SEVEN  # a newer snapshot arrives while it waits
        gate.set()
        for _ in range(500):
            if waiting.outcomes:
                break
            await asyncio.sleep(0.01)
    finally:
        gate.set()
        batcher.close()
    assert waiting.taken == [SEVEN]
    assert [o.digit for o in busy.outcomes + waiting.outcomes if isinstance(o, Prediction)] == [1, 7]


@pytest.mark.asyncio
async def test_no_model_answers_model_unavailable() -> None:
    batcher = InferenceBatcher(lambda: None, DEFAULT_LIMITS, workers=1)
    try:
        outcome = await batcher.submit(ONE)
    finally:
        batcher.close()
    assert isinstance(outcome, errors.ModelError) and outcome.http_status == 503


@pytest.mark.asyncio
async def test_a_failing_model_fails_only_its_batch(predictor: Predictor) -> None:
    class Broken:
        def classify(self, tensors: object) -> list[Prediction]:
            raise errors.ModelError("Inference failed.")

    state: dict[str, object] = {"p": Broken()}
    batcher = InferenceBatcher(lambda: state["p"], DEFAULT_LIMITS, workers=1)  # type: ignore[arg-type,return-value]
    try:
        broken = await asyncio.gather(batcher.submit(ONE), batcher.submit(BAD))
        state["p"] = predictor
        healthy = await batcher.submit(ONE)
    finally:
        batcher.close()
    assert isinstance(broken[0], errors.ModelError)
    assert isinstance(broken[1], errors.InvalidBase64)  # its own error, not the model's
    assert isinstance(healthy, Prediction) and healthy.digit == 1


@pytest.mark.asyncio
async def test_cancelled_waiters_do_not_break_the_workers(predictor: Predictor) -> None:
    batcher = InferenceBatcher(lambda: predictor, DEFAULT_LIMITS, workers=1)
    try:
        task = asyncio.create_task(batcher.submit(ONE))
        await asyncio.sleep(0)
        task.cancel()
        outcome = await batcher.submit(SEVEN)
    finally:
        batcher.close()
    assert isinstance(outcome, Prediction) and outcome.digit == 7


@pytest.mark.asyncio
async def test_no_model_still_reports_the_clients_own_mistake_first() -> None:
    """Without a model a malformed frame is still a 4xx (the client's fix), a valid one a 503."""
    batcher = InferenceBatcher(lambda: None, DEFAULT_LIMITS, workers=1)
    try:
        bad = await batcher.submit(StrokesFrame([[["a", "b"]]], 280, 280))
        good = await batcher.submit(ONE)
    finally:
        batcher.close()
    assert isinstance(bad, errors.InvalidStrokes) and bad.http_status == 422
    assert isinstance(good, errors.ModelError) and good.http_status == 503


@pytest.mark.asyncio
async def test_a_stream_of_fixed_frames_cannot_starve_a_waiting_session(predictor: Predictor) -> None:
    """Requests arriving after a session started waiting are served after it (first come, first served)."""
    gate = threading.Event()
    order: list[str] = []

    class Gated:
        def classify(self, tensors: list[object]) -> list[Prediction]:
            gate.wait(5)
            return predictor.classify(tensors)  # type: ignore[arg-type]

    class Session:
        def take(self) -> StrokesFrame:
            return SEVEN

        def deliver(self, outcome: object) -> None:
            order.append("session")

    batcher = InferenceBatcher(Gated, DEFAULT_LIMITS, workers=1, max_batch=1)  # type: ignore[arg-type,return-value]
    try:
        first = asyncio.ensure_future(batcher.submit(ONE))  # the only worker takes it, then waits
        await asyncio.sleep(0.05)
        batcher.request(Session())  # no worker free: the session waits
        later = [asyncio.ensure_future(batcher.submit(ONE)) for _ in range(5)]
        for task in later:
            task.add_done_callback(lambda _: order.append("request"))
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 10)
    finally:
        gate.set()
        batcher.close()
    assert order == ["session"] + ["request"] * 5
