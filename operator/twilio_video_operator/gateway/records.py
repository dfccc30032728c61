"""Small immutable views of Twilio resources. The gateway returns these, never SDK objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr


@dataclass(frozen=True)
class RoomInfo:
    sid: str
    status: str
    """``in-progress``, ``completed`` or ``failed``."""
    unique_name: str | None
    type: str | None
    account_sid: str | None
    max_participants: int | None
    max_participant_duration: int | None
    date_created: datetime | None
    date_updated: datetime | None
    end_time: datetime | None
    duration: int | None
    """Seconds; set once the room has ended."""
    status_callback: str | None
    status_callback_method: str | None
    video_codecs: tuple[str, ...]
    media_region: str | None
    audio_only: bool | None
    record_participants_on_connect: bool | None
    empty_room_timeout: int | None
    unused_room_timeout: int | None
    large_room: bool | None
    url: str | None

    @property
    def in_progress(self) -> bool:
        return self.status == "in-progress"


@dataclass(frozen=True)
class ParticipantInfo:
    sid: str
    room_sid: str | None
    account_sid: str | None
    identity: str | None
    status: str
    """``connected``, ``disconnected`` or ``reconnecting``."""
    date_created: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    duration: int | None


@dataclass(frozen=True)
class CompositionInfo:
    sid: str
    room_sid: str | None
    account_sid: str | None
    status: str
    """``enqueued``, ``processing``, ``completed``, ``deleted`` or ``failed``."""
    date_created: datetime | None
    date_completed: datetime | None
    date_deleted: datetime | None
    audio_sources: tuple[str, ...]
    audio_sources_excluded: tuple[str, ...]
    video_layout: Mapping[str, Any] | None
    resolution: str | None
    format: str | None
    trim: bool | None
    bitrate: int | None
    size: int | None
    """Bytes of the media file, once completed."""
    duration: int | None
    media_external_location: str | None
    status_callback: str | None
    status_callback_method: str | None
    url: str | None
    media_url: str | None
    """The ``links.media`` URL (answers with a redirect to the file; see ``composition_media_url``)."""


@dataclass(frozen=True)
class KeyInfo:
    sid: str
    friendly_name: str | None
    date_created: datetime | None
    date_updated: datetime | None


@dataclass(frozen=True)
class NewKey:
    """A freshly created API key. ``secret`` is shown by Twilio only in this one response."""

    sid: str
    friendly_name: str | None
    secret: SecretStr
    date_created: datetime | None


def room_info(instance: Any) -> RoomInfo:
    return RoomInfo(
        sid=str(instance.sid),
        status=str(instance.status),
        unique_name=_opt_str(instance.unique_name),
        type=_opt_str(instance.type),
        account_sid=_opt_str(instance.account_sid),
        max_participants=_opt_int(instance.max_participants),
        max_participant_duration=_opt_int(instance.max_participant_duration),
        date_created=_as_datetime(instance.date_created),
        date_updated=_as_datetime(instance.date_updated),
        end_time=_as_datetime(instance.end_time),
        duration=_opt_int(instance.duration),
        status_callback=_opt_str(instance.status_callback),
        status_callback_method=_opt_str(instance.status_callback_method),
        video_codecs=_str_tuple(instance.video_codecs),
        media_region=_opt_str(instance.media_region),
        audio_only=_opt_bool(instance.audio_only),
        record_participants_on_connect=_opt_bool(instance.record_participants_on_connect),
        empty_room_timeout=_opt_int(instance.empty_room_timeout),
        unused_room_timeout=_opt_int(instance.unused_room_timeout),
        large_room=_opt_bool(instance.large_room),
        url=_opt_str(instance.url),
    )


def participant_info(instance: Any) -> ParticipantInfo:
    return ParticipantInfo(
        sid=str(instance.sid),
        room_sid=_opt_str(instance.room_sid),
        account_sid=_opt_str(instance.account_sid),
        identity=_opt_str(instance.identity),
        status=str(instance.status),
        date_created=_as_datetime(instance.date_created),
        start_time=_as_datetime(instance.start_time),
        end_time=_as_datetime(instance.end_time),
        duration=_opt_int(instance.duration),
    )


def composition_info(instance: Any) -> CompositionInfo:
    links = instance.links if isinstance(instance.links, Mapping) else {}
    layout = instance.video_layout
    return CompositionInfo(
        sid=str(instance.sid),
        room_sid=_opt_str(instance.room_sid),
        account_sid=_opt_str(instance.account_sid),
        status=str(instance.status),
        date_created=_as_datetime(instance.date_created),
        date_completed=_as_datetime(instance.date_completed),
        date_deleted=_as_datetime(instance.date_deleted),
        audio_sources=_str_tuple(instance.audio_sources),
        audio_sources_excluded=_str_tuple(instance.audio_sources_excluded),
        video_layout=MappingProxyType(dict(layout)) if isinstance(layout, Mapping) and layout else None,
        resolution=_opt_str(instance.resolution),
        format=_opt_str(instance.format),
        trim=_opt_bool(instance.trim),
        bitrate=_opt_int(instance.bitrate),
        size=_opt_int(instance.size),
        duration=_opt_int(instance.duration),
        media_external_location=_opt_str(instance.media_external_location),
        status_callback=_opt_str(instance.status_callback),
        status_callback_method=_opt_str(instance.status_callback_method),
        url=_opt_str(instance.url),
        media_url=_opt_str(links.get("media")),
    )


def key_info(instance: Any) -> KeyInfo:
    return KeyInfo(
        sid=str(instance.sid),
        friendly_name=_opt_str(instance.friendly_name),
        date_created=_as_datetime(instance.date_created),
        date_updated=_as_datetime(instance.date_updated),
    )


def new_key(instance: Any) -> NewKey:
    if not instance.secret:
        raise ValueError("Twilio returned a new key without its secret")
    return NewKey(
        sid=str(instance.sid),
        friendly_name=_opt_str(instance.friendly_name),
        secret=SecretStr(str(instance.secret)),
        date_created=_as_datetime(instance.date_created),
    )


def _as_datetime(value: Any) -> datetime | None:
    """SDK datetimes as they are; strings the SDK could not parse (other ISO forms, RFC 2822) parsed here."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _opt_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    return None


def _str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value)
    return ()
