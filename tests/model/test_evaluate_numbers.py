"""Number-mode evaluation on composed numbers of held-out writers (needs ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.data import pen_split
from model.evaluate_numbers import evaluate_numbers
from shared.settings import Settings


@pytest.mark.data
def test_figures_by_writer_source_partition_the_numbers(data_dir: Path, settings: Settings) -> None:
    report = evaluate_numbers(
        settings.model_path, data_dir, count=40, strokes_model_path=settings.strokes_model_path
    )
    overall, by_source = report["overall"], report["by_source"]
    assert sum(t["n"] for t in by_source.values()) == overall["n"] == 40
    assert len(by_source) > 1
    assert set(by_source) <= {ink.source for ink in pen_split(data_dir).heldout}
    exact = sum(t["exact"] * t["n"] for t in by_source.values()) / overall["n"]
    assert exact == pytest.approx(overall["exact"])
    assert len(report["misread"]) == round((1 - overall["exact"]) * 40)
