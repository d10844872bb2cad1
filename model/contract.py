"""The serving contract of ``model/mnist_cnn.onnx`` (what :class:`shared.inference.Predictor` relies on).

Kept free of PyTorch so tests and tools can check a model file with ``onnx`` and ``onnxruntime`` only.
"""

from __future__ import annotations

from shared.inference import NUM_OUTPUTS, THRESHOLD_KEY

INPUT_NAME = "input"
"""The one input: ``(N, 1, 28, 28)`` float32 in [0, 1], dynamic ``N``."""
OUTPUT_NAME = "logits"
"""The one output: ``(N, 11)`` float32 logits (digits 0-9, then "not a digit"), already divided by the
calibration temperature."""
OUTPUTS = NUM_OUTPUTS
"""Logits per row (:data:`shared.inference.NUM_OUTPUTS`)."""
OPSET = 17
"""Lowest allowed ONNX opset."""
MAX_BYTES = 2 * 1024 * 1024
"""Largest allowed model file, bytes."""
REQUIRED_METADATA = (
    "version",
    "git_commit",
    "training_data",
    "normalization",
    "temperature",
    THRESHOLD_KEY,
    "accuracy_mnist_test_canvas",
    "accuracy_pen_heldout_writers",
    "architecture",
    "parameters",
    "train_command",
)
"""``metadata_props`` keys every shipped model carries."""
