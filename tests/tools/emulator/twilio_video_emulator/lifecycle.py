"""The room state machine: participants, tracks, recordings, timeouts and completion.

All transitions go through these functions so that callbacks, recordings and timeouts stay consistent
whether they are triggered by the REST API, the control API or the clock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from .core import EmulatorState, TwilioError, new_sid
from .entities import Participant, Recording, Room, Track
from .events import recording_event, room_event

log = logging.getLogger(__name__)

# Simulated media bitrates (bytes per second) used to size finished recordings.
AUDIO_BYTES_PER_SECOND = 4_000
VIDEO_BYTES_PER_SECOND = 62_500
MATROSKA_HEADER_BYTES = 1_024

DEFAULT_TRACKS: tuple[dict[str, str], ...] = (
    {"name": "audio", "kind": "audio"},
    {"name": "video", "kind": "video"},
)


def _seconds_between(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))


# ----------------------------------------------------------------------------------------------- rooms


def find_room(state: EmulatorState, sid_or_name: str, account_sid: str | None = None) -> Room | None:
    """A room by RM SID (any status) or by the UniqueName of an in-progress room.

    With ``account_sid`` only that account's rooms are found (Twilio API requests pass the principal's).
    Without it a SID finds the room of any account and a UniqueName is looked up in the main account.
    """
    room = state.rooms.get(sid_or_name)
    if room is not None:
        return room if account_sid is None or room.account_sid == account_sid else None
    sid = state.names_in(account_sid or state.account_sid).get(sid_or_name)
    return state.rooms.get(sid) if sid is not None else None


def register_room(state: EmulatorState, room: Room) -> None:
    """Add a freshly built in-progress room, fire ``room-created`` and arm its unused-room timeout."""
    state.rooms[room.sid] = room
    state.names_in(room.account_sid)[room.unique_name] = room.sid
    room_event(state, room, "room-created")
    arm_unused_timeout(state, room)


def arm_unused_timeout(state: EmulatorState, room: Room) -> None:
    due = room.date_created + timedelta(minutes=room.unused_room_timeout)

    def expire() -> None:
        if room.status == "in-progress" and not room.ever_joined:
            end_room(state, room, "completed", at=due)

    state.scheduler.call_at(due, expire)


def arm_empty_timeout(state: EmulatorState, room: Room) -> None:
    version = room.occupancy_version
    due = (room.last_left_at or state.clock.now()) + timedelta(minutes=room.empty_room_timeout)

    def expire() -> None:
        if room.status == "in-progress" and room.occupancy_version == version and not room.connected():
            end_room(state, room, "completed", at=due)

    state.scheduler.call_at(due, expire)


def end_room(
    state: EmulatorState, room: Room, status: str = "completed", *, at: datetime | None = None
) -> None:
    """Complete (or fail) an in-progress room: disconnect everyone, finalize recordings, notify.

    ``at`` is when it happened (a timer's due time); it defaults to now.
    """
    if room.status != "in-progress":
        return
    now = at or state.clock.now()
    for participant in room.connected():
        _disconnect(state, room, participant, now, finalize=False)
    room.status = status
    room.end_time = now
    room.duration = _seconds_between(room.date_created, now)
    room.date_updated = now
    room.occupancy_version += 1
    names = state.names_in(room.account_sid)
    if names.get(room.unique_name) == room.sid:
        del names[room.unique_name]
    for recording in room.recordings:
        if recording.status == "processing":
            owner = room.participants.get(recording.participant_sid)
            identity = owner.identity if owner else ""
            if status == "completed":
                _complete_recording(state, room, recording, now, identity)
            else:
                _fail_recording(state, room, recording, now, identity)
    room_event(state, room, "room-ended")
    for listener in list(state.room_completed_listeners):
        try:
            listener(room)
        except Exception:
            log.exception("room-completed listener failed for %s", room.sid)


# ----------------------------------------------------------------------------------------- participants


def connect_participant(
    state: EmulatorState, room: Room, identity: str, tracks: list[dict[str, str]] | None = None
) -> Participant:
    """Join ``identity``; an existing participant with the same identity is disconnected first (53205)."""
    if room.status != "in-progress":
        raise TwilioError(404, 53106, "Room not found")
    if not identity or len(identity) > 128:
        raise TwilioError(400, 53200 if not identity else 53201, "Participant identity is invalid")
    duplicate = next((p for p in room.connected() if p.identity == identity), None)
    occupied = len(room.connected()) - (1 if duplicate else 0)
    if occupied >= room.max_participants:
        raise TwilioError(400, 53105, "Room contains too many Participants")
    if duplicate is not None:
        disconnect_participant(state, room, duplicate)
    now = state.clock.now()
    participant = Participant(
        sid=new_sid("PA"),
        room_sid=room.sid,
        account_sid=room.account_sid,
        identity=identity,
        date_created=now,
        date_updated=now,
        start_time=now,
    )
    room.participants[participant.sid] = participant
    room.ever_joined = True
    room.occupancy_version += 1
    room_event(state, room, "participant-connected", participant)
    if tracks is None:
        tracks = [dict(t) for t in DEFAULT_TRACKS if not (room.audio_only and t["kind"] == "video")]
    for spec in tracks:
        publish_track(state, room, participant, spec["name"], spec["kind"])
    arm_duration_limit(state, room, participant)
    return participant


def arm_duration_limit(state: EmulatorState, room: Room, participant: Participant) -> None:
    due = participant.start_time + timedelta(seconds=room.max_participant_duration)

    def expire() -> None:
        if participant.status == "connected" and room.status == "in-progress":
            log.info("participant %s exceeded MaxParticipantDuration (53216)", participant.sid)
            disconnect_participant(state, room, participant, at=due)

    state.scheduler.call_at(due, expire)


def disconnect_participant(
    state: EmulatorState, room: Room, participant: Participant, *, at: datetime | None = None
) -> None:
    if participant.status != "connected":
        return
    now = at or state.clock.now()
    _disconnect(state, room, participant, now, finalize=True)
    if room.status == "in-progress" and not room.connected():
        room.last_left_at = now
        arm_empty_timeout(state, room)


def _disconnect(
    state: EmulatorState, room: Room, participant: Participant, now: datetime, *, finalize: bool
) -> None:
    for track in participant.tracks.values():
        if track.published:
            track.published = False
            track.date_updated = now
            if finalize:
                _stop_recording(state, room, participant, track, now)
            else:
                track.recording_sid = None
    participant.status = "disconnected"
    participant.end_time = now
    participant.duration = _seconds_between(participant.start_time, now)
    participant.date_updated = now
    room.occupancy_version += 1
    room_event(state, room, "participant-disconnected", participant)


def find_participant(room: Room, sid_or_identity: str) -> Participant | None:
    """By PA SID, else by identity (the connected one first, then the most recent)."""
    participant = room.participants.get(sid_or_identity)
    if participant is not None:
        return participant
    matches = [p for p in room.participants.values() if p.identity == sid_or_identity]
    connected = [p for p in matches if p.status == "connected"]
    if connected:
        return connected[-1]
    return matches[-1] if matches else None


# ----------------------------------------------------------------------------------------------- tracks


def publish_track(state: EmulatorState, room: Room, participant: Participant, name: str, kind: str) -> Track:
    if participant.status != "connected":
        raise TwilioError(400, 53204, "Participant not connected")
    if kind not in ("audio", "video", "data"):
        raise TwilioError(400, 53300, "Track kind must be audio, video or data")
    if room.audio_only and kind == "video":
        raise TwilioError(400, 53300, "Video tracks are not allowed in an audio-only room")
    if not name or len(name) > 128:
        raise TwilioError(400, 53302 if name else 53301, "Track name is invalid")
    if any(t.name == name and t.published for t in participant.tracks.values()):
        raise TwilioError(400, 53304, "Track name is duplicated")
    now = state.clock.now()
    track = Track(
        sid=new_sid("MT"),
        participant_sid=participant.sid,
        room_sid=room.sid,
        name=name,
        kind=kind,
        date_created=now,
        date_updated=now,
    )
    participant.tracks[track.sid] = track
    room_event(state, room, "track-added", participant, track)
    if should_record(room, participant, track):
        _start_recording(state, room, participant, track, now)
    return track


def find_track(participant: Participant, sid_or_name: str) -> Track | None:
    track = participant.tracks.get(sid_or_name)
    if track is not None:
        return track
    return next((t for t in participant.tracks.values() if t.name == sid_or_name and t.published), None)


def unpublish_track(state: EmulatorState, room: Room, participant: Participant, track: Track) -> None:
    if not track.published:
        return
    now = state.clock.now()
    track.published = False
    track.date_updated = now
    _stop_recording(state, room, participant, track, now)
    room_event(state, room, "track-removed", participant, track)


def set_track_enabled(
    state: EmulatorState, room: Room, participant: Participant, track: Track, enabled: bool
) -> None:
    if not track.published or track.enabled == enabled:
        return
    track.enabled = enabled
    track.date_updated = state.clock.now()
    room_event(state, room, "track-enabled" if enabled else "track-disabled", participant, track)


# --------------------------------------------------------------------------------------------- recordings


def effective_recording_rules(
    record_on_connect: bool, rules: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """The rules a new room starts with: explicit RecordingRules, else include/exclude all."""
    if rules:
        return [dict(rule) for rule in rules]
    return [{"type": "include" if record_on_connect else "exclude", "all": True}]


def _rule_matches(rule: dict[str, Any], participant: Participant, track: Track) -> bool:
    if rule.get("all"):
        return True
    checks = {"publisher": participant.identity, "track": track.name, "kind": track.kind}
    present = [key for key in checks if key in rule]
    return bool(present) and all(rule[key] == checks[key] for key in present)


def should_record(room: Room, participant: Participant, track: Track) -> bool:
    """The last matching rule decides; a track no rule matches is not recorded."""
    if room.type not in ("group", "group-small"):
        return False
    decision = False
    for rule in room.recording_rules:
        if _rule_matches(rule, participant, track):
            decision = rule.get("type") == "include"
    return decision


def apply_recording_rules(state: EmulatorState, room: Room) -> None:
    """Start or stop recordings of published tracks after the rules changed."""
    now = state.clock.now()
    for participant in room.connected():
        for track in participant.tracks.values():
            if not track.published:
                continue
            wanted = should_record(room, participant, track)
            if wanted and track.recording_sid is None:
                _start_recording(state, room, participant, track, now)
            elif not wanted and track.recording_sid is not None:
                _stop_recording(state, room, participant, track, now)


def _start_recording(
    state: EmulatorState, room: Room, participant: Participant, track: Track, now: datetime
) -> None:
    audio = track.kind == "audio"
    codec = "OPUS" if audio else (room.video_codecs[0] if room.video_codecs else "VP8")
    recording = Recording(
        sid=new_sid("RT"),
        account_sid=room.account_sid,
        room_sid=room.sid,
        participant_sid=participant.sid,
        source_sid=track.sid,
        track_name=track.name,
        type="audio" if audio else "video",
        container_format="mka" if audio else "mkv",
        codec=codec,
        date_created=now,
        date_updated=now,
        offset=int(room.date_created.timestamp() * 1000),
        status_callback=room.status_callback,
        status_callback_method=room.status_callback_method,
    )
    room.recordings.append(recording)
    state.recordings[recording.sid] = recording
    track.recording_sid = recording.sid
    recording_event(state, room, recording, "recording-started", participant.identity)


def _stop_recording(
    state: EmulatorState, room: Room, participant: Participant, track: Track, now: datetime
) -> None:
    if track.recording_sid is None:
        return
    recording = state.recordings.get(track.recording_sid)
    track.recording_sid = None
    if recording is not None and recording.status == "processing":
        _complete_recording(state, room, recording, now, participant.identity)


def _complete_recording(
    state: EmulatorState, room: Room, recording: Recording, now: datetime, identity: str
) -> None:
    seconds = max(1, _seconds_between(recording.date_created, now))
    rate = AUDIO_BYTES_PER_SECOND if recording.type == "audio" else VIDEO_BYTES_PER_SECOND
    recording.status = "completed"
    recording.duration = seconds
    recording.size = MATROSKA_HEADER_BYTES + seconds * rate
    recording.date_updated = now
    recording_event(state, room, recording, "recording-completed", identity)


def _fail_recording(
    state: EmulatorState, room: Room, recording: Recording, now: datetime, identity: str
) -> None:
    recording.status = "failed"
    recording.date_updated = now
    recording_event(
        state, room, recording, "recording-failed", identity, failed_operation="RecordingComplete"
    )


def delete_recording(state: EmulatorState, recording: Recording) -> None:
    """Remove a recording's media and metadata; later fetches answer 404."""
    state.recordings.pop(recording.sid, None)
    room = state.rooms.get(recording.room_sid)
    if room is not None and recording in room.recordings:
        room.recordings.remove(recording)
