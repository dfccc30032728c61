"""Room status callbacks: parse Twilio's form parameters and fold one event into a VideoRoom status (pure).

Only what the event itself says is used; nothing is polled. Participant counts move by one per
``participant-connected``/``participant-disconnected`` (never below zero; duplicates are filtered before
they get here), ``room-ended`` records the end, a participant whose identity is blocked is reported so
that the caller disconnects it, and one who joins while identities are muted so that the caller sets its
subscribe rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twilio_video_operator.models.videoroom import ParticipantCounts, VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom_desired import blocked_identities
from twilio_video_operator.reconcilers.videoroom_mutes import mute_rules

ROOM_ENDED = "room-ended"
ROOM_CREATED = "room-created"
PARTICIPANT_CONNECTED = "participant-connected"
PARTICIPANT_DISCONNECTED = "participant-disconnected"
ENDED_STATUSES = ("completed", "failed")
#: Room types as metric label values; anything else is reported as ``other``.
KNOWN_ROOM_TYPES = ("group", "group-small", "peer-to-peer", "go")


@dataclass(frozen=True)
class RoomCallback:
    account_sid: str
    room_sid: str
    event: str
    room_status: str | None = None
    room_type: str | None = None
    room_name: str | None = None
    timestamp: datetime | None = None
    participant_sid: str | None = None
    participant_identity: str | None = None
    participant_duration: int | None = None
    room_duration: int | None = None

    @property
    def metric_room_type(self) -> str:
        return self.room_type if self.room_type in KNOWN_ROOM_TYPES else "other"


@dataclass(frozen=True)
class CallbackEffects:
    """What one event means: the new status, who to disconnect, and whether to reconcile now."""

    status: VideoRoomStatus
    disconnect: tuple[tuple[str, str], ...] = ()
    """``(participant SID or identity, identity)`` of blocked participants who just connected."""
    subscribe: tuple[str, ...] = ()
    """SIDs of participants who just connected and need the mutes' subscribe rules."""
    reconcile: bool = False
    participant_seconds: int = 0


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_room_callback(params: Mapping[str, str]) -> RoomCallback | None:
    """The event in ``params`` (Twilio's form fields), or ``None`` without AccountSid/RoomSid/event."""
    account, room, event = params.get("AccountSid"), params.get("RoomSid"), params.get("StatusCallbackEvent")
    if not account or not room or not event:
        return None
    return RoomCallback(
        account_sid=account,
        room_sid=room,
        event=event,
        room_status=params.get("RoomStatus") or None,
        room_type=params.get("RoomType") or None,
        room_name=params.get("RoomName") or None,
        timestamp=_time(params.get("Timestamp")),
        participant_sid=params.get("ParticipantSid") or None,
        participant_identity=params.get("ParticipantIdentity") or None,
        participant_duration=_int(params.get("ParticipantDuration")),
        room_duration=_int(params.get("RoomDuration")),
    )


def _counts(status: VideoRoomStatus, delta: int) -> ParticipantCounts:
    counts = status.participants or ParticipantCounts()
    connected = max(0, (counts.connected or 0) + delta)
    return ParticipantCounts(connected=connected, peak=max(counts.peak or 0, connected))


def apply_room_callback(
    status: VideoRoomStatus, spec: VideoRoomSpec | None, event: RoomCallback, now: datetime
) -> CallbackEffects:
    """Fold ``event`` into ``status``. Events of another session than ``status.sid`` change nothing."""
    if event.room_sid != status.sid:
        return CallbackEffects(status)
    update: dict[str, Any] = {}
    if event.event == PARTICIPANT_CONNECTED:
        update["participants"] = _counts(status, +1)
        identity = event.participant_identity
        blocked = blocked_identities(spec) if spec is not None else frozenset()
        if identity is not None and identity in blocked and status.room_status == "in-progress":
            target = event.participant_sid or identity
            return CallbackEffects(status.model_copy(update=update), disconnect=((target, identity),))
        live = status.room_status == "in-progress" and event.participant_sid is not None
        subscribe = (event.participant_sid,) if live and mute_rules(spec) and event.participant_sid else ()
        return CallbackEffects(status.model_copy(update=update), subscribe=subscribe)
    if event.event == PARTICIPANT_DISCONNECTED:
        update["participants"] = _counts(status, -1)
        return CallbackEffects(
            status.model_copy(update=update), participant_seconds=max(0, event.participant_duration or 0)
        )
    if event.event == ROOM_ENDED:
        ended = event.room_status if event.room_status in ENDED_STATUSES else "completed"
        counts = status.participants or ParticipantCounts()
        update = {
            "room_status": ended,
            "ended_at": event.timestamp or now,
            "duration_seconds": event.room_duration,
            "participants": ParticipantCounts(connected=0, peak=counts.peak),
        }
        # Our own CompleteRoom already recorded the end; a room Twilio ended needs a reconcile (keepAlive,
        # recording composition, conditions).
        return CallbackEffects(
            status.model_copy(update=update), reconcile=status.room_status == "in-progress"
        )
    if event.event == ROOM_CREATED and status.room_status is None:
        return CallbackEffects(status.model_copy(update={"room_status": "in-progress"}))
    return CallbackEffects(status)
