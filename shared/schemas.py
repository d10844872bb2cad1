"""Result types shared by every entry point, and the one conversion of a result to reply fields.

Frozen dataclasses, not pydantic models: they are built by the core from validated parts (never from
client data), and the WebSocket Lambda handler's cold start must not import a schema library
(``bench/README.md``, "Lambda cold start"). FastAPI documents them in OpenAPI as it does any dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "no_digit", "not_a_digit"]
"""A prediction's ``status`` (see :class:`Prediction`)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """The answer for one frame.

    ``{"status": "ok", "digit": d, "probabilities": [10 floats], "confidence": p, "not_a_digit_score": s}``,
    ``{"status": "not_a_digit", "digit": null, "probabilities": [10 floats], "confidence": null,
    "not_a_digit_score": s}`` or ``{"status": "no_digit"}`` with every other field null.

    Attributes:
        status: ``"ok"``: the model read a digit; ``"not_a_digit"``: the model was asked and the drawing is
            not a digit (a letter, a symbol, a scribble); ``"no_digit"``: a blank frame (model not asked).
        digit: Arg-max class 0-9 (``ok`` only).
        probabilities: Ten softmax probabilities of the digits given that the drawing is one (classes 0-9,
            float in [0, 1], summing to 1).
        confidence: ``probabilities[digit]`` (``ok`` only).
        not_a_digit_score: "Not a digit" against the likeliest digit, ``p / (p + p_top)`` of the
            calibrated 11-way softmax, in [0, 1] (:func:`shared.inference.not_a_digit_scores`); the
            answer is ``not_a_digit`` when it reaches the model's threshold.
    """

    status: Status
    digit: int | None = None
    probabilities: list[float] | None = None
    confidence: float | None = None
    not_a_digit_score: float | None = None

    @classmethod
    def no_digit(cls) -> Prediction:
        """The blank-frame answer."""
        return _NO_DIGIT

    def reply_fields(self) -> dict[str, Any]:
        """The fields every reply to this answer carries, WebSocket and HTTP alike, in wire order.

        Returns:
            ``{"status", "digit", "probabilities", "confidence", "not_a_digit_score"}`` (JSON-ready;
            a number's reading adds its own fields, see :meth:`shared.number.NumberPrediction.reply_fields`).
        """
        return {
            "status": self.status,
            "digit": self.digit,
            "probabilities": self.probabilities,
            "confidence": self.confidence,
            "not_a_digit_score": self.not_a_digit_score,
        }


_NO_DIGIT = Prediction(status="no_digit")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Metadata of one loaded model (:class:`Models`).

    Attributes:
        name: Graph name or file stem. version: Model version from the ONNX metadata.
        sha256: Hex digest of the ONNX file. input_name / input_shape / output_name / output_shape:
            the tensor contract (``[N, 1, 28, 28]`` float32 in for the image model, ``[N, 7, 28, 28]``
            for the strokes model; ``[N, 11]`` logits out, digits 0-9 then not-a-digit; ``N`` dynamic).
        not_a_digit_threshold: A frame whose not-a-digit score reaches this is ``not_a_digit``.
        intra_op_num_threads: onnxruntime's intra-op threads for this session.
        metadata: The model's ``metadata_props`` (training data, normalization contract, accuracy, ...).
    """

    name: str
    version: str
    sha256: str
    input_name: str
    input_shape: list[int | str]
    output_name: str
    output_shape: list[int | str]
    not_a_digit_threshold: float
    intra_op_num_threads: int
    metadata: dict[str, str]


@dataclass(frozen=True, slots=True)
class Models:
    """The served models, served at ``GET /model``: the one reading each frame form.

    Attributes:
        image: Reads image frames: input ``[N, 1, 28, 28]``, the raster.
        strokes: Reads strokes frames: input ``[N, 7, 28, 28]``, the raster and the pen's motion planes;
            the image model itself (input ``[N, 1, 28, 28]``, reading the raster) when no strokes model
            is configured.
    """

    image: ModelInfo
    strokes: ModelInfo
