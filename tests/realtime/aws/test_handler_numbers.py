"""Number mode through the Lambda WebSocket handler, on recorded API Gateway events (the HTTP handler:
``tests/realtime/aws/test_packaging.py``, which must import it first, in a worker thread)."""

from __future__ import annotations

import json
from typing import Any

from realtime.aws.lambda_types import MAX_FRAME_BYTES
from shared.inference import Predictor
from shared.number import read_number
from shared.preprocess import StrokesFrame
from tests.realtime.aws.conftest import message_event, reply
from tests.realtime.aws.test_handler import MakeHandler

FOUR_ONE = [[[40, 60], [40, 150], [120, 150]], [[100, 60], [100, 220]], [[240, 60], [240, 220]]]
"""A two-stroke 4 (its open top, then its stem) and a 1."""


def number_body(seq: int, strokes: Any = FOUR_ONE, **extra: Any) -> str:
    body = {
        "action": "predict",
        "seq": seq,
        "mode": "number",
        "strokes": strokes,
        "width": 320,
        "height": 280,
    }
    return json.dumps({**body, **extra})


def test_a_number_frame_is_answered_with_its_reading(make_handler: MakeHandler, predictor: Predictor) -> None:
    handler = make_handler()
    frame = reply(handler(message_event(number_body(4), "predict")))
    want = read_number(predictor, StrokesFrame(FOUR_ONE, 320, 280))
    assert frame["type"] == "prediction" and frame["seq"] == 4 and frame["mode"] == "number"
    assert frame["number"] == want.number and want.number is not None and len(want.number) == 2
    assert [d["strokes"] for d in frame["digits"]] == [[0, 1], [2]]
    assert frame["digit"] is None and frame["probabilities"] is None


def test_bad_number_frames_get_the_digit_frames_errors(make_handler: MakeHandler) -> None:
    handler = make_handler()
    replies = []
    for body in (
        number_body(1, [[[1, "x"]]]),
        number_body(2, [[[0, 0], [5, 5]]] * 65),
        number_body(3, width=-1),
        number_body(4, mode="numeral"),
        json.dumps({"action": "predict", "seq": 5, "mode": "number"}),
    ):
        replies.append(reply(handler(message_event(body, "predict"))))
    codes = [(f["seq"], f["error"]["code"]) for f in replies]
    assert codes == [
        (1, "invalid_strokes"),
        (2, "invalid_strokes"),
        (3, "invalid_field_type"),
        (None, "invalid_field_type"),
        (None, "missing_field"),
    ]


def test_an_oversized_number_frame_is_payload_too_large(make_handler: MakeHandler) -> None:
    handler = make_handler()
    stroke = [[float(x), 100.0] for x in range(4000)]
    body = number_body(1, [stroke])
    assert len(body) > 32 * 1024
    frame = reply(handler(message_event(body + " " * (128 * 1024), "predict")))
    assert frame["error"]["code"] == "payload_too_large"


def test_the_most_characters_a_frame_can_hold_fit_one_api_gateway_frame(make_handler: MakeHandler) -> None:
    """64 strokes (the limit), each its own character: the reply still fits API Gateway's 32 KB."""
    handler = make_handler()
    ones = [[[20.0 + 40 * k, 40.0], [20.0 + 40 * k, 240.0]] for k in range(64)]
    response = handler(message_event(number_body(1, ones, width=2600, stroke_width=8), "predict"))
    frame = reply(response)
    assert frame["type"] == "prediction" and len(frame["digits"]) == 64
    assert len(response["body"].encode()) < MAX_FRAME_BYTES
