"""Session notifications end to end: the real operator against the Twilio emulator's Messaging, Studio and
SendGrid routes and the embedded Kubernetes API; what was sent is read back with the official clients."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from notifications_support import (
    EMAIL,
    OPS_EMAIL,
    SMS,
    WHATSAPP,
    RecordedLogs,
    by_event,
    channels,
    leaks,
    mail_to,
    messages_to,
    notifications_spec,
    notify_bed_fixture,  # noqa: F401 - the bed fixture
    operator_logs_fixture,  # noqa: F401 - the operator_logs fixture
    records,
)
from operator_harness import OperatorHarness, eventually
from s3_server import s3_server_fixture  # noqa: F401 - the s3_server fixture
from test_composition_harness import create_composition, has, wait_composition
from test_composition_lifecycle import s3_delivery, s3_secret

from twilio_video_operator.models.annotations import RECONCILE_REQUESTED_AT
from twilio_video_playground.s3 import SeaweedS3

ADDRESSES = (SMS, WHATSAPP, EMAIL, OPS_EMAIL)
STUDIO_CONTACT = "+15551230199"


def _stamp(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


async def test_a_reminder_goes_once_to_each_recipient_before_the_session(
    bed: OperatorHarness, operator_logs: RecordedLogs
) -> None:
    bodies: list[str] = []
    ns = await bed.namespace()
    made = await channels(bed, ns)
    start = bed.clock() + timedelta(hours=1)
    spec = {"schedule": {"startTime": _stamp(start)}, "notifications": notifications_spec(made)}
    await bed.create_room(ns, "webinar", spec)
    await bed.wait_room(ns, "webinar", lambda r: (r.get("status") or {}).get("roomStatus") == "Scheduled")
    assert await messages_to(bed, SMS) == []

    await bed.advance_clock(31 * 60)  # inside the 30 minutes before the start

    async def reminded() -> dict[str, Any] | None:
        found = await records(bed, "videorooms", ns, "webinar")
        sent = [r for r in by_event(found, "reminder") if r["state"] == "Sent"]
        return found if len(sent) == 3 else None

    found = await eventually(reminded, 15)
    reminders = by_event(found, "reminder")
    expected = [(0, "sms"), (1, "whatsapp"), (2, "email")]
    assert sorted((r["recipient"], r["channel"]) for r in reminders) == expected
    assert {r["occurrence"] for r in reminders} == {_stamp(start)}
    for address in (SMS, WHATSAPP):
        sent = await messages_to(bed, address)
        assert len(sent) == 1, [m.body for m in sent]
        assert sent[0].body.startswith("Reminder: Quarterly webinar starts at ")
        assert "https://example.com/webinar" in sent[0].body
        assert sent[0].messaging_service_sid == made.service_sid
        record = next(r for r in reminders if r["sid"] == sent[0].sid)
        assert record["accountSid"] == sent[0].account_sid
        bodies.append(sent[0].body)
    mail = await mail_to(bed, EMAIL)
    assert len(mail) == 1 and mail[0]["templateId"] == made.template_id
    assert mail[0]["dynamicTemplateData"]["event"] == "reminder"
    assert mail[0]["customArgs"]["notification_ref"] in found
    assert await mail_to(bed, OPS_EMAIL) == []

    # Later reconciles, a forced resync and a restart send nothing more.
    await bed.patch_room(ns, "webinar", {"metadata": {"annotations": {RECONCILE_REQUESTED_AT: "1"}}})
    await bed.stop_operator()
    await bed.start_operator()
    await bed.advance_clock(60)
    await bed.wait_room(ns, "webinar", lambda r: (r.get("status") or {}).get("lastHandledReconcileAt") == "1")
    assert len(await messages_to(bed, SMS)) == 1 and len(await mail_to(bed, EMAIL)) == 1
    reasons = [(e["reason"], e["message"]) for e in await bed.events(ns, "webinar")]
    sent_events = [message for reason, message in reasons if reason == "NotificationSent"]
    assert sent_events == ["Sent the reminder notification to 3 recipient(s) (email 1, sms 1, whatsapp 1)."]
    assert operator_logs.lines, "no log line was captured"
    assert await leaks(bed, operator_logs, ns, [*ADDRESSES, *bodies]) == []


async def test_the_recording_link_goes_out_once_the_composition_is_delivered(
    bed: OperatorHarness, s3_server: SeaweedS3, operator_logs: RecordedLogs
) -> None:
    ns = await bed.namespace()
    made = await channels(bed, ns)
    bucket = s3_server.create_bucket("media")
    await s3_secret(bed, ns, s3_server)
    flow = await bed._control("POST", "studio/flows", {"friendlyName": "follow-up"})
    await bed._control("POST", "messages/failures", {"to": WHATSAPP, "status": "undelivered"})
    notes = notifications_spec(made, studio={"flowSid": flow["sid"], "from": "+15005550006"})
    notes["recipients"].append({"studio": STUDIO_CONTACT, "events": ["recordingAvailable"]})
    compose = {"audioSources": ["*"], "delivery": s3_delivery(s3_server, bucket)}
    spec = {"recording": {"participantsOnConnect": True, "compose": compose}, "notifications": notes}
    await bed.create_room(ns, "webinar", spec)
    room = await bed.wait_room(ns, "webinar", lambda r: (r.get("status") or {}).get("sid"))
    await bed.join(room["status"]["uniqueName"], "host")
    await bed.advance_clock(30)
    await bed.patch_room(ns, "webinar", {"spec": {"state": "Completed"}})
    done = await wait_composition(bed, ns, "webinar-recording", has("delivery"), within=30)
    url = done["status"]["delivery"]["url"]

    async def notified() -> dict[str, Any] | None:
        found = by_event(await records(bed, "compositions", ns, "webinar-recording"), "recordingAvailable")
        return {r["channel"]: r for r in found} if sum(r["state"] == "Sent" for r in found) == 4 else None

    sent = await eventually(notified, 15)
    assert set(sent) == {"sms", "whatsapp", "email", "studio"}
    sms = await messages_to(bed, SMS)
    assert [m.body.split(" [ref ")[0] for m in sms] == [
        f"The recording of Quarterly webinar is available: {url}"
    ]
    mail = await mail_to(bed, EMAIL)
    assert [m["dynamicTemplateData"]["recordingUrl"] for m in mail] == [url]
    executions = (await bed._control("GET", f"studio/executions?flowSid={flow['sid']}"))["executions"]
    assert len(executions) == 1 and executions[0]["to"] == STUDIO_CONTACT
    assert executions[0]["parameters"]["recordingUrl"] == url
    assert executions[0]["sid"] == sent["studio"]["sid"]
    assert await mail_to(bed, OPS_EMAIL) == []  # no escalation: nothing failed

    # The WhatsApp message was reported undelivered by its signed status callback.
    async def undelivered() -> dict[str, Any] | None:
        found = by_event(await records(bed, "compositions", ns, "webinar-recording"), "recordingAvailable")
        record = next(r for r in found if r["channel"] == "whatsapp")
        return record if record.get("deliveryStatus") == "undelivered" else None

    record = await eventually(undelivered, 15)
    assert record["deliveryErrorCode"] == 30003
    sms_record = sent["sms"]
    assert await records(bed, "compositions", ns, "webinar-recording")  # still readable

    async def undelivered_warnings() -> list[str]:  # the Warning follows the status patch
        events = await bed.events(ns, "webinar-recording")
        return [e["message"] for e in events if e["reason"] == "NotificationUndelivered"]

    warnings = await eventually(undelivered_warnings, 15)
    assert warnings == [
        "The recordingAvailable whatsapp message to recipient 1 was undelivered (Twilio error 30003)."
    ]
    deliveries = [d for d in await bed.callbacks() if "/twilio/message-events" in d["url"]]
    assert deliveries and all(d["status_code"] == 204 for d in deliveries)
    assert sms_record["state"] == "Sent"
    bodies = [m.body for m in sms] + [m.body for m in await messages_to(bed, WHATSAPP)]
    assert await leaks(bed, operator_logs, ns, [*ADDRESSES, STUDIO_CONTACT, *bodies]) == []


async def test_a_failed_composition_is_escalated_to_those_who_asked(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    made = await channels(bed, ns)
    await bed.create_room(
        ns, "empty", {"recording": {"participantsOnConnect": True}, "notifications": notifications_spec(made)}
    )
    room = await bed.wait_room(ns, "empty", lambda r: (r.get("status") or {}).get("sid"))
    await bed.patch_room(ns, "empty", {"spec": {"state": "Completed"}})
    await bed.wait_room(ns, "empty", lambda r: (r.get("status") or {}).get("roomStatus") == "completed")
    await create_composition(bed, ns, "empty-recording", {"roomRef": {"name": "empty"}})
    failed = await wait_composition(bed, ns, "empty-recording", has("compositionStatus", "failed"), within=30)
    assert failed["status"]["roomSid"] == room["status"]["sid"]

    async def escalated() -> list[dict[str, Any]] | None:
        mail = await mail_to(bed, OPS_EMAIL)
        return mail or None

    mail = await eventually(escalated, 15)
    assert len(mail) == 1 and mail[0]["dynamicTemplateData"]["event"] == "compositionFailed"

    # The record is written Pending before the send and Sent after it, so it may trail the mail itself.
    async def recorded() -> list[tuple[Any, ...]] | None:
        found = await records(bed, "compositions", ns, "empty-recording")
        rows = [(r["event"], r["recipient"], r["state"]) for r in found.values()]
        return rows if rows and all(state != "Pending" for _, _, state in rows) else None

    assert await eventually(recorded, 15) == [("compositionFailed", 3, "Sent")]
    assert len(await mail_to(bed, OPS_EMAIL)) == 1
    assert await messages_to(bed, SMS) == [] and await mail_to(bed, EMAIL) == []
