"""The one settings class of mnist-live, read from ``MNIST_LIVE_*`` environment variables.

Every adapter (local server, Lambda handlers, CLI, tests) builds one :class:`Settings` at start-up and
passes it down; nothing else reads the environment.

A pydantic model that reads its environment variables itself, the way pydantic-settings'
``BaseSettings`` does for these fields (prefix ``MNIST_LIVE_``, names case-insensitive, list fields as
JSON, values given to the constructor first). Not pydantic-settings: importing it costs 120-210 ms of
every Lambda cold start here (it imports asyncio, argparse and dotenv for sources this project does not
use), a quarter of the WebSocket handler's (``bench/README.md``, "Lambda cold start").
"""

from __future__ import annotations

import json
import os
import typing
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from shared.limits import Limits

ENV_PREFIX = "MNIST_LIVE_"
"""Prefix of every setting's environment variable (``MNIST_LIVE_PORT`` sets ``port``)."""

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout (or site-packages) folder holding ``shared/``, ``realtime/`` and ``model/``."""

DEFAULT_MODEL_PATH = REPO_ROOT / "model" / "mnist_cnn.onnx"
"""The shipped model, packaged with the wheel (``model/mnist_cnn.onnx``)."""

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
"""The read-only data folder beside the checkout (MNIST IDX files, UNIPEN pen inks)."""


class Settings(BaseModel):
    """All configuration, validated at start-up. Environment prefix ``MNIST_LIVE_``.

    ``Settings(**values)``: each field from ``values``, else from ``MNIST_LIVE_<FIELD>`` (any case; list
    fields as JSON), else its default. Byte sizes are bytes, times are seconds, rates are per second.

    Raises:
        pydantic.ValidationError: a value (given or from the environment) is invalid; ``loc`` names the
            field.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Core: model and input limits.
    model_path: Path = Field(DEFAULT_MODEL_PATH, description="ONNX model file, input (N,1,28,28) float32.")
    intra_op_num_threads: int = Field(1, ge=1, le=64, description="onnxruntime intra-op threads.")
    inference_threads: int = Field(2, ge=1, le=64, description="Batching inference workers per process.")
    inference_max_batch: int = Field(4, ge=1, le=256, description="Most frames per model call.")
    max_encoded_bytes: int = Field(1 << 20, ge=1024, description="Largest decoded image, bytes.")
    max_image_pixels: int = Field(4096 * 4096, ge=1024, description="Largest declared width x height.")
    max_strokes: int = Field(64, ge=1, description="Most strokes in one frame.")
    max_points: int = Field(4096, ge=1, description="Most points over all strokes of one frame.")
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="MNIST and pen data (tests, training only).")

    # Local server.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    http_max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest POST /predict body.")
    http_body_timeout_s: float = Field(10.0, gt=0, description="Longest wait for each body chunk (408).")
    max_concurrency: int = Field(2000, ge=1, description="Open HTTP+WebSocket connections (503 above).")
    ws_max_message_bytes: int = Field(128 * 1024, ge=1024, description="API Gateway's message limit.")
    ws_hard_max_bytes: int = Field(1 << 20, ge=1024, description="Above this the server closes (1009).")
    idle_timeout_s: float = Field(600.0, gt=0, description="Idle WebSocket close (1001), like API GW.")
    rate_limit_fps: float = Field(120.0, gt=0, description="Frames per second per connection.")
    max_connections: int = Field(1000, ge=1, description="Concurrent WebSockets; beyond: close 1013.")
    send_queue_frames: int = Field(64, ge=1, description="Outgoing frames buffered per connection.")
    slow_consumer_timeout_s: float = Field(10.0, gt=0, description="Blocked sender closes (1008).")
    ws_per_message_deflate: bool = Field(
        False, description="Offer permessage-deflate (RFC 7692); off: replies are ~400 B, CPU matters more."
    )

    # Access control, enforced identically locally and on Lambda.
    auth_token: SecretStr | None = Field(None, description="Bearer / ?token= required when set.")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Extra allowed Origins; same origin and localhost are always allowed.",
    )

    # Logging (every adapter).
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Least severe level logged (the standard library's level names, any case)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_name(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _environment(cls, values: Any) -> Any:
        """Fill the fields not given from ``MNIST_LIVE_*`` environment variables."""
        if not isinstance(values, dict):
            return values
        environ = {k.lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
        found: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(f"{ENV_PREFIX}{name}".lower())
            if raw is None:
                continue
            if typing.get_origin(field.annotation) in (list, dict):
                try:
                    found[name] = json.loads(raw)
                except ValueError:
                    found[name] = raw  # left to validation, which names the field
            else:
                found[name] = raw
        return {**found, **values}

    @cached_property
    def limits(self) -> Limits:
        """The preprocessing limits derived from these settings."""
        return Limits(
            max_encoded_bytes=self.max_encoded_bytes,
            max_image_pixels=self.max_image_pixels,
            max_strokes=self.max_strokes,
            max_points=self.max_points,
        )
