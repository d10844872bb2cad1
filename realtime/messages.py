"""WebSocket protocol v1 messages (``docs/protocol.md``): parsing client frames, encoding server frames.

Client → server: :class:`PredictMessage`, :class:`PingMessage` (``action`` doubles as API Gateway's
route selection key, ``$request.body.action``). Server → client: :class:`PredictionMessage`,
:class:`PongMessage`, :class:`ErrorMessage`, written by :func:`encode`.

The protocol is this project's own, so it is validated here by hand (stdlib ``json``, then each field
in a fixed order: ``strokes``, ``width``, ``height``, ``stroke_width``, ``image``, ``mode``, ``seq``; the
first wrong one is reported) onto the one error taxonomy of :mod:`shared.errors`; messages never echo
the client's data. No schema library: this module is on the WebSocket Lambda handler's cold-start path,
where importing pydantic and building its first model cost about 145 ms (``bench/README.md``, "Lambda
cold start").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from shared import errors
from shared.number import as_number
from shared.preprocess import Frame, ImageFrame, StrokesFrame
from shared.schemas import Prediction

MAX_SEQ = 2**53 - 1
"""Largest ``seq``: the largest integer a JavaScript number holds exactly."""

R = TypeVar("R", bound="PredictRequest")

ACTIONS = ("predict", "ping")
"""The client messages' ``action`` values (API Gateway's custom route keys)."""

MODES = ("digit", "number")
"""A snapshot's ``mode`` values."""


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A canvas snapshot: ``{"strokes": [...], "width", "height", "stroke_width"}`` or ``{"image": ...}``.

    The body of ``POST /predict`` (JSON form) and the payload of a WebSocket ``predict`` message.
    Exactly one of ``strokes`` (canvas px, y down, with ``width`` and ``height``) or ``image`` (base64
    or a ``data:image/...;base64,`` URL). Stroke geometry is validated by the core, not here.
    ``mode``: ``"digit"`` (default, one digit) or ``"number"`` (the snapshot read as a number).
    Numbers are JSON numbers (not booleans, not strings); unknown fields are ignored.
    """

    strokes: list[Any] | None = None
    width: float | None = None
    height: float | None = None
    stroke_width: float | None = None
    image: str | None = None
    mode: Literal["digit", "number"] = "digit"

    def to_frame(self) -> Frame:
        """The core's input for this request (a number-mode frame in number mode)."""
        frame: Frame
        if self.image is not None:
            frame = ImageFrame(self.image)
        else:
            frame = StrokesFrame(self.strokes, self.width, self.height, self.stroke_width)
        return as_number(frame) if self.mode == "number" else frame


@dataclass(frozen=True, slots=True)
class PredictMessage(PredictRequest):
    """``{"action": "predict", "seq": n, ...snapshot}`` (see :class:`PredictRequest`).

    ``seq`` (0 <= seq < 2^53) orders frames; when omitted the server uses the last one received + 1.
    """

    action: Literal["predict"] = "predict"
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class PingMessage:
    """``{"action": "ping"}``: answered at once with ``{"type": "pong"}``, never behind inference."""

    action: Literal["ping"] = "ping"


ClientMessage = PredictMessage | PingMessage


@dataclass(frozen=True, slots=True)
class PredictionMessage:
    """One frame's answer: ``{"type": "prediction", "seq", ...prediction fields, "latency_ms"}``.

    The prediction's fields are :meth:`shared.schemas.Prediction.reply_fields` (a number's reading adds
    ``mode``, ``number`` and ``digits``).

    Attributes:
        seq: The answered frame's seq.
        prediction: The core's answer.
        latency_ms: Server time from the frame's arrival to this reply, milliseconds (3 decimals).
    """

    seq: int
    prediction: Prediction
    latency_ms: float

    @classmethod
    def of(cls, seq: int, prediction: Prediction, latency_ms: float) -> PredictionMessage:
        """Wrap a core :class:`~shared.schemas.Prediction` for the wire (latency rounded to 1 µs)."""
        return cls(seq, prediction, round(latency_ms, 3))

    def wire(self) -> dict[str, Any]:
        """The JSON object sent."""
        fields = self.prediction.reply_fields()
        return {"type": "prediction", "seq": self.seq, **fields, "latency_ms": self.latency_ms}


