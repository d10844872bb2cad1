"""ONNX Runtime inference: load once, predict batches, softmax, top-k."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shared import errors
from shared.limits import DEFAULT_LIMITS, Limits
from shared.preprocess import MNIST_SIDE, STROKES_PLANES, Frame, preprocess
from shared.schemas import ModelInfo, Models, Prediction

if TYPE_CHECKING:
    from shared.settings import Settings

NUM_CLASSES = 10
"""MNIST's classes, digits 0-9."""
NOT_A_DIGIT_CLASS = NUM_CLASSES
"""Index of the model's "not a digit" logit, after the ten digits."""
NUM_OUTPUTS = NUM_CLASSES + 1
"""Logits per row: the ten digits, then "not a digit"."""
THRESHOLD_KEY = "not_a_digit_threshold"
"""``metadata_props`` key of the threshold in (0, 1]: a frame whose not-a-digit score
(:func:`not_a_digit_scores`) is at or above it is answered ``not_a_digit`` (set on the calibration split by
``model/rejection.py``)."""


def not_a_digit_scores(logits: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """The not-a-digit score of each row of served logits: "not a digit" against the likeliest digit.

    The score is ``p_nd / (p_nd + p_top)`` of the 11-way softmax, the logistic of the not-a-digit logit
    minus the largest digit logit: the max-logit out-of-distribution score (Hendrycks et al. 2022,
    "Scaling Out-of-Distribution Detection for Real-World Settings") for a model with an outlier class.
    Unlike the 11-way softmax entry it ignores how the other digits share the rest, so a letter that
    looks a little like several digits is not kept as a digit by their sum; at the same share of
    calibration digits turned away it turns away more calibration letters and symbols
    (``docs/experiments.md``).

    Args:
        logits: ``(N, 11)`` logits (digits 0-9, then not-a-digit).

    Returns:
        ``(N,)`` float64 in [0, 1].
    """
    z = np.asarray(logits, dtype=np.float64)
    margin = z[:, NOT_A_DIGIT_CLASS] - z[:, :NUM_CLASSES].max(axis=1)
    out: npt.NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * margin))  # the logistic, without overflow
    return out


