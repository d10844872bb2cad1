"""Training data plumbing: checksum verification and the writer split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from model.data import (
    ChecksumError,
    draw_like_a_person,
    heldout_pen_writers,
    mnist_canvas_png,
    pen_split,
    verify_checksums,
)
from shared.inks import Ink
from shared.preprocess import ImageFrame, StrokesFrame, normalize, preprocess


def test_verify_checksums_accepts_and_rejects(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"digits")
    good = hashlib.sha256(b"digits").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{good}  a.bin\n{'0' * 64}  b.bin\n")
    verify_checksums(tmp_path, ["a.bin"])
    (tmp_path / "b.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match=r"b\.bin"):
        verify_checksums(tmp_path, ["b.bin"])
    with pytest.raises(ChecksumError, match="not listed"):
        verify_checksums(tmp_path, ["c.bin"])


def test_mnist_canvas_png_is_black_on_white_and_normalizes_like_the_image() -> None:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 12:16] = 255  # a "1"
    x = preprocess(ImageFrame(mnist_canvas_png(image)))
    assert x is not None
    direct = normalize(image)
    assert direct is not None
    assert np.abs(x[0, 0] - direct).mean() < 0.05  # same digit, only the resampling differs
    assert abs(float(x.sum()) - float(direct.sum())) / float(direct.sum()) < 0.1


def test_draw_like_a_person_stays_on_the_canvas() -> None:
    ink = Ink(label=7, writer="w", strokes=[[[0, 100], [60, 100], [20, 0]]])
    for seed in range(20):
        strokes, pen = draw_like_a_person(ink, np.random.default_rng(seed))
        pts = np.concatenate([np.asarray(s) for s in strokes])
        assert 12 <= pen <= 24
        assert pts.min() >= 0
        assert pts.max() <= 280
        assert 90 - 1e-6 <= float((pts.max(axis=0) - pts.min(axis=0)).max()) <= 230 + 1e-6
        assert preprocess(StrokesFrame(strokes, 280, 280, pen)) is not None


@pytest.mark.data
def test_pen_split_holds_out_a_seeded_half_of_the_200_file_writers(
    data_dir: Path, pen_inks_200: list[Ink]
) -> None:
    split = pen_split(data_dir)
    train = {i.writer for i in split.train}
    val = {i.writer for i in split.val}
    heldout = {i.writer for i in split.heldout}
    sample_writers = {i.writer for i in pen_inks_200}
    assert heldout == heldout_pen_writers(data_dir) < sample_writers
    assert len(heldout) == 68 and len(split.heldout) == 5015
    assert heldout_pen_writers(data_dir) == heldout  # fixed: no training seed moves the held-out side
    assert {i.writer for i in pen_split(data_dir, seed=3).heldout} == heldout
    assert not (train & heldout)
    assert not (val & heldout)
    assert len(train | val) == 110 and sample_writers - heldout <= train | val
    assert not (train & val)  # calibration writers: never trained on, so the threshold sees unseen writers
    assert 0.1 < len(val) / 110 < 0.3
    assert len(split.train) + len(split.val) + len(split.heldout) == 10_542
