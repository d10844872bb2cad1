"""The one settings class of mnist-live, read from ``MNIST_LIVE_*`` environment variables.

Every adapter (local server, Lambda handlers, CLI, tests) builds one :class:`Settings` at start-up and
passes it down; nothing else reads the environment.

A frozen dataclass validated by msgspec (``msgspec.convert``, lax mode: ``"8000"`` reads as an int),
filled from the environment the way pydantic-settings' ``BaseSettings`` does for these fields (prefix
``MNIST_LIVE_``, names case-insensitive, list fields as JSON, values given to the constructor first).
Neither pydantic nor pydantic-settings: on this machine importing pydantic and building a first model
class costs about 145 ms of every WebSocket Lambda cold start, pydantic-settings 120-210 ms more; msgspec
costs about 6 ms (``bench/README.md``, "Lambda cold start").
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from shared.limits import Limits

ENV_PREFIX = "MNIST_LIVE_"
"""Prefix of every setting's environment variable (``MNIST_LIVE_PORT`` sets ``port``)."""

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout (or site-packages) folder holding ``shared/``, ``realtime/`` and ``model/``."""

DEFAULT_MODEL_PATH = REPO_ROOT / "model" / "mnist_cnn.onnx"
DEFAULT_STROKES_MODEL_PATH = REPO_ROOT / "model" / "strokes_cnn.onnx"
"""The shipped model, packaged with the wheel (``model/mnist_cnn.onnx``)."""

DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
"""The read-only data folder beside the checkout (MNIST IDX files, UNIPEN pen inks)."""


class InvalidSetting(ValueError):
    """A setting's value (given or from the environment) is invalid.

    Attributes:
        field: The setting's name (``port``); its variable is ``MNIST_LIVE_`` + the name in upper case.
        reason: One sentence, e.g. ``Expected `int` <= 65535``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Secret:
    """A string kept out of reprs and logs (shown as ``'**********'``), like pydantic's ``SecretStr``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The string itself."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, init=False)
class Settings:
    """All configuration, validated at start-up. Environment prefix ``MNIST_LIVE_``.

    ``Settings(**values)``: each field from ``values``, else from ``MNIST_LIVE_<FIELD>`` (any case; list
    fields as JSON), else its default. Byte sizes are bytes, times are seconds, rates are per second.
    Frozen: assigning a field raises ``dataclasses.FrozenInstanceError``.

    Raises:
        InvalidSetting: a value (given or from the environment) is invalid; the first one found, named.
    """

    # Core: model and input limits.
    model_path: Annotated[
        Path, Meta(description="The image model: ONNX file, input (N,1,28,28) float32 (image frames).")
    ] = DEFAULT_MODEL_PATH
    strokes_model_path: Annotated[
        Path,
        Meta(description="The strokes model: ONNX file, input (N,7,28,28) float32 (strokes frames)."),
    ] = DEFAULT_STROKES_MODEL_PATH
    intra_op_num_threads: Annotated[int, Meta(ge=1, le=64, description="onnxruntime intra-op threads.")] = 1
    inference_threads: Annotated[
        int, Meta(ge=1, le=64, description="Batching inference workers per process.")
    ] = 2
    inference_max_batch: Annotated[int, Meta(ge=1, le=256, description="Most frames per model call.")] = 4
    max_encoded_bytes: Annotated[int, Meta(ge=1024, description="Largest decoded image, bytes.")] = 1 << 20
    max_image_pixels: Annotated[int, Meta(ge=1024, description="Largest declared width x height.")] = (
        4096 * 4096
    )
    max_strokes: Annotated[int, Meta(ge=1, description="Most strokes in one frame.")] = 64
    max_points: Annotated[int, Meta(ge=1, description="Most points over all strokes of one frame.")] = 4096
    data_dir: Annotated[Path, Meta(description="MNIST and pen data (tests, training only).")] = (
        DEFAULT_DATA_DIR
    )

    # Local server.
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8000
    http_max_body_bytes: Annotated[int, Meta(ge=1024, description="Largest POST /predict body.")] = 1 << 20
    http_body_timeout_s: Annotated[
        float, Meta(gt=0, description="Longest wait for each body chunk (408).")
    ] = 10.0
    max_concurrency: Annotated[
        int, Meta(ge=1, description="Open HTTP+WebSocket connections (503 above).")
    ] = 2000
    ws_max_message_bytes: Annotated[int, Meta(ge=1024, description="API Gateway's message limit.")] = (
        128 * 1024
    )
    ws_hard_max_bytes: Annotated[int, Meta(ge=1024, description="Above this the server closes (1009).")] = (
        1 << 20
    )
    idle_timeout_s: Annotated[float, Meta(gt=0, description="Idle WebSocket close (1001), like API GW.")] = (
        600.0
    )
    rate_limit_fps: Annotated[float, Meta(gt=0, description="Frames per second per connection.")] = 120.0
    max_connections: Annotated[int, Meta(ge=1, description="Concurrent WebSockets; beyond: close 1013.")] = (
        1000
    )
    send_queue_frames: Annotated[int, Meta(ge=1, description="Outgoing frames buffered per connection.")] = 64
    slow_consumer_timeout_s: Annotated[float, Meta(gt=0, description="Blocked sender closes (1008).")] = 10.0
    ws_per_message_deflate: Annotated[
        bool,
        Meta(description="Offer permessage-deflate (RFC 7692); off: replies are ~400 B, CPU matters more."),
    ] = False

    # Access control, enforced identically locally and on Lambda.
    auth_token: Annotated[Secret | None, Meta(description="Bearer / ?token= required when set.")] = None
    allowed_origins: Annotated[
        list[str], Meta(description="Extra allowed Origins; same origin and localhost are always allowed.")
    ] = field(default_factory=list)

    # Logging (every adapter).
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        Meta(description="Least severe level logged (the standard library's level names, any case)."),
    ] = "INFO"

    def __init__(self, **values: Any) -> None:
        """Validate ``values`` over the environment over the defaults (see the class docstring)."""
        merged = {**_environment(), **values}
        if isinstance(merged.get("log_level"), str):
            merged["log_level"] = merged["log_level"].upper()
        try:
            valid = msgspec.convert(merged, type(self), strict=False, dec_hook=_decode)
        except msgspec.ValidationError as exc:
            reason, _, where = str(exc).rpartition(" - at `$.")
            name = where.rstrip("`").split("[", 1)[0].split(".", 1)[0]
            raise InvalidSetting(name, reason or str(exc)) from None
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, getattr(valid, f.name))

    @cached_property
    def limits(self) -> Limits:
        """The preprocessing limits derived from these settings."""
        return Limits(
            max_encoded_bytes=self.max_encoded_bytes,
            max_image_pixels=self.max_image_pixels,
            max_strokes=self.max_strokes,
            max_points=self.max_points,
        )


def _environment() -> dict[str, Any]:
    """The settings given as ``MNIST_LIVE_*`` variables (list fields decoded from JSON when they parse)."""
    environ = {k.lower(): v for k, v in os.environ.items() if k.upper().startswith(ENV_PREFIX)}
    found: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = environ.get(f"{ENV_PREFIX}{f.name}".lower())
        if raw is None:
            continue
        if f.name == "allowed_origins":
            try:
                found[f.name] = json.loads(raw)
            except ValueError:
                found[f.name] = raw  # left to validation, which names the field
        else:
            found[f.name] = raw
    return found


def _decode(kind: type, value: Any) -> Any:
    """The msgspec hook for the types it does not know: paths and secrets, from strings."""
    if kind is Path and isinstance(value, str | os.PathLike):
        return Path(value)
    if kind is Secret and isinstance(value, str | Secret):
        return value if isinstance(value, Secret) else Secret(value)
    raise ValueError(f"Expected `{'str' if kind is Secret else 'path'}`, got `{type(value).__name__}`")
