"""Result schema shared by every entry point (pydantic v2)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
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
        not_a_digit_score: The model's calibrated probability, in [0, 1], that the drawing is not a digit;
            the answer is ``not_a_digit`` when it reaches the model's threshold.
    """

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "no_digit", "not_a_digit"]
    digit: int | None = Field(None, ge=0, le=9)
    probabilities: list[float] | None = Field(None, min_length=10, max_length=10)
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    not_a_digit_score: float | None = Field(None, ge=0.0, le=1.0)

    @classmethod
    def no_digit(cls) -> Prediction:
        """The blank-frame answer."""
        return _NO_DIGIT


_NO_DIGIT = Prediction(status="no_digit")


class ModelInfo(BaseModel):
    """Metadata of the loaded model, served at ``GET /model``.

    Attributes:
        name: Graph name or file stem. version: Model version from the ONNX metadata.
        sha256: Hex digest of the ONNX file. input_name / input_shape / output_name / output_shape:
            the tensor contract (``[N, 1, 28, 28]`` float32 in, ``[N, 11]`` logits out, digits 0-9 then
            not-a-digit; ``N`` dynamic).
        not_a_digit_threshold: A frame whose not-a-digit probability reaches this is ``not_a_digit``.
        metadata: The model's ``metadata_props`` (training data, normalization contract, accuracy, ...).
    """

    model_config = ConfigDict(frozen=True, protected_namespaces=())

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
