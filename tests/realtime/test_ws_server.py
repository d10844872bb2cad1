"""Protocol v1 over real sockets against the local server (uvicorn on an ephemeral port)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.inference import Predictor
from shared.inks import Ink, fit_to_canvas
from shared.preprocess import StrokesFrame
from shared.settings import Settings
from tests.realtime.wsclient import progressive, recv, recv_until, send, snapshot
from tests.servers import LiveServer, run_server

pytestmark = pytest.mark.asyncio(loop_scope="function")


def one_per_digit(inks: list[Ink]) -> list[Ink]:
    seen: dict[int, Ink] = {}
    for ink in inks:
        seen.setdefault(ink.label, ink)
    return [seen[d] for d in range(10)]


@pytest.mark.data
async def test_pen_inks_replayed_frame_by_frame(
    live_server: LiveServer, pen_inks_200: list[Ink], predictor: Predictor
) -> None:
    correct = 0
    async with connect(live_server.ws_url) as ws:
        seq = 0
        for ink in one_per_digit(pen_inks_200):
            strokes = fit_to_canvas(ink, 200, 40, 40)
            sent = []
            for snap in progressive(strokes, 12):
                seq += 1
                sent.append(seq)
                await send(ws, snapshot(snap, seq))
            last = seq
            replies = await recv_until(ws, lambda m, last=last: m.get("seq") == last)
            seqs = [m["seq"] for m in replies]
            assert all(m["type"] == "prediction" for m in replies)
            assert seqs == sorted(set(seqs)), "reply seqs strictly increase"
            final = replies[-1]
            expected = predictor.predict([StrokesFrame(strokes, 280, 280, 16)])[0]
            assert final["digit"] == expected.digit, "the WebSocket path equals the in-process core"
            assert sum(final["probabilities"]) == pytest.approx(1.0, abs=1e-9)
            correct += final["digit"] == ink.label
    assert correct >= 9, f"{correct}/10 digits right"


@pytest.mark.data
async def test_flood_is_coalesced_and_ping_jumps_the_queue(
    live_server: LiveServer, pen_inks_200: list[Ink]
) -> None:
    strokes = fit_to_canvas(pen_inks_200[0], 200, 40, 40)
    snaps = progressive(strokes, 120)
    async with connect(live_server.ws_url) as ws:
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
            if msg["seq"] == 120:
                break
        elapsed = time.monotonic() - start
    assert elapsed < 2.0, f"last frame answered after {elapsed:.2f} s"
    assert len(replies) < 120, "frames were coalesced: fewer inferences than frames"
    assert [m["seq"] for m in replies] == sorted({m["seq"] for m in replies})
    assert pong_at is not None and pong_at - ping_sent < 1.0


async def test_parallel_connections_never_see_each_others_seq(live_server: LiveServer) -> None:
    line = [[[140, 40], [140, 240]]]

    async def client(k: int) -> set[int]:
        base = (k + 1) * 1000
        async with connect(live_server.ws_url) as ws:
            for i in range(1, 21):
                await send(ws, snapshot(line, base + i))
            replies = await recv_until(ws, lambda m: m.get("seq") == base + 20)
        return {m["seq"] for m in replies}

    results = await asyncio.gather(*(client(k) for k in range(5)))
    for k, seqs in enumerate(results):
        base = (k + 1) * 1000
        assert seqs and all(base < s <= base + 20 for s in seqs)


async def test_client_mistakes_get_error_frames_and_the_connection_stays_open(
    live_server: LiveServer,
) -> None:
    async with connect(live_server.ws_url, max_size=None) as ws:
        cases = [
            ("not json", "invalid_json"),
            (json.dumps({"action": "dance"}), "unknown_action"),
            (json.dumps({"seq": 1}), "unknown_action"),
            (json.dumps({"action": "predict", "seq": 1}), "missing_field"),
            (json.dumps({"action": "predict", "seq": 2, "image": "@@@"}), "invalid_base64"),
            (json.dumps({"action": "predict", "seq": 3, "image": "aGVsbG8="}), "not_an_image"),
            (json.dumps(snapshot([[[1, "x"]]], 4)), "invalid_strokes"),
            (json.dumps({"action": "predict", "seq": 5, "image": "A" * (130 * 1024)}), "payload_too_large"),
        ]
        for raw, code in cases:
            await ws.send(raw)
            msg = await recv(ws)
            assert msg["type"] == "error" and msg["error"]["code"] == code, (code, msg)
        await send(ws, snapshot([[[140, 40], [140, 240]]], 10))
        msg = await recv(ws)
        assert msg["type"] == "prediction" and msg["seq"] == 10
        await ws.send(b"\x00\x01binary")
        msg = await recv(ws)
        assert msg["type"] == "error" and msg["error"]["code"] == "invalid_json"


async def test_blank_frame_is_no_digit(live_server: LiveServer) -> None:
    async with connect(live_server.ws_url) as ws:
        await send(ws, snapshot([], 1))
        msg = await recv(ws)
    assert msg == {**msg, "type": "prediction", "status": "no_digit", "digit": None, "probabilities": None}


async def test_message_over_hard_cap_closes_with_1009(live_server: LiveServer) -> None:
    async with connect(live_server.ws_url, max_size=None) as ws:
        await ws.send("x" * (live_server.settings.ws_hard_max_bytes + 10))
        with pytest.raises(ConnectionClosed) as info:
            await recv(ws)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_idle_connection_closes_with_1001(predictor: Predictor) -> None:
    settings = Settings(idle_timeout_s=0.3)
    with run_server(settings, predictor) as server:
        async with connect(server.ws_url) as ws:
            with pytest.raises(ConnectionClosed) as info:
                await recv(ws, 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1001
