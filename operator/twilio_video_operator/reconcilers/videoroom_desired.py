"""What a VideoRoom spec asks of Twilio: create parameters, the schedule window, spec checks, moderation.

Pure functions of the spec, the operator defaults and the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twilio_video_operator.gateway.records import RoomInfo
from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.timestamps import shifted
from twilio_video_operator.models.videoroom import (
    RECORDING_ROOM_TYPES,
    RoomSettings,
    VideoRoomSpec,
    VideoRoomStatus,
    default_unique_name,
)

#: Room types that accept ``AudioOnly`` (Twilio answers 53124 for the others).
AUDIO_ONLY_ROOM_TYPES = ("group", "group-small")


@dataclass(frozen=True)
class Defaults:
    """Operator-wide defaults and wiring (from the operator settings)."""

    room_type: str = "group"
    """``VIDEO_ROOM_TYPE``: type of rooms whose spec leaves ``type`` unset."""
    max_participants: int = 25
    """``VIDEO_MAX_PARTICIPANTS``: cap of rooms whose spec leaves ``maxParticipants`` unset."""
    status_callback: str | None = None
    """``<PUBLIC_BASE_URL>/twilio/room-events``; ``None`` creates rooms without a status callback."""


@dataclass(frozen=True)
class Window:
    """When a room may exist: ``opens_at`` (startTime - provisionAhead) and ``closes_at`` (endTime)."""

    opens_at: datetime | None = None
    closes_at: datetime | None = None

    def before(self, now: datetime) -> bool:
        return self.opens_at is not None and now < self.opens_at

    def after(self, now: datetime) -> bool:
        return self.closes_at is not None and now >= self.closes_at


def window_of(spec: VideoRoomSpec) -> Window:
    schedule = spec.schedule
    if schedule is None:
        return Window()
    opens_at = None
    if schedule.start_time is not None:
        opens_at = shifted(schedule.start_time, -parse_duration(schedule.provision_ahead))
    return Window(opens_at=opens_at, closes_at=schedule.end_time)


def unique_name_of(spec: VideoRoomSpec, namespace: str, name: str) -> str:
    return spec.unique_name or default_unique_name(namespace, name)


def room_type_of(spec: VideoRoomSpec, defaults: Defaults) -> str:
    return spec.type or defaults.room_type


def extra_problems(spec: VideoRoomSpec, defaults: Defaults) -> list[str]:
    """Rules the schema cannot check because they involve operator defaults (the effective room type)."""
    problems: list[str] = []
    room_type = room_type_of(spec, defaults)
    if spec.recording is not None and room_type not in RECORDING_ROOM_TYPES:
        problems.append(f"spec.recording: recording needs a group or group-small room, not type {room_type}")
    if spec.audio_only and room_type not in AUDIO_ONLY_ROOM_TYPES:
        problems.append(
            f"spec.audioOnly: Twilio supports audio-only rooms of type group only, not {room_type}"
        )
    return problems


def recording_rules_of(spec: VideoRoomSpec) -> list[dict[str, Any]] | None:
    """``spec.recording.rules`` as Twilio takes them, in order (the last match wins); ``None`` if unset."""
    recording = spec.recording
    return [rule.to_dict() for rule in recording.rules] if recording and recording.rules else None


def implied_recording_rules(record_on_connect: bool) -> list[dict[str, Any]]:
    """The rules of a room created without any: all tracks or none, as RecordParticipantsOnConnect said."""
    return [{"type": "include" if record_on_connect else "exclude", "all": True}]


def describe_rules(rules: Iterable[Mapping[str, Any]]) -> str:
    """``include kind=audio; exclude publisher=bob`` (for Events)."""
    parts = []
    for rule in rules:
        filters = ",".join(f"{key}={rule[key]}" for key in ("publisher", "track", "kind") if key in rule)
        parts.append(f"{rule.get('type')} {'all' if rule.get('all') else filters}")
    return "; ".join(parts)


def create_params(spec: VideoRoomSpec, defaults: Defaults, unique_name: str) -> dict[str, Any]:
    """Keyword arguments of ``create_room`` for this spec; ``None`` values are not sent to Twilio."""
    recording = spec.recording
    rules = recording_rules_of(spec)
    return {
        "unique_name": unique_name,
        "type": room_type_of(spec, defaults),
        "max_participants": spec.max_participants or defaults.max_participants,
        "status_callback": defaults.status_callback,
        "status_callback_method": "POST" if defaults.status_callback else None,
        "max_participant_duration": spec.max_participant_duration,
        "empty_room_timeout": spec.empty_room_timeout,
        "unused_room_timeout": spec.unused_room_timeout,
        "media_region": spec.media_region,
        "video_codecs": list(spec.video_codecs) if spec.video_codecs else None,
        "audio_only": spec.audio_only,
        "record_participants_on_connect": recording.participants_on_connect if recording else None,
        "recording_rules": rules,
    }


def _optional_fixed_fields(spec: VideoRoomSpec) -> list[tuple[str, Any]]:
    """Fixed room settings the spec may leave unset (Twilio's defaults then apply), by spec field name."""
    recording = spec.recording
    return [
        ("maxParticipantDuration", spec.max_participant_duration),
        ("emptyRoomTimeout", spec.empty_room_timeout),
        ("unusedRoomTimeout", spec.unused_room_timeout),
        ("mediaRegion", spec.media_region),
        ("videoCodecs", spec.video_codecs),
        ("audioOnly", spec.audio_only),
        ("recording.participantsOnConnect", recording.participants_on_connect if recording else None),
    ]


def explicit_fields(spec: VideoRoomSpec | None) -> list[str] | None:
    """Which of those the spec sets (``None`` when none does), as recorded in ``roomSettings.fromSpec``."""
    if spec is None:
        return None
    return [name for name, value in _optional_fixed_fields(spec) if value is not None] or None


def settings_of_room(room: RoomInfo, spec: VideoRoomSpec | None = None) -> RoomSettings:
    """The fixed settings of a Twilio room, as recorded in ``status.roomSettings``.

    ``spec`` is the spec the session is opened (or taken over) for: the fields it sets are recorded too.
    """
    return RoomSettings(
        type=room.type,
        max_participants=room.max_participants,
        max_participant_duration=room.max_participant_duration,
        empty_room_timeout=room.empty_room_timeout,
        unused_room_timeout=room.unused_room_timeout,
        media_region=room.media_region,
        video_codecs=list(room.video_codecs) if room.video_codecs else None,
        audio_only=room.audio_only,
        record_participants_on_connect=room.record_participants_on_connect,
        from_spec=explicit_fields(spec),
    )


def pending_changes(
    spec: VideoRoomSpec, defaults: Defaults, status: VideoRoomStatus, unique_name: str
) -> list[str]:
    """Spec fields that differ from the live room and that Twilio cannot change on it (``field: old -> new``).

    A field the spec leaves unset is compared only if the session was opened with it set
    (``roomSettings.fromSpec``): removing it is a change (``field: old -> Twilio's default``). Values the live
    room does not report are not compared.
    """
    current = status.room_settings or RoomSettings()
    opened_with = set(current.from_spec or ())
    live: dict[str, Any] = {
        "maxParticipantDuration": current.max_participant_duration,
        "emptyRoomTimeout": current.empty_room_timeout,
        "unusedRoomTimeout": current.unused_room_timeout,
        "mediaRegion": current.media_region,
        "videoCodecs": current.video_codecs,
        "audioOnly": current.audio_only,
        "recording.participantsOnConnect": current.record_participants_on_connect,
    }
    desired: list[tuple[str, Any, Any]] = [
        ("type", room_type_of(spec, defaults), current.type),
        ("maxParticipants", spec.max_participants or defaults.max_participants, current.max_participants),
        *((field, new, live[field]) for field, new in _optional_fixed_fields(spec)),
    ]
    changes: list[str] = []
    for field, new, old in desired:
        if old is None or (new is None and field not in opened_with):
            continue
        if field == "videoCodecs":
            if new is None or set(new) != set(old):
                changes.append(f"{field}: {','.join(old)} -> {_shown(new)}")
        elif new != old:
            changes.append(f"{field}: {old} -> {_shown(new)}")
    if status.unique_name and status.unique_name != unique_name:
        changes.append(f"uniqueName: {status.unique_name} -> {unique_name}")
    return changes


def _shown(value: Any) -> str:
    if value is None:
        return "Twilio's default"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def blocked_identities(spec: VideoRoomSpec) -> frozenset[str]:
    return frozenset(spec.moderation.blocked_identities) if spec.moderation else frozenset()


def moderation_digest(room_sid: str, blocked: Iterable[str]) -> str:
    """A short digest of (room, blocked identities): a change means the list must be enforced again."""
    text = room_sid + "\n" + "\n".join(sorted(set(blocked)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
