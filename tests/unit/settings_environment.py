"""Process environments for tests that load the operator's settings from it."""

from __future__ import annotations

import pytest

from twilio_video_operator.settings import Settings


def clear_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every variable the settings read, so the machine's environment cannot leak in."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def minimal_settings(
    monkeypatch: pytest.MonkeyPatch, account_sid: str, public_base_url: str = "https://video.example.com"
) -> pytest.MonkeyPatch:
    """A clean environment with the fewest settings that load: an account, its Auth Token, a public URL."""
    clear_settings(monkeypatch)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "auth-token-value")
    monkeypatch.setenv("PUBLIC_BASE_URL", public_base_url)
    return monkeypatch
