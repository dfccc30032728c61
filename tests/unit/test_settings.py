"""Settings from the environment: required values, malformed values, durations, defaults."""

from __future__ import annotations

from datetime import timedelta

import pytest
from settings_environment import minimal_settings

from twilio_video_operator.settings import SettingsError, load_settings

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
API_KEY = "SK" + "fedcba9876543210" * 2


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return minimal_settings(monkeypatch, ACCOUNT_SID, "https://video.example.com/")


def error_line() -> str:
    """The one-line error of loading the settings from the current environment."""
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_minimal_environment_gives_the_documented_defaults() -> None:
    settings = load_settings()
    assert settings.TWILIO_ACCOUNT_SID == ACCOUNT_SID
    assert settings.PUBLIC_BASE_URL == "https://video.example.com"
    assert settings.VIDEO_ROOM_TYPE == "group"
    assert settings.VIDEO_MAX_PARTICIPANTS == 25
    assert settings.VIDEO_TOKEN_TTL_SECONDS == 3600
    resync = settings.RESYNC_INTERVAL
    assert resync == timedelta(minutes=10)
    assert settings.LOG_LEVEL == "INFO"
    assert settings.HTTP_PORT == 8080
    assert settings.watch_namespaces == []


def test_missing_account_sid_is_one_line_naming_it(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("TWILIO_ACCOUNT_SID")
    message = error_line()
    assert message.startswith("setting TWILIO_ACCOUNT_SID:")
    assert "required" in message


def test_malformed_max_participants_is_one_line_naming_it(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("VIDEO_MAX_PARTICIPANTS", "abc")
    message = error_line()
    assert message.startswith("setting VIDEO_MAX_PARTICIPANTS:")
    assert "integer" in message


@pytest.mark.parametrize("value", ["0", "51"])
def test_max_participants_out_of_range_is_rejected(environment: pytest.MonkeyPatch, value: str) -> None:
    environment.setenv("VIDEO_MAX_PARTICIPANTS", value)
    assert error_line().startswith("setting VIDEO_MAX_PARTICIPANTS:")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("600", timedelta(seconds=600)),
    ],
)
def test_resync_interval_accepts_durations(
    environment: pytest.MonkeyPatch, text: str, expected: timedelta
) -> None:
    environment.setenv("RESYNC_INTERVAL", text)
    resync = load_settings().RESYNC_INTERVAL
    assert resync == expected


@pytest.mark.parametrize("text", ["soon", "5 minutes", "-5m", "5d"])
def test_malformed_resync_interval_names_the_setting(environment: pytest.MonkeyPatch, text: str) -> None:
    environment.setenv("RESYNC_INTERVAL", text)
    assert error_line().startswith("setting RESYNC_INTERVAL:")


def test_malformed_account_sid_names_it_without_echoing_secrets(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("TWILIO_ACCOUNT_SID", "not-a-sid")
    message = error_line()
    assert message.startswith("setting TWILIO_ACCOUNT_SID:")
    assert "auth-token-value" not in message


def test_credentials_need_a_key_pair_or_an_auth_token(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("TWILIO_AUTH_TOKEN")
    assert "TWILIO_AUTH_TOKEN" in error_line()
    environment.setenv("TWILIO_API_KEY", API_KEY)
    assert "TWILIO_API_SECRET" in error_line()
    environment.setenv("TWILIO_API_SECRET", "api-secret-value")
    settings = load_settings()
    assert settings.TWILIO_API_KEY == API_KEY
    assert settings.TWILIO_API_SECRET is not None
    assert "api-secret-value" not in repr(settings)


def test_public_base_url_must_be_absolute(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PUBLIC_BASE_URL", "video.example.com")
    assert error_line().startswith("setting PUBLIC_BASE_URL:")


def test_log_level_is_case_insensitive_and_validated(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("LOG_LEVEL", "debug")
    assert load_settings().LOG_LEVEL == "DEBUG"
    environment.setenv("LOG_LEVEL", "chatty")
    assert error_line().startswith("setting LOG_LEVEL:")


def test_watch_namespaces_are_split_and_trimmed(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("WATCH_NAMESPACES", " team-a, ,team-b ")
    assert load_settings().watch_namespaces == ["team-a", "team-b"]


def test_overrides_take_precedence_over_the_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTP_PORT", "9000")
    assert load_settings(HTTP_PORT=0).HTTP_PORT == 0
