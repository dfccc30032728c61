"""Video v1 Participants: list, fetch, disconnect, anonymize, published/subscribed tracks, subscribe rules."""

from __future__ import annotations

from aiohttp import web

from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    paginate_v1,
    param_date,
    param_enum,
    param_json,
    read_params,
)
from .entities import Participant, Room, Track
from .lifecycle import disconnect_participant, find_participant, find_track
from .render import (
    render_anonymize,
    render_participant,
    render_published_track,
    render_subscribe_rules,
    render_subscribed_track,
)
from .rooms import room_from_path
from .rules import validate_subscribe_rules

PARTICIPANT_STATUSES = ("connected", "disconnected", "reconnecting")


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def participant_from_path(
    state: EmulatorState, request: web.Request, name: str = "ParticipantSid"
) -> tuple[Room, Participant]:
    room = room_from_path(state, request)
    participant = find_participant(room, request.match_info[name])
    if participant is None:
        raise _not_found(request)
    return room, participant


async def list_participants(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = room_from_path(state, request)
    query = request.query
    default_status = "connected" if room.status == "in-progress" else "disconnected"
    status = param_enum(query, "Status", PARTICIPANT_STATUSES, code=20001, default=default_status)
    identity = query.get("Identity")
    after = param_date(query, "DateCreatedAfter")
    before = param_date(query, "DateCreatedBefore")
    records = [
        render_participant(state, p)
        for p in reversed(room.participants.values())
        if p.status == status
        and (not identity or p.identity == identity)
        and (after is None or p.date_created >= after)
        and (before is None or p.date_created < before)
    ]
    return web.json_response(paginate_v1(request, records, "participants"))


async def fetch_participant(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, participant = participant_from_path(state, request, "Sid")
    return web.json_response(render_participant(state, participant))


async def update_participant(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room, participant = participant_from_path(state, request, "Sid")
    params = await read_params(request)
    if params.get("Status") != "disconnected":
        raise TwilioError(400, 53209, "Participant status is invalid: only 'disconnected' can be set")
    disconnect_participant(state, room, participant)
    return web.json_response(render_participant(state, participant), status=202)


async def anonymize_participant(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, participant = participant_from_path(state, request, "Sid")
    participant.identity = participant.sid
    participant.date_updated = state.clock.now()
    return web.json_response(render_anonymize(state, participant))


async def list_published_tracks(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, participant = participant_from_path(state, request)
    records = [
        render_published_track(state, participant, track)
        for track in reversed(participant.tracks.values())
        if track.published
    ]
    return web.json_response(paginate_v1(request, records, "published_tracks"))


async def fetch_published_track(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, participant = participant_from_path(state, request)
    track = find_track(participant, request.match_info["Sid"])
    if track is None or not track.published:
        raise _not_found(request)
    return web.json_response(render_published_track(state, participant, track))


def _subscribed(room: Room, subscriber: Participant) -> list[Track]:
    """Published tracks of every other connected participant that the subscribe rules let through."""
    rules = subscriber.subscribe_rules or [{"type": "include", "all": True}]
    if subscriber.status != "connected":
        return []
    tracks: list[Track] = []
    for publisher in room.connected():
        if publisher.sid == subscriber.sid:
            continue
        for track in publisher.tracks.values():
            if track.published and _subscribes(rules, publisher, track):
                tracks.append(track)
    return tracks


def _subscribes(rules: list[dict[str, object]], publisher: Participant, track: Track) -> bool:
    decision = False
    for rule in rules:
        checks = {"publisher": publisher.identity, "track": track.name, "kind": track.kind}
        present = [key for key in checks if rule.get(key) is not None]
        if rule.get("all") or (present and all(rule[key] == checks[key] for key in present)):
            decision = rule.get("type") == "include"
    return decision


async def list_subscribed_tracks(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room, participant = participant_from_path(state, request)
    records = [render_subscribed_track(state, participant, t) for t in _subscribed(room, participant)]
    return web.json_response(paginate_v1(request, records, "subscribed_tracks"))


async def fetch_subscribed_track(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room, participant = participant_from_path(state, request)
    sid = request.match_info["Sid"]
    track = next((t for t in _subscribed(room, participant) if t.sid == sid), None)
    if track is None:
        raise _not_found(request)
    return web.json_response(render_subscribed_track(state, participant, track))


async def fetch_subscribe_rules(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, participant = participant_from_path(state, request)
    return web.json_response(render_subscribe_rules(participant))


async def update_subscribe_rules(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    _, participant = participant_from_path(state, request)
    params = await read_params(request)
    participant.subscribe_rules = validate_subscribe_rules(param_json(params, "Rules", 20001))
    participant.subscribe_rules_updated = state.clock.now()
    return web.json_response(render_subscribe_rules(participant))


def install(app: web.Application, state: EmulatorState) -> None:
    base = "/v1/Rooms/{RoomSid}/Participants"
    one = base + "/{ParticipantSid}"
    add_route(app, "GET", base, list_participants, "ListRoomParticipant")
    add_route(app, "GET", base + "/{Sid}", fetch_participant, "FetchRoomParticipant")
    add_route(app, "POST", base + "/{Sid}", update_participant, "UpdateRoomParticipant")
    add_route(app, "POST", base + "/{Sid}/Anonymize", anonymize_participant, "UpdateRoomParticipantAnonymize")
    add_route(
        app, "GET", one + "/PublishedTracks", list_published_tracks, "ListRoomParticipantPublishedTrack"
    )
    add_route(
        app,
        "GET",
        one + "/PublishedTracks/{Sid}",
        fetch_published_track,
        "FetchRoomParticipantPublishedTrack",
    )
    add_route(
        app, "GET", one + "/SubscribedTracks", list_subscribed_tracks, "ListRoomParticipantSubscribedTrack"
    )
    add_route(
        app,
        "GET",
        one + "/SubscribedTracks/{Sid}",
        fetch_subscribed_track,
        "FetchRoomParticipantSubscribedTrack",
    )
    add_route(app, "GET", one + "/SubscribeRules", fetch_subscribe_rules, "FetchRoomParticipantSubscribeRule")
    add_route(
        app, "POST", one + "/SubscribeRules", update_subscribe_rules, "UpdateRoomParticipantSubscribeRule"
    )
