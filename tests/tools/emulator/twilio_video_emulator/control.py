"""The control API under ``/_emulator/`` (not Twilio's): simulate the media plane, make subaccounts, move
the clock, inject faults.

JSON in and out, no authentication, not counted and not faulted. Errors use Twilio's error JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .access_tokens import verify_access_token
from .accounts import MAX_FRIENDLY_NAME, create_subaccount
from .app import FAULTS_KEY, STATS_KEY
from .control_json import account_filter, json_object
from .core import STATE_KEY, EmulatorState, TwilioError, iso
from .entities import Participant, Room, Track
from .faults import FaultConfig
from .keys import DEFAULT_KEY_NAME, create_key
from .lifecycle import (
    connect_participant,
    disconnect_participant,
    end_room,
    find_participant,
    find_room,
    find_track,
    publish_track,
    set_track_enabled,
    unpublish_track,
)

MAX_CALLBACK_WAIT_SECONDS = 30.0
KEY_TYPES = ("main", "standard", "restricted")


def _account_param(
    state: EmulatorState, request: web.Request, body: dict[str, Any] | None = None
) -> str | None:
    """``accountSid`` from the query (or the JSON body): the account a room's UniqueName is resolved in."""
    return account_filter(state, request.query.get("accountSid") or (body or {}).get("accountSid"))


def _room(state: EmulatorState, request: web.Request, body: dict[str, Any] | None = None) -> Room:
    """``{room}`` by SID or by UniqueName, in the main account unless ``accountSid`` names another."""
    room = find_room(state, request.match_info["room"], _account_param(state, request, body))
    if room is None:
        raise TwilioError(404, 20404, f"No room {request.match_info['room']}")
    return room


def _participant(room: Room, request: web.Request) -> Participant:
    participant = find_participant(room, request.match_info["participant"])
    if participant is None:
        raise TwilioError(404, 20404, f"No participant {request.match_info['participant']}")
    return participant


def _track(participant: Participant, request: web.Request) -> Track:
    track = find_track(participant, request.match_info["track"])
    if track is None:
        raise TwilioError(404, 20404, f"No track {request.match_info['track']}")
    return track


def _tracks(body: dict[str, Any]) -> list[dict[str, str]] | None:
    tracks = body.get("tracks")
    if tracks is None:
        return None
    if not isinstance(tracks, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("kind"), str)
        for t in tracks
    ):
        raise TwilioError(400, 20001, "tracks must be a list of {name, kind}")
    return [{"name": t["name"], "kind": t["kind"]} for t in tracks]


# --------------------------------------------------------------------------------------- participants