@dataclass(frozen=True, slots=True)
class PongMessage:
    """``{"type": "pong"}``."""

    def wire(self) -> dict[str, Any]:
        """The JSON object sent."""
        return {"type": "pong"}


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """``{"code": str, "message": str}``: a stable code from :mod:`shared.errors` and one sentence."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    """``{"type": "error", "seq": n | null, "error": {"code", "message"}}``; the connection stays open."""

    seq: int | None
    error: ErrorBody

    @classmethod
    def of(cls, error: errors.MnistLiveError, seq: int | None = None) -> ErrorMessage:
        """The error frame for a taxonomy error."""
        return cls(seq, ErrorBody(error.code, error.message))

    def wire(self) -> dict[str, Any]:
        """The JSON object sent."""
        error = {"code": self.error.code, "message": self.error.message}
        return {"type": "error", "seq": self.seq, "error": error}


ServerMessage = PredictionMessage | PongMessage | ErrorMessage

_ENCODER = msgspec.json.Encoder()


def encode_json(obj: Any) -> bytes:
    """``obj`` as compact JSON (UTF-8); dataclasses inside, such as a number's readings, as objects."""
    return _ENCODER.encode(obj)


def encode(message: ServerMessage) -> str:
    """A server message as its JSON text frame."""
    return encode_json(message.wire()).decode()


def parse_predict_request(data: str | bytes) -> PredictRequest:
    """Parse a ``POST /predict`` JSON body (same errors as :func:`parse_client_message`)."""
    return _request(_object(data), PredictRequest)


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Parse one text frame.

    Args:
        data: The frame's JSON text (UTF-8 bytes accepted).

    Returns:
        The typed message.

    Raises:
        InvalidJSON: not JSON, or not a JSON object.
        UnknownAction: ``action`` missing or not ``predict`` / ``ping``.
        MissingField: neither or both of ``strokes`` and ``image``, or ``strokes`` without ``width`` and
            ``height``.
        InvalidFieldType: a field has the wrong type or range.
    """
    obj = _object(data)
    action = obj.get("action")
    if action == "ping" and isinstance(action, str):
        return PingMessage()
    if action != "predict" or not isinstance(action, str):
        raise errors.UnknownAction(f"'action' must be one of: {', '.join(ACTIONS)}.")
    return _request(obj, PredictMessage)


def _object(data: str | bytes) -> dict[str, Any]:
    """The frame's JSON object (``NaN``, ``Infinity`` and out-of-range floats read as JSON parsers do)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise errors.InvalidJSON("The message is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise errors.InvalidJSON("The message must be a JSON object.")
    return obj


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ


_FIELDS: tuple[tuple[str, Any], ...] = (
    ("strokes", lambda v: isinstance(v, list)),
    ("width", _number),
    ("height", _number),
    ("stroke_width", _number),
    ("image", lambda v: isinstance(v, str)),
    ("mode", lambda v: isinstance(v, str) and v in MODES),
    ("seq", _seq),
)
"""Each optional field and the check its non-null value must pass, in the order errors are reported."""


def _request(obj: dict[str, Any], kind: type[R]) -> R:
    """Check the snapshot's fields (and ``seq`` for a message) and build ``kind``."""
    values: dict[str, Any] = {}
    for name, valid in _FIELDS:
        if name == "seq" and kind is not PredictMessage:
            continue
        value = obj.get(name)
        if value is None:
            if name == "mode" and name in obj:  # null is not a mode
                raise errors.InvalidFieldType("The field 'mode' has the wrong type or value.")
            continue
        if not valid(value):
            raise errors.InvalidFieldType(f"The field '{name}' has the wrong type or value.")
        if name in ("width", "height", "stroke_width"):
            try:
                value = float(value)
            except OverflowError:  # an integer beyond a double's range: infinite, as JSON parsers read it
                value = float("inf") if value > 0 else float("-inf")
        values[name] = value
    strokes, image = values.get("strokes"), values.get("image")
    if (strokes is None) == (image is None):
        raise errors.MissingField("Send exactly one of 'strokes' (with 'width' and 'height') or 'image'.")
    if strokes is not None and ("width" not in values or "height" not in values):
        raise errors.MissingField("'strokes' needs 'width' and 'height' (canvas px).")
    return kind(**values)
