"""The sans-I/O session: explicit times, no sockets, no sleeps."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from realtime.messages import ErrorMessage, PongMessage, PredictionMessage, encode
from realtime.protocol import Session, SessionConfig
from shared import errors
from shared.inference import Predictor
from shared.inks import Strokes
from shared.preprocess import StrokesFrame
from shared.schemas import Prediction
from shared.settings import REPO_ROOT

STROKES = {"strokes": [[[10, 10], [10, 200]]], "width": 280, "height": 280}
OK = Prediction(status="ok", digit=1, probabilities=[0.0, 1.0] + [0.0] * 8, confidence=1.0)


def frame(seq: int | None, **extra: object) -> str:
    body: dict[str, object] = {"action": "predict", **STROKES, **extra}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body)


def test_frame_becomes_pending_then_in_flight_then_answered() -> None:
    s = Session(0.0)
    assert s.receive(frame(1), 0.0) == []
    job = s.next_job()
    assert job is not None and job.seq == 1
    assert s.next_job() is None  # one in flight at a time
    (reply,) = s.complete(job, OK, 0.005)
    assert isinstance(reply, PredictionMessage)
    assert reply.seq == 1 and reply.prediction.digit == 1 and reply.latency_ms == pytest.approx(5.0)


def test_latest_wins_while_in_flight() -> None:
    s = Session(0.0)
    s.receive(frame(1), 0.0)
    job = s.next_job()
    assert job is not None
    for seq in (2, 3, 4):
        assert s.receive(frame(seq), 0.001) == []
    assert s.stats.coalesced == 2
    assert s.pending is not None and s.pending.seq == 4
    s.complete(job, OK, 0.002)
    nxt = s.next_job()
    assert nxt is not None and nxt.seq == 4
    (reply,) = s.complete(nxt, OK, 0.003)
    assert isinstance(reply, PredictionMessage) and reply.seq == 4


def test_stale_and_duplicate_seq_dropped() -> None:
    s = Session(0.0)
    s.receive(frame(5), 0.0)
    job = s.next_job()
    assert job is not None
    s.complete(job, OK, 0.001)
    assert s.receive(frame(5), 0.002) == []
    assert s.receive(frame(3), 0.002) == []
    assert s.pending is None and s.stats.stale == 2
    s.receive(frame(6), 0.003)
    assert s.pending is not None and s.pending.seq == 6


def test_lower_seq_than_pending_is_dropped() -> None:
    s = Session(0.0)
    s.receive(frame(1), 0.0)
    s.next_job()
    s.receive(frame(9), 0.0)
    s.receive(frame(7), 0.0)
    assert s.pending is not None and s.pending.seq == 9


def test_missing_seq_is_assigned_after_the_last_received() -> None:
    s = Session(0.0)
    s.receive(frame(None), 0.0)
    assert s.pending is not None and s.pending.seq == 0
    s.receive(frame(10), 0.0)
    s.receive(frame(None), 0.0)
    assert s.pending is not None and s.pending.seq == 11


def test_ping_answered_at_once_even_with_work_pending() -> None:
    s = Session(0.0)
    s.receive(frame(1), 0.0)
    s.next_job()
    s.receive(frame(2), 0.0)
    assert s.receive('{"action": "ping"}', 0.0) == [PongMessage()]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"predict"', "invalid_json"),
        ("{}", "unknown_action"),
        ('{"action": "draw"}', "unknown_action"),
        ('{"action": 7}', "unknown_action"),
        ('{"action": "predict", "seq": 1}', "missing_field"),
        ('{"action": "predict", "seq": 1, "strokes": []}', "missing_field"),
        ('{"action": "predict", "seq": "1", "image": "x"}', "invalid_field_type"),
        ('{"action": "predict", "seq": -1, "image": "x"}', "invalid_field_type"),
        ('{"action": "predict", "seq": 1, "image": 5}', "invalid_field_type"),
        ('{"action": "predict", "seq": 1, "strokes": {}, "width": 1, "height": 1}', "invalid_field_type"),
        ('{"action": "predict", "seq": 1, "strokes": [], "width": "9", "height": 1}', "invalid_field_type"),
    ],
)
def test_malformed_messages_get_their_error_code(raw: str, code: str) -> None:
    s = Session(0.0)
    (reply,) = s.receive(raw, 0.0)
    assert isinstance(reply, ErrorMessage)
    assert reply.error.code == code and reply.seq is None
    assert len(reply.error.message) <= 300
    assert s.pending is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff", "The message is not valid JSON."),
        ("[" * 100_000, "The message is not valid JSON."),
        ("3", "The message must be a JSON object."),
        ('{"action": ["predict"]}', "'action' must be one of: predict, ping."),
        ('{"action": "predict", "image": "x", "seq": true}', "The field 'seq' has the wrong type or value."),
        ('{"action": "predict", "image": "x", "seq": 1.0}', "The field 'seq' has the wrong type or value."),
        (
            '{"action": "predict", "image": "x", "seq": 9007199254740992}',
            "The field 'seq' has the wrong type or value.",
        ),
        (
            '{"action": "predict", "image": "x", "mode": null}',
            "The field 'mode' has the wrong type or value.",
        ),
        (
            '{"action": "predict", "image": "x", "width": false}',
            "The field 'width' has the wrong type or value.",
        ),
        (
            '{"action": "predict", "strokes": 1, "width": "a"}',
            "The field 'strokes' has the wrong type or value.",
        ),
        (
            '{"action": "predict", "strokes": [], "width": 1}',
            "'strokes' needs 'width' and 'height' (canvas px).",
        ),
        (
            '{"action": "predict", "strokes": [], "image": "x", "width": 1, "height": 1}',
            "Send exactly one of 'strokes' (with 'width' and 'height') or 'image'.",
        ),
    ],
)
def test_malformed_messages_get_their_exact_sentence(raw: str | bytes, message: str) -> None:
    """The first wrong field, in the protocol's field order, is the one named; the sentence is fixed."""
    (reply,) = Session(0.0).receive(raw, 0.0)
    assert isinstance(reply, ErrorMessage) and reply.error.message == message


