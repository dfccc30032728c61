"""Video v1 Rooms: create, list, fetch, update; Recording Rules; Transcriptions.

Rooms belong to the account of the request's principal: UniqueNames are unique per account, and a room of
another account is not found (404/20404) and not listed.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiMapping

from .auth import account_of
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    bad_request,
    new_sid,
    paginate_v1,
    param_bool,
    param_date,
    param_enum,
    param_int,
    param_json,
    read_params,
)
from .entities import Room, Transcription
from .lifecycle import apply_recording_rules, effective_recording_rules, end_room, find_room, register_room
from .render import render_recording_rules, render_room, render_transcription
from .rules import validate_recording_rules

ROOM_TYPES = ("group", "go", "peer-to-peer", "group-small")
ROOM_STATUSES = ("in-progress", "completed", "failed")
VIDEO_CODECS = ("VP8", "H264")
# max_participants when CreateRoom does not say (not documented by Twilio; see docs/emulator.md).
DEFAULT_MAX_PARTICIPANTS = {"group": 50, "group-small": 4, "peer-to-peer": 10, "go": 2}
MAX_UNIQUE_NAME = 128
MAX_CALLBACK_URL = 2048


def room_from_path(state: EmulatorState, request: web.Request, name: str = "RoomSid") -> Room:
    room = find_room(state, request.match_info[name], account_of(request))
    if room is None:
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
    return room


def validate_callback_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > MAX_CALLBACK_URL:
        raise TwilioError(400, 53111, "StatusCallback is invalid")
    return value


def _unique_name(params: MultiMapping[str]) -> str | None:
    name = params.get("UniqueName")
    if name is None or name == "":
        return None
    if len(name) > MAX_UNIQUE_NAME:
        raise TwilioError(400, 53101, "Room name is too long")
    if any(ord(char) < 32 or char == "/" for char in name):
        raise TwilioError(400, 53102, "Room name contains invalid characters")
    return name


def _video_codecs(params: MultiMapping[str]) -> list[str]:
    values = params.getall("VideoCodecs", [])
    codecs: list[str] = []
    for value in values:
        canonical = next((codec for codec in VIDEO_CODECS if codec.lower() == value.strip().lower()), None)
        if canonical is None:
            raise bad_request("VideoCodecs must be VP8 or H264", 53103)
        if canonical not in codecs:
            codecs.append(canonical)
    return codecs or list(VIDEO_CODECS)


async def create_room(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    params = await read_params(request)
    room_type = param_enum(params, "Type", ROOM_TYPES, code=53108, default="group")
    unique_name = _unique_name(params)
    if unique_name is not None and unique_name in state.names_in(account_sid):
        raise TwilioError(400, 53113, "Room exists")
    callback = validate_callback_url(params.get("StatusCallback"))
    method = param_enum(params, "StatusCallbackMethod", ("GET", "POST"), code=53110, default="POST")
    max_participants = param_int(
        params, "MaxParticipants", lo=1, hi=50, code=53107, default=DEFAULT_MAX_PARTICIPANTS[room_type]
    )
    max_duration = param_int(params, "MaxParticipantDuration", lo=600, hi=86400, code=53216, default=14400)
    empty_timeout = param_int(params, "EmptyRoomTimeout", lo=1, hi=60, code=53109, default=5)
    unused_timeout = param_int(params, "UnusedRoomTimeout", lo=1, hi=60, code=53109, default=5)
    audio_only = param_bool(params, "AudioOnly", False)
    if audio_only and room_type not in ("group", "group-small"):
        raise TwilioError(400, 53124, "The AudioOnly flag is not supported for the Room type")
    record_on_connect = param_bool(params, "RecordParticipantsOnConnect", False)
    raw_rules = param_json(params, "RecordingRules", 53120)
    rules = validate_recording_rules(raw_rules) if raw_rules is not None else None
    transcriptions_configuration = param_json(params, "TranscriptionsConfiguration", 20001)
    if transcriptions_configuration is not None and not isinstance(transcriptions_configuration, dict):
        raise bad_request("TranscriptionsConfiguration must be a JSON object")
    now = state.clock.now()
    sid = new_sid("RM")
    room = Room(
        sid=sid,
        account_sid=account_sid,
        unique_name=unique_name or sid,
        type=room_type,
        date_created=now,
        date_updated=now,
        enable_turn=param_bool(params, "EnableTurn", True),
        status_callback=callback,
        status_callback_method=method,
        max_participants=max_participants,
        max_participant_duration=max_duration,
        record_participants_on_connect=record_on_connect,
        transcribe_participants_on_connect=param_bool(params, "TranscribeParticipantsOnConnect", False),
        transcriptions_configuration=transcriptions_configuration,
        video_codecs=_video_codecs(params),
        media_region=params.get("MediaRegion") or "us1",
        audio_only=audio_only,
        empty_room_timeout=empty_timeout,
        unused_room_timeout=unused_timeout,
        large_room=param_bool(params, "LargeRoom", False),
        recording_rules=effective_recording_rules(record_on_connect, rules),
    )
    register_room(state, room)
    return web.json_response(render_room(state, room), status=201)


async def list_rooms(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    query = request.query
    status = param_enum(query, "Status", ROOM_STATUSES, code=20001, default="in-progress")
    unique_name = query.get("UniqueName")
    after = param_date(query, "DateCreatedAfter")
    before = param_date(query, "DateCreatedBefore")
    if unique_name and status == "in-progress":
        sid = state.names_in(account_sid).get(unique_name)
        candidates: list[Room] = [state.rooms[sid]] if sid else []
    else:
        candidates = list(reversed(state.rooms.values()))
    selected = [
        render_room(state, room)
        for room in candidates
        if room.account_sid == account_sid
        and room.status == status
        and (not unique_name or room.unique_name == unique_name)
        and (after is None or room.date_created >= after)
        and (before is None or room.date_created < before)
    ]
    return web.json_response(paginate_v1(request, selected, "rooms"))


async def fetch_room(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_room(state, room_from_path(state, request, "Sid")))


async def update_room(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = room_from_path(state, request, "Sid")
    params = await read_params(request)
    status = params.get("Status")
    if status != "completed":
        raise TwilioError(400, 53112, "Status is invalid: only 'completed' can be set")
    if room.status != "in-progress":
        raise TwilioError(400, 53118, "Room is not in-progress: the operation cannot be performed on it")
    end_room(state, room, "completed")
    return web.json_response(render_room(state, room), status=202)


async def fetch_recording_rules(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_recording_rules(room_from_path(state, request)))


async def update_recording_rules(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = room_from_path(state, request)
    params = await read_params(request)
    rules = validate_recording_rules(param_json(params, "Rules", 53120))
    if room.status != "in-progress":
        raise TwilioError(400, 53118, "Recording rules cannot be changed on a room that is not in-progress")
    room.recording_rules = rules
    room.recording_rules_updated = state.clock.now()
    apply_recording_rules(state, room)
    return web.json_response(render_recording_rules(room))


def _configuration(params: MultiMapping[str]) -> dict[str, Any] | None:
    configuration = param_json(params, "Configuration", 20001)
    if configuration is not None and not isinstance(configuration, dict):
        raise bad_request("Configuration must be a JSON object")
    return configuration


async def create_transcription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = room_from_path(state, request)
    params = await read_params(request)
    configuration = _configuration(params)
    if room.status != "in-progress":
        raise TwilioError(400, 53118, "Transcriptions cannot start on a room that is not in-progress")
    now = state.clock.now()
    transcription = Transcription(
        ttid=f"video_extension_{uuid.uuid4()}",
        account_sid=room.account_sid,
        room_sid=room.sid,
        date_created=now,
        date_updated=now,
        start_time=now,
        configuration=configuration or dict(room.transcriptions_configuration or {}),
    )
    room.transcriptions[transcription.ttid] = transcription
    return web.json_response(render_transcription(state, transcription), status=202)


async def list_transcriptions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = room_from_path(state, request)
    records = [render_transcription(state, t) for t in reversed(room.transcriptions.values())]
    return web.json_response(paginate_v1(request, records, "transcriptions"))


def _transcription(state: EmulatorState, request: web.Request) -> tuple[Room, Transcription]:
    room = room_from_path(state, request)
    transcription = room.transcriptions.get(request.match_info["Ttid"])
    if transcription is None:
        raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
    return room, transcription


async def fetch_transcription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, transcription = _transcription(state, request)
    return web.json_response(render_transcription(state, transcription))


async def update_transcription(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room, transcription = _transcription(state, request)
    params = await read_params(request)
    status = param_enum(params, "Status", ("started", "stopped"), code=20001)
    configuration = _configuration(params)
    now = state.clock.now()
    if configuration is not None:
        transcription.configuration = configuration
    if status == "stopped" and transcription.status == "started":
        transcription.status = "stopped"
        transcription.end_time = now
        transcription.duration = max(0, round((now - transcription.start_time).total_seconds()))
    elif status == "started" and transcription.status != "started":
        if room.status != "in-progress":
            raise TwilioError(400, 53118, "Transcriptions cannot start on a room that is not in-progress")
        transcription.status = "started"
        transcription.start_time = now
        transcription.end_time = None
        transcription.duration = None
    transcription.date_updated = now
    return web.json_response(render_transcription(state, transcription), status=202)


def stop_transcriptions(state: EmulatorState, room: Room) -> None:
    """Room-completed listener: running transcriptions stop with the room."""
    for transcription in room.transcriptions.values():
        if transcription.status == "started":
            transcription.status = "stopped"
            transcription.end_time = room.end_time
            transcription.date_updated = room.date_updated
            end = room.end_time or state.clock.now()
            transcription.duration = max(0, round((end - transcription.start_time).total_seconds()))


def install(app: web.Application, state: EmulatorState) -> None:
    add_route(app, "POST", "/v1/Rooms", create_room, "CreateRoom")
    add_route(app, "GET", "/v1/Rooms", list_rooms, "ListRoom")
    add_route(app, "GET", "/v1/Rooms/{Sid}", fetch_room, "FetchRoom")
    add_route(app, "POST", "/v1/Rooms/{Sid}", update_room, "UpdateRoom")
    rules = "/v1/Rooms/{RoomSid}/RecordingRules"
    add_route(app, "GET", rules, fetch_recording_rules, "FetchRoomRecordingRule")
    add_route(app, "POST", rules, update_recording_rules, "UpdateRoomRecordingRule")
    transcriptions = "/v1/Rooms/{RoomSid}/Transcriptions"
    add_route(app, "GET", transcriptions, list_transcriptions, "ListRoomTranscriptions")
    add_route(app, "POST", transcriptions, create_transcription, "CreateRoomTranscriptions")
    add_route(app, "GET", transcriptions + "/{Ttid}", fetch_transcription, "FetchRoomTranscriptions")
    add_route(app, "POST", transcriptions + "/{Ttid}", update_transcription, "UpdateRoomTranscriptions")
    state.room_completed_listeners.append(lambda room: stop_transcriptions(state, room))
