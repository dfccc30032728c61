"""The notification planner: what is due, for whom, under which reference (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from twilio_video_operator.models.notifications import (
    MAX_RECORDS,
    NotificationRecord,
    Notifications,
    recorded_notifications,
)
from twilio_video_operator.reconcilers.notification_plan import (
    Occurrence,
    composition_occurrences,
    plan_notifications,
    recipient_hash,
    reference,
    reminder_occurrence,
    retry_delay,
)
from twilio_video_operator.reconcilers.notification_render import Session, message_body, template_data

UID = "4f1c2d3e-0000-4000-8000-000000000001"
START = datetime(2030, 5, 1, 15, 0, tzinfo=UTC)
SERVICE = "MG" + "a" * 32


def notes(**extra: Any) -> Notifications:
    spec: dict[str, Any] = {
        "messaging": {"serviceSid": SERVICE},
        "email": {
            "templateId": "d-" + "b" * 32,
            "from": "events@example.com",
            "apiKeySecretRef": {"name": "sendgrid"},
        },
        "recipients": [
            {"phone": "+15551230001"},
            {"phone": "whatsapp:+15551230002"},
            {"email": "ops@example.com", "events": ["compositionFailed"]},
        ],
        "reminderBefore": "30m",
        **extra,
    }
    return Notifications.model_validate(spec)


def record(occurrence: Occurrence, index: int, state: str, **extra: Any) -> NotificationRecord:
    recipient = notes().recipients[index]
    return NotificationRecord.model_validate(
        {
            "event": occurrence.event,
            "occurrence": occurrence.key,
            "channel": recipient.channel,
            "recipient": index,
            "recipientHash": recipient_hash(UID, recipient),
            "state": state,
            "intentAt": "2030-05-01T14:31:00Z",
            **extra,
        }
    )


def test_the_reminder_is_due_between_reminder_before_and_the_start() -> None:
    spec = notes()
    assert reminder_occurrence(spec, START, START - timedelta(hours=1)) == (
        None,
        START - timedelta(minutes=30),
    )
    due, later = reminder_occurrence(spec, START, START - timedelta(minutes=29))
    assert due == Occurrence("reminder", "2030-05-01T15:00:00Z", {"startTime": "2030-05-01T15:00:00Z"})
    assert later is None
    assert reminder_occurrence(spec, START, START) == (None, None)  # never once the session started
    assert reminder_occurrence(spec, START, START - timedelta(minutes=1), completed=True) == (None, None)
    assert reminder_occurrence(spec, None, START) == (None, None)


def test_no_reminder_when_nobody_wants_one() -> None:
    spec = notes(events=["recordingAvailable"])
    assert reminder_occurrence(spec, START, START - timedelta(minutes=1)) == (None, None)


def test_each_recipient_that_wants_the_event_gets_one_notification() -> None:
    occurrence, _ = reminder_occurrence(notes(), START, START - timedelta(minutes=10))
    assert occurrence is not None
    plan = plan_notifications(notes(), [occurrence], {}, frozenset(), uid=UID)
    assert [(due.index, due.channel) for due in plan.sends] == [(0, "sms"), (1, "whatsapp")]
    assert plan.recoveries == () and plan.prune == ()
    refs = {due.reference for due in plan.sends}
    assert len(refs) == 2 and all(ref.startswith("n") and len(ref) == 21 for ref in refs)


def test_a_recorded_notification_is_never_planned_again_and_a_pending_one_is_recovered() -> None:
    spec = notes()
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    first, second = spec.recipients[0], spec.recipients[1]
    records = {
        reference(UID, occurrence, first): record(occurrence, 0, "Sent", sid="SM1"),
        reference(UID, occurrence, second): record(occurrence, 1, "Pending"),
    }
    plan = plan_notifications(spec, [occurrence], records, frozenset(), uid=UID)
    assert plan.sends == ()
    assert [(due.index, due.record is not None) for due in plan.recoveries] == [(1, True)]
    failed = {**records, reference(UID, occurrence, second): record(occurrence, 1, "Failed")}
    assert plan_notifications(spec, [occurrence], failed, frozenset(), uid=UID).idle


def test_an_unreadable_record_blocks_its_notification() -> None:
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    first = notes().recipients[0]
    raw = {"records": {reference(UID, occurrence, first): {"state": "garbage"}}}
    records, unreadable = recorded_notifications(raw)
    plan = plan_notifications(notes(), [occurrence], records, unreadable, uid=UID)
    assert records == {} and [due.index for due in plan.sends] == [1]


def test_references_follow_the_address_not_the_position() -> None:
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    spec = notes()
    swapped = notes(recipients=[spec.recipients[1].to_dict(), spec.recipients[0].to_dict()])
    before = {due.reference for due in plan_notifications(spec, [occurrence], {}, frozenset(), uid=UID).sends}
    after = {
        due.reference for due in plan_notifications(swapped, [occurrence], {}, frozenset(), uid=UID).sends
    }
    assert before == after
    other_object = plan_notifications(spec, [occurrence], {}, frozenset(), uid="another-uid").sends
    assert before.isdisjoint(due.reference for due in other_object)
    moved = Occurrence("reminder", "2030-05-01T16:00:00Z")  # a new start time is a new reminder
    assert before.isdisjoint(
        due.reference for due in plan_notifications(spec, [moved], {}, frozenset(), uid=UID).sends
    )


def test_no_address_in_what_status_keeps() -> None:
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    plan = plan_notifications(notes(), [occurrence], {}, frozenset(), uid=UID)
    for due in plan.sends:
        assert due.recipient.address not in due.reference + due.recipient_hash
        assert due.recipient_hash == recipient_hash(UID, due.recipient) and len(due.recipient_hash) == 16


def test_composition_events() -> None:
    sid = "CJ" + "1" * 32
    assert (
        composition_occurrences(
            sid=sid,
            composition_status="processing",
            wants_delivery=False,
            delivered_url=None,
            timed_out=False,
        )
        == []
    )
    assert composition_occurrences(
        sid=sid, composition_status="completed", wants_delivery=False, delivered_url=None, timed_out=False
    ) == [Occurrence("recordingAvailable", sid, {})]
    waiting = composition_occurrences(
        sid=sid, composition_status="completed", wants_delivery=True, delivered_url=None, timed_out=False
    )
    assert waiting == []  # not before the media is delivered
    delivered = composition_occurrences(
        sid=sid,
        composition_status="completed",
        wants_delivery=True,
        delivered_url="https://s3/x",
        timed_out=False,
    )
    assert delivered == [Occurrence("recordingAvailable", sid, {"recordingUrl": "https://s3/x"})]
    failed = composition_occurrences(
        sid=sid, composition_status="failed", wants_delivery=True, delivered_url=None, timed_out=False
    )
    assert [occurrence.event for occurrence in failed] == ["compositionFailed"]
    stuck = composition_occurrences(
        sid=sid, composition_status="processing", wants_delivery=False, delivered_url=None, timed_out=True
    )
    assert stuck == [Occurrence("compositionFailed", sid, {"reason": "processing timed out"})]
    assert (
        composition_occurrences(
            sid=None, composition_status="failed", wants_delivery=False, delivered_url=None, timed_out=False
        )
        == []
    )


def test_escalations_go_to_those_who_asked_for_them() -> None:
    sid = "CJ" + "1" * 32
    failed = Occurrence("compositionFailed", sid, {"reason": "Twilio failed it"})
    attendees_only = notes(events=["reminder", "recordingAvailable"])
    plan = plan_notifications(attendees_only, [failed], {}, frozenset(), uid=UID)
    assert [(due.index, due.channel) for due in plan.sends] == [(2, "email")]
    everyone = plan_notifications(notes(), [failed], {}, frozenset(), uid=UID)  # events default to all
    assert [due.index for due in everyone.sends] == [0, 1, 2]


def test_old_records_are_pruned_to_stay_within_the_bound() -> None:
    spec = notes()
    old = {
        f"n{number:020d}": record(
            Occurrence("reminder", f"2029-01-{1 + number % 28:02d}T00:00:00Z"), 0, "Sent"
        )
        for number in range(MAX_RECORDS)
    }
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    plan = plan_notifications(spec, [occurrence], old, frozenset(), uid=UID)
    assert len(plan.sends) == 2 and len(plan.prune) == 2
    assert len(old) + len(plan.sends) - len(plan.prune) == MAX_RECORDS


def test_retries_back_off() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert retry_delay(50) == timedelta(minutes=10)


def test_message_texts_end_with_the_reference() -> None:
    spec = notes(title="Quarterly webinar", joinUrl="https://example.com/join")
    occurrence, _ = reminder_occurrence(spec, START, START - timedelta(minutes=10))
    assert occurrence is not None
    due = plan_notifications(spec, [occurrence], {}, frozenset(), uid=UID).sends[0]
    session = Session("VideoRoom", "team", "webinar", "Quarterly webinar", "https://example.com/join")
    body = message_body(session, due)
    assert body == (
        "Reminder: Quarterly webinar starts at 15:00 UTC on 2030-05-01. Join: https://example.com/join "
        f"[ref {due.reference}]"
    )
    data = template_data(session, due)
    assert data["notification_ref"] == due.reference and data["joinUrl"] == "https://example.com/join"
    assert data["startTime"] == "2030-05-01T15:00:00Z" and data["event"] == "reminder"


@pytest.mark.parametrize(
    ("recipient", "problem"),
    [
        ({"phone": "15551230001"}, "pattern"),
        ({"phone": "sms:+15551230001"}, "pattern"),
        ({"email": "not-an-address"}, "pattern"),
        ({"phone": "+15551230001", "email": "a@example.com"}, "exactly one"),
        ({}, "exactly one"),
    ],
)
def test_recipients_are_checked(recipient: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        notes(recipients=[recipient])


def test_a_channel_without_its_section_is_refused() -> None:
    with pytest.raises(ValidationError, match="studio recipients need"):
        notes(recipients=[{"studio": "+15551230003"}])
    with pytest.raises(ValidationError, match="at most 50"):
        notes(recipients=[{"phone": f"+1555123{n:04d}"} for n in range(51)])


REFUSED = {"sms": "Messaging Service MG... is not one namespace team may use", "whatsapp": "same"}


def test_a_refused_sender_is_recorded_failed_and_sent_once_it_is_allowed() -> None:
    spec = notes()
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    first = spec.recipients[0]
    plan = plan_notifications(spec, [occurrence], {}, frozenset(), uid=UID, refused=REFUSED)
    assert [due.index for due in plan.refusals] == [0, 1] and plan.sends == ()
    assert plan.refused["sms"] == REFUSED["sms"]
    pending = {reference(UID, occurrence, first): record(occurrence, 0, "Pending")}
    plan = plan_notifications(spec, [occurrence], pending, frozenset(), uid=UID, refused=REFUSED)
    assert [(due.index, due.record is not None) for due in plan.refusals] == [(0, True), (1, False)]
    assert plan.recoveries == ()  # no look-up on behalf of a refused sender either
    refused = {
        reference(UID, occurrence, recipient): record(occurrence, index, "Failed", reason="SenderNotAllowed")
        for index, recipient in enumerate(spec.recipients[:2])
    }
    assert plan_notifications(spec, [occurrence], refused, frozenset(), uid=UID, refused=REFUSED).idle
    allowed = plan_notifications(spec, [occurrence], refused, frozenset(), uid=UID)
    assert [(due.index, due.record) for due in allowed.sends] == [(0, None), (1, None)]
    other_failure = {ref: rec.model_copy(update={"reason": None}) for ref, rec in refused.items()}
    assert plan_notifications(spec, [occurrence], other_failure, frozenset(), uid=UID).idle


def test_a_pending_record_of_a_removed_recipient_is_an_orphan() -> None:
    spec = notes()
    occurrence = Occurrence("reminder", "2030-05-01T15:00:00Z")
    first, second = spec.recipients[0], spec.recipients[1]
    records = {
        reference(UID, occurrence, first): record(occurrence, 0, "Pending"),
        reference(UID, occurrence, second): record(occurrence, 1, "Sent", sid="SM1"),
    }
    without_first = notes(recipients=[second.to_dict()])
    plan = plan_notifications(without_first, [occurrence], records, frozenset(), uid=UID)
    [orphan] = plan.orphans
    assert orphan.reference == reference(UID, occurrence, first)
    assert (orphan.reason, orphan.recipient, orphan.channel) == ("RecipientRemoved", None, "sms")
    assert plan.sends == () and plan.recoveries == () and not plan.idle
    gone = plan_notifications(None, [occurrence], records, frozenset(), uid=UID)
    assert [(o.reason, o.recipient) for o in gone.orphans] == [("RecipientRemoved", None)]


def test_a_pending_record_no_longer_due_is_an_orphan_that_keeps_its_recipient() -> None:
    spec = notes()
    old = Occurrence("reminder", "2030-05-01T15:00:00Z")
    moved = Occurrence("reminder", "2030-05-01T16:00:00Z")
    first = spec.recipients[0]
    records = {reference(UID, old, first): record(old, 0, "Pending")}
    plan = plan_notifications(spec, [moved], records, frozenset(), uid=UID)
    [orphan] = plan.orphans
    assert orphan.reason == "NoLongerDue" and orphan.recipient == first
    assert [due.index for due in plan.sends] == [0, 1]  # the new start time's reminder
    passed = plan_notifications(spec, [], records, frozenset(), uid=UID)
    assert [o.reason for o in passed.orphans] == ["NoLongerDue"]
    settled = {ref: rec.model_copy(update={"state": "Cancelled"}) for ref, rec in records.items()}
    assert plan_notifications(spec, [], settled, frozenset(), uid=UID).idle
