"""WebSocket protocol v1 messages (``docs/protocol.md``), as pydantic models keyed by a Literal.

Client → server: :class:`PredictMessage`, :class:`PingMessage` (``action`` doubles as API Gateway's
route selection key, ``$request.body.action``). Server → client: :class:`PredictionMessage`,
:class:`PongMessage`, :class:`ErrorMessage`. Parsing maps every pydantic failure onto the one error
taxonomy in :mod:`shared.errors`; messages never echo the client's data.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from shared import errors
from shared.number import CharacterReading, NumberPrediction, as_number
from shared.preprocess import Frame, ImageFrame, StrokesFrame
from shared.schemas import Prediction

T = TypeVar("T")

MAX_SEQ = 2**53 - 1
"""Largest ``seq``: the largest integer a JavaScript number holds exactly."""


class PredictRequest(BaseModel):
    """A canvas snapshot: ``{"strokes": [...], "width", "height", "stroke_width"}`` or ``{"image": ...}``.

    The body of ``POST /predict`` (JSON form) and the payload of a WebSocket ``predict`` message.
    Exactly one of ``strokes`` (canvas px, y down, with ``width`` and ``height``) or ``image`` (base64
    or a ``data:image/...;base64,`` URL). Stroke geometry is validated by the core, not here.
    ``mode``: ``"digit"`` (default, one digit) or ``"number"`` (the snapshot read as a number).
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    strokes: list[Any] | None = None
    width: float | None = None
    height: float | None = None
    stroke_width: float | None = None
    image: str | None = None
    mode: Literal["digit", "number"] = "digit"

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.strokes is None) == (self.image is None):
            raise errors.MissingField("Send exactly one of 'strokes' (with 'width' and 'height') or 'image'.")
        if self.strokes is not None and (self.width is None or self.height is None):
            raise errors.MissingField("'strokes' needs 'width' and 'height' (canvas px).")
        return self

    def to_frame(self) -> Frame:
        """The core's input for this request (a number-mode frame in number mode)."""
        frame: Frame
        if self.image is not None:
            frame = ImageFrame(self.image)
        else:
            frame = StrokesFrame(self.strokes, self.width, self.height, self.stroke_width)
        return as_number(frame) if self.mode == "number" else frame


class PredictMessage(PredictRequest):
    """``{"action": "predict", "seq": n, ...snapshot}`` (see :class:`PredictRequest`).

    ``seq`` (0 <= seq < 2^53) orders frames; when omitted the server uses the last one received + 1.
    """

    action: Literal["predict"]
    seq: int | None = Field(None, ge=0, le=MAX_SEQ)


