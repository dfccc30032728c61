"""Room Recordings and ``/v1/Recordings``: list, fetch, delete, and media behind a short-lived URL.

``GET .../Media`` answers like Twilio: ``302`` with ``Location`` and a JSON body ``{"redirect_to": url}``.
The URL points at ``/_emulator/media/recordings/{RT}`` with an expiry and an HMAC signature; that route needs
no authentication and serves a small Matroska (EBML) file.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from urllib.parse import urlencode

from aiohttp import web

from .auth import account_of
from .core import STATE_KEY, EmulatorState, TwilioError, add_route, paginate_v1, param_date, param_enum
from .entities import Recording
from .lifecycle import delete_recording
from .render import render_recording, render_room_recording
from .rooms import room_from_path

RECORDING_STATUSES = ("processing", "completed", "deleted", "failed")
MEDIA_URL_TTL_SECONDS = 600
MEDIA_PATH = "/_emulator/media/recordings/{sid}"

# EBML header declaring a Matroska document, then a Segment of unknown size: enough for file-type sniffing.
MATROSKA_HEADER = bytes.fromhex(
    "1a45dfa3a3"  # EBML element, 35 bytes of children
    "4286810142f7810142f2810442f38108"  # EBMLVersion 1, ReadVersion 1, MaxIDLength 4, MaxSizeLength 8
    "4282886d6174726f736b61"  # DocType "matroska"
    "4287810442858102"  # DocTypeVersion 4, DocTypeReadVersion 2
    "1853806701ffffffffffffff"  # Segment, unknown size
)


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def _matches(recording: Recording, request: web.Request) -> bool:
    query = request.query
    status = param_enum(query, "Status", RECORDING_STATUSES, code=20001)
    after = param_date(query, "DateCreatedAfter")
    before = param_date(query, "DateCreatedBefore")
    source = query.get("SourceSid")
    media_type = param_enum(query, "MediaType", ("audio", "video", "data"), code=20001)
    groupings = query.getall("GroupingSid", [])
    return (
        (status is None or recording.status == status)
        and (not source or recording.source_sid == source)
        and (after is None or recording.date_created >= after)
        and (before is None or recording.date_created < before)
        and (media_type is None or recording.type == media_type)
        and all(sid in (recording.room_sid, recording.participant_sid) for sid in groupings)
    )


# --------------------------------------------------------------------------------------- room recordings


def _room_recording(state: EmulatorState, request: web.Request) -> Recording:
    room = room_from_path(state, request)
    recording = state.recordings.get(request.match_info["Sid"])
    if recording is None or recording.room_sid != room.sid:
        raise _not_found(request)
    return recording


async def list_room_recordings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    room = room_from_path(state, request)
    records = [render_room_recording(state, r) for r in reversed(room.recordings) if _matches(r, request)]
    return web.json_response(paginate_v1(request, records, "recordings"))


async def fetch_room_recording(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_room_recording(state, _room_recording(state, request)))


async def delete_room_recording(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    delete_recording(state, _room_recording(state, request))
    return web.Response(status=204)


async def room_recording_media(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _media_redirect(state, _room_recording(state, request), request)


# ---------------------------------------------------------------------------------------- /v1/Recordings


def _recording(state: EmulatorState, request: web.Request) -> Recording:
    recording = state.recordings.get(request.match_info["Sid"])
    if recording is None or recording.account_sid != account_of(request):
        raise _not_found(request)
    return recording


async def list_recordings(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = account_of(request)
    records = [
        render_recording(state, r)
        for r in reversed(state.recordings.values())
        if r.account_sid == account_sid and _matches(r, request)
    ]
    return web.json_response(paginate_v1(request, records, "recordings", max_page_size=100))


async def fetch_recording(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_recording(state, _recording(state, request)))


async def delete_recording_handler(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    delete_recording(state, _recording(state, request))
    return web.Response(status=204)


async def recording_media(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return _media_redirect(state, _recording(state, request), request)


# ------------------------------------------------------------------------------------------------ media


def _media_signature(state: EmulatorState, sid: str, expires: int) -> str:
    message = f"{sid}:{expires}".encode()
    return hmac.new(state.auth_token.encode(), message, hashlib.sha256).hexdigest()


def _media_redirect(state: EmulatorState, recording: Recording, request: web.Request) -> web.Response:
    if recording.status != "completed":
        raise TwilioError(404, 20404, f"The media of {recording.sid} is not available")
    expires = int((state.clock.now() + timedelta(seconds=MEDIA_URL_TTL_SECONDS)).timestamp())
    query = urlencode({"Expires": expires, "Signature": _media_signature(state, recording.sid, expires)})
    url = state.url(MEDIA_PATH.format(sid=recording.sid)) + "?" + query
    return web.json_response({"redirect_to": url}, status=302, headers={"Location": url})


async def serve_recording_media(request: web.Request) -> web.Response:
    """Unauthenticated download of a recording's media while the signed URL is valid."""
    state = request.app[STATE_KEY]
    sid = request.match_info["sid"]
    try:
        expires = int(request.query.get("Expires", ""))
    except ValueError:
        raise web.HTTPForbidden(text="missing or malformed Expires") from None
    signature = request.query.get("Signature", "")
    if not hmac.compare_digest(signature, _media_signature(state, sid, expires)):
        raise web.HTTPForbidden(text="bad signature")
    if state.clock.now().timestamp() > expires:
        raise web.HTTPForbidden(text="the media URL has expired")
    recording = state.recordings.get(sid)
    if recording is None or recording.status != "completed":
        raise web.HTTPNotFound(text="no such recording media")
    content_type = "audio/x-matroska" if recording.container_format == "mka" else "video/x-matroska"
    return web.Response(body=MATROSKA_HEADER, content_type=content_type)


def install(app: web.Application, state: EmulatorState) -> None:
    room_recordings = "/v1/Rooms/{RoomSid}/Recordings"
    add_route(app, "GET", room_recordings, list_room_recordings, "ListRoomRecording")
    add_route(app, "GET", room_recordings + "/{Sid}", fetch_room_recording, "FetchRoomRecording")
    add_route(app, "DELETE", room_recordings + "/{Sid}", delete_room_recording, "DeleteRoomRecording")
    add_route(app, "GET", room_recordings + "/{Sid}/Media", room_recording_media, "FetchRoomRecordingMedia")
    add_route(app, "GET", "/v1/Recordings", list_recordings, "ListRecording")
    add_route(app, "GET", "/v1/Recordings/{Sid}", fetch_recording, "FetchRecording")
    add_route(app, "DELETE", "/v1/Recordings/{Sid}", delete_recording_handler, "DeleteRecording")
    add_route(app, "GET", "/v1/Recordings/{Sid}/Media", recording_media, "FetchRecordingMedia")
    app.router.add_get(MEDIA_PATH.replace("{sid}", "{sid:RT[0-9a-f]{32}}"), serve_recording_media)
