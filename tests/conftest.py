"""Fixtures shared by every test: settings, the shared data folder, the model, pen inks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from realtime.logs import LOGGER_NAME
from shared.inference import Predictor
from shared.inks import Ink, Strokes, load_inks
from shared.preprocess import StrokesFrame
from shared.settings import Settings
from tests.gateway import LiveGateway, run_gateway
from tests.logs import Records
from tests.servers import LiveServer, run_server
from tests.shapes import LETTER_H

REQUIRE_DATA_ENV = "MNIST_LIVE_REQUIRE_DATA"
"""Set to 1 by ``.ci/run``: in CI a missing data folder is an error, never a skip."""


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def data_dir(settings: Settings) -> Path:
    """The ``../shared/data`` folder (``MNIST_LIVE_DATA_DIR``); skip with a reason when absent."""
    d = settings.data_dir
    if not (d / "pen" / "unipen1a_dev_200.jsonl").is_file() or not (d / "mnist").is_dir():
        reason = f"shared data not found at {d} (set MNIST_LIVE_DATA_DIR to the shared/data folder)"
        if os.environ.get(REQUIRE_DATA_ENV) == "1":
            pytest.fail(reason + f"; {REQUIRE_DATA_ENV}=1 makes this an error")
        pytest.skip(reason)
    return d


@pytest.fixture(scope="session")
def pen_inks_200(data_dir: Path) -> list[Ink]:
    """The 200 balanced UNIPEN inks (20 per digit, 120 writers; 68 of them held out of training)."""
    return load_inks(data_dir / "pen" / "unipen1a_dev_200.jsonl")


@pytest.fixture(scope="session")
def predictor(settings: Settings) -> Predictor:
    p = Predictor.of(settings)
    p.warm_up()
    return p


@pytest.fixture(scope="session")
def letter_h(predictor: Predictor) -> Strokes:
    """The letter H (``tests/shapes.py``), checked to be answered ``not_a_digit`` by the shipped model.

    The protocol tests then assert that every path carries that answer, not the model's quality.
    """
    answer = predictor.predict([StrokesFrame(LETTER_H, 280, 280, 16)])[0]
    if answer.status != "not_a_digit":
        pytest.fail(f"the shipped model answers {answer.status} {answer.digit} for the letter H")
    return LETTER_H


@pytest.fixture(scope="session")
def live_server(settings: Settings, predictor: Predictor) -> Iterator[LiveServer]:
    """The real server with default settings, shared by the tests of a session."""
    with run_server(settings, predictor) as server:
        yield server


@pytest.fixture(scope="session")
def live_gateway(settings: Settings, predictor: Predictor) -> Iterator[LiveGateway]:
    """The Lambda WebSocket handler behind the API Gateway emulator, shared by the tests of a session."""
    with run_gateway(settings, predictor) as gateway:
        yield gateway


@pytest.fixture
def records() -> Iterator[Records]:
    """The ``mnist_live`` logger's records (INFO and up) during one test."""
    logger = logging.getLogger(LOGGER_NAME)
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
