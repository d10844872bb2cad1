"""Fuzzing the WebSocket message parser and the HTTP body parser over real sockets.

Every fuzzed input must get a well-formed answer (a prediction, a pong or an error frame with a known
code; a 2xx or a 4xx with ``{"error": {"code", "message"}}``), never a 5xx, a traceback or a dropped
connection. ``MNIST_LIVE_FUZZ_EXAMPLES`` sets the examples per test (CI: 1,000, derandomized so CI is
repeatable; ``bench/fuzz.sh``: 10,000, random).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from shared.errors import all_codes
from shared.inks import render_png
from tests.servers import run_server_process

EXAMPLES = int(os.environ.get("MNIST_LIVE_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=EXAMPLES <= 2000,
)
CODES = set(all_codes())
PNG = render_png([[[140, 40], [140, 240]]])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=10), kids, max_size=6),
    max_leaves=40,
)
points = st.lists(
    st.lists(
        st.one_of(st.integers(-(10**7), 10**7), st.floats(allow_nan=True, allow_infinity=True), json_scalars),
        min_size=0,
        max_size=4,
    ),
    max_size=12,
)
strokes = st.lists(points, max_size=5) | json_values
numbers = st.one_of(st.integers(-10, 10**7), st.floats(), json_scalars)
predict_like = st.fixed_dictionaries(
    {"action": st.sampled_from(["predict", "ping", "PREDICT", "", "draw"]) | json_scalars},
    optional={
        "seq": numbers,
        "strokes": strokes,
        "width": numbers,
        "height": numbers,
        "stroke_width": numbers,
        "mode": st.sampled_from(["digit", "number", "Number", ""]) | json_scalars,
        "image": st.text(max_size=60)
        | st.sampled_from(["data:image/png;base64,", "data:text/plain;base64,aGk="]),
    },
)
ws_messages = st.one_of(
    predict_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The server in its own process: hypothesis must not see server threads touch global state."""
    with run_server_process() as url:
        yield url


@pytest.fixture(scope="module")
def ws(server_url: str) -> Iterator[ClientConnection]:
    # no keepalive pings: websockets draws their payloads from the global random module, which hypothesis
    # watches during generation
    with connect(server_url.replace("http", "ws", 1) + "/ws", max_size=None, ping_interval=None) as conn:
        yield conn
        with contextlib.suppress(TimeoutError):
            while True:  # answers that arrived after their example's sentinel: check them too
                check_frame(json.loads(conn.recv(timeout=1)))


def check_frame(msg: dict[str, Any]) -> None:
    assert msg["type"] in ("prediction", "pong", "error")
    if msg["type"] == "error":
        assert msg["error"]["code"] in CODES
        assert 0 < len(msg["error"]["message"]) <= 300
    if msg["type"] == "prediction" and msg.get("mode") == "number":
        assert (msg["status"] == "ok") == bool(msg["digits"])
        for d in msg["digits"]:
            assert abs(sum(d["probabilities"]) - 1) < 1e-6 and len(d["bbox"]) == 4
    elif msg["type"] == "prediction" and msg["status"] == "ok":
        assert abs(sum(msg["probabilities"]) - 1) < 1e-6


@FUZZ
@given(raw=ws_messages)
def test_websocket_parser_fuzz(ws: ClientConnection, raw: str) -> None:
    ws.send(raw)
    # A sentinel: the pong proves the connection is open and that every answer to messages before it
    # was read; a prediction still in flight may arrive after the pong and is checked next time.
    ws.send('{"action": "ping"}')
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg == {"type": "pong"} and not raw.lstrip().startswith('{"action": "ping"'):
            break
        if msg != {"type": "pong"}:
            check_frame(msg)
        elif raw.lstrip().startswith('{"action": "ping"'):
            raw = ""  # the fuzzed message was itself a ping: wait for the sentinel's pong too


content_types = st.sampled_from(
    [
        "application/json",
        "image/png",
        "image/jpeg",
        "multipart/form-data; boundary=xyz",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
        "image/*; q=1",
    ]
)
bodies = st.one_of(
    predict_like.map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.binary(max_size=64).map(lambda b: PNG[: len(PNG) // 2] + b),
    st.just(PNG),
    st.binary(max_size=100).map(
        lambda b: (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            + b
            + b"\r\n--xyz--\r\n"
        )
    ),
)


@pytest.fixture(scope="module")
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=10) as c:
        yield c


@FUZZ
@given(body=bodies, ctype=content_types)
def test_http_body_parser_fuzz(http: httpx.Client, body: bytes, ctype: str) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = http.post("/predict", content=body, headers=headers)
    assert r.status_code < 500, r.text
    payload = r.json()
    if r.status_code == 200:
        assert payload["status"] in ("ok", "no_digit")
    else:
        assert 400 <= r.status_code < 500
        assert payload["error"]["code"] in CODES
        assert 0 < len(payload["error"]["message"]) <= 300
