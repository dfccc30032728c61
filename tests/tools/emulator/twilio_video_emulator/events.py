"""Room and recording status-callback events, with Twilio's parameter names."""

from __future__ import annotations

from datetime import UTC

from .core import EmulatorState
from .entities import Participant, Recording, Room, Track
from .render import room_recording_path


def _timestamp(state: EmulatorState) -> str:
    """UTC ISO-8601 with milliseconds, as Twilio's room callbacks carry it."""
    now = state.clock.now().astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _deliver(state: EmulatorState, room: Room, event: str, params: dict[str, str]) -> None:
    if room.status_callback:
        token = state.auth_token_of(room.account_sid)
        state.callbacks.send(room.status_callback, room.status_callback_method, params, event, token)


def room_event(
    state: EmulatorState,
    room: Room,
    event: str,
    participant: Participant | None = None,
    track: Track | None = None,
) -> None:
    """Send a ``room-*``, ``participant-*`` or ``track-*`` event to the room's StatusCallback."""
    if not room.status_callback:
        return
    params = {
        "AccountSid": room.account_sid,
        "RoomName": room.unique_name,
        "RoomSid": room.sid,
        "RoomStatus": room.status,
        "RoomType": room.type,
        "StatusCallbackEvent": event,
        "Timestamp": _timestamp(state),
        "SequenceNumber": str(room.callback_sequence),
    }
    room.callback_sequence += 1
    if participant is not None:
        params["ParticipantSid"] = participant.sid
        params["ParticipantStatus"] = participant.status
        params["ParticipantIdentity"] = participant.identity
        if event == "participant-disconnected":
            params["ParticipantDuration"] = str(participant.duration or 0)
    if track is not None:
        params["TrackSid"] = track.sid
        params["TrackKind"] = track.kind
    if event == "room-ended":
        params["RoomDuration"] = str(room.duration or 0)
    _deliver(state, room, event, params)


def recording_event(
    state: EmulatorState,
    room: Room,
    recording: Recording,
    event: str,
    participant_identity: str,
    failed_operation: str | None = None,
) -> None:
    """Send a ``recording-*`` event to the room's StatusCallback."""
    if not room.status_callback:
        return
    uri = room_recording_path(recording)
    params = {
        "AccountSid": recording.account_sid,
        "RecordingSid": recording.sid,
        "Timestamp": _timestamp(state),
        "StatusCallbackEvent": event,
        "RoomSid": room.sid,
        "RoomName": room.unique_name,
        "RoomType": room.type,
        "ParticipantSid": recording.participant_sid,
        "SourceSid": recording.source_sid,
        "RecordingUri": uri,
        "Container": recording.container_format,
        "Codec": recording.codec,
        "ParticipantIdentity": participant_identity,
        "TrackName": recording.track_name,
        "OffsetFromTwilioVideoEpoch": str(recording.offset),
        "Type": recording.type,
    }
    if event == "recording-completed":
        params["MediaUri"] = f"{uri}/Media"
        params["Duration"] = str(recording.duration or 0)
        params["Size"] = str(recording.size or 0)
        if recording.media_external_location:
            params["MediaExternalLocation"] = recording.media_external_location
    if event == "recording-failed" and failed_operation:
        params["FailedOperation"] = failed_operation
    _deliver(state, room, event, params)
