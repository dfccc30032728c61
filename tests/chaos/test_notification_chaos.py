"""Session notifications are sent exactly once while answers are lost and the operator is killed.

Scheduled VideoRooms whose reminder is due at once notify four recipients each (SMS, WhatsApp, email through
SendGrid, a Studio execution) while the emulator loses answers after applying the request
(``rateLostResponse``: CreateMessage, SendGrid Mail Send, CreateExecution and the look-ups alike) and the
operator process is SIGKILLed at seeded random moments and restarted. Afterwards every recipient got exactly
one notification, read back with the official ``twilio`` client and the emulator's control endpoints, and
every record in status is ``Sent`` with the SID of that one.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chaos_support import (
    NAMESPACE,
    by_level,
    full,
    kill_at_random,
    require_handler,
    start_operator,
    wait_objects,
)
from operator_stack import Stack
from sendgrid import SendGridAPIClient
from twilio.rest import Client
from workloads import videoroom_manifest

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient
from twilio_video_operator.kube import SECRETS, VIDEOROOMS

SEEDS = [23, 41] if full() else [23]
LOST_RATE = 0.3
KILL_WINDOW = (0.0, 0.8)
CONVERGE_TIMEOUT = 120.0
OPERATOR_ENV = {"TWILIO_MAX_CONCURRENCY": "2"}
FLOW_FROM = "+15005550006"


def addresses(room: int) -> dict[str, str]:
    """Recipients of one room, distinct across rooms."""
    number = f"+1555{room:03d}"
    return {
        "sms": f"{number}0001",
        "whatsapp": f"whatsapp:{number}0002",
        "email": f"attendee-{room}@example.com",
        "studio": f"{number}0003",
    }


def notifications(room: int, service_sid: str, template_id: str, flow_sid: str) -> dict[str, Any]:
    to = addresses(room)
    return {
        "reminderBefore": "30m",
        "messaging": {"serviceSid": service_sid},
        "email": {
            "templateId": template_id,
            "from": "events@example.com",
            "apiKeySecretRef": {"name": "sendgrid"},
        },
        "studio": {"flowSid": flow_sid, "from": FLOW_FROM},
        "recipients": [
            {"phone": to["sms"]},
            {"phone": to["whatsapp"]},
            {"email": to["email"]},
            {"studio": to["studio"]},
        ],
    }


def all_sent(obj: Mapping[str, Any]) -> bool:
    records = (((obj.get("status") or {}).get("notifications")) or {}).get("records") or {}
    return len(records) == 4 and all(record.get("state") == "Sent" for record in records.values())


async def prepare(stack: Stack) -> tuple[str, str, str]:
    """A Messaging Service, a SendGrid template, a Studio flow and the Secret with the SendGrid key."""
    creds = stack.credentials
    twilio = Client(creds["account_sid"], creds["auth_token"], http_client=BaseUrlHttpClient(creds["url"]))
    mail = SendGridAPIClient(creds["sendgrid_api_key"], host=creds["url"])

    def make() -> tuple[str, str]:
        service = twilio.messaging.v1.services.create(friendly_name="chaos")
        created = mail.client.templates.post(request_body={"name": "reminder", "generation": "dynamic"})
        template_id = str(json.loads(created.body)["id"])
        mail.client.templates._(template_id).versions.post(
            request_body={"name": "v1", "subject": "{{title}}"}
        )
        return str(service.sid), template_id

    service_sid, template_id = await asyncio.to_thread(make)
    _, flow = await stack.control.call(
        "POST", "studio/flows", {"friendlyName": "chaos", "executionSeconds": 1}
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sendgrid", "namespace": NAMESPACE},
        "stringData": {"SENDGRID_API_KEY": creds["sendgrid_api_key"]},
    }
    await stack.client.create(SECRETS, NAMESPACE, secret)
    return service_sid, template_id, str(flow["sid"])


async def received(stack: Stack, rooms: int, flow_sid: str) -> dict[str, Counter[str]]:
    """What each channel delivered to each address, read back from the emulator."""
    creds = stack.credentials
    twilio = Client(creds["account_sid"], creds["auth_token"], http_client=BaseUrlHttpClient(creds["url"]))
    counts: dict[str, Counter[str]] = {
        channel: Counter() for channel in ("sms", "whatsapp", "email", "studio")
    }
    for room in range(rooms):
        to = addresses(room)
        for channel in ("sms", "whatsapp"):
            found = await asyncio.to_thread(
                lambda to=to, channel=channel: twilio.messages.list(to=to[channel])
            )
            counts[channel][to[channel]] = len(found)
        _, mail = await stack.control.call("GET", f"sendgrid/mail?to={to['email']}")
        counts["email"][to["email"]] = len(mail["mail"])
        _, runs = await stack.control.call(
            "GET", f"studio/executions?flowSid={flow_sid}&to=%2B{to['studio'][1:]}"
        )
        counts["studio"][to["studio"]] = len(runs["executions"])
    return counts


@pytest.mark.parametrize("seed", SEEDS)
async def test_reminders_are_sent_once_under_lost_answers_and_kills(stack: Stack, seed: int) -> None:
    """One seed per test, each with a fresh stack: a second round in the same namespace would find the
    first round's Secret and send to the same addresses again."""
    require_handler("notifications")
    await one_round(stack, seed)


async def one_round(stack: Stack, seed: int) -> None:
    rng = random.Random(seed)
    rooms = by_level(6, 30)
    service_sid, template_id, flow_sid = await prepare(stack)
    operator = await start_operator(stack, **OPERATOR_ENV)
    await stack.control.reset_requests()
    await stack.control.set_faults(rateLostResponse=LOST_RATE, latencyMs=20, seed=seed)
    start = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = [f"webinar-{seed}-{room}" for room in range(rooms)]
    await asyncio.gather(
        *(
            stack.client.create(
                VIDEOROOMS,
                NAMESPACE,
                videoroom_manifest(
                    NAMESPACE,
                    name,
                    schedule={"startTime": start},
                    notifications=notifications(room, service_sid, template_id, flow_sid),
                ),
            )
            for room, name in enumerate(names)
        )
    )
    kills = by_level(2, 4)
    delays = await kill_at_random(operator, rng, kills=kills, window=KILL_WINDOW)
    laggards = await wait_objects(stack, "videorooms", names, all_sent, within=CONVERGE_TIMEOUT)
    _, stats = await stack.control.call("GET", "requests")
    await stack.control.clear_faults()
    assert not laggards, f"seed {seed}, kills {delays}: not all sent: {laggards}\n{operator.log_tail(40)}"
    lost = Counter({op: sum(codes.values()) for op, codes in stats["lostResponses"].items()})
    assert lost["CreateMessage"] + lost["SendGrid.MailSend"] + lost["CreateExecution"] > 0, lost

    counts = await received(stack, rooms, flow_sid)
    for channel, per_address in counts.items():
        assert set(per_address.values()) == {1}, f"seed {seed}, kills {delays}: {channel} sent {per_address}"
    for name in names:
        obj = stack.object("videorooms", NAMESPACE, name)
        assert obj is not None
        records = obj["status"]["notifications"]["records"]
        assert sorted(record["channel"] for record in records.values()) == [
            "email",
            "sms",
            "studio",
            "whatsapp",
        ]
        assert all(record["sid"] for record in records.values())
    await operator.stop()
