"""The emulator's resources as plain data classes (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Account:
    """A Twilio account: the main account, or a subaccount whose ``owner_account_sid`` is the main one."""

    sid: str
    auth_token: str
    friendly_name: str
    owner_account_sid: str
    date_created: datetime
    date_updated: datetime
    status: str = "active"  # active | suspended | closed

    @property
    def is_subaccount(self) -> bool:
        return self.owner_account_sid != self.sid


@dataclass
class ApiKey:
    """An API key (``Keys``) or signing key (``SigningKeys``); ``type`` is main, standard or restricted."""

    sid: str
    account_sid: str
    friendly_name: str
    secret: str
    date_created: datetime
    date_updated: datetime
    type: str = "standard"
    kind: str = "key"  # "key" (Keys.json / IAM) or "signing_key" (SigningKeys.json)
    policy: Any = None


@dataclass
class Track:
    """A track published by a participant (MT SID)."""

    sid: str
    participant_sid: str
    room_sid: str
    name: str
    kind: str
    date_created: datetime
    date_updated: datetime
    enabled: bool = True
    published: bool = True
    recording_sid: str | None = None


@dataclass
class Participant:
    """A simulated participant of a room (PA SID)."""

    sid: str
    room_sid: str
    account_sid: str
    identity: str
    date_created: datetime
    date_updated: datetime
    start_time: datetime
    status: str = "connected"
    end_time: datetime | None = None
    duration: int | None = None
    tracks: dict[str, Track] = field(default_factory=dict)
    subscribe_rules: list[dict[str, Any]] = field(default_factory=list)
    subscribe_rules_updated: datetime | None = None


@dataclass
class Recording:
    """A track recording (RT SID); ``status`` goes processing -> completed (or failed)."""

    sid: str
    account_sid: str
    room_sid: str
    participant_sid: str
    source_sid: str
    track_name: str
    type: str  # audio | video
    container_format: str  # mka | mkv
    codec: str  # OPUS | VP8 | H264 | PCMU
    date_created: datetime
    offset: int
    status: str = "processing"
    duration: int | None = None
    size: int | None = None
    date_updated: datetime | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    media_external_location: str | None = None


@dataclass
class Transcription:
    """A room transcription session (TT SID)."""

    ttid: str
    account_sid: str
    room_sid: str
    date_created: datetime
    date_updated: datetime
    start_time: datetime
    configuration: dict[str, Any]
    status: str = "started"
    end_time: datetime | None = None
    duration: int | None = None


@dataclass
class Room:
    """A Video room (RM SID) with its participants, recordings, rules and transcriptions."""

    sid: str
    account_sid: str
    unique_name: str
    type: str
    date_created: datetime
    date_updated: datetime
    status: str = "in-progress"
    end_time: datetime | None = None
    duration: int | None = None
    enable_turn: bool = True
    status_callback: str | None = None
    status_callback_method: str = "POST"
    max_participants: int = 50
    max_participant_duration: int = 14400
    max_concurrent_published_tracks: int = 0
    record_participants_on_connect: bool = False
    transcribe_participants_on_connect: bool = False
    transcriptions_configuration: dict[str, Any] | None = None
    video_codecs: list[str] = field(default_factory=lambda: ["VP8", "H264"])
    media_region: str = "us1"
    audio_only: bool = False
    empty_room_timeout: int = 5
    unused_room_timeout: int = 5
    large_room: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)
    recordings: list[Recording] = field(default_factory=list)
    recording_rules: list[dict[str, Any]] = field(default_factory=list)
    recording_rules_updated: datetime | None = None
    transcriptions: dict[str, Transcription] = field(default_factory=dict)
    ever_joined: bool = False
    last_left_at: datetime | None = None
    # Bumped whenever the room's occupancy changes, so stale timeout checks can tell they are outdated.
    occupancy_version: int = 0
    callback_sequence: int = 0

    def connected(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.status == "connected"]
