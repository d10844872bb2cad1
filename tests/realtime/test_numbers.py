"""Number mode over HTTP and WebSocket (local server and the Lambda handler behind the emulated gateway).

Replies are checked against the in-process reading (:func:`shared.number.read_number`) of the same
frame and against the AsyncAPI and OpenAPI schemas in ``docs/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
import yaml
from websockets.asyncio.client import connect

from shared.compose import ComposedNumber, NumberComposer
from shared.inference import Predictor
from shared.inks import Ink, render_png
from shared.number import read_number
from shared.preprocess import ImageFrame, StrokesFrame
from shared.settings import REPO_ROOT
from tests.realtime.conftest import WsTarget
from tests.realtime.wsclient import recv, recv_until, send
from tests.servers import LiveServer

ASYNCAPI = yaml.safe_load((REPO_ROOT / "docs" / "asyncapi.yaml").read_text())
MESSAGES = ASYNCAPI["components"]["messages"]
TWO_ONES = [[[40, 60], [40, 200]], [[200, 60], [200, 200]]]


def check(kind: str, message: dict[str, Any]) -> None:
    """Validate ``message`` against the AsyncAPI payload schema of ``kind``."""
    jsonschema.validate(message, MESSAGES[kind]["payload"])


def number_message(number: ComposedNumber, seq: int, strokes: Any = None) -> dict[str, Any]:
    return {
        "action": "predict",
        "seq": seq,
        "mode": "number",
        "strokes": number.strokes if strokes is None else strokes,
        "width": number.width,
        "height": number.height,
        "stroke_width": number.pen,
    }


@pytest.fixture(scope="module")
def numbers(pen_inks_200: list[Ink]) -> list[ComposedNumber]:
    composer = NumberComposer(pen_inks_200, (12.0, 24.0))
    return [composer.compose(np.random.default_rng([11, i]), digits=3) for i in range(4)]


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.http_url, timeout=10) as c:
        yield c


def expected(predictor: Predictor, number: ComposedNumber) -> dict[str, Any]:
    frame = StrokesFrame(number.strokes, number.width, number.height, number.pen)
    reading = read_number(predictor, frame)
    fields = dataclasses.asdict(reading)
    return {k: fields[k] for k in ("status", "number", "digits")}


def assert_same_reading(reply: dict[str, Any], want: dict[str, Any]) -> None:
    assert reply["mode"] == "number" and reply["status"] == want["status"]
    assert reply["number"] == want["number"]
    assert [d["strokes"] for d in reply["digits"]] == [d["strokes"] for d in want["digits"]]
    for got, exp in zip(reply["digits"], want["digits"], strict=True):
        assert got["digit"] == exp["digit"] and got["status"] == exp["status"]
        assert got["probabilities"] == pytest.approx(exp["probabilities"], abs=1e-6)
        assert got["bbox"] == pytest.approx(exp["bbox"])


# --------------------------------------------------------------------------------------------- HTTP


@pytest.mark.data
def test_http_reads_a_number_as_the_core_does(
    client: httpx.Client, numbers: list[ComposedNumber], predictor: Predictor
) -> None:
    for number in numbers:
        body = number_message(number, 0)
        del body["action"], body["seq"]
        r = client.post("/predict", json=body)
        assert r.status_code == 200, r.text
        reply = r.json()
        assert reply["digit"] is None and reply["top_k"] == [] and reply["latency_ms"] > 0
        assert_same_reading(reply, expected(predictor, number))


def test_http_image_bodies_take_the_mode_from_the_query(client: httpx.Client) -> None:
    png = render_png(TWO_ONES, 300, 280)
    for r in (
        client.post("/predict?mode=number", content=png, headers={"content-type": "image/png"}),
        client.post("/predict?mode=number", files={"file": ("n.png", png, "image/png")}),
    ):
        assert r.status_code == 200, r.text
        reply = r.json()
        assert reply["number"] == "11" and [d["strokes"] for d in reply["digits"]] == [None, None]
    digit = client.post("/predict", content=png, headers={"content-type": "image/png"}).json()
    # read as one digit (two ones side by side are not one: ok or not_a_digit), with no number fields
    assert "mode" not in digit and "number" not in digit and digit["status"] in ("ok", "not_a_digit")


def test_http_digit_mode_replies_are_unchanged(client: httpx.Client) -> None:
    line = {"strokes": [[[140, 40], [140, 240]]], "width": 280, "height": 280}
    default = client.post("/predict", json=line).json()
    explicit = client.post("/predict", json={**line, "mode": "digit"}).json()
    keys = {"status", "digit", "probabilities", "confidence", "not_a_digit_score", "top_k", "latency_ms"}
    assert set(default) == set(explicit) == keys
    assert default["digit"] == explicit["digit"] == 1


def test_http_blank_number_is_no_digit(client: httpx.Client) -> None:
    r = client.post("/predict", json={"mode": "number", "strokes": [[[50, 50]]], "width": 560, "height": 280})
    assert r.status_code == 200
    assert r.json()["status"] == "no_digit" and r.json()["number"] is None and r.json()["digits"] == []


@pytest.mark.parametrize(
    ("body", "query", "status", "code"),
    [
        (
            {"mode": "number", "strokes": [[[1, "x"]]], "width": 280, "height": 280},
            "",
            422,
            "invalid_strokes",
        ),
        (
            {"mode": "number", "strokes": [[[0, 0], [9, 9]]] * 65, "width": 280, "height": 280},
            "",
            422,
            "invalid_strokes",
        ),
        (
            {"mode": "number", "strokes": [[[0, 0], [1, 1]] * 2049], "width": 280, "height": 280},
            "",
            422,
            "invalid_strokes",
        ),
        ({"mode": "number", "strokes": TWO_ONES, "width": 0, "height": 280}, "", 422, "invalid_field_type"),
        ({"mode": "number", "strokes": TWO_ONES}, "", 422, "missing_field"),
        (
            {"mode": "numbers", "strokes": TWO_ONES, "width": 300, "height": 280},
            "",
            422,
            "invalid_field_type",
        ),
        ({"strokes": TWO_ONES, "width": 300, "height": 280}, "?mode=many", 422, "invalid_field_type"),
        ({"mode": "number", "image": "@@@"}, "", 400, "invalid_base64"),
    ],
    ids=["point", "strokes", "points", "width", "missing", "mode", "query", "base64"],
)
def test_http_bad_number_frames_get_the_digit_frames_errors(
    client: httpx.Client, body: dict[str, Any], query: str, status: int, code: str
) -> None:
    r = client.post(f"/predict{query}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_http_number_body_over_the_limit_is_payload_too_large(
    client: httpx.Client, live_server: LiveServer
) -> None:
    pad = "x" * live_server.settings.http_max_body_bytes
    r = client.post("/predict", json={"mode": "number", "image": pad})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_openapi_documents_number_mode(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    post = spec["paths"]["/predict"]["post"]
    request = post["requestBody"]["content"]["application/json"]["schema"]
    assert request["properties"]["mode"]["enum"] == ["digit", "number"]
    answer = schemas["NumberPredictResponse"]
    assert {"mode", "number", "digits"} <= set(answer["required"]) | set(answer["properties"])
    reading = schemas["CharacterReading"]["properties"]
    assert {"status", "digit", "confidence", "probabilities", "bbox", "strokes"} <= set(reading)
    params = post["parameters"]
    assert [p["name"] for p in params] == ["mode"]


# ---------------------------------------------------------------------------------------- WebSocket

asyncio_test = pytest.mark.asyncio(loop_scope="function")


@asyncio_test
@pytest.mark.data
async def test_websocket_reads_a_number_while_it_is_written(
    ws_target: WsTarget, numbers: list[ComposedNumber], predictor: Predictor
) -> None:
    number = numbers[0]
    async with connect(ws_target.ws_url) as ws:
        for k in range(1, len(number.strokes) + 1):  # one snapshot per finished stroke
            await send(ws, number_message(number, k, number.strokes[:k]))
        last = len(number.strokes)
        if ws_target.kind == "gateway":  # every frame answered, maybe out of order
            replies = [await recv(ws, timeout=10) for _ in range(last)]
        else:  # latest wins: the last frame is answered last
            replies = await recv_until(ws, lambda m: m.get("seq") == last, timeout=10)
    replies.sort(key=lambda m: m["seq"])
    assert replies[-1]["seq"] == last
    for reply in replies:
        check("prediction", reply)
        assert reply["mode"] == "number"
    assert_same_reading(replies[-1], expected(predictor, number))
    assert len(replies[-1]["number"]) == 3
    growing = [len(r["digits"]) for r in replies]
    assert growing == sorted(growing), "characters appear as they are written"


@asyncio_test
async def test_websocket_bad_number_frames_get_errors_and_the_connection_stays(ws_target: WsTarget) -> None:
    bad = {
        "action": "predict",
        "seq": 1,
        "mode": "number",
        "strokes": [[[1, "x"]]],
        "width": 280,
        "height": 280,
    }
    async with connect(ws_target.ws_url) as ws:
        await send(ws, bad)
        error = await recv(ws)
        check("error", error)
        assert error["error"]["code"] == "invalid_strokes" and error["seq"] == 1
        await send(ws, {**bad, "seq": 2, "mode": "numeral"})
        error = await recv(ws)
        assert error["error"]["code"] == "invalid_field_type" and error["seq"] is None
        await send(ws, {"action": "ping"})
        assert await recv(ws) == {"type": "pong"}
        good = {**bad, "seq": 3, "strokes": TWO_ONES, "width": 300}
        await send(ws, good)
        reply = await recv(ws)
        check("prediction", reply)
        assert reply["number"] == "11" and reply["seq"] == 3


@asyncio_test
async def test_websocket_digit_frames_carry_no_number_fields(ws_target: WsTarget) -> None:
    async with connect(ws_target.ws_url) as ws:
        await send(
            ws,
            {
                "action": "predict",
                "seq": 1,
                "strokes": [[[140, 40], [140, 240]]],
                "width": 280,
                "height": 280,
            },
        )
        reply = await recv(ws)
    check("prediction", reply)
    assert set(reply) == {
        "type",
        "seq",
        "status",
        "digit",
        "probabilities",
        "confidence",
        "not_a_digit_score",
        "latency_ms",
    }


def test_asyncapi_predict_schema_accepts_number_mode() -> None:
    message = {
        "action": "predict",
        "seq": 1,
        "mode": "number",
        "strokes": TWO_ONES,
        "width": 300,
        "height": 280,
    }
    check("predict", message)
    with pytest.raises(jsonschema.ValidationError):
        check("predict", {**message, "mode": "numeral"})
    with pytest.raises(jsonschema.ValidationError):  # a number-mode reply must carry its reading
        check(
            "prediction",
            {
                "type": "prediction",
                "seq": 1,
                "status": "ok",
                "digit": None,
                "probabilities": None,
                "confidence": None,
                "latency_ms": 1.0,
                "mode": "number",
            },
        )


def test_an_image_number_is_read_in_process_as_over_http(predictor: Predictor) -> None:
    png = render_png(TWO_ONES, 300, 280)
    reading = read_number(predictor, ImageFrame(png))
    assert reading.number == "11" and [d.strokes for d in reading.digits] == [None, None]
