"""HTTP routes of compositions: the REST resource, media downloads behind expiring redirects, and the
control endpoints that tune processing or force failures (see ``docs/emulator-compositions.md``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from .auth import account_of
from .composition_options import GROUP_ROOM_TYPES, bad_request, parse_options
from .compositions import (
    COMPOSITIONS_KEY,
    STATUSES,
    Composition,
    CompositionService,
    config_value,
    render_composition,
    service_of,
)
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    paginate_v1,
    param_date,
    param_enum,
    param_int,
    read_params,
)
from .entities import Room

MEDIA_TTL_DEFAULT = 3600
MEDIA_TTL_MAX = 3600
MEDIA_PATH = "/_emulator/media/compositions/{token}"
STREAM_CHUNK_BYTES = 256 * 1024
_SID_PATTERN = re.compile(r"^CJ[0-9a-fA-F]{32}$")
_ROOM_SID_PATTERN = re.compile(r"^RM[0-9a-fA-F]{32}$")
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def _composition(request: web.Request) -> Composition:
    service = service_of(request.app[STATE_KEY])
    composition = service.compositions.get(request.match_info["Sid"])
    if composition is None or composition.account_sid != account_of(request):
        raise _not_found(request)
    return composition


def source_room(state: EmulatorState, room_sid: str | None, account_sid: str) -> Room:
    """The group room of ``account_sid`` a composition is made of; 400 (20001 or 53106) otherwise."""
    if not room_sid:
        raise bad_request("Missing required parameter RoomSid")
    if not _ROOM_SID_PATTERN.match(room_sid):
        raise bad_request("RoomSid must be a Room SID (RM followed by 32 hex digits)")
    room = state.rooms.get(room_sid)
    if room is None or room.account_sid != account_sid:
        raise bad_request("Room not found", 53106)
    if room.type not in GROUP_ROOM_TYPES:
        raise bad_request("Compositions can only be created for Group Rooms")
    return room


async def create_composition(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    params = await read_params(request)
    room = source_room(state, params.get("RoomSid"), account_of(request))
    options = parse_options(params)
    options.require_sources()
    composition = service_of(state).create(room, options)
    return web.json_response(render_composition(state, composition), status=201)


async def list_compositions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    query = request.query
    status = param_enum(query, "Status", STATUSES, code=20001)
    room_sid = query.get("RoomSid")
    after = param_date(query, "DateCreatedAfter")
    before = param_date(query, "DateCreatedBefore")
    matches = [
        c
        for c in service_of(state).compositions.values()
        if c.account_sid == account_sid
        and (status is None or c.status == status)
        and (not room_sid or c.room_sid == room_sid)
        and (after is None or c.date_created >= after)
        and (before is None or c.date_created < before)
    ]
    records = [render_composition(state, c) for c in reversed(matches)]
    return web.json_response(paginate_v1(request, records, "compositions", max_page_size=100))


async def fetch_composition(request: web.Request) -> web.Response:
    return web.json_response(render_composition(request.app[STATE_KEY], _composition(request)))


async def delete_composition(request: web.Request) -> web.Response:
    composition = _composition(request)
    if composition.status == "deleted":
        raise _not_found(request)
    service_of(request.app[STATE_KEY]).delete(composition)
    return web.Response(status=204)


# --------------------------------------------------------------------------------------------- media


def _media_signature(state: EmulatorState, sid: str, expires: int) -> str:
    message = f"composition-media:{sid}:{expires}".encode()
    digest = hmac.new(state.auth_token.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def media_token(state: EmulatorState, sid: str, expires: int) -> str:
    return f"{sid}.{expires}.{_media_signature(state, sid, expires)}"


async def composition_media(request: web.Request) -> web.Response:
    """``302`` to a short-lived, unauthenticated media URL (404 while the media is not available)."""
    state = request.app[STATE_KEY]
    composition = _composition(request)
    ttl = param_int(request.query, "Ttl", lo=1, hi=MEDIA_TTL_MAX, code=20001, default=MEDIA_TTL_DEFAULT)
    if composition.status != "completed":
        raise TwilioError(404, 20404, f"The media of composition {composition.sid} is not available")
    expires = int((state.clock.now() + timedelta(seconds=ttl)).timestamp())
    url = state.url(MEDIA_PATH.format(token=media_token(state, composition.sid, expires)))
    return web.json_response({"redirect_to": url}, status=302, headers={"Location": url})


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` of a single ``bytes=`` range; ``None`` serves the whole file."""
    if not header:
        return None
    match = _RANGE_PATTERN.match(header.strip())
    if match is None or (not match.group(1) and not match.group(2)):
        return None  # multiple or malformed ranges: ignore the header, as RFC 9110 allows
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
        if start >= size or end <= start:
            raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
        return start, end
    suffix = int(last)
    if suffix == 0:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return max(0, size - suffix), size


