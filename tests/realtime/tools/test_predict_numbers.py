"""``mnist-live predict --number``: a number from inks written side by side or from an image, in-process
and over HTTP; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.compose import side_by_side
from shared.inks import Ink, render_png
from tests.realtime.tools.test_predict_cli import SEVEN, predict
from tests.servers import LiveServer

ONE = [[[0, 0], [0, 100]]]


@pytest.fixture(scope="module")
def inks_jsonl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 and a 7 in canvas px (y down)."""
    path = tmp_path_factory.mktemp("ink") / "inks.jsonl"
    lines = [
        {"label": 1, "writer": "t", "strokes": ONE, "source": "test", "y_up": False},
        {"label": 7, "writer": "t", "strokes": SEVEN, "source": "test", "y_up": False},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture(scope="module")
def number_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """'717' written side by side, as the page's wide canvas would export it."""
    seven, one = Ink(7, "t", SEVEN, y_up=False), Ink(1, "t", ONE, y_up=False)
    number = side_by_side([seven, one, seven])
    path = tmp_path_factory.mktemp("img") / "number.png"
    path.write_bytes(render_png(number.strokes, number.width, number.height, number.pen))
    return path


def test_inks_side_by_side_are_read_as_a_number(inks_jsonl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = predict(capsys, str(inks_jsonl), "--number", "--index", "1,0,1")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "inks.jsonl: 717 (recorded digits 717)"
    assert len(lines) == 4
    assert [line.split()[1] for line in lines[1:]] == ["7", "1", "7"]
    assert lines[2].endswith("strokes [1]")


def test_a_number_image_is_read_as_a_number(number_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = predict(capsys, str(number_png), "--number", "--json")
    assert code == 0
    reply = json.loads(out)
    assert reply["mode"] == "number" and reply["number"] == "717"
    assert [d["strokes"] for d in reply["digits"]] == [None, None, None]
    boxes = [d["bbox"] for d in reply["digits"]]
    assert boxes == sorted(boxes), "left to right"


def test_number_json_over_http_equals_in_process(
    live_server: LiveServer, inks_jsonl: Path, number_png: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in ([str(number_png)], [str(inks_jsonl), "--index", "1,0,1"]):
        code, local, _ = predict(capsys, *argv, "--number", "--json")
        assert code == 0
        code, remote, _ = predict(capsys, *argv, "--number", "--json", "--url", live_server.http_url)
        assert code == 0
        a, b = json.loads(local), json.loads(remote)
        assert a["number"] == b["number"] == "717"
        for x, y in zip(a["digits"], b["digits"], strict=True):
            assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-6)
            assert x["strokes"] == y["strokes"] and x["bbox"] == pytest.approx(y["bbox"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--index", "0,1"], "several --index values need --number"),
        (["--number", "--index", "0,x"], "--index must be an integer"),
        (["--number", "--index", "0,-1"], "--index must be >= 0"),
        (["--number", "--index", "0,5"], "no index 5"),
    ],
)
def test_number_errors_are_one_line(
    inks_jsonl: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, out, err = predict(capsys, str(inks_jsonl), *extra)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err, err
