"""The one settings class and its documentation."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from shared.settings import REPO_ROOT, Settings


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"MNIST_LIVE_([A-Z0-9_]+)", readme))
    fields = {name.upper() for name in Settings.model_fields}
    assert not fields - documented, f"undocumented settings: {sorted(fields - documented)}"
    assert not documented - fields - {"UPDATE_SCREENSHOT", "REQUIRE_DATA", "REQUIRE_BROWSER"}, (
        "documented settings that do not exist"
    )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_LIVE_PORT", "8123")
    monkeypatch.setenv("MNIST_LIVE_ALLOWED_ORIGINS", '["https://example.org"]')
    settings = Settings()
    assert settings.port == 8123
    assert settings.allowed_origins == ["https://example.org"]


def test_given_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_LIVE_PORT", "8123")
    monkeypatch.setenv("mnist_live_rate_limit_fps", "7.5")  # names are matched in any case
    settings = Settings(port=9000)
    assert settings.port == 9000
    assert settings.rate_limit_fps == 7.5


def test_a_bad_environment_value_names_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_LIVE_ALLOWED_ORIGINS", "https://example.org")  # not a JSON list
    with pytest.raises(ValidationError) as info:
        Settings()
    assert [e["loc"] for e in info.value.errors()] == [("allowed_origins",)]
    monkeypatch.setenv("MNIST_LIVE_ALLOWED_ORIGINS", "[]")
    monkeypatch.setenv("MNIST_LIVE_MAX_STROKES", "0")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert [e["loc"] for e in info.value.errors()] == [("max_strokes",)]


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().port = 1  # type: ignore[misc]
