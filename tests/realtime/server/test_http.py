"""POST /predict and the other HTTP routes, over real sockets: every error code with its exact status."""

from __future__ import annotations

import base64
import gc
import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from PIL import Image

from realtime.server.batcher import Outcome
from realtime.server.predict import NumberPredictResponse, PredictResponse
from realtime.server.runtime import INLINE_MAX_POINTS, InlineBudget, Runtime, runs_inline
from shared.inference import Predictor
from shared.inks import Strokes, render_png
from shared.number import CharacterReading, NumberPrediction
from shared.preprocess import ImageFrame, StrokesFrame
from shared.schemas import Prediction
from shared.settings import Settings
from tests.servers import LiveServer, run_server

LINE = [[[140, 40], [140, 240]]]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, rows: int = 4) -> bytes:
    """A well-formed PNG declaring ``width`` x ``height`` (8-bit grey) whose data covers a few rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * ((width + 1) * rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.http_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def line_png() -> bytes:
    return render_png(LINE)


def assert_prediction(r: httpx.Response) -> dict[str, object]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1.0)
    assert body["confidence"] == max(body["probabilities"])
    assert len(body["top_k"]) == 3
    assert body["top_k"][0]["digit"] == body["digit"]
    assert body["latency_ms"] > 0
    return body


def test_json_strokes(client: httpx.Client) -> None:
    body = assert_prediction(client.post("/predict", json={"strokes": LINE, "width": 280, "height": 280}))
    assert body["digit"] == 1


def test_every_input_form_gives_the_same_answer(client: httpx.Client, line_png: bytes) -> None:
    b64 = base64.b64encode(line_png).decode()
    answers = [
        assert_prediction(
            client.post("/predict", json={"strokes": LINE, "width": 280, "height": 280, "stroke_width": 16})
        ),
        assert_prediction(client.post("/predict", json={"image": b64})),
        assert_prediction(client.post("/predict", json={"image": "data:image/png;base64," + b64})),
        assert_prediction(client.post("/predict", content=line_png, headers={"content-type": "image/png"})),
        assert_prediction(client.post("/predict", files={"file": ("digit.png", line_png, "image/png")})),
    ]
    assert len({a["digit"] for a in answers}) == 1


def test_blank_canvas_is_no_digit(client: httpx.Client) -> None:
    blank = io.BytesIO()
    Image.new("RGBA", (280, 280), (0, 0, 0, 0)).save(blank, "PNG")
    r = client.post("/predict", content=blank.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200
    assert r.json()["status"] == "no_digit" and r.json()["digit"] is None


def test_letter_is_not_a_digit_in_both_forms(
    client: httpx.Client, letter_h: Strokes, predictor: Predictor
) -> None:
    strokes = client.post("/predict", json={"strokes": letter_h, "width": 280, "height": 280})
    png = client.post("/predict", content=render_png(letter_h), headers={"content-type": "image/png"})
    for r in (strokes, png):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "not_a_digit"
        assert body["digit"] is None and body["confidence"] is None
        assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1.0)
        assert predictor.threshold <= body["not_a_digit_score"] <= 1
        assert len(body["top_k"]) == 3  # the closest digits, for clients that want them
    expected = predictor.predict([StrokesFrame(letter_h, 280, 280, 16)])[0]
    assert strokes.json()["not_a_digit_score"] == pytest.approx(expected.not_a_digit_score, abs=1e-12)


def test_answers_match_the_openapi_schema(client: httpx.Client, letter_h: Strokes) -> None:
    spec = client.get("/openapi.json").json()
    schema = {**spec["components"]["schemas"]["PredictResponse"], "components": spec["components"]}
    assert set(schema["properties"]["status"]["enum"]) == {"ok", "no_digit", "not_a_digit"}
    validator = jsonschema.Draft202012Validator(schema)
    statuses = set()
    for drawing in (LINE, letter_h, []):
        body = client.post("/predict", json={"strokes": drawing, "width": 280, "height": 280}).json()
        validator.validate(body)
        statuses.add(body["status"])
    assert statuses == {"ok", "not_a_digit", "no_digit"}


def truncated_png() -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((200, 200), 60).save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


CASES = [
    ("invalid_json", 400, {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("invalid_json", 400, {"content": b"[1,2]", "headers": {"content-type": "application/json"}}),
    ("invalid_json", 400, {"content": b"", "headers": {"content-type": "application/json"}}),
    ("missing_field", 422, {"json": {}}),
    ("missing_field", 422, {"json": {"strokes": LINE}}),
    ("invalid_field_type", 422, {"json": {"image": 5}}),
    ("invalid_field_type", 422, {"json": {"strokes": LINE, "width": "wide", "height": 280}}),
    ("invalid_field_type", 422, {"json": {"strokes": LINE, "width": -1, "height": 280}}),
    ("invalid_base64", 400, {"json": {"image": "not base64 at all!"}}),
    ("empty_image", 400, {"content": b"", "headers": {"content-type": "image/png"}}),
    ("empty_image", 400, {"json": {"image": ""}}),
    ("not_an_image", 415, {"content": b"hello world", "headers": {"content-type": "image/png"}}),
    ("not_an_image", 415, {"json": {"image": "data:text/plain;base64,aGVsbG8="}}),
    ("invalid_image", 422, {"content": png_header(0, 28), "headers": {"content-type": "image/png"}}),
    ("truncated_image", 422, {"content": truncated_png(), "headers": {"content-type": "image/png"}}),
    ("image_too_large", 413, {"content": png_header(12000, 12000), "headers": {"content-type": "image/png"}}),
    (
        "payload_too_large",
        413,
        {"content": b"\0" * (1024 * 1024 + 1), "headers": {"content-type": "image/png"}},
    ),
    ("invalid_strokes", 422, {"json": {"strokes": [[[1, 2, 3, 4]]], "width": 280, "height": 280}}),
    ("invalid_strokes", 422, {"json": {"strokes": [[["a", "b"]]], "width": 280, "height": 280}}),
    ("invalid_strokes", 422, {"json": {"strokes": [[[0, 0]]] * 65, "width": 280, "height": 280}}),
    ("unsupported_media_type", 415, {"content": b"x", "headers": {"content-type": "text/plain"}}),
    ("missing_field", 422, {"data": {"not": "a file"}, "files": {}}),
]


@pytest.mark.parametrize(
    ("code", "status", "kwargs"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_error_codes_and_statuses(
    client: httpx.Client, code: str, status: int, kwargs: dict[str, object]
) -> None:
    if kwargs.get("files") == {}:
        kwargs = {
            "content": b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
            "headers": {"content-type": "multipart/form-data; boundary=b"},
        }
    r = client.post("/predict", **kwargs)  # type: ignore[arg-type]
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert 0 < len(err["message"]) <= 300


def test_payload_too_large_without_content_length(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"\0" * 65536

    r = client.post("/predict", content=chunks(), headers={"content-type": "image/png"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_routes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    models = client.get("/model").json()
    assert set(models) == {"image", "strokes"}
    for form, planes in (("image", 1), ("strokes", 7)):
        info = models[form]
        assert info["input_shape"][1:] == [planes, 28, 28] and len(info["sha256"]) == 64
        assert info["output_shape"][1:] == [11] and 0 < info["not_a_digit_threshold"] <= 1
    assert client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    nf = client.get("/no/such/thing")
    assert nf.status_code == 404 and nf.json()["error"]["code"] == "not_found"
    na = client.get("/predict")
    assert na.status_code == 405 and na.json()["error"]["code"] == "method_not_allowed"


def test_bearer_token_required_when_configured(predictor: Predictor) -> None:
    settings = Settings(auth_token="s3cret")  # type: ignore[arg-type]
    with run_server(settings, predictor) as server, httpx.Client(base_url=server.http_url) as c:
        body = {"strokes": LINE, "width": 280, "height": 280}
        r = c.post("/predict", json=body)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = c.post("/predict", json=body, headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = c.post("/predict", json=body, headers={"authorization": "Bearer s3cret"})
        assert r.status_code == 200


def test_serve_refuses_a_taken_port_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    from realtime.tools.cli import main

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err
    assert "serving the page" not in err


def test_fast_path_and_route_answer_alike(client: httpx.Client, line_png: bytes) -> None:
    """A raw image body (answered by PredictFastPath) and the same image uploaded as multipart (the
    FastAPI route) give the same JSON, field for field, apart from the measured latency."""
    fast = assert_prediction(client.post("/predict", content=line_png, headers={"content-type": "image/png"}))
    routed = assert_prediction(client.post("/predict", files={"file": ("digit.png", line_png, "image/png")}))
    assert float(fast.pop("latency_ms")) > 0 and float(routed.pop("latency_ms")) > 0  # type: ignore[arg-type]
    assert fast == routed
    assert list(fast) == list(PredictResponse.model_fields)[:-1]  # same field order as the schema


def test_openapi_response_models_describe_the_core_reply_fields() -> None:
    """The pydantic models FastAPI documents ``POST /predict`` with name exactly the fields the core's
    one reply conversion (``reply_fields``) gives, plus the HTTP answer's ``top_k`` and ``latency_ms``."""
    http_only = {"top_k", "latency_ms"}
    digit = Prediction(status="ok", digit=1, probabilities=[0.1] * 10, confidence=0.1, not_a_digit_score=0.0)
    reading = CharacterReading(status="ok", digit=1, bbox=[0.0, 0.0, 1.0, 1.0])
    number = NumberPrediction(status="ok", number="1", digits=[reading])
    assert set(PredictResponse.model_fields) == set(digit.reply_fields()) | http_only
    assert set(NumberPredictResponse.model_fields) == set(number.reply_fields()) | http_only


