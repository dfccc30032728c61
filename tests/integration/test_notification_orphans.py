"""A notification whose outcome is unknown (``Pending``) when the spec stops asking for it: looked up once,
then recorded ``Sent`` if Twilio has it, else ``Cancelled`` with a reason; never sent to a recipient who
was removed. Before, such a record stayed Pending for ever (and kept its object coming back for it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from notifications_support import (
    SMS,
    WHATSAPP,
    by_event,
    channels,
    messages_to,
    notify_bed_fixture,  # noqa: F401 - the bed fixture
    records,
)
from operator_harness import OperatorHarness, eventually


def _stamp(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def reminders(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["channel"]: record for record in by_event(found, "reminder")}


async def test_a_pending_notification_of_a_removed_recipient_is_cancelled_not_sent(
    bed: OperatorHarness,
) -> None:
    ns = await bed.namespace()
    made = await channels(bed, ns)
    start = bed.clock() + timedelta(hours=1)
    notes = {
        "events": ["reminder"],
        "reminderBefore": "30m",
        "messaging": {"serviceSid": made.service_sid},
        "recipients": [{"phone": SMS}, {"phone": WHATSAPP}],
    }
    await bed.create_room(ns, "webinar", {"schedule": {"startTime": _stamp(start)}, "notifications": notes})
    await bed.wait_room(ns, "webinar", lambda r: (r.get("status") or {}).get("roomStatus") == "Scheduled")
    await bed.faults(rate5xx=1.0)  # Twilio answers every request 5xx: both reminders stay Pending
    await bed.advance_clock(31 * 60)

    async def tried() -> dict[str, Any] | None:
        found = reminders(await records(bed, "videorooms", ns, "webinar"))
        pending = [r for r in found.values() if r["state"] == "Pending" and (r.get("attempts") or 0) >= 1]
        return found if len(pending) == 2 else None

    await eventually(tried, 15)
    notes["recipients"] = [{"phone": WHATSAPP}]  # the SMS recipient is taken off the list
    await bed.patch_room(ns, "webinar", {"spec": {"notifications": notes}})
    await bed.faults()
    await bed.advance_clock(11 * 60)  # past any retry backoff, still before the start

    async def settled() -> dict[str, Any] | None:
        found = reminders(await records(bed, "videorooms", ns, "webinar"))
        return found if all(r["state"] != "Pending" for r in found.values()) else None

    found = await eventually(settled, 20)
    assert (found["sms"]["state"], found["sms"]["reason"]) == ("Cancelled", "RecipientRemoved")
    assert found["whatsapp"]["state"] == "Sent"
    assert await messages_to(bed, SMS) == [] and len(await messages_to(bed, WHATSAPP)) == 1

    async def cancellations() -> list[str]:  # the Event follows the status patch that settled the records
        events = await bed.events(ns, "webinar")
        return [e["message"] for e in events if e["reason"] == "NotificationCancelled"]

    cancelled = await eventually(cancellations, 15)
    assert cancelled == [
        "Cancelled the reminder notification to 1 recipient(s) (sms): RecipientRemoved, the recipient was "
        "removed from the spec; it was not found sent and will not be."
    ]
    assert all(SMS not in message for message in cancelled)
