"""Collecting the project's log records in tests (the ``mnist_live`` logger does not propagate)."""

from __future__ import annotations

import logging


class Records(logging.Handler):
    """Collects the project's log records."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, name: str) -> list[logging.LogRecord]:
        """The records whose event name (message) is ``name``."""
        return [r for r in self.records if r.getMessage() == name]
