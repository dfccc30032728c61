"""Messaging Services, Studio Flows and Verify Services on the operator's shared Twilio account, tried as a
hostile tenant would (docs/security.md): a namespace uses only those the admin granted it
(``TENANT_TWILIO_SERVICES``), on its own account anything of that account.

Before the rule existed, every notification here was sent at the shared account's cost and every
verification was checked with whatever Verify Service the room named.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from notifications_support import (
    EMAIL,
    SMS,
    WHATSAPP,
    by_event,
    channels,
    mail_to,
    messages_to,
    notifications_registrar,
    notifications_spec,
    records,
)
from operator_harness import OperatorHarness, condition, eventually
from rotation_harness import NAMESPACE, running_operator
from test_composition_harness import composition_registrar, put_secret
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient

STUDIO_CONTACT = "+15551230199"
INTRUDER_SMS = "+15551230777"
STUDIO_FROM = "+15005550006"
NOTIFY_CALLS = ("CreateMessage", "ListMessage", "CreateExecution", "ListExecution", "FetchExecutionContext")


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    """The operator with the notification handlers and the default setting: nothing granted."""
    registrars = [composition_registrar, notifications_registrar]
    overrides = {"TENANT_TWILIO_SERVICES": {}}
    async with OperatorHarness(tmp_path, registrars=registrars, settings_overrides=overrides) as harness:
        yield harness


def _stamp(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def states(found: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """channel -> (state, reason) of the reminder records."""
    return {r["channel"]: (r["state"], r.get("reason")) for r in by_event(found, "reminder")}


async def notify_calls(bed: OperatorHarness) -> dict[str, int]:
    counts = await bed.twilio_counts()
    return {op: counts.get(op, 0) for op in NOTIFY_CALLS if counts.get(op)}


async def test_notifications_go_only_through_services_the_namespace_was_granted(bed: OperatorHarness) -> None:
    owner, intruder = await bed.namespace("owner"), await bed.namespace("intruder")
    made = await channels(bed, owner)
    flow = await bed._control("POST", "studio/flows", {"friendlyName": "follow-up"})
    start = bed.clock() + timedelta(hours=1)
    notes = notifications_spec(
        made, events=["reminder"], studio={"flowSid": flow["sid"], "from": STUDIO_FROM}
    )
    notes["recipients"] = [{"phone": SMS}, {"phone": WHATSAPP}, {"email": EMAIL}, {"studio": STUDIO_CONTACT}]
    await bed.create_room(
        owner, "webinar", {"schedule": {"startTime": _stamp(start)}, "notifications": notes}
    )
    # Another tenant names the owner's Messaging Service (SIDs are no secret).
    stolen = {"events": ["reminder"], "reminderBefore": "30m", "messaging": {"serviceSid": made.service_sid}}
    stolen["recipients"] = [{"phone": INTRUDER_SMS}]
    await bed.create_room(
        intruder, "spam", {"schedule": {"startTime": _stamp(start)}, "notifications": stolen}
    )
    await bed.advance_clock(31 * 60)  # inside the reminders' 30 minutes

    async def settled(namespace: str, name: str, count: int) -> dict[str, Any] | None:
        found = await records(bed, "videorooms", namespace, name)
        done = [r for r in by_event(found, "reminder") if r["state"] != "Pending"]
        return found if len(done) == count else None

    found = await eventually(lambda: settled(owner, "webinar", 4), 15)
    refused = ("Failed", "SenderNotAllowed")
    assert states(found) == {"sms": refused, "whatsapp": refused, "studio": refused, "email": ("Sent", None)}
    assert states(await eventually(lambda: settled(intruder, "spam", 1), 15)) == {"sms": refused}
    assert await notify_calls(bed) == {}  # not one Messaging or Studio request, not even a look-up
    assert len(await mail_to(bed, EMAIL)) == 1  # the tenant's own SendGrid key: not restricted

    warnings = [e["message"] for e in await bed.events(owner, "webinar") if e["reason"] == "SenderNotAllowed"]
    assert len(warnings) == 3 and all(
        e.startswith("Not sent: the reminder notification to 1") for e in warnings
    )
    assert sum(made.service_sid in message for message in warnings) == 2
    assert sum(flow["sid"] in message for message in warnings) == 1
    assert all("TENANT_TWILIO_SERVICES" in message and SMS not in message for message in warnings)
    room = await bed.get_room(owner, "webinar")
    assert room is not None
    assert condition(room, "Stalled").get("status") != "True"  # the room itself is fine
    assert condition(room, "Ready").get("reason") == "Scheduled"

    # The admin grants the owner its services and restarts the operator: what is still due goes out, once.
    await bed.stop_operator()
    bed.settings = None
    grant = {"messagingServices": [made.service_sid], "studioFlows": [flow["sid"]]}
    bed.settings_overrides["TENANT_TWILIO_SERVICES"] = {"*": {}, owner: grant}
    await bed.start_operator()
    await bed.advance_clock(60)

    async def all_sent() -> dict[str, Any] | None:
        found = await records(bed, "videorooms", owner, "webinar")
        return found if {state for state, _ in states(found).values()} == {"Sent"} else None

    found = await eventually(all_sent, 20)
    assert all(r.get("reason") is None for r in by_event(found, "reminder"))
    assert len(await messages_to(bed, SMS)) == 1 and len(await messages_to(bed, WHATSAPP)) == 1
    executions = (await bed._control("GET", f"studio/executions?flowSid={flow['sid']}"))["executions"]
    assert len(executions) == 1
    assert len(await mail_to(bed, EMAIL)) == 1
    # The intruder's namespace has no entry, so the "*" entry (nothing) applies: still not sent.
    await bed.advance_clock(60)
    assert states(await records(bed, "videorooms", intruder, "spam")) == {"sms": refused}
    assert await messages_to(bed, INTRUDER_SMS) == []


async def test_a_tenants_own_account_needs_no_grant(bed: OperatorHarness) -> None:
    tenant = await bed.subaccount()
    ns = await bed.namespace("own")
    assert bed.emulator is not None
    http = BaseUrlHttpClient(bed.emulator.credentials["url"])
    client = Client(tenant["api_key"], tenant["api_secret"], tenant["account_sid"], http_client=http)
    service = await asyncio.to_thread(lambda: client.messaging.v1.services.create(friendly_name="own"))
    creds = {
        "TWILIO_ACCOUNT_SID": tenant["account_sid"],
        "TWILIO_API_KEY": tenant["api_key"],
        "TWILIO_API_SECRET": tenant["api_secret"],
        "TWILIO_AUTH_TOKEN": tenant["auth_token"],
    }
    await put_secret(bed, ns, "twilio", creds)
    start = bed.clock() + timedelta(hours=1)
    notes = {
        "events": ["reminder"],
        "reminderBefore": "30m",
        "messaging": {"serviceSid": str(service.sid)},
        "recipients": [{"phone": SMS}],
    }
    spec = {
        "credentialsRef": {"name": "twilio"},
        "schedule": {"startTime": _stamp(start)},
        "notifications": notes,
    }
    await bed.create_room(ns, "own-webinar", spec)
    await bed.advance_clock(31 * 60)

    async def sent() -> dict[str, Any] | None:
        found = await records(bed, "videorooms", ns, "own-webinar")
        return found if states(found) == {"sms": ("Sent", None)} else None

    found = await eventually(sent, 15)
    [record] = by_event(found, "reminder")
    assert record["accountSid"] == tenant["account_sid"]


async def test_a_verify_service_the_namespace_was_not_granted_is_never_asked(tmp_path: Path) -> None:
    granted = "VA" + "1" * 32  # the one Verify Service the admin granted this namespace
    overrides = {"TENANT_TWILIO_SERVICES": {NAMESPACE: {"verifyServices": [granted]}}}
    async with running_operator(tmp_path, settings_overrides=overrides) as h:
        h.allow_service_account("app-token", "app", ("paid", "granted"))
        creds = h.emulator.credentials
        http = BaseUrlHttpClient(creds["url"])
        twilio = Client(creds["api_key"], creds["api_secret"], creds["account_sid"], http_client=http)
        other = await asyncio.to_thread(lambda: twilio.verify.v2.services.create(friendly_name="someone's"))
        started = await asyncio.to_thread(
            lambda: twilio.verify.v2.services(other.sid).verifications.create(to=SMS, channel="sms")
        )
        await h.create_room("paid", access={"verification": {"serviceSid": str(other.sid)}})
        await h.create_room("granted", access={"verification": {"serviceSid": granted}})

        async def ask(room: str, **more: Any) -> tuple[int, dict[str, Any]]:
            body = {"namespace": NAMESPACE, "room": room, "identity": SMS, **more}
            status, _, answer = await h.request_token(body, bearer="app-token")
            return status, answer

        for more in (
            {},
            {"verificationCode": "123456"},
            {"verificationSid": started.sid, "verificationCode": "1"},
        ):
            status, answer = await ask("paid", **more)
            assert (status, answer["error"]) == (403, "VerifyServiceNotAllowed")
            assert str(other.sid) in answer["message"]
        checks = await checks_made(h)
        assert checks == 0  # not one VerificationCheck with a service the namespace may not use

        status, answer = await ask("granted", verificationCode="123456")
        assert (status, answer["error"]) == (403, "VerificationNotFound")  # allowed: Verify was asked
        assert await checks_made(h) == 1


async def checks_made(h: Any) -> int:
    async with h.http.get(f"{h.emulator.url}/_emulator/requests") as response:
        stats = await response.json()
    return int(sum(stats["operations"].get("CreateVerificationCheck", {}).values()))
