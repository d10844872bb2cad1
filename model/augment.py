"""Augmentation that mirrors drawing on a canvas, ending in the product's own normalization.

* MNIST images: random affine (rotation, shear, aspect), smooth elastic distortion and stroke thickness
  (grey-level dilation or erosion) are applied to a ~1.75x upsampled copy, batched with torch, then every
  image is re-normalized by :func:`shared.preprocess.normalize`, exactly as serving normalizes a canvas.
* Pen inks: the same kinds of distortion are applied to the points, the ink is placed at a random size
  and position on a random canvas with a random pen width, and rasterized by
  :func:`shared.preprocess.rasterize_strokes`, the serving path for strokes. Some zeros get a slash or
  bar stroke (slashed zeros are common in handwriting, nearly absent from MNIST and the training writers),
  and in half of the multi-stroke inks each stroke is moved a little on its own (writers differ in where
  they put one stroke relative to the others).

The network therefore only ever sees tensors that serving can produce.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from shared.canvas import CANVAS_PX
from shared.inks import Ink
from shared.preprocess import normalize, rasterize_strokes, strokes_planes

UPSAMPLED = 64
"""Side of the upsampled field MNIST images are distorted in, px (about 1.75x the image)."""
FIELD = 1.3
"""The upsampled field covers this many times the 28 px image, so rotated digits are never cut."""
MAX_ROTATION_DEG = 15.0
MAX_SHEAR = 0.3
MAX_LOG_ASPECT = 0.15
"""Aspect change: x and y scales are exp(U(-a, a)) each."""
MAX_ELASTIC = 0.08
"""Elastic distortion strength: the 4x4 control displacements are Gaussian with a standard deviation
drawn from U(0, MAX_ELASTIC / 2) of the distortion field (MNIST: 1.3x the image; pen: the ink's longer
side)."""
CLEAN_FRACTION = 0.1
"""Share of MNIST samples that are the plain normalized image (exactly what serving makes of it)."""
PEN_PLAIN_FRACTION = 0.2
"""Share of pen samples placed as in evaluation, without any distortion."""
SLASHED_ZERO_FRACTION = 0.25
"""Share of distorted pen zeros given a slash (diagonal or horizontal), a common way to write 0."""
STROKE_JITTER_FRACTION = 0.5
"""Share of distorted multi-stroke pen inks whose strokes are each moved a little on their own."""
STROKE_JITTER_SHIFT = 0.04
"""Standard deviation of each stroke's own shift, as a fraction of the ink's longer side."""
STROKE_JITTER_ROTATION_DEG = 8.0
STROKE_JITTER_LOG_SCALE = 0.1
"""Each jittered stroke turns by U(-8, 8) degrees and scales by exp(U(-0.1, 0.1)) about its centre."""


def _random_linear(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """``(n, 2, 2)`` random rotation x shear x aspect matrices."""
    angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, n))
    shear = rng.uniform(-MAX_SHEAR, MAX_SHEAR, n)
    sx, sy = np.exp(rng.uniform(-MAX_LOG_ASPECT, MAX_LOG_ASPECT, (2, n)))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    shr = np.zeros((n, 2, 2))
    shr[:, 0, 0] = shr[:, 1, 1] = 1
    shr[:, 0, 1] = shear
    scale = np.zeros((n, 2, 2))
    scale[:, 0, 0], scale[:, 1, 1] = sx, sy
    out: npt.NDArray[np.float64] = rot @ shr @ scale
    return out


def augment_mnist(
    images: npt.NDArray[np.uint8], clean: npt.NDArray[np.float32], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Distort a batch of MNIST digits and normalize them as serving would.

    Args:
        images: ``(B, 28, 28)`` uint8 raw MNIST images (white on black).
        clean: ``(B, 28, 28)`` float32, ``normalize(images[i])`` (used for clean samples and fallbacks).
        rng: Seeded generator; the batch is a pure function of its state.

    Returns:
        ``(B, 28, 28)`` float32 in [0, 1], each the output of :func:`shared.preprocess.normalize`.
    """
    import torch  # here, not at the top: augment_pen, which evaluation uses, needs only numpy
    import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

    n = len(images)
    linear = _random_linear(rng, n) * FIELD  # output field -> input coordinates
    theta = torch.from_numpy(np.concatenate([linear, np.zeros((n, 2, 1))], axis=2)).float()
    grid = F.affine_grid(theta, [n, 1, UPSAMPLED, UPSAMPLED], align_corners=False)
    amplitude = rng.uniform(0, MAX_ELASTIC, (n, 1, 1, 1)) * 2  # normalized coordinates span 2
    control = torch.from_numpy(rng.standard_normal((n, 2, 4, 4)) * amplitude / 2).float()
    warp = F.interpolate(control, size=(UPSAMPLED, UPSAMPLED), mode="bilinear", align_corners=True)
    grid = grid + warp.permute(0, 2, 3, 1)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).div_(255).unsqueeze(1)
    big = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Thickness: 0 thinner (half-way to a 3x3 erosion), 1 keep, 2 dilate 3x3, 3 dilate 5x5.
    choice = rng.choice(4, size=n, p=[0.15, 0.45, 0.25, 0.15])
    for kind in (0, 2, 3):
        idx = torch.from_numpy(np.flatnonzero(choice == kind))
        if len(idx) == 0:
            continue
        part = big[idx]
        if kind == 0:
            part = (part - F.max_pool2d(-part, 3, 1, 1)) / 2
        else:
            part = F.max_pool2d(part, 2 * kind - 1, 1, kind - 1)
        big[idx] = part
    levels = big.squeeze(1).clamp_(0, 1).numpy()
    keep_clean = rng.random(n) < CLEAN_FRACTION
    out = np.empty((n, 28, 28), dtype=np.float32)
    for i in range(n):
        digit = None if keep_clean[i] else normalize(levels[i])
        out[i] = clean[i] if digit is None else digit
    return out


