"""``mnist-live predict``: top-3 output for images and inks, in-process and over HTTP; one-line errors."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from realtime.tools import cli
from shared.inks import Strokes, render_png
from shared.settings import REPO_ROOT
from tests.servers import LiveServer

SEVEN = [[[70, 50], [210, 50], [120, 240]]]


@pytest.fixture(scope="module")
def seven_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("img") / "seven.png"
    path.write_bytes(render_png(SEVEN))
    return path


@pytest.fixture(scope="module")
def seven_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two inks in canvas px (y down), the second a 7."""
    path = tmp_path_factory.mktemp("ink") / "inks.jsonl"
    lines = [
        {"label": 1, "writer": "t", "strokes": [[[0, 0], [0, 100]]], "source": "test", "y_up": False},
        {"label": 7, "writer": "t", "strokes": SEVEN, "source": "test", "y_up": False},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def predict(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["predict", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_top3(out: str, digit: int) -> None:
    lines = out.splitlines()
    assert len(lines) == 4, out
    assert lines[0].split(": ")[1].startswith(str(digit))
    probs = []
    for rank, line in enumerate(lines[1:], start=1):
        parts = line.split()
        assert parts[0] == f"{rank}." and parts[3] == "%"
        probs.append(float(parts[2].lstrip("<")))
    assert lines[1].split()[1] == str(digit)
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.0001


def test_png_in_process(seven_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = predict(capsys, str(seven_png))
    assert code == 0 and err == ""
    assert out.startswith("seven.png: 7\n")
    assert_top3(out, 7)


def test_jsonl_ink_in_process(seven_jsonl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = predict(capsys, str(seven_jsonl), "--index", "1")
    assert code == 0 and out.startswith("inks.jsonl: 7 (recorded label 7)")
    assert_top3(out, 7)
    code, out, _ = predict(capsys, str(seven_jsonl))
    assert code == 0 and out.startswith("inks.jsonl: 1 (recorded label 1)")


@pytest.mark.data
def test_unipen_ink_y_up(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = predict(capsys, str(data_dir / "pen" / "unipen1a_dev_200.jsonl"), "--json")
    body = json.loads(out)
    assert code == 0 and body["label"] == 0 and body["index"] == 0
    assert body["top_k"][0]["digit"] == body["digit"]
    assert len(body["top_k"]) == 3 and sum(body["probabilities"]) == pytest.approx(1.0)


def test_json_over_http_equals_in_process(
    live_server: LiveServer, seven_png: Path, seven_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in ([str(seven_png)], [str(seven_jsonl), "--index", "1"]):
        code, local, _ = predict(capsys, *argv, "--json")
        assert code == 0
        code, remote, _ = predict(capsys, *argv, "--json", "--url", live_server.http_url)
        assert code == 0
        a, b = json.loads(local), json.loads(remote)
        assert a["digit"] == b["digit"] == 7
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_letter_is_not_a_digit_in_text_and_json(
    letter_h: Strokes, live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = _write(tmp_path / "h.png", render_png(letter_h))
    code, out, err = predict(capsys, str(png))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert re.fullmatch(r"h\.png: not a digit \(\d+\.\d % sure\); closest digits:", lines[0]), lines[0]
    assert len(lines) == 4 and [line.split()[0] for line in lines[1:]] == ["1.", "2.", "3."]
    for argv in ([str(png), "--json"], [str(png), "--json", "--url", live_server.http_url]):
        code, out, _ = predict(capsys, *argv)
        body = json.loads(out)
        assert code == 0 and body["status"] == "not_a_digit"
        assert body["digit"] is None and body["confidence"] is None and 0 < body["not_a_digit_score"] <= 1
        assert len(body["top_k"]) == 3


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("make", "extra", "message"),
    [
        (lambda d: d / "missing.png", [], "cannot read"),
        (lambda d: d / "missing.jsonl", [], "cannot read"),
        (lambda d: _write(d / "garbage.png", b"not an image at all"), [], "not_an_image"),
        (lambda d: _write(d / "empty.png", b""), [], "empty_image"),
        (lambda d: _write(d / "bad.jsonl", b"{not json\n"), [], "is not an ink recording"),
        (
            lambda d: _write(d / "one.jsonl", b'{"label":1,"strokes":[[[0,0],[0,9]]]}\n'),
            ["--index", "3"],
            "no index 3",
        ),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, extra: list[str], message: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, out, err = predict(capsys, str(path), *extra)
    assert code == 1 and out == ""
    assert err.startswith("mnist-live predict: error: ") and message in err, err
    assert err.count("\n") == 1, err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_server_errors_are_one_line(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _write(tmp_path / "garbage.png", b"GIF89a-but-not-really")
    code, _, err = predict(capsys, str(bad), "--url", live_server.http_url)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("mnist-live predict: error: server answered 4"), err
    url = f"http://127.0.0.1:{closed_port()}"
    code, _, err = predict(capsys, str(bad), "--url", url)
    assert (
        code == 1
        and err == f"mnist-live predict: error: cannot connect to {url}/predict: connection refused\n"
    )


def test_console_script_exit_code_and_no_traceback(tmp_path: Path) -> None:
    """Through a real process: the one line on stderr, exit 1, no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "realtime.tools.cli", "predict", str(tmp_path / "nope.png")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("mnist-live predict: error: cannot read") and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
