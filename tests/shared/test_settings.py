"""The one settings class and its documentation."""

from __future__ import annotations

import re

import pytest

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
