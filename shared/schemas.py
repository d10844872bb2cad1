"""Result schema shared by every entry point (pydantic v2)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
    """The answer for one frame.

    ``{"status": "ok", "digit": d, "probabilities": [10 floats], "confidence": p}`` or
    ``{"status": "no_digit", "digit": null, "probabilities": null, "confidence": null}``.

    Attributes:
        status: ``"ok"`` when the model was asked, ``"no_digit"`` for a blank frame (model not asked).
        digit: Arg-max class 0-9.
        probabilities: Ten softmax probabilities (classes 0-9, float in [0, 1], summing to 1).
        confidence: ``probabilities[digit]``.
    """

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "no_digit"]
    digit: int | None = Field(None, ge=0, le=9)
    probabilities: list[float] | None = Field(None, min_length=10, max_length=10)
    confidence: float | None = Field(None, ge=0.0, le=1.0)

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
            the tensor contract (``[N, 1, 28, 28]`` float32 in, ``[N, 10]`` logits out; ``N`` dynamic).
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
    intra_op_num_threads: int
    metadata: dict[str, str]