async def join(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await json_object(request)
    room = find_room(state, request.match_info["room"], _account_param(state, request, body))
    if room is None or room.status != "in-progress":
        raise TwilioError(404, 53106, "Room not found")
    identity = body.get("identity")
    if not isinstance(identity, str) or not identity:
        raise TwilioError(400, 53200, "identity is required")
    tracks = _tracks(body)
    claims = verify_access_token(state, body.get("token"), room, identity)
    if claims.get("sub") != room.account_sid:
        # On Twilio the token's account is where the room is looked up: another account's room is not there.
        raise TwilioError(404, 53106, "Room not found")
    participant = connect_participant(state, room, identity, tracks)
    return web.json_response({"sid": participant.sid, "identity": participant.identity}, status=201)


async def leave(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = _room(state, request)
    disconnect_participant(state, room, _participant(room, request))
    return web.Response(status=204)


async def add_track(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await json_object(request)
    room = _room(state, request, body)
    participant = _participant(room, request)
    name, kind = body.get("name"), body.get("kind")
    if not isinstance(name, str) or not isinstance(kind, str):
        raise TwilioError(400, 20001, "name and kind are required")
    track = publish_track(state, room, participant, name, kind)
    return web.json_response({"sid": track.sid, "name": track.name, "kind": track.kind}, status=201)


async def remove_track(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = _room(state, request)
    participant = _participant(room, request)
    unpublish_track(state, room, participant, _track(participant, request))
    return web.Response(status=204)


async def update_track(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await json_object(request)
    room = _room(state, request, body)
    participant = _participant(room, request)
    track = _track(participant, request)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise TwilioError(400, 20001, "enabled (true or false) is required")
    set_track_enabled(state, room, participant, track, enabled)
    return web.json_response({"sid": track.sid, "name": track.name, "enabled": track.enabled})


async def fail_room(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = _room(state, request)
    if room.status != "in-progress":
        raise TwilioError(400, 53118, "Room is not in-progress")
    end_room(state, room, "failed")
    return web.json_response({"sid": room.sid, "status": room.status})


# -------------------------------------------------------------------------------------- clock, faults


async def advance_clock(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await json_object(request)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise TwilioError(400, 20001, "seconds must be a non-negative number")
    state.clock.advance(float(seconds))
    state.scheduler.run_due()
    return web.json_response({"now": iso(state.clock.now())})


async def get_clock(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"now": iso(state.clock.now())})


async def set_faults(request: web.Request) -> web.Response:
    body = await json_object(request)
    try:
        config = FaultConfig.from_json(body)
    except ValueError as error:
        raise TwilioError(400, 20001, str(error)) from None
    request.app[FAULTS_KEY].update_from(config)
    return web.json_response(request.app[FAULTS_KEY].to_json())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS_KEY].to_json())


# ------------------------------------------------------------------------------ requests and callbacks


async def get_requests(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS_KEY].to_json())


async def reset_requests(request: web.Request) -> web.Response:
    request.app[STATS_KEY].reset()
    return web.Response(status=204)


async def get_callbacks(request: web.Request) -> web.Response:
    """The delivery log; ``?wait=SECONDS`` first waits (bounded) until queued deliveries were attempted."""
    state = request.app[STATE_KEY]
    wait = request.query.get("wait")
    if wait:
        try:
            seconds = min(float(wait), MAX_CALLBACK_WAIT_SECONDS)
        except ValueError:
            raise TwilioError(400, 20001, "wait must be a number of seconds") from None
        state.scheduler.run_due()
        await state.callbacks.drain(seconds)
    return web.json_response({"deliveries": state.callbacks.log, "pending": state.callbacks.pending})


async def clear_callbacks(request: web.Request) -> web.Response:
    request.app[STATE_KEY].callbacks.log.clear()
    return web.Response(status=204)


# ---------------------------------------------------------------------------------------- keys, health


async def create_control_key(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await json_object(request)
    name = body.get("friendlyName", "")
    key_type = body.get("type", "main")
    if not isinstance(name, str) or len(name) > 64:
        raise TwilioError(400, 20001, "friendlyName must be a string of at most 64 characters")
    if key_type not in KEY_TYPES:
        raise TwilioError(400, 20001, f"type must be one of: {', '.join(KEY_TYPES)}")
    account_sid = _account_param(state, request, body)
    key = create_key(state, name, key_type=key_type, account_sid=account_sid)
    return web.json_response(
        {
            "sid": key.sid,
            "secret": key.secret,
            "friendlyName": key.friendly_name,
            "type": key.type,
            "accountSid": key.account_sid,
        },
        status=201,
    )


# -------------------------------------------------------------------------------------------- accounts


async def create_control_account(request: web.Request) -> web.Response:
    """A subaccount of the main account plus a Standard API key of it, ready for a client."""
    state = request.app[STATE_KEY]
    body = await json_object(request)
    name = body.get("friendlyName")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_FRIENDLY_NAME):
        raise TwilioError(
            400, 20001, f"friendlyName must be a string of at most {MAX_FRIENDLY_NAME} characters"
        )
    account = create_subaccount(state, name)
    key = create_key(state, DEFAULT_KEY_NAME, key_type="standard", account_sid=account.sid)
    return web.json_response(
        {
            "accountSid": account.sid,
            "authToken": account.auth_token,
            "apiKey": key.sid,
            "apiSecret": key.secret,
            "friendlyName": account.friendly_name,
        },
        status=201,
    )


async def list_control_accounts(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(
        {
            "accounts": [
                {
                    "accountSid": account.sid,
                    "authToken": account.auth_token,
                    "friendlyName": account.friendly_name,
                    "ownerAccountSid": account.owner_account_sid,
                    "status": account.status,
                    "main": account.sid == state.account_sid,
                }
                for account in state.accounts.values()
            ]
        }
    )


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    in_progress = sum(len(names) for names in state.room_index.values())
    return web.json_response(
        {
            "status": "ok",
            "now": iso(state.clock.now()),
            "rooms": len(state.rooms),
            "roomsInProgress": in_progress,
            "accounts": len(state.accounts),
        }
    )


def install(app: web.Application, state: EmulatorState) -> None:
    router = app.router
    participants = "/_emulator/rooms/{room}/participants"
    router.add_post(participants, join)
    router.add_delete(participants + "/{participant}", leave)
    router.add_post(participants + "/{participant}/tracks", add_track)
    router.add_delete(participants + "/{participant}/tracks/{track}", remove_track)
    router.add_post(participants + "/{participant}/tracks/{track}", update_track)
    router.add_post("/_emulator/rooms/{room}/fail", fail_room)
    router.add_post("/_emulator/clock/advance", advance_clock)
    router.add_get("/_emulator/clock", get_clock)
    router.add_post("/_emulator/faults", set_faults)
    router.add_get("/_emulator/faults", get_faults)
    router.add_get("/_emulator/requests", get_requests)
    router.add_delete("/_emulator/requests", reset_requests)
    router.add_get("/_emulator/callbacks", get_callbacks)
    router.add_delete("/_emulator/callbacks", clear_callbacks)
    router.add_post("/_emulator/keys", create_control_key)
    router.add_post("/_emulator/accounts", create_control_account)
    router.add_get("/_emulator/accounts", list_control_accounts)
    router.add_get("/_emulator/health", health)
