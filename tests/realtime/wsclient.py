"""Small async helpers for talking protocol v1 over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection

from shared.inks import drawn_prefix


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), "the server must send text frames"
    out: dict[str, Any] = json.loads(raw)
    return out


async def recv_until(ws: ClientConnection, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Receive messages until ``predicate(message)`` holds; return all received, the match last."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(deadline - time.monotonic(), 0.001))
        got.append(msg)
        if predicate(msg):
            return got


def snapshot(
    strokes: list[Any], seq: int, width: int = 280, height: int = 280, sw: float = 16
) -> dict[str, Any]:
    return {
        "action": "predict",
        "seq": seq,
        "strokes": strokes,
        "width": width,
        "height": height,
        "stroke_width": sw,
    }


def progressive(strokes: list[list[list[float]]], frames: int) -> list[list[list[list[float]]]]:
    """Cut an ink into ``frames`` growing snapshots, as a page sends while the pen moves."""
    total = sum(len(s) for s in strokes)
    return [drawn_prefix(strokes, max(1, round(total * k / frames))) for k in range(1, frames + 1)]
