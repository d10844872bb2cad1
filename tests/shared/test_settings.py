"""The one settings class and its documentation."""

from __future__ import annotations

import dataclasses
import re

import pytest

from shared.settings import REPO_ROOT, InvalidSetting, Settings


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"MNIST_LIVE_([A-Z0-9_]+)", readme))
    fields = {f.name.upper() for f in dataclasses.fields(Settings)}
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
    with pytest.raises(InvalidSetting) as info:
        Settings()
    assert info.value.field == "allowed_origins"
    monkeypatch.setenv("MNIST_LIVE_ALLOWED_ORIGINS", "[]")
    monkeypatch.setenv("MNIST_LIVE_MAX_STROKES", "0")
    with pytest.raises(InvalidSetting) as info:
        Settings()
    assert info.value.field == "max_strokes" and "1" in info.value.reason


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


def test_values_are_read_as_their_types_and_the_token_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_LIVE_WS_PER_MESSAGE_DEFLATE", "true")
    monkeypatch.setenv("MNIST_LIVE_MODEL_PATH", "/models/digits.onnx")
    monkeypatch.setenv("MNIST_LIVE_LOG_LEVEL", "debug")
    settings = Settings(auth_token="s3cret")  # type: ignore[arg-type]
    assert settings.ws_per_message_deflate is True and str(settings.model_path) == "/models/digits.onnx"
    assert settings.log_level == "DEBUG"
    assert settings.auth_token is not None and settings.auth_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"port": 65536}, "port"),
        ({"port": "eighty"}, "port"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"rate_limit_fps": 0}, "rate_limit_fps"),
        ({"allowed_origins": ["ok", 3]}, "allowed_origins"),
    ],
)
def test_an_invalid_value_is_named_in_one_line(values: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidSetting) as info:
        Settings(**values)
    assert info.value.field == field and "\n" not in str(info.value)
