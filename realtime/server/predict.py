"""``POST /predict``: the response models, the body to frame steps and the fast path.

JSON and ``image/*`` bodies are answered by :class:`PredictFastPath`, multipart uploads by the FastAPI route
(:func:`add_predict_routes`), which also documents the endpoint in OpenAPI. Both call :func:`answer`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from realtime import access, logs
from realtime.messages import PredictRequest, encode_json, parse_predict_request
from realtime.server.http_errors import log_client_gone, taxonomy_response
from realtime.server.runtime import Runtime
from shared import errors
from shared.inference import top_k
from shared.number import CharacterReading, as_number
from shared.preprocess import Frame, ImageFrame

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TopK(BaseModel):
    """One of the most probable classes."""

    digit: int
    probability: float


class PredictResponse(BaseModel):
    """``POST /predict`` answer: the core :class:`~shared.schemas.Prediction` plus top-3 and latency."""

    status: Literal["ok", "no_digit", "not_a_digit"]
    digit: int | None
    probabilities: list[float] | None
    confidence: float | None
    not_a_digit_score: float | None
    top_k: list[TopK]
    latency_ms: float


class NumberPredictResponse(PredictResponse):
    """``POST /predict`` answer in number mode.

    ``digit``, ``probabilities``, ``confidence`` and ``not_a_digit_score`` null, ``top_k`` empty, plus
    ``"mode": "number"``, ``number`` and ``digits`` (as the WebSocket reply).
    """

    mode: Literal["number"] = "number"
    number: str | None
    digits: list[CharacterReading]


class ErrorResponse(BaseModel):
    """``{"error": {"code", "message"}}``."""

    error: dict[str, str]


PREDICT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TypeAdapter(PredictRequest).json_schema()},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    },
    "parameters": [
        {
            "name": "mode",
            "in": "query",
            "required": False,
            "description": "'number' reads the snapshot as a number (JSON bodies may use "
            "their 'mode' field instead)",
            "schema": {"enum": ["digit", "number"], "default": "digit"},
        }
    ],
}
"""The route's request body and ``mode`` parameter in OpenAPI (the route reads the body itself)."""


def add_predict_routes(app: FastAPI, runtime: Runtime) -> None:
    """Add ``POST /predict`` (multipart uploads; documents the endpoint) and 405 for its other methods."""

    @app.post(
        "/predict",
        tags=["predict"],
        response_model=PredictResponse | NumberPredictResponse,
        responses={code: {"model": ErrorResponse} for code in (400, 401, 413, 415, 422, 503)},
        openapi_extra=PREDICT_OPENAPI,
    )
    async def predict(request: Request) -> Response:
        """Classify one canvas snapshot: JSON strokes or image, a raw ``image/*`` body, or a file upload.

        ``"mode": "number"`` in a JSON body, or ``?mode=number`` with an image or upload body, reads
        the snapshot as a number.

        JSON and ``image/*`` bodies are answered by :class:`PredictFastPath` before they get here; this
        route serves multipart uploads and documents the endpoint in OpenAPI. Both answer alike.
        """
        content = await reply(runtime, request, time.perf_counter())  # the fast path's steps too
        return Response(content, media_type="application/json")

    @app.api_route(
        "/predict", methods=["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"], include_in_schema=False
    )
    async def predict_wrong_method() -> None:
        """Answer 405 here rather than letting the page mount at ``/`` answer 404."""
        raise StarletteHTTPException(405, headers={"Allow": "POST"})


async def reply(runtime: Runtime, request: Request, start: float) -> bytes:
    """``POST /predict``'s steps: the token, the body as a frame (by Content-Type), the mode, the answer.

    Args:
        runtime: The app's :class:`Runtime`.
        request: The request (its body not yet read).
        start: When the request arrived, :func:`time.perf_counter` seconds (for ``latency_ms``).

    Returns:
        The :class:`PredictResponse` (or :class:`NumberPredictResponse`) as JSON bytes.

    Raises:
        MnistLiveError: no valid token, a malformed body, or the model is unavailable or failed.
        ClientDisconnect: the client left while sending its body.
    """
    access.check_token(access.bearer_token(request.headers.get("authorization")), runtime.token_secret)
    frame = query_mode(request.url.query, await read_frame(request))
    return await answer(runtime, frame, start)


