"""The rules every frame form shares: MNIST's box and field, and when ink is blank or too thin.

:mod:`shared.preprocess` (images) and :mod:`shared.strokes` (strokes) apply them, so a stroke list and the
PNG the browser would render from it are treated alike; the blank and thin-pen rules are described in
:mod:`shared.preprocess`.
"""

from __future__ import annotations

from shared import kernels
from shared.canvas import CANVAS_PX, PEN_WIDTH_PX

MNIST_BOX = 20
"""Side of the box the digit's longer side is scaled to, px (LeCun et al. 1998)."""
MNIST_SIDE = kernels.MNIST_SIDE
"""Side of the field the box is centred in by centre of mass, px: 28 (LeCun et al. 1998)."""
NOISE_FLOOR = 0.15
"""Contrast (0..1) below which a pixel counts as background: above JPEG ringing (~0.05) and noise."""
MIN_PEAK_CONTRAST = 0.3
"""A frame whose strongest contrast (0..1) is below this is faint noise, not a digit."""
MIN_INK_PIXELS = 5
"""A frame with fewer ink pixels than this is a speck."""
MAX_SPECK_PX = 3.0
"""Ink whose bounding box is at most this many px (canvas px) on its longer side is a speck."""
MIN_STROKE_PX = 2.0
"""Thinnest stroke the model is shown, px in the 28x28 field (its 20 px box): MNIST's 25th percentile.

Measured over the 60,000 MNIST training images as ink mass (sum of levels / 255) over skeleton length
(scikit-image ``skeletonize`` of levels >= 128, 8-connected steps): 1st percentile 1.26 px, 5th 1.50,
10th 1.66, 25th 1.97, median 2.38, 95th 3.96, 99th 5.07 (a capsule of width ``p`` drawn by
:func:`shared.strokes.rasterize_strokes` measures ``p + 0.05`` this way). MNIST's peak level is full
(>= 254/255 in every image); 2 px is also the thinnest round pen whose coverage ``clip(r + 0.5 - d, 0, 1)``
reaches 1.0 at a pixel centre wherever the line lies (``d <= 0.5`` needs ``r >= 1``)."""
REDRAW_BELOW_PX = 1.0
"""Image strokes estimated thinner than this (px of the box) are redrawn (:func:`shared.preprocess._redraw`):
a line under one pixel wide is averaged into faint pixels whose contrast alone cannot be made a stroke."""
DEFAULT_STROKE_FRACTION = PEN_WIDTH_PX / CANVAS_PX
"""Default stroke width as a fraction of the canvas's longer side: 16 px on the page's 280 px canvas."""
TAP_FRACTION = 2 * DEFAULT_STROKE_FRACTION
"""Ink whose bounding box's longer side is at most this fraction of the canvas's shorter side is a tap:
two widths of the page's pen (:data:`DEFAULT_STROKE_FRACTION`; 32 px on its 280 px canvas). A digit
is at least about four of its stroke widths across (MNIST's 20 px box over its widest strokes, 5.1 px
at the 99th percentile of :data:`MIN_STROKE_PX`'s measurement); the evaluation draws digits from 90 px
up on the 280 px canvas (32 % of it, ``model.data.PEN_BOX_RANGE``), training from 30 % of the canvas."""
MIN_VISIBLE_PX = 1e-3
"""Ink narrower than this (canvas px) on the canvas is invisible: blank (also keeps float32 finite)."""
