"""Input limits checked before any large allocation (decompression bombs, floods)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one frame of input.

    Attributes:
        max_encoded_bytes: Largest image in bytes after base64 decoding (default 1 MiB).
        max_image_pixels: Largest declared width x height, read from the image header before decoding
            (default 4096 x 4096 = 16,777,216 px).
        max_strokes: Most strokes per frame (default 64).
        max_points: Most points over all strokes of a frame (default 4,096).
        max_coordinate: Largest absolute coordinate or canvas side, canvas px (default 1e6).
    """

    max_encoded_bytes: int = 1 << 20
    max_image_pixels: int = 4096 * 4096
    max_strokes: int = 64
    max_points: int = 4096
    max_coordinate: float = 1e6


DEFAULT_LIMITS = Limits()
