"""Reading a written number: segment a snapshot into characters, classify them all in one model call.

The answer is a :class:`NumberPrediction`: a :class:`~shared.schemas.Prediction` (so every adapter that
carries a prediction carries it) whose ``digit``, ``probabilities`` and ``confidence`` are ``None`` and
which adds ``number`` and ``digits``. Each character's reading is the single-digit answer for its ink
alone (:meth:`shared.inference.Predictor.classify`), status included, so whatever a digit frame can be
told (``ok``, or ``not_a_digit`` from a model that can say so) a character is told too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from shared.inference import Predictor
from shared.limits import DEFAULT_LIMITS, Limits
from shared.preprocess import Frame, ImageFrame, StrokesFrame
from shared.schemas import Prediction
from shared.segment import segment


@dataclass(frozen=True, slots=True)
class NumberStrokesFrame(StrokesFrame):
    """A strokes snapshot to read as a number (``"mode": "number"``); fields as :class:`StrokesFrame`."""


@dataclass(frozen=True, slots=True)
class NumberImageFrame(ImageFrame):
    """A canvas image to read as a number (``"mode": "number"``); fields as :class:`ImageFrame`."""


NumberFrame: TypeAlias = NumberStrokesFrame | NumberImageFrame
"""A frame in number mode: still a :data:`~shared.preprocess.Frame`, so it travels every adapter's
queue unchanged; :func:`is_number` tells where it is classified."""


def as_number(frame: Frame) -> NumberFrame:
    """The same snapshot, in number mode."""
    if isinstance(frame, StrokesFrame):
        return NumberStrokesFrame(frame.strokes, frame.width, frame.height, frame.stroke_width)
    return NumberImageFrame(frame.image)


def is_number(frame: Frame) -> bool:
    """Whether ``frame`` is to be read as a number (:func:`read_number`) rather than one digit."""
    return isinstance(frame, NumberStrokesFrame | NumberImageFrame)


@dataclass(frozen=True, slots=True, kw_only=True)
class CharacterReading:
    """One character of a number, as the model read it.

    Attributes:
        status: The single-digit status of its ink (``ok``, or ``not_a_digit`` when the model says so).
        digit: Arg-max class 0-9 (``None`` when the status is not ``ok``).
        confidence: ``probabilities[digit]``.
        probabilities: Ten softmax probabilities (classes 0-9) for its ink alone.
        not_a_digit_score: Its ink's not-a-digit score, in [0, 1] (as :class:`shared.schemas.Prediction`'s).
        bbox: ``[x0, y0, x1, y1]``: its ink's box, canvas px (y down).
        strokes: Indices of its strokes in the frame's ``strokes`` (strokes frames); ``None`` for images.
    """

    status: str
    digit: int | None = None
    confidence: float | None = None
    probabilities: list[float] | None = None
    not_a_digit_score: float | None = None
    bbox: list[float]
    strokes: list[int] | None = None


@dataclass(frozen=True, slots=True)
class NumberPrediction(Prediction):
    """The answer for a frame in number mode.

    ``status`` is ``ok`` when at least one character was found, ``no_digit`` for a blank canvas (or one
    holding only marks); ``digit``, ``probabilities``, ``confidence`` and ``not_a_digit_score`` are
    ``None``.

    Attributes:
        number: The characters' digits left to right, e.g. ``"2024"``; ``None`` when there is no
            character or any character is not read as a digit.
        digits: One reading per character, left to right.
    """

    number: str | None = None
    digits: list[CharacterReading] = field(default_factory=list)

    def reply_fields(self) -> dict[str, Any]:
        """The reply fields of a number's reading.

        Returns:
            The prediction's fields (all null but ``status``) plus ``"mode": "number"``, ``number`` and
            ``digits`` (:class:`CharacterReading` objects, which the encoders write as JSON objects).
        """
        mode: Literal["number"] = "number"
        return {**Prediction.reply_fields(self), "mode": mode, "number": self.number, "digits": self.digits}


def read_number(
    predictor: Predictor, frame: StrokesFrame | ImageFrame, limits: Limits = DEFAULT_LIMITS
) -> NumberPrediction:
    """Segment ``frame`` (:func:`shared.segment.segment`) and classify every character in one model call.

    Args:
        predictor: The loaded model.
        frame: The snapshot.
        limits: Input limits.

    Returns:
        The reading (see :class:`NumberPrediction`).

    Raises:
        ClientError: the frame is malformed, as for a single digit.
        ModelError: inference failed.
    """
    characters = segment(frame, limits)
    if not characters:
        return NumberPrediction(status="no_digit")
    predictions = predictor.classify([c.tensor for c in characters])
    readings = [
        CharacterReading(
            status=p.status,
            digit=p.digit,
            confidence=p.confidence,
            probabilities=p.probabilities,
            not_a_digit_score=p.not_a_digit_score,
            bbox=[round(v, 2) for v in c.bbox],
            strokes=list(c.strokes) if isinstance(frame, StrokesFrame) else None,
        )
        for c, p in zip(characters, predictions, strict=True)
    ]
    ok = all(r.status == "ok" and r.digit is not None for r in readings)
    number = "".join(str(r.digit) for r in readings) if ok else None
    return NumberPrediction(
        status="ok",
        digit=None,
        probabilities=None,
        confidence=None,
        not_a_digit_score=None,
        number=number,
        digits=readings,
    )
