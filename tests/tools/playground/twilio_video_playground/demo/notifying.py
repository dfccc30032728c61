"""Step 6: the attendees of the recorded meeting are told the recording is available.

A Messaging Service is made at the emulator (Programmable Messaging), the meeting's VideoRoom gets
``spec.notifications`` (an SMS recipient for ``recordingAvailable``), and a resync of its recording's
Composition sends the message with the delivered link: the demo reads it back from the emulator and shows
the record in the Composition's status, which names the recipient by index only."""

from __future__ import annotations

from typing import Any

import aiohttp

from twilio_video_operator.kube import COMPOSITIONS, VIDEOROOMS
from twilio_video_operator.models.annotations import RECONCILE_REQUESTED_AT
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.objects import NAMESPACE, status_of, wait_object
from twilio_video_playground.demo.recording import ROOM
from twilio_video_playground.demo.waiting import StepFailed, expect

ATTENDEE = "+15550100042"  # a fictional number: the emulator delivers nothing


async def messaging_service(demo: Demo) -> str:
    """A Messaging Service of the emulator's main account, made through Twilio's REST API."""
    credentials = demo.playground.credentials
    headers = {"Authorization": aiohttp.encode_basic_auth(credentials["api_key"], credentials["api_secret"])}
    url = f"{demo.emulator_url}/v1/Services"
    async with demo.http.post(url, data={"FriendlyName": "board meetings"}, headers=headers) as answer:
        body = await answer.json(content_type=None) or {}
        if answer.status != 201:
            raise StepFailed(f"CreateService answered {answer.status} {body.get('message')}")
    return str(body["sid"])


async def messages_to(demo: Demo, to: str) -> list[dict[str, Any]]:
    async with demo.http.get(f"{demo.emulator_url}/_emulator/messages", params={"to": to}) as answer:
        return list((await answer.json(content_type=None) or {}).get("messages") or [])


def sent_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    records = (status_of(body).get("notifications") or {}).get("records") or {}
    return [dict(record) for record in records.values() if record.get("state") == "Sent"]


async def recording_available(demo: Demo) -> None:
    client = demo.playground.client
    service = await messaging_service(demo)
    print(f"Messaging Service {service} created at the emulator")
    notifications = {
        "events": ["recordingAvailable"],
        "messaging": {"serviceSid": service},
        "recipients": [{"phone": ATTENDEE}],
    }
    await client.patch(VIDEOROOMS, NAMESPACE, ROOM, {"spec": {"notifications": notifications}})
    print(f"VideoRoom {NAMESPACE}/{ROOM}: spec.notifications asks for recordingAvailable by SMS")
    name = f"{ROOM}-recording"
    annotation = {"metadata": {"annotations": {RECONCILE_REQUESTED_AT: "notify"}}}
    await client.patch(COMPOSITIONS, NAMESPACE, name, annotation)
    what = f"Composition {NAMESPACE}/{name} to send recordingAvailable"
    composition = await wait_object(demo, COMPOSITIONS, name, what, lambda body: bool(sent_records(body)))
    [record] = sent_records(composition)
    print(
        f"status.notifications: {record['event']} to recipient {record['recipient']} ({record['channel']}), "
        f"state {record['state']}, message {record['sid']}"
    )
    messages = await messages_to(demo, ATTENDEE)
    expect(len(messages) == 1, f"{len(messages)} messages reached the attendee, not one")
    url = str((status_of(composition).get("delivery") or {}).get("url"))
    expect(url in str(messages[0]["body"]), "the message does not carry the delivered link")
    print(f"The attendee's phone got: {messages[0]['body']!r}")
