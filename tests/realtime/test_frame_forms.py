"""Each frame form reaches its own model everywhere: strokes the strokes model, images the image one.

Two constant models answer different digits (image 3, strokes 7), so the digit in each reply says which
model read the frame, over HTTP, the local WebSocket and the Lambda WebSocket handler alike.
"""

from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import connect

from realtime.aws.websocket_handler import WebSocketHandler
from shared.inference import Predictor
from shared.settings import Settings
from tests.onnx_models import constant_model, one_hot
from tests.realtime.aws.conftest import message_event, reply
from tests.realtime.wsclient import recv, send
from tests.servers import run_server
from tests.shared.imaging import grey_png

IMAGE_DIGIT, STROKES_DIGIT = 3, 7
LINE = [[[140, 40], [140, 240]]]


def _png_b64() -> str:
    canvas = np.full((280, 280), 255, np.uint8)
    canvas[40:240, 132:148] = 0
    return base64.b64encode(grey_png(canvas)).decode()


FRAMES = {
    "strokes": ({"strokes": LINE, "width": 280, "height": 280, "stroke_width": 16}, STROKES_DIGIT),
    "image": ({"image": _png_b64()}, IMAGE_DIGIT),
    "one point": ({"strokes": [[[140, 140]]], "width": 280, "height": 280}, None),
    "repeated points": ({"strokes": [[[140, 140]] * 50], "width": 280, "height": 280}, None),
    "zero-length steps": (
        {
            "strokes": [[[140, 40], [140, 40], [140, 240], [140, 240]], [[90, 90]]],
            "width": 280,
            "height": 280,
        },
        STROKES_DIGIT,
    ),
}


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    folder = tmp_path_factory.mktemp("models")
    image = constant_model(folder, one_hot(IMAGE_DIGIT), name="image.onnx")
    strokes = constant_model(folder, one_hot(STROKES_DIGIT), planes=7, name="strokes.onnx")
    predictor = Predictor(image, 1, strokes)
    predictor.warm_up()
    return predictor


def _check(answer: dict[str, object], digit: int | None) -> None:
    if digit is None:
        assert answer["status"] == "no_digit" and answer["digit"] is None, answer
    else:
        assert answer["status"] == "ok" and answer["digit"] == digit, answer


def test_http_sends_each_form_to_its_model(two_models: Predictor) -> None:
    with run_server(Settings(), two_models) as server, httpx.Client(base_url=server.http_url) as client:
        for body, digit in FRAMES.values():
            r = client.post("/predict", json=body)
            assert r.status_code == 200, r.text
            _check(r.json(), digit)
        models = client.get("/model").json()
        assert models["image"]["input_shape"] == ["N", 1, 28, 28]
        assert models["strokes"]["input_shape"] == ["N", 7, 28, 28]


@pytest.mark.asyncio(loop_scope="function")
async def test_local_websocket_sends_each_form_to_its_model(two_models: Predictor) -> None:
    with run_server(Settings(), two_models) as server:
        async with connect(server.ws_url) as ws:
            for seq, (body, digit) in enumerate(FRAMES.values(), start=1):
                await send(ws, {"action": "predict", "seq": seq, **body})
                answer = await recv(ws)
                assert answer["seq"] == seq
                _check(answer, digit)


def test_lambda_handler_sends_each_form_to_its_model(two_models: Predictor) -> None:
    handler = WebSocketHandler(Settings(), two_models)
    for seq, (body, digit) in enumerate(FRAMES.values(), start=1):
        answer = reply(
            handler(message_event(json.dumps({"action": "predict", "seq": seq, **body}), "predict"))
        )
        _check(answer, digit)


def test_the_shipped_settings_name_both_model_files(settings: Settings) -> None:
    assert settings.model_path.is_file() and settings.strokes_model_path.is_file()
    predictor = Predictor.of(settings)
    assert predictor.models.image.input_shape[1:] == [1, 28, 28]
    assert predictor.models.strokes.input_shape[1:] == [7, 28, 28]
    assert predictor.models.image.sha256 != predictor.models.strokes.sha256
