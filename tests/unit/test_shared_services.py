"""Which Messaging Services, Studio Flows and Verify Services a namespace may use on the operator's
account: the setting as the environment gives it, and the policy built from it (pure)."""

from __future__ import annotations

import pytest
from settings_environment import minimal_settings

from twilio_video_operator.models.notifications import Notifications
from twilio_video_operator.reconcilers.shared_services import refused_senders, shared_services
from twilio_video_operator.settings import SettingsError, load_settings

OPERATOR = "AC" + "0" * 32
TENANT = "AC" + "7" * 32
MG_A, MG_B = "MG" + "a" * 32, "MG" + "b" * 32
FW = "FW" + "c" * 32
VA = "VA" + "d" * 32


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    return minimal_settings(monkeypatch, OPERATOR)


def test_nothing_is_granted_on_the_shared_account_unless_configured() -> None:
    settings = load_settings()
    assert settings.TENANT_TWILIO_SERVICES == {}
    policy = shared_services(settings.TWILIO_ACCOUNT_SID, settings.tenant_twilio_services)
    for kind, sid in (("messaging", MG_A), ("studio", FW), ("verify", VA)):
        assert not policy.allows("team-a", kind, sid, OPERATOR)  # type: ignore[arg-type]
        assert policy.allows("team-a", kind, sid, TENANT)  # type: ignore[arg-type]  # its own account


def test_a_namespace_entry_replaces_the_default_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TENANT_TWILIO_SERVICES",
        f'{{"*": {{"messagingServices": ["{MG_A}"], "verifyServices": ["*"]}},'
        f' "team-b": {{"messagingServices": ["{MG_B}"], "studioFlows": ["{FW}"]}}, "team-c": {{}}}}',
    )
    settings = load_settings()
    policy = shared_services(OPERATOR, settings.tenant_twilio_services)
    assert policy.allows("team-a", "messaging", MG_A, OPERATOR)
    assert not policy.allows("team-a", "messaging", MG_B, OPERATOR)
    assert policy.allows("team-a", "verify", VA, OPERATOR)  # "*": any Verify Service
    assert not policy.allows("team-a", "studio", FW, OPERATOR)
    assert policy.allows("team-b", "messaging", MG_B, OPERATOR) and policy.allows(
        "team-b", "studio", FW, OPERATOR
    )
    assert not policy.allows("team-b", "messaging", MG_A, OPERATOR)  # not merged with "*"
    assert not policy.allows("team-b", "verify", VA, OPERATOR)
    assert not policy.allows("team-c", "messaging", MG_A, OPERATOR)  # an empty entry grants nothing


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            f'{{"team-a": {{"messagingServices": ["{VA}"]}}}}',
            "TENANT_TWILIO_SERVICES.team-a.messagingServices",
        ),
        (f'{{"team-a": {{"verifyServices": ["{MG_A}"]}}}}', "TENANT_TWILIO_SERVICES.team-a.verifyServices"),
        ('{"team-a": {"studioFlow": []}}', "TENANT_TWILIO_SERVICES.team-a.studioFlow"),
        ('{"Team_A": {}}', "TENANT_TWILIO_SERVICES"),
        ('["team-a"]', "TENANT_TWILIO_SERVICES"),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("TENANT_TWILIO_SERVICES", value)
    with pytest.raises(SettingsError, match=f"setting {problem}"):
        load_settings()


def test_refused_senders_names_the_channels_of_each_refused_sender() -> None:
    policy = shared_services(OPERATOR, {"team-a": {"studioFlows": [FW]}})
    notes = Notifications.model_validate(
        {
            "messaging": {"serviceSid": MG_A},
            "studio": {"flowSid": FW, "from": "+15550100000"},
            "recipients": [{"phone": "+15550100001"}, {"studio": "+15550100002"}],
        }
    )
    refused = refused_senders(policy, "team-a", notes, OPERATOR)
    assert set(refused) == {"sms", "whatsapp"} and MG_A in refused["sms"]
    assert refused_senders(policy, "team-a", notes, TENANT) == {}
    assert refused_senders(policy, "team-a", notes, None) == {}  # no credentials yet: nothing sent anyway
