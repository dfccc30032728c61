"""Which notifications are due, as a pure function of the spec, what happened to the object, status and now.

An event *occurs* for an object: a reminder for the start time the schedule names (from ``reminderBefore``
before it until the session starts), ``recordingAvailable`` and ``compositionFailed`` for a composition
SID. Each occurrence is notified once to each recipient that wants the event. The notification's reference
is derived from the object's uid, the event, the occurrence and the recipient's address, so the same
notification always gets the same reference: a record under it (whatever its state) means it was already
intended, and a ``Pending`` one is recovered (looked up, then sent only if it was not) rather than sent
again. No address is kept: records carry the recipient's index and a keyed hash of the address.

Two more cases settle records that would otherwise stay as they are:

- a channel whose sender the namespace may not use (``refused``) records its notifications ``Failed`` with
  reason ``SenderNotAllowed`` and sends nothing; once the sender is allowed (the spec or the admin's grants
  changed) a notification still due is sent after all, as nothing was sent under its reference;
- a ``Pending`` record that is no longer due (its recipient left the spec, or its occurrence is no longer
  current) is an *orphan*: looked up once, recorded ``Sent`` if found, else ``Cancelled`` with a reason.
  It is never sent: the spec no longer asks for it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.notifications import (
    MAX_RECORDS,
    REMINDER_BEFORE_MAX,
    Channel,
    NotificationEvent,
    NotificationRecord,
    Notifications,
    Recipient,
    RecordReason,
)

REFERENCE_PREFIX = "n"
REFERENCE_DIGITS = 20
HASH_DIGITS = 16


@dataclass(frozen=True)
class Occurrence:
    """An event that happened (or is due) for the object, with what the messages say about it."""

    event: NotificationEvent
    key: str
    """What it is about: the announced start time, or the composition SID."""
    data: Mapping[str, str] = field(default_factory=dict)
    """startTime, recordingUrl, reason...: the values messages and templates are filled with."""


@dataclass(frozen=True)
class Due:
    """One notification to send (or to recover: look up, then send if it was not)."""

    reference: str
    occurrence: Occurrence
    index: int
    recipient: Recipient
    recipient_hash: str
    record: NotificationRecord | None = None
    """The Pending record of an earlier attempt (a recovery), ``None`` for a first send."""

    @property
    def channel(self) -> Channel:
        return self.recipient.channel


@dataclass(frozen=True)
class Orphan:
    """A ``Pending`` record the spec no longer asks for: look it up once, then ``Sent`` or ``Cancelled``."""

    reference: str
    record: NotificationRecord
    reason: RecordReason
    """``RecipientRemoved`` or ``NoLongerDue``: what ``Cancelled`` will say when the look-up finds nothing."""
    recipient: Recipient | None = None
    """The recipient, when still in the spec (the look-up can then name its address)."""

    @property
    def channel(self) -> str:
        return self.record.channel


@dataclass(frozen=True)
class Plan:
    sends: tuple[Due, ...] = ()
    """Notifications with no record yet (or only a ``SenderNotAllowed`` one): record the intent, then send."""
    recoveries: tuple[Due, ...] = ()
    """Pending records whose outcome is unknown: look up first."""
    refusals: tuple[Due, ...] = ()
    """Notifications of a refused channel: recorded ``Failed``/``SenderNotAllowed``, not sent (a Pending
    one is not looked up either: no Twilio call on behalf of a sender the namespace may not use)."""
    orphans: tuple[Orphan, ...] = ()
    """Pending records no longer due: look up, then ``Sent`` or ``Cancelled``."""
    prune: tuple[str, ...] = ()
    """References of old records to drop so that status stays within its bound."""
    next_at: datetime | None = None
    """When an occurrence that is not due yet becomes due (a reminder's time)."""
    refused: Mapping[str, str] = field(default_factory=dict)
    """Channel -> why its sender is refused (the message of the refusal's Event)."""

    @property
    def idle(self) -> bool:
        return not (self.sends or self.recoveries or self.refusals or self.orphans or self.prune)


def keyed_digest(uid: str, text: str, digits: int) -> str:
    return hmac.new(uid.encode(), text.encode(), hashlib.sha256).hexdigest()[:digits]


def recipient_hash(uid: str, recipient: Recipient) -> str:
    """A pseudonym of the address for status (keyed by the object's uid, so equal across its records)."""
    return keyed_digest(uid, recipient.address, HASH_DIGITS)


def reference(uid: str, occurrence: Occurrence, recipient: Recipient) -> str:
    """The notification's reference: its key in status and the marker lookups search for."""
    text = f"{occurrence.event}/{occurrence.key}/{recipient.channel}:{recipient.address}"
    return REFERENCE_PREFIX + keyed_digest(uid, text, REFERENCE_DIGITS)


def reminder_occurrence(
    notifications: Notifications, start_time: datetime | None, now: datetime, *, completed: bool = False
) -> tuple[Occurrence | None, datetime | None]:
    """``(occurrence due now, when the next one becomes due)`` of the reminder for ``start_time``.

    Due from ``reminderBefore`` before the start until the start; never for a room set Completed, and not
    once the session has started (a late reminder would announce the past).
    """
    if start_time is None or completed or not _someone_wants(notifications, "reminder"):
        return None, None
    before = parse_duration(notifications.reminder_before, REMINDER_BEFORE_MAX)
    due_at = start_time - before
    if now < due_at:
        return None, due_at
    if now >= start_time:
        return None, None
    stamp = start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Occurrence("reminder", stamp, {"startTime": stamp}), None


def composition_occurrences(
    *,
    sid: str | None,
    composition_status: str | None,
    wants_delivery: bool,
    delivered_url: str | None,
    timed_out: bool,
    failure: str | None = None,
) -> list[Occurrence]:
    """The composition events that happened: ``recordingAvailable`` once the media is available (delivered,
    when delivery is configured), ``compositionFailed`` once Twilio failed it or processing timed out."""
    if sid is None:
        return []
    if composition_status == "completed" and (not wants_delivery or delivered_url):
        data = {"recordingUrl": delivered_url} if delivered_url else {}
        return [Occurrence("recordingAvailable", sid, data)]
    if composition_status == "failed" or (timed_out and composition_status in ("enqueued", "processing")):
        reason = failure or ("processing timed out" if composition_status != "failed" else "Twilio failed it")
        return [Occurrence("compositionFailed", sid, {"reason": reason})]
    return []


def _someone_wants(notifications: Notifications, event: NotificationEvent) -> bool:
    return any(event in notifications.events_of(recipient) for recipient in notifications.recipients)


def plan_notifications(
    notifications: Notifications | None,
    occurrences: list[Occurrence],
    records: Mapping[str, NotificationRecord],
    unreadable: frozenset[str],
    *,
    uid: str,
    next_at: datetime | None = None,
    refused: Mapping[str, str] | None = None,
) -> Plan:
    """What to send, recover, refuse and settle now. ``records``/``unreadable`` are status as read
    (:func:`~twilio_video_operator.models.notifications.recorded_notifications`); ``refused`` maps each
    channel whose sender the namespace may not use to why."""
    refused = dict(refused or {})
    sends: list[Due] = []
    recoveries: list[Due] = []
    refusals: list[Due] = []
    wanted: set[str] = set()
    recipients = notifications.recipients if notifications is not None else []
    for occurrence in occurrences:
        for index, recipient in enumerate(recipients):
            if notifications is None or occurrence.event not in notifications.events_of(recipient):
                continue
            ref = reference(uid, occurrence, recipient)
            wanted.add(ref)
            if ref in unreadable:
                continue
            due = Due(ref, occurrence, index, recipient, recipient_hash(uid, recipient))
            record = records.get(ref)
            blocked = record is not None and _refused_before(record)
            if recipient.channel in refused:
                if record is None or record.state == "Pending":
                    refusals.append(replace(due, record=record))
            elif record is None or blocked:
                sends.append(due)  # nothing was sent under a refused record's reference
            elif record.state == "Pending":
                recoveries.append(replace(due, record=record))
    orphans = tuple(
        _orphan(ref, record, recipients, uid)
        for ref, record in sorted(records.items())
        if record.state == "Pending" and ref not in wanted
    )
    current: set[tuple[str, str]] = {(occurrence.event, occurrence.key) for occurrence in occurrences}
    adding = len(sends) + sum(due.record is None for due in refusals)
    prune = _prune(records, current, adding)
    return Plan(tuple(sends), tuple(recoveries), tuple(refusals), orphans, prune, next_at, refused)


def _refused_before(record: NotificationRecord) -> bool:
    return record.state == "Failed" and record.reason == RecordReason.SENDER_NOT_ALLOWED


def _orphan(ref: str, record: NotificationRecord, recipients: list[Recipient], uid: str) -> Orphan:
    """A Pending record no current notification has: its recipient, if still in the spec, and why."""
    for recipient in recipients:
        if recipient.channel == record.channel and recipient_hash(uid, recipient) == record.recipient_hash:
            return Orphan(ref, record, RecordReason.NO_LONGER_DUE, recipient)
    return Orphan(ref, record, RecordReason.RECIPIENT_REMOVED)


def _prune(
    records: Mapping[str, NotificationRecord], current: set[tuple[str, str]], adding: int
) -> tuple[str, ...]:
    """Oldest settled records of occurrences no longer current, as many as must go to fit ``adding`` more."""
    excess = len(records) + adding - MAX_RECORDS
    if excess <= 0:
        return ()
    old = sorted(
        (record.intent_at, ref)
        for ref, record in records.items()
        if record.state != "Pending" and (record.event, record.occurrence) not in current
    )
    return tuple(ref for _, ref in old[:excess])


RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(minutes=10)


def retry_delay(attempts: int) -> timedelta:
    """Backoff before trying a notification again after ``attempts`` transient failures."""
    factor: int = 2 ** min(max(0, attempts - 1), 10)
    return min(RETRY_CAP, RETRY_BASE * factor)
