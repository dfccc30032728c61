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

from twilio_video_operator.models.annotations import RECONCILE_REQUESTED_AT

ADDRESSES = (SMS, WHATSAPP, EMAIL, OPS_EMAIL)


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