@pytest.mark.parametrize(
    ("raw", "seq"),
    [
        ('{"action": "predict", "seq": 9007199254740991, "image": "x"}', 2**53 - 1),
        ('{"action": "predict", "image": "x", "width": NaN, "mode": "number", "extra": [1]}', 0),
        (
            '{"action": "predict", "seq": 3, "strokes": [], "width": 1e400, "height": 2, "mode": "digit"}',
            3,
        ),
    ],
)
def test_lenient_json_is_accepted_as_a_frame(raw: str, seq: int) -> None:
    """JSON's NaN, out-of-range numbers and unknown fields are read, not refused: the core judges them."""
    s = Session(0.0)
    assert s.receive(raw, 0.0) == []
    assert s.pending is not None and s.pending.seq == seq


def test_error_messages_do_not_echo_client_data() -> None:
    s = Session(0.0)
    (reply,) = s.receive('{"action": "SECRET-ACTION-VALUE"}', 0.0)
    assert isinstance(reply, ErrorMessage)
    assert "SECRET" not in reply.error.message


def test_oversized_message_is_refused_and_session_continues() -> None:
    s = Session(0.0, SessionConfig(max_message_bytes=1024))
    (reply,) = s.receive(frame(1, pad="x" * 2000), 0.0)
    assert isinstance(reply, ErrorMessage) and reply.error.code == "payload_too_large"
    assert s.receive(frame(2), 0.0) == []
    assert s.pending is not None


def test_rate_limit_token_bucket() -> None:
    s = Session(0.0, SessionConfig(rate_limit_fps=10))
    replies = [s.receive(frame(i), 0.0) for i in range(1, 12)]
    assert all(r == [] for r in replies[:10])
    (limited,) = replies[10]
    assert isinstance(limited, ErrorMessage) and limited.error.code == "rate_limited"
    assert limited.seq is None  # a message-level error never overtakes the reply to an earlier frame
    assert s.receive(frame(12), 0.1) == []  # one token refilled after 0.1 s at 10/s


def test_job_error_becomes_error_frame_with_seq() -> None:
    s = Session(0.0)
    s.receive(frame(3), 0.0)
    job = s.next_job()
    assert job is not None
    (reply,) = s.complete(job, errors.InvalidStrokes("bad"), 0.001)
    assert isinstance(reply, ErrorMessage) and reply.seq == 3 and reply.error.code == "invalid_strokes"
    assert s.last_answered == 3


