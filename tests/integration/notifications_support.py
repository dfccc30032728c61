"""Helpers of the session-notification tests: the harness with the notification handlers, a Messaging
Service and a SendGrid template at the emulator, and what was sent, read back with the official ``twilio``
and ``sendgrid`` clients and the emulator's control endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import pytest
from operator_harness import OperatorHarness
from sendgrid import SendGridAPIClient
from test_composition_harness import composition_registrar, put_secret
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient
from twilio_video_operator.handlers import notifications

SMS = "+15551230101"
WHATSAPP = "whatsapp:+15551230102"
EMAIL = "attendee@example.com"
OPS_EMAIL = "ops@example.com"
SENDER = "events@example.com"
SECRET = "sendgrid"


def notifications_registrar(registry: kopf.OperatorRegistry, harness: OperatorHarness) -> None:
    notifications.register_handlers(registry)


@pytest.fixture(name="bed")
async def notify_bed_fixture(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    """The harness with the VideoRoom, Composition and notification handlers."""
    registrars = [composition_registrar, notifications_registrar]
    async with OperatorHarness(tmp_path, registrars=registrars) as harness:
        yield harness


@dataclass(frozen=True)
class Channels:
    """A Messaging Service and a SendGrid dynamic template of the emulator's main account."""

    service_sid: str
    template_id: str
    api_key: str


def twilio_client(bed: OperatorHarness) -> Client:
    assert bed.emulator is not None
    creds = bed.emulator.credentials
    return Client(creds["account_sid"], creds["auth_token"], http_client=BaseUrlHttpClient(creds["url"]))


def sendgrid_client(bed: OperatorHarness) -> SendGridAPIClient:
    assert bed.emulator is not None
    return SendGridAPIClient(bed.emulator.credentials["sendgrid_api_key"], host=bed.emulator.url)


async def channels(bed: OperatorHarness, namespace: str) -> Channels:
    """Make the Messaging Service, the template and the Secret with the SendGrid key in ``namespace``."""
    assert bed.emulator is not None
    client, mail = twilio_client(bed), sendgrid_client(bed)
    service = await asyncio.to_thread(lambda: client.messaging.v1.services.create(friendly_name="webinar"))

    def template() -> str:
        created = mail.client.templates.post(request_body={"name": "webinar", "generation": "dynamic"})
        template_id = str(json.loads(created.body)["id"])
        mail.client.templates._(template_id).versions.post(
            request_body={"name": "v1", "subject": "{{title}}: {{event}}", "html_content": "{{recordingUrl}}"}
        )
        return template_id

    template_id = await asyncio.to_thread(template)
    key = bed.emulator.credentials["sendgrid_api_key"]
    await put_secret(bed, namespace, SECRET, {"SENDGRID_API_KEY": key})
    return Channels(str(service.sid), template_id, key)


def notifications_spec(channels: Channels, **extra: Any) -> dict[str, Any]:
    """Attendees by SMS, WhatsApp and email (reminder and recording link); ops by email (escalation)."""
    return {
        "title": "Quarterly webinar",
        "joinUrl": "https://example.com/webinar",
        "reminderBefore": "30m",
        "events": ["reminder", "recordingAvailable"],
        "messaging": {"serviceSid": channels.service_sid},
        "email": {
            "templateId": channels.template_id,
            "from": SENDER,
            "apiKeySecretRef": {"name": SECRET},
        },
        "recipients": [
            {"phone": SMS},
            {"phone": WHATSAPP},
            {"email": EMAIL},
            {"email": OPS_EMAIL, "events": ["compositionFailed"]},
        ],
        **extra,
    }


async def messages_to(bed: OperatorHarness, to: str) -> list[Any]:
    """Messages to ``to``, oldest first, read with the official twilio client."""
    client = twilio_client(bed)
    found = await asyncio.to_thread(lambda: list(client.messages.list(to=to)))
    return list(reversed(found))


async def mail_to(bed: OperatorHarness, to: str) -> list[dict[str, Any]]:
    """Mail to ``to`` as the emulator recorded it (oldest first)."""
    answer = await bed._control("GET", f"sendgrid/mail?to={to}")
    return list(answer["mail"])


async def records(bed: OperatorHarness, kind_plural: str, namespace: str, name: str) -> dict[str, Any]:
    obj = await bed.kube_official.get(kind_plural, namespace, name)
    notes = ((obj or {}).get("status") or {}).get("notifications") or {}
    return dict(notes.get("records") or {})


def by_event(found: Mapping[str, Any], event: str) -> list[dict[str, Any]]:
    return [dict(record) for record in found.values() if record.get("event") == event]


class RecordedLogs(logging.Handler):
    """Every record of the operator's and kopf's loggers, rendered with its extra fields."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith(("twilio_video_operator", "kopf")):
            return
        if record.name.startswith(("twilio_video_emulator", "twilio_video_playground")):
            return  # the test's own Twilio and Kubernetes, not the operator
        extras = {key: value for key, value in vars(record).items() if key not in _STANDARD}
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text} {extras!r}")


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@pytest.fixture(name="operator_logs")
def operator_logs_fixture() -> Iterator[RecordedLogs]:
    """The operator's log records of the test, at DEBUG."""
    handler = RecordedLogs()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def leaks(bed: OperatorHarness, logs: RecordedLogs, namespace: str, values: Iterable[str]) -> list[str]:
    """Where any of ``values`` shows in the operator's logs, the namespace's Events, or the status of its
    VideoRooms and Compositions (never the value itself)."""
    evidence = [(f"log line {index}", line) for index, line in enumerate(logs.lines)]
    evidence += [(f"Event {e['reason']}", json.dumps(e)) for e in await bed.events(namespace)]
    for plural in ("videorooms", "compositions"):
        for obj in await bed.kube_official.list(plural, namespace):
            evidence.append((f"{plural} {obj['metadata']['name']} status", json.dumps(obj.get("status"))))
    found = []
    for where, text in evidence:
        for number, value in enumerate(values):
            if value in text:
                found.append(f"value {number} in {where}")
    return found
