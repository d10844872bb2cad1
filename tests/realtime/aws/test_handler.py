"""The Lambda WebSocket handler on recorded API Gateway events: each MESSAGE's reply is its route response."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from realtime.aws.lambda_types import MAX_FRAME_BYTES, ROUTES, WebSocketEvent
from realtime.aws.websocket_handler import WebSocketHandler, encode
from realtime.messages import PongMessage, PredictionMessage
from shared.inference import Predictor
from shared.inks import Strokes
from shared.preprocess import StrokesFrame
from shared.schemas import Prediction
from shared.settings import Settings
from tests.logs import Records
from tests.realtime.aws.conftest import load_event, message_event, reply

MakeHandler = Callable[..., WebSocketHandler]
SITE = "https://d111111abcdef8.cloudfront.net"
LINE = [[[140, 40], [140, 240]]]


def predict(seq: int | None = 1, strokes: Any = LINE) -> str:
    body: dict[str, Any] = {"action": "predict", "strokes": strokes, "width": 280, "height": 280}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body)


@pytest.mark.parametrize("name", ["ws_connect", "ws_connect_no_query", "ws_message_predict", "ws_disconnect"])
def test_recorded_events_parse(name: str) -> None:
    event = WebSocketEvent.parse(load_event(name))
    ctx = event.request_context
    assert ctx.route_key in ROUTES
    assert ctx.connection_id and ctx.request_id and ctx.domain_name and ctx.stage == "prod"
    assert (event.body is not None) == (ctx.event_type == "MESSAGE")
    assert (event.query_string_parameters is not None) == (name == "ws_connect")


def test_connect_without_query_string_is_accepted(make_handler: MakeHandler) -> None:
    handler = make_handler()
    assert "queryStringParameters" not in load_event("ws_connect_no_query")
    assert handler(load_event("ws_connect_no_query")) == {"statusCode": 200}, "no body: $connect is one-way"


def test_connect_checks_the_token(make_handler: MakeHandler) -> None:
    handler = make_handler(auth_token="s3cret-token", allowed_origins=[SITE])
    assert handler(load_event("ws_connect")) == {"statusCode": 200}
    assert handler(load_event("ws_connect_no_query")) == {"statusCode": 401}
    wrong = load_event("ws_connect")
    wrong["queryStringParameters"] = {"token": "s3cret-tokem"}
    assert handler(wrong) == {"statusCode": 401}
    wrong["queryStringParameters"] = {"token": "\ud800"}  # a lone surrogate cannot be UTF-8 encoded
    assert handler(wrong) == {"statusCode": 401}


def test_connect_checks_the_origin(make_handler: MakeHandler, records: Records) -> None:
    handler = make_handler()
    assert handler(load_event("ws_connect")) == {"statusCode": 403}, "the CloudFront origin is not allowed"
    assert records.events("ws_refused")[-1].code == "forbidden_origin"  # type: ignore[attr-defined]
    allowed = make_handler(allowed_origins=[SITE])
    assert allowed(load_event("ws_connect")) == {"statusCode": 200}
    lowercase = load_event("ws_connect")
    lowercase["headers"] = {k.lower(): v for k, v in lowercase["headers"].items()}
    assert handler(lowercase) == {"statusCode": 403}, "header names are matched case-insensitively"


def test_disconnect_returns_200_without_a_body(make_handler: MakeHandler) -> None:
    handler = make_handler()
    assert handler(load_event("ws_disconnect")) == {"statusCode": 200}


def test_predict_reply_is_the_route_response(make_handler: MakeHandler, predictor: Predictor) -> None:
    handler = make_handler()
    event = load_event("ws_message_predict")
    response = handler(event)
    assert set(response) == {"statusCode", "body"} and isinstance(response["body"], str)
    frame = reply(response)
    body = json.loads(event["body"])
    expected = predictor.predict([StrokesFrame(body["strokes"], 280, 280, 16)])[0]
    assert frame["type"] == "prediction" and frame["seq"] == 7 and frame["status"] == "ok"
    assert frame["digit"] == expected.digit
    assert len(frame["probabilities"]) == 10
    assert sum(frame["probabilities"]) == pytest.approx(1.0, abs=1e-9)
    assert frame["latency_ms"] >= 0


def test_every_message_is_answered_even_out_of_order(make_handler: MakeHandler) -> None:
    handler = make_handler()
    seqs = [reply(handler(message_event(predict(seq), "predict")))["seq"] for seq in (5, 3, 3, 9)]
    assert seqs == [5, 3, 3, 9], "stateless: no stale dropping across invocations"


@pytest.mark.parametrize(
    ("body", "route", "expected"),
    [
        (json.dumps({"action": "ping"}), "ping", {"type": "pong"}),
        (json.dumps({"action": "dance", "seq": 1}), "$default", "unknown_action"),
        (json.dumps({"seq": 1}), "$default", "unknown_action"),
        ("not json", "$default", "invalid_json"),
        ("[1, 2]", "$default", "invalid_json"),
        (None, "$default", "invalid_json"),
        (json.dumps({"action": "predict", "seq": 2}), "predict", "missing_field"),
        (json.dumps({"action": "predict", "seq": -1, "image": "x"}), "predict", "invalid_field_type"),
        (json.dumps({"action": "predict", "seq": 3, "image": "@@@"}), "predict", "invalid_base64"),
        (predict(4, [[[1, "x"]]]), "predict", "invalid_strokes"),
    ],
)
def test_routes_and_client_errors(
    make_handler: MakeHandler, body: str | None, route: str, expected: Any
) -> None:
    handler = make_handler()
    frame = reply(handler(message_event(body, route)))
    if isinstance(expected, dict):
        assert frame == expected
    else:
        assert frame["type"] == "error" and frame["error"]["code"] == expected


def test_message_over_128_kib_is_payload_too_large(make_handler: MakeHandler) -> None:
    handler = make_handler()
    body = json.dumps({"action": "predict", "seq": 1, "image": "A" * (128 * 1024)})
    frame = reply(handler(message_event(body, "predict")))
    assert frame["error"]["code"] == "payload_too_large" and frame["seq"] is None


def test_base64_bodies_are_decoded(make_handler: MakeHandler) -> None:
    handler = make_handler()
    event = message_event(base64.b64encode(predict(11).encode()).decode(), "predict")
    event["isBase64Encoded"] = True
    bad = message_event("%%%", "predict")
    bad["isBase64Encoded"] = True
    ok, broken = reply(handler(event)), reply(handler(bad))
    assert ok["seq"] == 11 and ok["type"] == "prediction"
    assert broken["error"]["code"] == "invalid_json"


def test_blank_frame_is_no_digit(make_handler: MakeHandler) -> None:
    handler = make_handler()
    frame = reply(handler(message_event(predict(1, []), "predict")))
    assert frame["status"] == "no_digit" and frame["digit"] is None


def test_letter_frame_is_not_a_digit(
    make_handler: MakeHandler, letter_h: Strokes, predictor: Predictor
) -> None:
    handler = make_handler()
    frame = reply(handler(message_event(predict(4, letter_h), "predict")))
    expected = predictor.predict([StrokesFrame(letter_h, 280, 280, 16)])[0]
    assert frame["seq"] == 4 and frame["status"] == "not_a_digit"
    assert frame["digit"] is None and frame["confidence"] is None
    assert frame["probabilities"] == pytest.approx(expected.probabilities, abs=1e-12)
    assert frame["not_a_digit_score"] == pytest.approx(expected.not_a_digit_score, abs=1e-12)


def test_missing_model_gives_model_unavailable(tmp_path: Any, records: Records) -> None:
    handler = WebSocketHandler(Settings(model_path=tmp_path / "missing.onnx"), None)
    assert handler.predictor is None and records.events("model_load_failed")
    frame = reply(handler(message_event(predict(1), "predict")))
    assert frame["error"]["code"] == "model_unavailable" and frame["seq"] == 1


def test_the_handler_never_raises(make_handler: MakeHandler, records: Records) -> None:
    handler = make_handler()
    assert handler({"hello": "world"}) == {"statusCode": 400}
    assert handler({"requestContext": {"eventType": "BOGUS"}}) == {"statusCode": 400}
    assert handler([1, 2]) == {"statusCode": 400}  # type: ignore[arg-type]
    good = load_event("ws_message_predict")
    for path, value in [
        (("requestContext", "connectionId"), 7),
        (("requestContext", "routeKey"), None),
        (("requestContext", "eventType"), True),
        (("requestContext", "connectedAt"), "yesterday"),
        (("requestContext", "connectedAt"), True),
        (("body",), {"action": "ping"}),
        (("isBase64Encoded",), "no"),
        (("headers",), {"Origin": 3}),
    ]:
        bad = json.loads(json.dumps(good))
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        assert handler(bad) == {"statusCode": 400}, path
    assert records.events("ws_bad_event")

    class Exploding:
        def predict(self, *args: Any) -> Any:
            raise RuntimeError("boom")

    handler.predictor = Exploding()  # type: ignore[assignment]
    frame = reply(handler(message_event(predict(3), "predict")))
    assert frame["error"]["code"] == "internal_error" and frame["seq"] == 3
    assert records.events("inference_failed")


def test_a_failure_while_answering_is_an_internal_error_frame(
    make_handler: MakeHandler, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = make_handler()

    def broken(event: WebSocketEvent) -> Any:
        raise ZeroDivisionError

    monkeypatch.setattr(handler, "_message", broken)
    frame = reply(handler(message_event(predict(1), "predict")))
    assert frame["type"] == "error" and frame["error"]["code"] == "internal_error" and frame["seq"] is None
    (failed,) = records.events("ws_handler_failed")
    assert failed.connection_id == "XaVSDeXSDoECF1g=" and failed.request_id == "XaVUGGEnDoEFeJw="  # type: ignore[attr-defined]
    assert handler(load_event("ws_connect_no_query"))["statusCode"] == 200, "other events are unaffected"


def test_more_than_one_reply_per_message_is_refused(
    make_handler: MakeHandler, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A route response carries one frame: a protocol change giving two would lose one, so it fails loudly."""
    import realtime.aws.websocket_handler as lam

    class Chatty(lam.Session):
        def receive(self, *args: Any, **kwargs: Any) -> Any:
            return [PongMessage(), PongMessage()]

    monkeypatch.setattr(lam, "Session", Chatty)
    frame = reply(make_handler()(message_event(json.dumps({"action": "ping"}), "ping")))
    assert frame["error"]["code"] == "internal_error"
    assert records.events("ws_handler_failed")


def test_outgoing_frames_stay_under_32_kb() -> None:
    oversized = Prediction(status="ok", digit=1, probabilities=[0.1] * 10_000, confidence=0.1)
    huge = PredictionMessage.of(1, oversized, 1.0)
    data = encode(huge)
    assert len(data) < MAX_FRAME_BYTES
    assert json.loads(data)["error"]["code"] == "internal_error"


def test_invalid_settings_answer_500_and_are_retried(
    monkeypatch: pytest.MonkeyPatch, records: Records
) -> None:
    import realtime.aws.websocket_handler as lam

    lam.get_handler.cache_clear()
    monkeypatch.setenv("MNIST_LIVE_MAX_STROKES", "0")  # fails Settings validation
    try:
        assert lam.handler(load_event("ws_connect_no_query")) == {"statusCode": 500}
        assert lam.handler(load_event("ws_connect_no_query")) == {"statusCode": 500}
        assert len(records.events("ws_init_failed")) == 2, "not cached: the next event tries again"
    finally:
        lam.get_handler.cache_clear()
