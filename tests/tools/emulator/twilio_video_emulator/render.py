"""JSON bodies of the rooms-side resources, shaped like Twilio's (field names, nulls, absolute URLs)."""

from __future__ import annotations

from typing import Any

from .core import EmulatorState, iso, iso_or_none
from .entities import Participant, Recording, Room, Track, Transcription


def room_url(state: EmulatorState, room_sid: str) -> str:
    return state.url(f"/v1/Rooms/{room_sid}")


def render_room(state: EmulatorState, room: Room) -> dict[str, Any]:
    url = room_url(state, room.sid)
    return {
        "sid": room.sid,
        "status": room.status,
        "date_created": iso(room.date_created),
        "date_updated": iso(room.date_updated),
        "account_sid": room.account_sid,
        "enable_turn": room.enable_turn,
        "unique_name": room.unique_name,
        "status_callback": room.status_callback,
        "status_callback_method": room.status_callback_method,
        "end_time": iso_or_none(room.end_time),
        "duration": room.duration,
        "type": room.type,
        "max_participants": room.max_participants,
        "max_participant_duration": room.max_participant_duration,
        "max_concurrent_published_tracks": room.max_concurrent_published_tracks,
        "record_participants_on_connect": room.record_participants_on_connect,
        "video_codecs": list(room.video_codecs),
        "media_region": room.media_region,
        "audio_only": room.audio_only,
        "empty_room_timeout": room.empty_room_timeout,
        "unused_room_timeout": room.unused_room_timeout,
        "large_room": room.large_room,
        "url": url,
        "links": {
            "participants": f"{url}/Participants",
            "recordings": f"{url}/Recordings",
            "recording_rules": f"{url}/RecordingRules",
            "transcriptions": f"{url}/Transcriptions",
        },
    }


def participant_url(state: EmulatorState, participant: Participant) -> str:
    return f"{room_url(state, participant.room_sid)}/Participants/{participant.sid}"


def render_participant(state: EmulatorState, participant: Participant) -> dict[str, Any]:
    url = participant_url(state, participant)
    return {
        "sid": participant.sid,
        "room_sid": participant.room_sid,
        "account_sid": participant.account_sid,
        "status": participant.status,
        "identity": participant.identity,
        "date_created": iso(participant.date_created),
        "date_updated": iso(participant.date_updated),
        "start_time": iso(participant.start_time),
        "end_time": iso_or_none(participant.end_time),
        "duration": participant.duration,
        "url": url,
        "links": {
            "published_tracks": f"{url}/PublishedTracks",
            "subscribed_tracks": f"{url}/SubscribedTracks",
            "subscribe_rules": f"{url}/SubscribeRules",
            "anonymize": f"{url}/Anonymize",
        },
    }


def render_anonymize(state: EmulatorState, participant: Participant) -> dict[str, Any]:
    body = render_participant(state, participant)
    del body["links"]
    body["url"] = f"{body['url']}/Anonymize"
    return body


def render_published_track(state: EmulatorState, participant: Participant, track: Track) -> dict[str, Any]:
    return {
        "sid": track.sid,
        "participant_sid": track.participant_sid,
        "room_sid": track.room_sid,
        "name": track.name,
        "date_created": iso(track.date_created),
        "date_updated": iso(track.date_updated),
        "enabled": track.enabled,
        "kind": track.kind,
        "url": f"{participant_url(state, participant)}/PublishedTracks/{track.sid}",
    }


def render_subscribed_track(state: EmulatorState, subscriber: Participant, track: Track) -> dict[str, Any]:
    return {
        "sid": track.sid,
        "participant_sid": subscriber.sid,
        "publisher_sid": track.participant_sid,
        "room_sid": track.room_sid,
        "name": track.name,
        "date_created": iso(track.date_created),
        "date_updated": iso(track.date_updated),
        "enabled": track.enabled,
        "kind": track.kind,
        "url": f"{participant_url(state, subscriber)}/SubscribedTracks/{track.sid}",
    }


def _recording_common(recording: Recording) -> dict[str, Any]:
    return {
        "account_sid": recording.account_sid,
        "status": recording.status,
        "date_created": iso(recording.date_created),
        "sid": recording.sid,
        "source_sid": recording.source_sid,
        "size": recording.size,
        "type": recording.type,
        "duration": recording.duration,
        "container_format": recording.container_format,
        "codec": recording.codec,
        "grouping_sids": {"room_sid": recording.room_sid, "participant_sid": recording.participant_sid},
        "track_name": recording.track_name,
        "offset": recording.offset,
        "media_external_location": recording.media_external_location,
    }


def room_recording_path(recording: Recording) -> str:
    return f"/v1/Rooms/{recording.room_sid}/Recordings/{recording.sid}"


def render_room_recording(state: EmulatorState, recording: Recording) -> dict[str, Any]:
    url = state.url(room_recording_path(recording))
    body = _recording_common(recording)
    body.update({"url": url, "room_sid": recording.room_sid, "links": {"media": f"{url}/Media"}})
    return body


def render_recording(state: EmulatorState, recording: Recording) -> dict[str, Any]:
    url = state.url(f"/v1/Recordings/{recording.sid}")
    body = _recording_common(recording)
    body.update(
        {
            "url": url,
            "status_callback": recording.status_callback,
            "status_callback_method": recording.status_callback_method,
            "links": {"media": f"{url}/Media"},
        }
    )
    return body


def render_recording_rules(room: Room) -> dict[str, Any]:
    return {
        "room_sid": room.sid,
        "rules": [dict(rule) for rule in room.recording_rules],
        "date_created": iso(room.date_created),
        "date_updated": iso(room.recording_rules_updated or room.date_created),
    }


SUBSCRIBE_RULE_FIELDS = ("type", "all", "publisher", "track", "kind", "priority")
DEFAULT_SUBSCRIBE_RULES: tuple[dict[str, Any], ...] = ({"type": "include", "all": True},)


def render_subscribe_rules(participant: Participant) -> dict[str, Any]:
    rules = participant.subscribe_rules or list(DEFAULT_SUBSCRIBE_RULES)
    updated = participant.subscribe_rules_updated
    return {
        "participant_sid": participant.sid,
        "room_sid": participant.room_sid,
        "rules": [{name: rule[name] for name in SUBSCRIBE_RULE_FIELDS if name in rule} for rule in rules],
        "date_created": iso_or_none(updated and participant.date_created),
        "date_updated": iso_or_none(updated),
    }


def render_transcription(state: EmulatorState, transcription: Transcription) -> dict[str, Any]:
    return {
        "ttid": transcription.ttid,
        "account_sid": transcription.account_sid,
        "room_sid": transcription.room_sid,
        "source_sid": None,
        "status": transcription.status,
        "date_created": iso(transcription.date_created),
        "date_updated": iso(transcription.date_updated),
        "start_time": iso(transcription.start_time),
        "end_time": iso_or_none(transcription.end_time),
        "duration": transcription.duration,
        "url": state.url(f"/v1/Rooms/{transcription.room_sid}/Transcriptions/{transcription.ttid}"),
        "configuration": transcription.configuration,
    }