async def answer(runtime: Runtime, frame: Frame, start: float) -> bytes:
    """Classify ``frame`` and serialize the :class:`PredictResponse` (JSON bytes).

    Raises:
        MnistLiveError: the frame is malformed, or the model is unavailable or failed.
    """
    outcome = await runtime.infer(frame)
    if isinstance(outcome, errors.MnistLiveError):
        raise outcome
    probs = outcome.probabilities
    ranked = [{"digit": d, "probability": p} for d, p in top_k(probs)] if probs else []
    return encode_json({**outcome.reply_fields(), "top_k": ranked, "latency_ms": logs.elapsed_ms(start)})


def media_type(content_type: str) -> str:
    """``Content-Type`` header value to its lower-case media type, parameters dropped."""
    return content_type.split(";", maxsplit=1)[0].strip().lower()


def query_mode(query: str, frame: Frame) -> Frame:
    """``frame`` in number mode when the query string says ``mode=number``.

    Any body: a JSON body may say it in its ``mode`` field instead.

    Raises:
        InvalidFieldType: ``mode`` is neither ``digit`` nor ``number``.
    """
    if "mode=" not in query:
        return frame
    modes = [v for k, v in urllib.parse.parse_qsl(query) if k == "mode"]
    if not modes or modes[-1] == "digit":
        return frame
    if modes[-1] != "number":
        raise errors.InvalidFieldType("'mode' must be 'digit' or 'number'.")
    return as_number(frame)


def body_frame(media_type: str, body: bytes) -> Frame:
    """A JSON (``application/json``, ``text/json``, ``*+json`` or none) or ``image/*`` body as a frame.

    Raises:
        UnsupportedMediaType: any other media type.
        ClientError: the JSON body is malformed (see :func:`realtime.messages.parse_predict_request`).
    """
    if media_type in ("", "application/json", "text/json") or media_type.endswith("+json"):
        return parse_predict_request(body).to_frame()
    if media_type.startswith("image/"):
        return ImageFrame(body)
    raise errors.UnsupportedMediaType()


async def read_frame(request: Request) -> Frame:
    """Turn the request body into a core frame, by Content-Type."""
    ctype = media_type(request.headers.get("content-type", ""))
    if ctype != "multipart/form-data":
        return body_frame(ctype, await request.body())
    try:
        form = await request.form(max_files=1, max_fields=16)
    except (errors.MnistLiveError, ClientDisconnect):
        raise
    except Exception as exc:  # python-multipart / starlette parse errors
        raise errors.InvalidFieldType("The multipart body is malformed.") from exc
    try:
        for value in form.values():
            if isinstance(value, UploadFile):
                return ImageFrame(await value.read())
    finally:
        await form.close()
    raise errors.MissingField("Upload the image as a file field (e.g. 'file').")


class PredictFastPath:
    """ASGI middleware answering ``POST /predict`` with a JSON or ``image/*`` body itself.

    The same steps as the FastAPI route (:func:`reply`, taxonomy errors as
    ``{"error": {"code", "message"}}``), without FastAPI's routing, dependency, exception and response
    layers. py-spy on this 2-core machine put about two thirds of the event loop's time per strokes
    request in those layers, and the loop was the server's bottleneck. Multipart uploads and every other
    route go on to the app. It sits inside :class:`BodyLimit` and CORS, so those still apply.

    Args:
        app: The FastAPI app (everything this does not answer).
        runtime: The app's :class:`Runtime`.
    """

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer ``POST /predict`` (JSON or image body), pass anything else on."""
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request = Request(scope, receive)
        if media_type(request.headers.get("content-type", "")) == "multipart/form-data":
            await self.app(scope, receive, send)
            return
        try:
            content = await reply(self.runtime, request, start)
        except errors.MnistLiveError as exc:
            await taxonomy_response(exc, "/predict")(scope, receive, send)
            return
        except ClientDisconnect:
            log_client_gone("/predict")
            return  # nobody is listening
        await Response(content, media_type="application/json")(scope, receive, send)
