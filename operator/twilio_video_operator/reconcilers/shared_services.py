"""Which Messaging Services, Studio Flows and Verify Services a namespace may use on the operator's account.

Sending through a Messaging Service or a Studio Flow costs the account that owns it, and a Verify Service
decides whose codes open a room; on the operator's shared account every namespace could otherwise name any
of them. The cluster admin grants them per namespace (``TENANT_TWILIO_SERVICES``), with a ``"*"`` entry
for namespaces that have none of their own; ``"*"`` in a list grants every service of that kind. Nothing
is granted unless configured. On a tenant's own account (``credentialsRef``) every service of that account
is the tenant's (pure).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from twilio_video_operator.models.notifications import Notifications

ServiceKind = Literal["messaging", "studio", "verify"]
#: The entry of namespaces without one of their own, and the list item granting every SID of a kind.
ANY = "*"
#: How each kind is named in messages and in the setting.
KIND_NAMES: dict[ServiceKind, str] = {
    "messaging": "Messaging Service",
    "studio": "Studio Flow",
    "verify": "Verify Service",
}
SETTING_KEYS: dict[ServiceKind, str] = {
    "messaging": "messagingServices",
    "studio": "studioFlows",
    "verify": "verifyServices",
}
SETTING = "TENANT_TWILIO_SERVICES"


@dataclass(frozen=True)
class SharedServices:
    """The admin's grants on the operator's account ``operator_account``, by namespace (or ``"*"``)."""

    operator_account: str
    grants: Mapping[str, Mapping[ServiceKind, Sequence[str]]]

    def allows(self, namespace: str, kind: ServiceKind, sid: str, account_sid: str) -> bool:
        """Whether an object of ``namespace`` may use ``sid`` when calling Twilio as ``account_sid``."""
        if account_sid != self.operator_account:
            return True  # the tenant's own account
        entry = self.grants.get(namespace, self.grants.get(ANY, {}))
        granted = entry.get(kind, ())
        return ANY in granted or sid in granted

    def refusal(self, namespace: str, kind: ServiceKind, sid: str) -> str:
        """The message of a refusal (SIDs are not secret; the setting names who can change it)."""
        return (
            f"{KIND_NAMES[kind]} {sid} is not one namespace {namespace} may use on the operator's Twilio "
            f"account (the cluster admin grants them in {SETTING}, {SETTING_KEYS[kind]})"
        )


def shared_services(
    operator_account: str, setting: Mapping[str, Mapping[str, Sequence[str]]]
) -> SharedServices:
    """The policy from the setting's shape: ``{namespace or "*": {"messagingServices": [...], ...}}``."""
    grants = {
        namespace: {kind: tuple(entry.get(key, ())) for kind, key in SETTING_KEYS.items()}
        for namespace, entry in setting.items()
    }
    return SharedServices(operator_account, grants)


def refused_senders(
    services: SharedServices, namespace: str, notifications: Notifications | None, account_sid: str | None
) -> dict[str, str]:
    """Notification channel -> why its sender is refused, for the senders ``notifications`` names.

    Email goes through the tenant's own SendGrid key, so only Messaging (sms, whatsapp) and Studio can be
    refused. Without credentials (``account_sid`` None) nothing is sent yet, so nothing is refused yet.
    """
    if notifications is None or account_sid is None:
        return {}
    refused: dict[str, str] = {}
    messaging, studio = notifications.messaging, notifications.studio
    if messaging is not None and not services.allows(
        namespace, "messaging", messaging.service_sid, account_sid
    ):
        why = services.refusal(namespace, "messaging", messaging.service_sid)
        refused.update(sms=why, whatsapp=why)
    if studio is not None and not services.allows(namespace, "studio", studio.flow_sid, account_sid):
        refused["studio"] = services.refusal(namespace, "studio", studio.flow_sid)
    return refused