class PingMessage(BaseModel):
    """``{"action": "ping"}``: answered at once with ``{"type": "pong"}``, never behind inference."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["ping"]


ClientMessage = Annotated[PredictMessage | PingMessage, Field(discriminator="action")]
_CLIENT = TypeAdapter(ClientMessage)


class PredictionMessage(BaseModel):
    """One frame's answer (fields as in :class:`~shared.schemas.Prediction`).

    ``{"type": "prediction", "seq", "status", "digit", "probabilities", "confidence", "not_a_digit_score",
    "latency_ms"}``; ``latency_ms``: server time from the frame's arrival to this reply, milliseconds.
    """

    type: Literal["prediction"] = "prediction"
    seq: int
    status: Literal["ok", "no_digit", "not_a_digit"]
    digit: int | None
    probabilities: list[float] | None
    confidence: float | None
    not_a_digit_score: float | None
    latency_ms: float

    @classmethod
    def of(cls, seq: int, prediction: Prediction, latency_ms: float) -> PredictionMessage:
        """Wrap a core :class:`~shared.schemas.Prediction` for the wire (a number's reading as such)."""
        if isinstance(prediction, NumberPrediction):
            return NumberPredictionMessage.of_number(seq, prediction, latency_ms)
        return cls.model_construct(
            type="prediction",
            seq=seq,
            status=prediction.status,
            digit=prediction.digit,
            probabilities=prediction.probabilities,
            confidence=prediction.confidence,
            not_a_digit_score=prediction.not_a_digit_score,
            latency_ms=round(latency_ms, 3),
        )


class NumberPredictionMessage(PredictionMessage):
    """The reply in number mode.

    A prediction (``digit``, ``probabilities`` and ``confidence`` null) plus ``"mode": "number"``,
    ``number`` (the digits left to right, or null) and ``digits`` (one reading per character, left to
    right: see :class:`shared.number.CharacterReading`).
    """

    mode: Literal["number"] = "number"
    number: str | None
    digits: list[CharacterReading]

    @classmethod
    def of_number(cls, seq: int, reading: NumberPrediction, latency_ms: float) -> NumberPredictionMessage:
        """Wrap a core :class:`~shared.number.NumberPrediction` for the wire."""
        return cls.model_construct(
            type="prediction",
            seq=seq,
            status=reading.status,
            digit=None,
            probabilities=None,
            confidence=None,
            not_a_digit_score=None,
            latency_ms=round(latency_ms, 3),
            mode="number",
            number=reading.number,
            digits=reading.digits,
        )


class PongMessage(BaseModel):
    """``{"type": "pong"}``."""

    type: Literal["pong"] = "pong"


class ErrorBody(BaseModel):
    """``{"code": str, "message": str}``: a stable code from :mod:`shared.errors` and one sentence."""

    code: str
    message: str


class ErrorMessage(BaseModel):
    """``{"type": "error", "seq": n | null, "error": {"code", "message"}}``; the connection stays open."""

    type: Literal["error"] = "error"
    seq: int | None
    error: ErrorBody

    @classmethod
    def of(cls, error: errors.MnistLiveError, seq: int | None = None) -> ErrorMessage:
        """The error frame for a taxonomy error."""
        return cls(seq=seq, error=ErrorBody(code=error.code, message=error.message))


ServerMessage = PredictionMessage | PongMessage | ErrorMessage


_REQUEST = TypeAdapter(PredictRequest)


def parse_predict_request(data: str | bytes) -> PredictRequest:
    """Parse a ``POST /predict`` JSON body (same errors as :func:`parse_client_message`)."""
    return _validate(_REQUEST, data)


def parse_client_message(data: str | bytes) -> PredictMessage | PingMessage:
    """Parse one text frame.

    Args:
        data: The frame's JSON text (UTF-8 bytes accepted).

    Returns:
        The typed message.

    Raises:
        InvalidJSON: not JSON, or not a JSON object.
        UnknownAction: ``action`` missing or not ``predict`` / ``ping``.
        MissingField: a required field is absent.
        InvalidFieldType: a field has the wrong type or range.
    """
    return _validate(_CLIENT, data)


def _validate(adapter: TypeAdapter[T], data: str | bytes) -> T:
    """``adapter.validate_json(data)`` with pydantic's errors mapped onto the taxonomy."""
    try:
        return adapter.validate_json(data)
    except errors.MnistLiveError:
        raise
    except ValidationError as exc:
        raise map_validation_error(exc) from exc


def map_validation_error(exc: ValidationError) -> errors.ClientError:
    """Translate a pydantic error into the taxonomy (first error wins; no input is echoed)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    kind = first["type"]
    path = first["loc"][1:] if first["loc"][:1] in (("predict",), ("ping",)) else first["loc"]
    loc = ".".join(str(p) for p in path)
    if kind == "json_invalid":
        return errors.InvalidJSON("The message is not valid JSON.")
    if kind in ("model_attributes_type", "model_type", "dict_type") and len(first["loc"]) == 0:
        return errors.InvalidJSON("The message must be a JSON object.")
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        return errors.UnknownAction("'action' must be one of: predict, ping.")
    if kind == "missing":
        return errors.MissingField(f"The field '{loc}' is required.")
    ctx = first.get("ctx") or {}
    if isinstance(ctx.get("error"), errors.ClientError):  # raised inside a model validator
        err: errors.ClientError = ctx["error"]
        return err
    return errors.InvalidFieldType(f"The field '{loc or 'message'}' has the wrong type or value.")
