"""Protocol v1 over real sockets against the local server (uvicorn on an ephemeral port) and, through
``ws_target``, against the Lambda handler behind the emulated API Gateway (``tests/realtime/conftest.py``).

Where the two differ by design (``docs/protocol.md``), the test asserts each side's behaviour: the local
server coalesces (latest wins, reply seqs increase), the gateway answers every frame, maybe out of order.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.inference import Predictor
from shared.inks import Ink, Strokes, fit_to_canvas
from shared.preprocess import StrokesFrame
from shared.settings import Settings
from tests.realtime.conftest import WsTarget
from tests.realtime.wsclient import progressive, recv, recv_until, send, snapshot
from tests.servers import run_server

pytestmark = pytest.mark.asyncio(loop_scope="function")


def one_per_digit(inks: list[Ink]) -> list[Ink]:
    seen: dict[int, Ink] = {}
    for ink in inks:
        seen.setdefault(ink.label, ink)
    return [seen[d] for d in range(10)]


@pytest.mark.data
async def test_pen_inks_replayed_frame_by_frame(
    ws_target: WsTarget, pen_inks_200: list[Ink], predictor: Predictor
) -> None:
    correct = 0
    async with connect(ws_target.ws_url) as ws:
        seq = 0
        for ink in one_per_digit(pen_inks_200):
            strokes = fit_to_canvas(ink, 200, 40, 40)
            sent = []
            for snap in progressive(strokes, 12):
                seq += 1
                sent.append(seq)
                await send(ws, snapshot(snap, seq))
            last = seq
            if ws_target.kind == "local":
                replies = await recv_until(ws, lambda m, last=last: m.get("seq") == last)
                seqs = [m["seq"] for m in replies]
                assert seqs == sorted(set(seqs)), "reply seqs strictly increase"
            else:
                replies = await recv_seqs(ws, set(sent))
                seqs = [m["seq"] for m in replies]
                assert sorted(seqs) == sent, "stateless: every frame is answered once"
            assert all(m["type"] == "prediction" for m in replies)
            final = max(replies, key=lambda m: m["seq"])
            expected = predictor.predict([StrokesFrame(strokes, 280, 280, 16)])[0]
            assert final["digit"] == expected.digit, "the WebSocket path equals the in-process core"
            assert sum(final["probabilities"]) == pytest.approx(1.0, abs=1e-9)
            correct += final["digit"] == ink.label
    assert correct >= 9, f"{correct}/10 digits right"


@pytest.mark.data
async def test_flood_is_coalesced_and_ping_jumps_the_queue(
    ws_target: WsTarget, pen_inks_200: list[Ink]
) -> None:
    strokes = fit_to_canvas(pen_inks_200[0], 200, 40, 40)
    snaps = progressive(strokes, 120)
    local = ws_target.kind == "local"
    async with connect(ws_target.ws_url) as ws:
        start = time.monotonic()
        for i, snap in enumerate(snaps, start=1):
            await send(ws, snapshot(snap, i))
            if i == 60:
                await send(ws, {"action": "ping"})
                ping_sent = time.monotonic()
        pong_at = None
        replies = []
        while True:
            msg = await recv(ws, 5)
            if msg["type"] == "pong":
                pong_at = time.monotonic()
                continue
            replies.append(msg)
            if msg["seq"] == 120 if local else (len(replies) == 120 and pong_at is not None):
                break
        elapsed = time.monotonic() - start
    seqs = [m["seq"] for m in replies]
    assert all(m["type"] == "prediction" for m in replies)
    assert pong_at is not None
    if local:
        assert elapsed < 2.0, f"last frame answered after {elapsed:.2f} s"
        assert len(replies) < 120, "frames were coalesced: fewer inferences than frames"
        assert seqs == sorted(set(seqs))
        assert pong_at - ping_sent < 1.0
    else:  # one invocation per frame: no coalescing, every frame answered, the highest seq included
        assert sorted(seqs) == list(range(1, 121)), "every frame is answered exactly once"
        assert elapsed < 15.0, f"120 invocations took {elapsed:.2f} s"
        assert pong_at - ping_sent < 5.0


async def test_parallel_connections_never_see_each_others_seq(ws_target: WsTarget) -> None:
    line = [[[140, 40], [140, 240]]]

    async def client(k: int) -> set[int]:
        base = (k + 1) * 1000
        async with connect(ws_target.ws_url) as ws:
            for i in range(1, 21):
                await send(ws, snapshot(line, base + i))
            replies = await recv_until(ws, lambda m: m.get("seq") == base + 20)
        return {m["seq"] for m in replies}

    results = await asyncio.gather(*(client(k) for k in range(5)))
    for k, seqs in enumerate(results):
        base = (k + 1) * 1000
        assert seqs and all(base < s <= base + 20 for s in seqs)


async def test_client_mistakes_get_error_frames_and_the_connection_stays_open(
    ws_target: WsTarget,
) -> None:
    local = ws_target.kind == "local"
    oversized = json.dumps({"action": "predict", "seq": 5, "image": "A" * (130 * 1024)})
    async with connect(ws_target.ws_url, max_size=None) as ws:
        cases = [
            ("not json", "invalid_json"),
            (json.dumps({"action": "dance"}), "unknown_action"),
            (json.dumps({"seq": 1}), "unknown_action"),
            (json.dumps({"action": "predict", "seq": 1}), "missing_field"),
            (json.dumps({"action": "predict", "seq": 2, "image": "@@@"}), "invalid_base64"),
            (json.dumps({"action": "predict", "seq": 3, "image": "aGVsbG8="}), "not_an_image"),
            (json.dumps(snapshot([[[1, "x"]]], 4)), "invalid_strokes"),
        ]
        if local:  # the gateway closes frames over 32 KB before the handler sees them (below)
            cases.append((oversized, "payload_too_large"))
        for raw, code in cases:
            await ws.send(raw)
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["error"]["code"] == code, (code, msg)
        await send(ws, snapshot([[[140, 40], [140, 240]]], 10))
        msg = await recv(ws)
        assert msg["type"] == "prediction" and msg["seq"] == 10
        await ws.send(b"\x00\x01binary")
        if local:
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["error"]["code"] == "invalid_json"
            await ws.send(b'{"action": "ping"}')  # valid JSON, but binary: still refused, as documented
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["error"]["code"] == "invalid_json"
        else:  # API Gateway rejects binary frames by closing with 1003
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1003
    if not local:  # a 130 KiB message is one frame over 32 KB: API Gateway closes with 1009
        async with connect(ws_target.ws_url, max_size=None) as ws:
            await ws.send(oversized)
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_blank_frame_is_no_digit(ws_target: WsTarget) -> None:
    async with connect(ws_target.ws_url) as ws:
        await send(ws, snapshot([], 1))
        msg = await recv(ws)
    assert msg == {**msg, "type": "prediction", "status": "no_digit", "digit": None, "probabilities": None}


async def test_letter_is_not_a_digit_with_probabilities_and_score(
    ws_target: WsTarget, letter_h: Strokes, predictor: Predictor
) -> None:
    async with connect(ws_target.ws_url) as ws:
        await send(ws, snapshot(letter_h, 1))
        msg = await recv(ws)
    expected = predictor.predict([StrokesFrame(letter_h, 280, 280, 16)])[0]
    assert msg == {
        **msg,
        "type": "prediction",
        "seq": 1,
        "status": "not_a_digit",
        "digit": None,
        "confidence": None,
    }
    assert msg["probabilities"] == pytest.approx(expected.probabilities, abs=1e-12)
    assert msg["not_a_digit_score"] == pytest.approx(expected.not_a_digit_score, abs=1e-12)
    assert msg["not_a_digit_score"] >= predictor.threshold


async def test_message_over_hard_cap_closes_with_1009(ws_target: WsTarget) -> None:
    # Local: the 1 MiB hard cap. API Gateway: its 32 KB frame limit.
    limit = ws_target.settings.ws_hard_max_bytes if ws_target.kind == "local" else 32 * 1024
    async with connect(ws_target.ws_url, max_size=None) as ws:
        await ws.send("x" * (limit + 10))
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def recv_seqs(ws: ClientConnection, seqs: set[int], timeout: float = 10.0) -> list[dict[str, Any]]:
    """Receive until a reply for every seq in ``seqs`` arrived (replies may come in any order)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    missing = set(seqs)
    while missing:
        msg = await recv(ws, max(deadline - time.monotonic(), 0.001))
        got.append(msg)
        missing.discard(msg.get("seq"))  # type: ignore[arg-type]
    return got


async def test_idle_connection_closes_with_1001(predictor: Predictor) -> None:
    settings = Settings(idle_timeout_s=0.3)
    with run_server(settings, predictor) as server:
        async with connect(server.ws_url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001


@pytest.mark.parametrize("deflate", [False, True])
async def test_permessage_deflate_only_when_configured(predictor: Predictor, deflate: bool) -> None:
    """The client offers permessage-deflate (websockets does by default); the server accepts it only
    when ``ws_per_message_deflate`` is set, and predictions work either way."""
    with run_server(Settings(ws_per_message_deflate=deflate), predictor) as server:
        async with connect(server.ws_url) as ws:
            assert ws.response is not None
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in extensions) is deflate
            await send(ws, snapshot([[[140, 40], [140, 240]]], seq=1))
            reply = await recv(ws)
            assert reply["type"] == "prediction" and reply["seq"] == 1 and reply["digit"] == 1
