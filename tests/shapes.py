"""Drawings that are not digits, on the page's 280 x 280 canvas (px, y down)."""

from __future__ import annotations

from shared.inks import Strokes


def _line(x0: float, y0: float, x1: float, y1: float, n: int = 12) -> list[list[float]]:
    return [[x0 + (x1 - x0) * i / (n - 1), y0 + (y1 - y0) * i / (n - 1)] for i in range(n)]


LETTER_H: Strokes = [_line(80, 50, 80, 230), _line(200, 50, 200, 230), _line(80, 140, 200, 140)]
"""The capital letter H in three strokes, as a person draws it: left bar, right bar, crossbar."""
