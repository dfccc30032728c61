"""What Twilio tells about a composition (a status callback or a fetch), folded into the status.

Folding is monotonic, so callbacks may arrive late, twice or out of order: the state only moves forward
(``enqueued`` < ``processing`` < ``completed``/``failed`` < ``deleted``), progress only grows while
processing, and the first terminal state wins. Nothing here performs I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from twilio_video_operator.gateway.records import CompositionInfo
from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.reconcilers import composition_conditions as cond

#: The state each callback event reports.
EVENT_STATES: Final[Mapping[str, str]] = {
    "composition-enqueued": "enqueued",
    "composition-started": "processing",
    "composition-progress": "processing",
    "composition-available": "completed",
    "composition-failed": "failed",
}
#: Events about composition hooks rather than one composition; accepted and ignored.
IGNORED_EVENTS: Final = frozenset({"composition-hook-failed"})

_RANK: Final[Mapping[str | None, int]] = {
    None: 0,
    "enqueued": 1,
    "processing": 2,
    "completed": 3,
    "failed": 3,
    "deleted": 4,
}
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_COMPOSITION_SID = re.compile(r"^CJ[0-9a-fA-F]{32}$")
_ROOM_SID = re.compile(r"^RM[0-9a-fA-F]{32}$")


class MalformedEvent(ValueError):
    """The callback parameters are not a composition event."""


@dataclass(frozen=True)
class CompositionEvent:
    """One composition status callback, validated."""

    event: str
    account_sid: str
    composition_sid: str | None
    room_sid: str | None = None
    timestamp: datetime | None = None
    percentage_done: int | None = None
    seconds_remaining: int | None = None
    duration: int | None = None
    size: int | None = None
    media_uri: str | None = None
    failed_operation: str | None = None
    error_message: str | None = None

    @property
    def dedupe_key(self) -> tuple[str, str, int | None]:
        """Callbacks with the same key say the same thing."""
        return (self.composition_sid or "", self.event, self.percentage_done)

    @property
    def ignored(self) -> bool:
        return self.event in IGNORED_EVENTS

    @property
    def failure(self) -> str | None:
        """Twilio's error for ``composition-failed``, as one line."""
        if self.event != "composition-failed":
            return None
        text = self.error_message or "Twilio reports that the composition failed"
        return f"{text} (failed operation: {self.failed_operation})" if self.failed_operation else text


def parse_event(params: Mapping[str, str]) -> CompositionEvent:
    """Validate callback parameters; raise :class:`MalformedEvent` naming the first problem."""
    event = params.get("StatusCallbackEvent", "")
    if event not in EVENT_STATES and event not in IGNORED_EVENTS:
        raise MalformedEvent(f"StatusCallbackEvent {event!r} is not a composition event")
    account_sid = params.get("AccountSid", "")
    if not _ACCOUNT_SID.match(account_sid):
        raise MalformedEvent("AccountSid is missing or malformed")
    composition_sid = params.get("CompositionSid") or None
    if event not in IGNORED_EVENTS and (
        composition_sid is None or not _COMPOSITION_SID.match(composition_sid)
    ):
        raise MalformedEvent("CompositionSid is missing or malformed")
    room_sid = params.get("RoomSid") or None
    if room_sid is not None and not _ROOM_SID.match(room_sid):
        raise MalformedEvent("RoomSid is malformed")
    percentage = _int(params, "PercentageDone")
    if percentage is not None and percentage > 100:
        raise MalformedEvent("PercentageDone is over 100")
    return CompositionEvent(
        event=event,
        account_sid=account_sid,
        composition_sid=composition_sid,
        room_sid=room_sid,
        timestamp=_timestamp(params.get("Timestamp")),
        percentage_done=percentage,
        seconds_remaining=_int(params, "SecondsRemaining"),
        duration=_int(params, "Duration"),
        size=_int(params, "Size"),
        media_uri=params.get("MediaUri") or None,
        failed_operation=params.get("FailedOperation") or None,
        error_message=params.get("ErrorMessage") or None,
    )


