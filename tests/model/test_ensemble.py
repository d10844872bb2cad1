"""Building the strokes model from several trained strokes files (needs the ``train`` extra)."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from tests.onnx_models import constant_model, one_hot

pytest.importorskip("torch")

from model.ensemble import EnsembleError, main, member_configs, provenance
from model.metadata import dirty_files
from model.recalibrate import main as recalibrate_main
from model.train import Config


def _member(tmp_path: Path, name: str, **config: object) -> Path:
    meta = {
        "not_a_digit_threshold": "0.5",
        "config": json.dumps({"seed": 0, "form": "strokes"} | config),
        "train_command": f"python -m model.train --form strokes --out {name}",
    }
    return constant_model(tmp_path, one_hot(3), meta, 7, name)


def test_members_trained_on_the_same_splits_are_accepted(tmp_path: Path) -> None:
    first = _member(tmp_path, "a.onnx")
    second = _member(tmp_path, "b.onnx", seed=1, split_seed=0)
    configs, commands = member_configs([first, second])
    assert [c["seed"] for c in configs] == [0, 1]
    assert commands[1].endswith("b.onnx")


def test_members_trained_on_different_splits_are_refused(tmp_path: Path) -> None:
    # Seed 1 without --split-seed 0 leaves other writers out: the first member's calibration writers
    # would be the second one's training writers.
    with pytest.raises(EnsembleError, match="split"):
        member_configs([_member(tmp_path, "a.onnx"), _member(tmp_path, "b.onnx", seed=1)])


def test_an_image_model_is_not_a_member(tmp_path: Path) -> None:
    image = constant_model(tmp_path, one_hot(3), {"config": json.dumps({"seed": 0})}, name="image.onnx")
    with pytest.raises(EnsembleError, match="not a strokes model"):
        member_configs([_member(tmp_path, "a.onnx"), image])


def test_a_missing_member_exits_2_with_a_usage_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "missing.onnx")])
    assert info.value.code == 2 and "usage:" in capsys.readouterr().err


def test_dirty_files_lists_every_changed_path_but_model_files() -> None:
    # git() strips its output, so the first line may have lost its leading status column.
    status = "M model/fuse.py\n M model/train.py\n?? model/new.onnx\nA  shared/a.py"
    assert dirty_files(status) == "model/fuse.py model/train.py shared/a.py"


def test_provenance_names_each_member_and_the_commands_that_rebuild_the_file(tmp_path: Path) -> None:
    first, second = _member(tmp_path, "a.onnx"), _member(tmp_path, "b.onnx", seed=1, split_seed=0)
    _, commands = member_configs([first, second])
    entries = provenance([first, second], commands, image=False, rate=0.01)
    members = json.loads(entries["members"])
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)]
    assert [m["sha256"] for m in members] == digests
    assert entries["train_command"] == (
        f"{commands[0]} && {commands[1]} && python -m model.ensemble --image none --rate 0.01"
    )
    default = provenance([first], commands[:1], image=True, rate=Config().reject_digit_rate)["train_command"]
    assert default.endswith("&& python -m model.ensemble")


@pytest.mark.parametrize("tool", ["ensemble", "recalibrate"])
def test_a_file_that_is_not_onnx_is_a_usage_error_not_a_traceback(
    tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    run = main if tool == "ensemble" else recalibrate_main
    with pytest.raises(SystemExit) as info:
        run([str(junk)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"{junk}: not an ONNX model" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "module",
    [
        "model.evaluate",
        "model.evaluate_numbers",
        "model.error_sheet",
        "model.recalibrate",
        "model.ensemble",
        "model.train",
    ],
)
def test_model_tools_name_a_missing_data_folder_in_one_line(
    module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = ["model/strokes_cnn.onnx"] if module in {"model.recalibrate", "model.ensemble"} else []
    with pytest.raises(SystemExit) as info:
        importlib.import_module(module).main(["--data-dir", str(tmp_path), *models])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "argument --data-dir: no SHA256SUMS" in err


@pytest.mark.parametrize(
    ("module", "flag"),
    [
        ("model.evaluate", "--workers"),
        ("model.error_sheet", "--workers"),
        ("model.recalibrate", "--workers"),
        ("model.ensemble", "--workers"),
        ("model.train", "--eval-workers"),
    ],
)
@pytest.mark.parametrize("count", ["0", "5"])
def test_model_tools_take_one_to_four_workers_per_core(
    module: str, flag: str, count: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 1)  # at most 4: a small count stands for a fork storm
    main_of = importlib.import_module(module).main
    with pytest.raises(SystemExit) as info:
        main_of(
            [
                flag,
                count,
                *(["model/strokes_cnn.onnx"] if module in {"model.recalibrate", "model.ensemble"} else []),
            ]
        )
    assert info.value.code == 2 and f"argument {flag}" in capsys.readouterr().err