def _elastic_points(p: npt.NDArray[np.float64], rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Displace points (unit box around 0) by a smooth random field (bilinear 4x4 control grid)."""
    amplitude = rng.uniform(0, MAX_ELASTIC)
    control = rng.standard_normal((2, 4, 4)) * amplitude / 2
    u = np.clip((p + 0.75) / 1.5 * 3, 0, 3 - 1e-9)  # control points span [-0.75, 0.75]
    i, j = u.astype(int).T
    f = u - np.floor(u)
    fx, fy = f[:, 0], f[:, 1]
    d = (
        control[:, j, i] * (1 - fx) * (1 - fy)
        + control[:, j, i + 1] * fx * (1 - fy)
        + control[:, j + 1, i] * (1 - fx) * fy
        + control[:, j + 1, i + 1] * fx * fy
    )
    moved: npt.NDArray[np.float64] = p + d.T
    return moved


def _jitter_strokes(
    strokes: list[npt.NDArray[np.float64]], rng: np.random.Generator
) -> list[npt.NDArray[np.float64]]:
    """Move each stroke (unit box around 0) by its own small rotation, scale and shift.

    Writers differ in where they put a stroke relative to the others (a 5's bar touching or floating,
    a 4's open or closed top, a 7's crossbar), which one affine over the whole ink never changes.
    """
    out = []
    for s in strokes:
        angle = np.deg2rad(rng.uniform(-STROKE_JITTER_ROTATION_DEG, STROKE_JITTER_ROTATION_DEG))
        scale = math.exp(rng.uniform(-STROKE_JITTER_LOG_SCALE, STROKE_JITTER_LOG_SCALE))
        c, si = math.cos(angle) * scale, math.sin(angle) * scale
        centre = s.mean(axis=0)
        shift = rng.normal(0, STROKE_JITTER_SHIFT, 2)
        out.append((s - centre) @ np.array([[c, si], [-si, c]]) + centre + shift)
    return out


def _slash(
    lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64], rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """A straight stroke through the middle of the box ``lo``-``hi`` (y down): a zero's slash or bar."""
    size = hi - lo
    centre = (lo + hi) / 2 + rng.uniform(-0.08, 0.08, 2) * size
    # 60 %: a "/" from lower left to upper right; else a horizontal bar.
    angle = np.deg2rad(rng.uniform(15, 75) if rng.random() < 0.6 else rng.uniform(-15, 15))
    direction = np.array([math.cos(angle), -math.sin(angle)])  # y down: positive angle goes up
    half = 0.5 * rng.uniform(1.0, 2.2) * float(np.hypot(*(size * np.abs(direction)))) + 1e-9
    t = np.linspace(-half, half, 12)[:, None]
    line: npt.NDArray[np.float64] = centre + t * direction
    return line


def augment_pen(ink: Ink, rng: np.random.Generator, motion: bool = False) -> npt.NDArray[np.float32] | None:
    """Distort a pen ink, draw it on a random canvas and rasterize it as serving would.

    Args:
        ink: The recording (any units, ``ink.y_up`` respected).
        rng: Seeded generator.
        motion: Return the strokes model's input (raster and motion planes) instead of the raster.

    Returns:
        ``(28, 28)`` float32 from :func:`shared.preprocess.rasterize_strokes`, or with ``motion``
        ``(7, 28, 28)`` float32 from :func:`shared.preprocess.strokes_planes`; ``None`` if blank.
    """
    strokes = [np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes]
    if ink.y_up:
        strokes = [s * (1.0, -1.0) for s in strokes]
    pts = np.concatenate(strokes)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, extent = (lo + hi) / 2, max(float((hi - lo).max()), 1e-9)
    plain = rng.random() < PEN_PLAIN_FRACTION
    if not plain and ink.label == 0 and rng.random() < SLASHED_ZERO_FRACTION:
        strokes = [*strokes, _slash(lo, hi, rng)]
    linear = np.eye(2) if plain else _random_linear(rng, 1)[0]
    moved = []
    for s in strokes:
        p = ((s - centre) / extent) @ linear.T
        moved.append(p if plain else _elastic_points(p, rng))
    if not plain and len(moved) > 1 and rng.random() < STROKE_JITTER_FRACTION:
        moved = _jitter_strokes(moved, rng)
    if plain:
        width = height = float(CANVAS_PX)
        box = rng.uniform(90, 230)
        pen = rng.uniform(12, 24)
    else:
        width = height = rng.uniform(200, 600)
        if rng.random() < 0.3:
            height = width * math.exp(rng.uniform(-0.4, 0.4))
        box = rng.uniform(0.3, 0.85) * min(width, height)
        pen = rng.uniform(0.035, 0.1) * max(width, height)
    allp = np.concatenate(moved)
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    scale = box / max(float((hi - lo).max()), 1e-9)
    size = (hi - lo) * scale
    offset = np.array([rng.uniform(0, max(width - size[0], 0)), rng.uniform(0, max(height - size[1], 0))])
    canvas = [((p - lo) * scale + offset).tolist() for p in moved]
    return (strokes_planes if motion else rasterize_strokes)(canvas, width, height, pen)