@pytest.mark.parametrize("form", ["strokes", "image", "multipart"])
def test_cors_applies_to_every_predict_form(client: httpx.Client, line_png: bytes, form: str) -> None:
    table: dict[str, dict[str, Any]] = {
        "strokes": {"json": {"strokes": LINE, "width": 280, "height": 280}},
        "image": {"content": line_png, "headers": {"content-type": "image/png"}},
        "multipart": {"files": {"file": ("digit.png", line_png, "image/png")}},
    }
    kwargs = dict(table[form])
    local = "http://localhost:5173"
    headers = {**kwargs.pop("headers", {}), "origin": local}
    r = client.post("/predict", headers=headers, **kwargs)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == local
    assert "Origin" in r.headers["vary"]
    headers["origin"] = "https://evil.example"
    r = client.post("/predict", headers=headers, **kwargs)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_preflight_for_predict(client: httpx.Client) -> None:
    r = client.options(
        "/predict",
        headers={"origin": "http://localhost:5173", "access-control-request-method": "POST"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_errors_from_the_fast_path_keep_cors_headers(client: httpx.Client) -> None:
    r = client.post(
        "/predict",
        content=b"{not json",
        headers={"content-type": "application/json", "origin": "http://localhost:5173"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert r.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_runs_inline_only_for_small_strokes_frames() -> None:
    small = StrokesFrame([[[0, 0]] * 10, [[1, 1]] * 10], 280, 280)
    assert runs_inline(small)
    assert runs_inline(StrokesFrame([[[0, 0]] * INLINE_MAX_POINTS], 280, 280))
    assert not runs_inline(StrokesFrame([[[0, 0]] * (INLINE_MAX_POINTS + 1)], 280, 280))
    assert not runs_inline(StrokesFrame([[[0, 0]] * 300, [[0, 0]] * 300], 280, 280))
    assert not runs_inline(StrokesFrame([[]] * (INLINE_MAX_POINTS + 1), 280, 280))  # many empty strokes
    assert runs_inline(StrokesFrame([5, "x", None], 280, 280))  # malformed but tiny: the error is cheap
    assert not runs_inline(StrokesFrame("not a list", 280, 280))
    assert not runs_inline(ImageFrame(b"\x89PNG"))


def test_inline_budget_refills_at_its_share_and_caps_bursts() -> None:
    now = [0.0]
    budget = InlineBudget(share=0.5, burst=0.005, clock=lambda: now[0])
    assert budget.available()
    budget.spend(0.004)
    assert budget.available()  # 1 ms left
    budget.spend(0.003)
    assert not budget.available()  # 2 ms in debt: frames go to the workers
    now[0] += 0.003  # refills 1.5 ms: still in debt
    assert not budget.available()
    now[0] += 0.002  # another 1 ms: back above zero
    assert budget.available()
    now[0] += 60.0  # a long idle spell refills no more than the burst
    assert budget.available() and budget.tokens == pytest.approx(0.005)


@pytest.mark.asyncio
async def test_runtime_sends_frames_to_the_workers_when_the_inline_budget_is_spent(
    predictor: Predictor,
) -> None:
    runtime = Runtime(Settings(), predictor)
    now = [0.0]
    runtime.inline_budget = InlineBudget(share=0.5, burst=0.005, clock=lambda: now[0])
    queued: list[object] = []
    real_submit = runtime.batcher.submit

    async def submit(frame: StrokesFrame) -> Outcome:
        queued.append(frame)
        return await real_submit(frame)

    runtime.batcher.submit = submit
    small = StrokesFrame(LINE, 280, 280)
    try:
        assert (await runtime.infer(small)).digit == 1 and not queued  # inline
        runtime.inline_budget.spend(1.0)  # as if the loop had just run a second of inline work
        assert (await runtime.infer(small)).digit == 1 and queued == [small]  # to the workers
        big = StrokesFrame([[[140, 40 + i % 200] for i in range(INLINE_MAX_POINTS + 1)]], 280, 280)
        now[0] += 10.0  # budget refilled, but the frame is too big to run inline
        await runtime.infer(big)
        assert queued == [small, big]
    finally:
        runtime.close()


def test_repeated_headers_are_read_as_the_route_reads_them(predictor: Predictor, line_png: bytes) -> None:
    """The first of repeated Content-Type / Authorization headers counts on every path (Starlette's
    ``Headers.get``), so the fast path and the multipart route cannot disagree."""
    settings = Settings(auth_token="s3cret")  # type: ignore[arg-type]
    body = b'{"strokes": [[[140, 40], [140, 240]]], "width": 280, "height": 280}'
    with run_server(settings, predictor) as server, httpx.Client(base_url=server.http_url) as c:
        good_first = [("authorization", "Bearer s3cret"), ("authorization", "Bearer wrong")]
        bad_first = list(reversed(good_first))
        json_type = [("content-type", "application/json")]
        assert c.post("/predict", content=body, headers=json_type + good_first).status_code == 200
        assert c.post("/predict", content=body, headers=json_type + bad_first).status_code == 401
        files = {"file": ("digit.png", line_png, "image/png")}
        assert c.post("/predict", files=files, headers=good_first).status_code == 200
        assert c.post("/predict", files=files, headers=bad_first).status_code == 401
        auth = [("authorization", "Bearer s3cret")]
        first_json = [("content-type", "application/json"), ("content-type", "text/plain")]
        assert c.post("/predict", content=body, headers=auth + first_json).status_code == 200
        r = c.post("/predict", content=body, headers=auth + list(reversed(first_json)))
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"


def test_refused_cors_preflights_are_taxonomy_errors(client: httpx.Client) -> None:
    foreign = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    r = client.options("/predict", headers=foreign)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_origin"
    assert "access-control-allow-origin" not in r.headers
    bad_method = {"origin": "http://localhost:5173", "access-control-request-method": "DELETE"}
    r = client.options("/predict", headers=bad_method)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "GET", "PUT", "DELETE"])
def test_other_methods_on_predict_are_405(client: httpx.Client, method: str) -> None:
    r = client.request(method, "/predict")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    if method != "HEAD":
        assert r.json()["error"]["code"] == "method_not_allowed"


def test_a_bad_setting_is_one_clear_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from realtime.tools.cli import main

    monkeypatch.setenv("MNIST_LIVE_PORT", "abc")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mnist-live: invalid setting MNIST_LIVE_PORT:") and "Traceback" not in err


def test_start_up_objects_are_frozen_out_of_the_cyclic_collector(predictor: Predictor) -> None:
    """Once started, the server's long-lived objects are out of the collector's reach: a full collection
    over them paused every connection for about 135 ms (bench/README.md, WebSocket p99)."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with run_server(Settings(), predictor) as server:
        assert httpx.get(f"{server.http_url}/readyz").status_code == 200
        assert gc.get_freeze_count() > 10_000