def softmax(logits: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """Numerically stable softmax over the last axis.

    Args:
        logits: ``(N, C)`` float logits.

    Returns:
        ``(N, C)`` float64 probabilities, each row summing to 1 (max subtracted before ``exp``).
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    out: npt.NDArray[np.float64] = z
    return out


def top_k(probabilities: Sequence[float], k: int = 3) -> list[tuple[int, float]]:
    """Return the ``k`` most probable ``(digit, probability)`` pairs, most probable first."""
    order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
    return [(i, float(probabilities[i])) for i in order[:k]]


class _Model:
    """One loaded ONNX classifier: its session, input planes, threshold and :class:`ModelInfo`.

    Raises:
        ModelError: as :class:`Predictor`.
    """

    def __init__(self, model_path: str | Path, intra_op_num_threads: int, planes: tuple[int, ...]) -> None:
        import onnxruntime as ort  # deferred: importing is ~0.1 s, callers may not need a model

        path = Path(model_path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise errors.ModelError(f"Cannot read the model file {path.name}.") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own hierarchy (Fail, InvalidGraph, ...)
            raise errors.ModelError(f"onnxruntime cannot load {path.name}.") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape)[1:] if len(inputs) == 1 else []
        if (
            len(inputs) != 1
            or inputs[0].type != "tensor(float)"
            or shape[1:] != [MNIST_SIDE, MNIST_SIDE]
            or shape[0] not in planes
        ):
            wanted = " or ".join(f"(N, {p}, 28, 28)" for p in planes)
            raise errors.ModelError(f"{path.name}: the model's input must be one {wanted} float32 tensor.")
        if len(outputs) != 1 or len(outputs[0].shape) != 2 or outputs[0].shape[1] != NUM_OUTPUTS:
            raise errors.ModelError(f"{path.name}: the model's output must be one (N, 11) tensor of logits.")
        self.input = inputs[0].name
        self.planes = int(shape[0])
        meta = self.session.get_modelmeta()
        try:
            self.threshold = float(meta.custom_metadata_map[THRESHOLD_KEY])
        except (KeyError, ValueError) as exc:
            raise errors.ModelError(
                f"{path.name}: the model's metadata has no valid {THRESHOLD_KEY}."
            ) from exc
        if not 0.0 < self.threshold <= 1.0:
            raise errors.ModelError(f"{path.name}: the model's {THRESHOLD_KEY} must be in (0, 1].")
        self.info = ModelInfo(
            name=meta.graph_name or path.stem,
            version=meta.custom_metadata_map.get("version")
            or (str(meta.version) if 0 < meta.version < 2**63 - 1 else "unversioned"),
            sha256=hashlib.sha256(data).hexdigest(),
            input_name=inputs[0].name,
            input_shape=list(inputs[0].shape),
            output_name=outputs[0].name,
            output_shape=list(outputs[0].shape),
            not_a_digit_threshold=self.threshold,
            intra_op_num_threads=intra_op_num_threads,
            metadata=dict(meta.custom_metadata_map),
        )

    def logits(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``(N, planes, 28, 28)`` float32 to ``(N, 11)`` float32 logits; ModelError if onnxruntime fails."""
        try:
            (out,) = self.session.run(None, {self.input: batch})
        except Exception as exc:
            raise errors.ModelError("Inference failed.") from exc
        logits: npt.NDArray[np.float32] = out
        return logits


class Predictor:
    """The digit classifiers, loaded once and reused for every request: one per frame form.

    * The **image model** reads image frames: ``(N, 1, 28, 28)`` float32 NCHW in [0, 1] (white ink on
      black, MNIST-normalized by :func:`shared.preprocess.preprocess`).
    * The **strokes model** reads strokes frames: ``(N, 7, 28, 28)``, the same raster then the pen's
      motion planes (:func:`shared.preprocess.strokes_planes`). Without one, strokes frames go to the
      image model as their raster (plane 0), which is exactly what their PNG would give it.

    Each returns ``(N, 11)`` logits (digits 0-9, then "not a digit") and carries its own not-a-digit
    threshold in ``metadata_props`` (:data:`THRESHOLD_KEY`).

    Args:
        model_path: The image model's ``.onnx`` file.
        intra_op_num_threads: onnxruntime intra-op threads (default 1: fastest for batch 1 on 2 cores,
            and avoids thread-affinity errors in Lambda sandboxes, onnxruntime#8313).
        strokes_model_path: The strokes model's ``.onnx`` file, or ``None``.

    Raises:
        ModelError: a file is missing or unreadable, its input/output contract differs, or it has no
            valid not-a-digit threshold.
    """

    def __init__(
        self,
        model_path: str | Path,
        intra_op_num_threads: int = 1,
        strokes_model_path: str | Path | None = None,
    ) -> None:
        self._image = _Model(model_path, intra_op_num_threads, (1,))
        self._strokes = (
            None
            if strokes_model_path is None
            else _Model(strokes_model_path, intra_op_num_threads, (STROKES_PLANES,))
        )
        self.threshold = self._image.threshold
        """The image model's not-a-digit threshold."""
        self.info = self._image.info
        """The image model's :class:`ModelInfo`."""
        strokes = self._strokes or self._image
        self.models = Models(image=self._image.info, strokes=strokes.info)
        """The :class:`ModelInfo` of the model reading each frame form (``GET /model``)."""

    @classmethod
    def of(cls, settings: Settings) -> Predictor:
        """Load the models ``settings`` name (``model_path``, ``strokes_model_path``); ModelError as above."""
        return cls(settings.model_path, settings.intra_op_num_threads, settings.strokes_model_path)

    def _model_for(self, planes: int) -> _Model:
        return self._strokes if planes == STROKES_PLANES and self._strokes is not None else self._image

    def logits(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Run the model for the batch's form.

        Args:
            batch: ``(N, 1, 28, 28)`` (images) or ``(N, 7, 28, 28)`` (strokes) float32 NCHW in [0, 1], N >= 1.

        Returns:
            ``(N, 11)`` float32 logits (digits 0-9, then not-a-digit).

        Raises:
            ModelError: onnxruntime failed.
        """
        model = self._model_for(batch.shape[1])
        return model.logits(batch if batch.shape[1] == model.planes else batch[:, : model.planes])

    def threshold_for(self, planes: int) -> float:
        """The not-a-digit threshold of the model reading ``(N, planes, 28, 28)`` batches."""
        return self._model_for(planes).threshold

    def probabilities(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """A batch as :meth:`logits` takes to ``(N, 11)`` float64 probabilities (rows sum to 1)."""
        return softmax(self.logits(batch))

    def warm_up(self) -> None:
        """Run one blank batch through each model so the first real request pays no lazy initialization."""
        for model in {id(m): m for m in (self._image, self._strokes) if m is not None}.values():
            model.logits(np.zeros((1, model.planes, MNIST_SIDE, MNIST_SIDE), dtype=np.float32))

    def predict(self, frames: Sequence[Frame], limits: Limits = DEFAULT_LIMITS) -> list[Prediction]:
        """Preprocess and classify frames, asking each model once for all its non-blank frames.

        Args:
            frames: Canvas snapshots (images or strokes).
            limits: Input limits.

        Returns:
            One :class:`~shared.schemas.Prediction` per frame, in order; blank frames are ``no_digit``,
            frames whose not-a-digit score (:func:`not_a_digit_scores`) reaches their model's threshold
            are ``not_a_digit``.

        Raises:
            ClientError: the first malformed frame (see :func:`shared.preprocess.preprocess`).
            ModelError: inference failed.
        """
        tensors = [preprocess(f, limits) for f in frames]
        return self.classify(tensors)

    def classify(self, tensors: Sequence[npt.NDArray[np.float32] | None]) -> list[Prediction]:
        """Classify preprocessed ``(1, P, 28, 28)`` tensors; ``None`` entries become ``no_digit``.

        The tensors are :func:`shared.preprocess.preprocess`'s; each form's go to its model in one call.
        """
        results: list[Prediction] = [_NO_DIGIT] * len(tensors)
        forms: dict[int, list[int]] = {}
        for i, t in enumerate(tensors):
            if t is not None:
                forms.setdefault(t.shape[1], []).append(i)
        for planes, rows in forms.items():
            batch = tensors[rows[0]] if len(rows) == 1 else np.concatenate([tensors[i] for i in rows])
            assert batch is not None
            threshold = self.threshold_for(planes)
            for i, row in zip(rows, self.logits(batch).tolist(), strict=True):
                results[i] = _decide(row, threshold)
        return results


_NO_DIGIT = Prediction.no_digit()


def _decide(logits: list[float], threshold: float) -> Prediction:
    """One row of 11 served logits to ``ok`` or ``not_a_digit`` (``not_a_digit`` at or above ``threshold``).

    The ten digit probabilities are the softmax over the ten digit logits (the digits' probabilities
    given that the drawing is a digit, summing to 1); the score is :func:`not_a_digit_scores`'s.
    """
    digits = logits[:NUM_CLASSES]
    top = max(digits)
    exps = [math.exp(v - top) for v in digits]
    total = math.fsum(exps)
    p = [e / total for e in exps]
    gap = top - logits[NOT_A_DIGIT_CLASS]  # log-odds of the likeliest digit against "not a digit"
    score = 1.0 / (1.0 + math.exp(gap)) if gap <= 0 else math.exp(-gap) / (1.0 + math.exp(-gap))
    if score >= threshold:
        return Prediction(
            status="not_a_digit", digit=None, probabilities=p, confidence=None, not_a_digit_score=score
        )
    digit = max(range(NUM_CLASSES), key=p.__getitem__)
    return Prediction(status="ok", digit=digit, probabilities=p, confidence=p[digit], not_a_digit_score=score)


def _softmax_row(logits: list[float]) -> list[float]:
    """Stable softmax of one short row of logits in plain Python floats (double precision).

    The hot path: for ten values this is ~10x cheaper than the numpy calls of :func:`softmax`, whose
    result it equals (tested).
    """
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = math.fsum(exps)
    return [e / total for e in exps]