def test_idle_deadline_moves_with_activity() -> None:
    s = Session(0.0, SessionConfig(idle_timeout_s=600))
    assert s.idle_deadline() == 600
    s.receive('{"action": "ping"}', 42.0)
    assert s.idle_deadline() == 642.0


def test_message_level_errors_never_break_reply_order() -> None:
    """A rate-limited or unparsable frame while seq 1 is in flight must not answer with a higher seq."""
    s = Session(0.0, SessionConfig(rate_limit_fps=2))
    s.receive(frame(1), 0.0)
    job = s.next_job()
    assert job is not None
    s.receive(frame(2), 0.0)
    (limited,) = s.receive(frame(3), 0.0)
    (bad,) = s.receive('{"action": "predict", "seq": 4, "strokes": "x", "width": 1, "height": 1}', 0.0)
    replies = [limited, bad, *s.complete(job, OK, 0.01)]
    nxt = s.next_job()
    assert nxt is not None
    replies += s.complete(nxt, OK, 0.02)
    seqs = [r.seq for r in replies if getattr(r, "seq", None) is not None]
    assert seqs == [1, 2]


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    s = Session(0.0, SessionConfig(max_message_bytes=1024))
    euro = frame(1).replace("}", ', "pad": "' + "\u20ac" * 400 + '"}')  # 400 characters, 1,200 bytes
    assert len(euro) < 1024 < len(euro.encode())
    (reply,) = s.receive(euro, 0.0)
    assert isinstance(reply, ErrorMessage) and reply.error.code == "payload_too_large"
    assert s.receive(frame(2, pad="e" * 400), 0.0) == []


def test_assigned_seq_never_passes_2_to_the_53() -> None:
    s = Session(0.0)
    s.receive(frame(2**53 - 1), 0.0)
    (reply,) = s.receive(frame(None), 0.0)
    assert isinstance(reply, ErrorMessage) and reply.error.code == "invalid_field_type"
    assert s.pending is not None and s.pending.seq == 2**53 - 1


def test_refused_frames_are_counted_and_answered() -> None:
    s = Session(0.0)
    (reply,) = s.refuse(errors.InvalidJSON("Send JSON as a text frame."), 5.0)
    assert isinstance(reply, ErrorMessage) and reply.seq is None
    assert s.stats.received == 1 and s.idle_deadline() == 605.0


@pytest.mark.parametrize(
    "origin",
    [
        "evil://localhost",
        "chrome-extension://localhost",
        "http://evil.com@localhost",
        "http://localhost.evil.com",
        "http://127.0.0.1.evil.com",
        "null",
        "https://evil.example",
        "http://localhost/evil",
        "http://[::1",  # not a URL at all
        "http://localhost:-1",  # local, but no port a browser sends
        "http://127.0.0.1:65536",
        "http://localhost:port",
    ],
)
def test_origin_check_refuses_lookalikes(origin: str) -> None:
    from realtime.access import check_origin

    with pytest.raises(errors.ForbiddenOrigin):
        check_origin(origin, "draw.example.com", [])


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (None, "x"),
        ("http://localhost:3000", "x"),
        ("https://127.0.0.1", "x"),
        ("https://draw.example.com", "draw.example.com"),
    ],
)
def test_origin_check_allows_local_same_and_absent(origin: str | None, host: str) -> None:
    from realtime.access import check_origin

    check_origin(origin, host, [])


def test_prediction_frames_match_the_asyncapi_schema(letter_h: Strokes, predictor: Predictor) -> None:
    spec = yaml.safe_load((REPO_ROOT / "docs" / "asyncapi.yaml").read_text())
    validator = jsonschema.Draft202012Validator(spec["components"]["messages"]["prediction"]["payload"])
    frames = [StrokesFrame(s, 280, 280, 16) for s in ([[[140, 40], [140, 240]]], letter_h, [])]
    answers = predictor.predict(frames)
    assert [a.status for a in answers] == ["ok", "not_a_digit", "no_digit"]
    for seq, answer in enumerate(answers):
        validator.validate(json.loads(encode(PredictionMessage.of(seq, answer, 1.0))))
