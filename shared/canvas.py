"""The page's drawing canvas: the defaults every snapshot is drawn, replayed and evaluated with.

Source: ``site/app.js`` (``SIZE``, ``STROKE_WIDTH``); the page tells the server these values with each
frame, so they are defaults, not assumptions.
"""

CANVAS_PX = 280
"""The page's logical canvas side, px: its height, and its width in digit mode."""

PEN_WIDTH_PX = 16.0
"""The page's pen diameter, px on the :data:`CANVAS_PX` canvas."""