def _media_error(status: int, message: str) -> web.Response:
    return web.json_response({"status": status, "message": message}, status=status)


async def serve_media(request: web.Request) -> web.StreamResponse:
    """Stream a composition's media for a valid, unexpired token; ``Range`` requests get ``206``."""
    state = request.app[STATE_KEY]
    try:
        sid, expires_text, signature = request.match_info["token"].split(".")
        expires = int(expires_text)
    except ValueError:
        return _media_error(403, "Malformed media URL")
    if not _SID_PATTERN.match(sid) or not hmac.compare_digest(
        signature, _media_signature(state, sid, expires)
    ):
        return _media_error(403, "Invalid media URL signature")
    if state.clock.now().timestamp() > expires:
        return _media_error(403, "The media URL has expired")
    service = service_of(state)
    composition = service.compositions.get(sid)
    if composition is None or composition.status != "completed":
        return _media_error(404, "The composition media is not available")
    media = service.media(composition)
    window = _parse_range(request.headers.get("Range"), media.size)
    start, end = window if window is not None else (0, media.size)
    response = web.StreamResponse(status=206 if window is not None else 200)
    response.content_type = media.content_type
    response.content_length = end - start
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["ETag"] = f'"{composition.sid}-{media.size}"'
    response.headers["Content-Disposition"] = f'attachment; filename="{composition.sid}.{media.container}"'
    if window is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{media.size}"
    await response.prepare(request)
    if request.method != "HEAD":
        for chunk in media.iter_bytes(start, end, STREAM_CHUNK_BYTES):
            await response.write(chunk)
    await response.write_eof()
    return response


# ------------------------------------------------------------------------------------------- control


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object")
    return body


def _control_composition(request: web.Request) -> Composition:
    composition = service_of(request.app[STATE_KEY]).compositions.get(request.match_info["sid"])
    if composition is None:
        raise TwilioError(404, 20404, f"No composition {request.match_info['sid']}")
    return composition


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(service_of(request.app[STATE_KEY]).config.to_json())


async def set_config(request: web.Request) -> web.Response:
    service = service_of(request.app[STATE_KEY])
    service.config.update(await _json_body(request))
    return web.json_response(service.config.to_json())


async def force_failure(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    composition = _control_composition(request)
    body = await _json_body(request)
    message = body.get("errorMessage") or "Internal failure while processing media composition (53626)"
    if not isinstance(message, str):
        raise bad_request("errorMessage must be a string")
    service_of(state).fail(composition, message)
    return web.json_response(render_composition(state, composition))


async def configure_composition(request: web.Request) -> web.Response:
    """Per-composition ``mediaBytes`` and ``processingSeconds`` (before it completes)."""
    state = request.app[STATE_KEY]
    composition = _control_composition(request)
    body = await _json_body(request)
    if composition.status not in ("enqueued", "processing"):
        raise TwilioError(409, 20409, f"Composition {composition.sid} is {composition.status}")
    unknown = set(body) - {"mediaBytes", "processingSeconds"}
    if unknown:
        raise bad_request(f"Unknown settings: {', '.join(sorted(unknown))}")
    if "mediaBytes" in body:
        composition.media_bytes_override = config_value("media_bytes", body["mediaBytes"])
    if "processingSeconds" in body:
        composition.processing_seconds_override = config_value(
            "processing_seconds", body["processingSeconds"]
        )
    return web.json_response(
        {
            "composition": render_composition(state, composition),
            "mediaBytes": composition.media_bytes_override,
            "processingSeconds": composition.processing_seconds_override,
        }
    )


# ------------------------------------------------------------------------------------------- install


def install(app: web.Application, state: EmulatorState) -> None:
    service = CompositionService(state)
    state.extensions[COMPOSITIONS_KEY] = service
    state.room_completed_listeners.append(service.on_room_ended)
    state.persisters[COMPOSITIONS_KEY] = (service.dump, service.load)
    add_route(app, "POST", "/v1/Compositions", create_composition, "CreateComposition")
    add_route(app, "GET", "/v1/Compositions", list_compositions, "ListComposition")
    add_route(app, "GET", "/v1/Compositions/{Sid}", fetch_composition, "FetchComposition")
    add_route(app, "DELETE", "/v1/Compositions/{Sid}", delete_composition, "DeleteComposition")
    add_route(app, "GET", "/v1/Compositions/{Sid}/Media", composition_media, "FetchCompositionMedia")
    app.router.add_get(MEDIA_PATH, serve_media)
    for path in ("/_emulator/compositions/config", "/_emulator/config"):
        app.router.add_get(path, get_config)
        app.router.add_post(path, set_config)
    app.router.add_post("/_emulator/compositions/{sid}/fail", force_failure)
    app.router.add_post("/_emulator/compositions/{sid}/config", configure_composition)