def _int(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise MalformedEvent(f"{name} is not a whole number") from None
    if value < 0:
        raise MalformedEvent(f"{name} is negative")
    return value


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedEvent("Timestamp is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Observation:
    """The result of folding news into a status."""

    status: CompositionStatus
    changed: bool
    """Whether anything but bookkeeping (``lastSyncedAt``, ``Synced``) changed."""
    entered: str | None = None
    """The state the composition just entered, if it moved."""


def _moves_to(current: str | None, reported: str) -> bool:
    """Whether a report of ``reported`` may replace ``current`` (forward only; first terminal state wins)."""
    return _RANK[reported] > _RANK[current]


def apply_event(
    status: CompositionStatus,
    event: CompositionEvent,
    spec: CompositionSpec | None,
    *,
    generation: int | None,
    now: datetime,
) -> Observation:
    """Fold one callback into ``status`` (which must belong to the event's composition)."""
    reported = EVENT_STATES[event.event]
    current = status.composition_status
    updates: dict[str, object] = {}
    entered = None
    if _moves_to(current, reported):
        updates["composition_status"] = reported
        entered = reported
    elif reported != current or reported != "processing":
        return Observation(_heard(status, generation, now), changed=False)
    if reported == "processing":
        progress = event.percentage_done if event.event == "composition-progress" else 0
        if progress is not None and (status.progress_percent is None or progress > status.progress_percent):
            updates["progress_percent"] = progress
            if event.seconds_remaining is not None:
                updates["seconds_remaining"] = event.seconds_remaining
    elif reported == "completed":
        updates.update(
            progress_percent=100,
            seconds_remaining=0,
            duration_seconds=event.duration if event.duration is not None else status.duration_seconds,
            size_bytes=event.size if event.size is not None else status.size_bytes,
            media_uri=event.media_uri or status.media_uri,
            completed_at=event.timestamp or now,
        )
    if not updates:
        return Observation(_heard(status, generation, now), changed=False)
    folded = status.model_copy(update=updates)
    folded = cond.summarize(folded, spec, generation=generation, now=now, failure=event.failure)
    return Observation(_heard(folded, generation, now), changed=True, entered=entered)


def apply_fetch(
    status: CompositionStatus,
    info: CompositionInfo | None,
    spec: CompositionSpec | None,
    *,
    generation: int | None,
    now: datetime,
) -> Observation:
    """Fold a FetchComposition answer (``None``: Twilio no longer knows the SID) into ``status``."""
    reported = "deleted" if info is None else info.status
    if reported not in _RANK:
        return Observation(_heard(status, generation, now), changed=False)
    updates: dict[str, object] = {}
    entered = None
    if _moves_to(status.composition_status, reported):
        updates["composition_status"] = reported
        entered = reported
        if reported == "processing" and status.progress_percent is None:
            updates["progress_percent"] = 0
    if info is not None and info.status in ("completed", "deleted"):
        for field, value in (
            ("duration_seconds", info.duration),
            ("size_bytes", info.size),
            ("completed_at", info.date_completed),
        ):
            if value is not None and getattr(status, field) is None:
                updates[field] = value
        if status.media_uri is None and info.status == "completed":
            updates["media_uri"] = f"/v1/Compositions/{info.sid}/Media"
        if info.status == "completed" and entered:
            updates.update(progress_percent=100, seconds_remaining=0)
    if not updates:
        return Observation(_heard(status, generation, now), changed=False)
    folded = cond.summarize(status.model_copy(update=updates), spec, generation=generation, now=now)
    return Observation(_heard(folded, generation, now), changed=True, entered=entered)


def _heard(status: CompositionStatus, generation: int | None, now: datetime) -> CompositionStatus:
    """Twilio was heard from: ``Synced`` True and ``lastSyncedAt`` now."""
    return cond.synced(status, generation=generation, now=now)
