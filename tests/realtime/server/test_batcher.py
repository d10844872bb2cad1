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
async def test_a_queued_frame_can_be_replaced_until_a_worker_takes_it(predictor: Predictor) -> None:
    gate = threading.Event()

    class Gated:
        def classify(self, tensors: list[object]) -> list[Prediction]:
            gate.wait(5)
            return predictor.classify(tensors)  # type: ignore[arg-type]

    gated = Gated()
    batcher = InferenceBatcher(lambda: gated, DEFAULT_LIMITS, workers=1, max_batch=1)  # type: ignore[arg-type,return-value]
    try:
        first = batcher.enqueue(ONE)  # taken at once, then held at the gate
        for _ in range(100):
            if first.taken:
                break
            await asyncio.sleep(0.01)
        queued = batcher.enqueue(ONE)
        assert not batcher.replace(first, SEVEN), "a frame a worker took cannot change"
        assert batcher.replace(queued, SEVEN)
        gate.set()
        outcomes = [await first.future, await queued.future]
    finally:
        gate.set()
        batcher.close()
    assert [o.digit for o in outcomes if isinstance(o, Prediction)] == [1, 7]


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
