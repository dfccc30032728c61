"""Compositions: the REST resource, the processing state machine on the emulator clock, and their media.

A composition is ``enqueued`` until its source room is completed, then ``processing`` (with
``composition-started`` and ``composition-progress`` callbacks about every 10%), then ``completed`` with a
synthesized media file (``composition-available``) or ``failed`` (``composition-failed``). Deleting keeps
the metadata with ``status=deleted`` and ``date_deleted`` and removes the media.

Media is fetched like on Twilio: ``GET /v1/Compositions/{Sid}/Media`` answers ``302`` with ``Location`` and
``{"redirect_to": url}``; the URL is an unauthenticated, expiring ``/_emulator/media/compositions/{token}``
that streams the bytes (``Range`` supported). Control routes under ``/_emulator/compositions`` tune
processing time and media size and force failures; see ``docs/emulator-compositions.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    iso,
    iso_or_none,
    new_sid,
    paginate_v1,
    param_bool,
    param_date,
    param_enum,
    param_int,
    param_json,
    read_params,
)
from .entities import Recording, Room
from .media import MediaFile, MediaSpec, build_media

COMPOSITIONS_KEY = "compositions"
STATUSES = ("enqueued", "processing", "completed", "deleted", "failed")
FORMATS = ("mp4", "webm")
METHODS = ("GET", "POST")
GROUP_ROOM_TYPES = ("group", "group-small")
DEFAULT_RESOLUTION = "640x480"
MAX_PIXELS = 921_600
MEDIA_TTL_DEFAULT = 3600
MEDIA_TTL_MAX = 3600
MEDIA_PATH = "/_emulator/media/compositions/{token}"
STREAM_CHUNK_BYTES = 256 * 1024
FAILED_NO_SOURCES = "CompositionStart"
FAILED_PROCESSING = "CompositionProcessing"
_SID_PATTERN = re.compile(r"^CJ[0-9a-fA-F]{32}$")
_ROOM_SID_PATTERN = re.compile(r"^RM[0-9a-fA-F]{32}$")
_RESOLUTION_PATTERN = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


def bad_request(message: str, code: int = 20001) -> TwilioError:
    return TwilioError(400, code, message)


# ------------------------------------------------------------------------------------------- options


@dataclass
class CompositionOptions:
    """What to compose and how; shared by compositions and composition hooks."""

    audio_sources: list[str] = field(default_factory=list)
    audio_sources_excluded: list[str] = field(default_factory=list)
    video_layout: dict[str, Any] | None = None
    resolution: str = DEFAULT_RESOLUTION
    format: str = "mp4"
    trim: bool = True
    status_callback: str | None = None
    status_callback_method: str = "POST"

    def require_sources(self) -> None:
        if not self.video_layout and not self.audio_sources:
            raise bad_request("Either VideoLayout or AudioSources must be specified")


def _strings(params: MultiMapping[str], name: str) -> list[str]:
    return [value for value in params.getall(name, []) if value != ""]


def _video_layout(params: MultiMapping[str]) -> dict[str, Any] | None:
    layout = param_json(params, "VideoLayout", 20001)
    if layout is None or layout == {}:
        return None
    if not isinstance(layout, dict):
        raise bad_request("VideoLayout must be a JSON object of regions")
    for name, region in layout.items():
        if not isinstance(region, dict):
            raise bad_request(f"VideoLayout region {name!r} must be an object")
        for key in ("video_sources", "video_sources_excluded"):
            value = region.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise bad_request(f"VideoLayout region {name!r}: {key} must be a list of strings")
        if not region.get("video_sources"):
            raise bad_request(f"VideoLayout region {name!r} needs video_sources")
    return layout


def parse_resolution(value: str) -> tuple[int, int]:
    match = _RESOLUTION_PATTERN.match(value.strip())
    if match is None:
        raise bad_request("Resolution must be {width}x{height}, e.g. 640x480")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= 1280 and 16 <= height <= 1280) or width * height > MAX_PIXELS:
        raise bad_request("Resolution out of range: 16..1280 each side and at most 921600 pixels")
    return width, height


def _callback_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not re.match(r"^https?://[^/\s]+", value) or len(value) > 2048:
        raise bad_request("StatusCallback must be an http(s) URL")
    return value


def parse_options(params: MultiMapping[str], base: CompositionOptions | None = None) -> CompositionOptions:
    """Options from form parameters; parameters that are absent keep the value of ``base``."""
    options = CompositionOptions() if base is None else CompositionOptions(**asdict(base))
    if "AudioSources" in params:
        options.audio_sources = _strings(params, "AudioSources")
    if "AudioSourcesExcluded" in params:
        options.audio_sources_excluded = _strings(params, "AudioSourcesExcluded")
    if "VideoLayout" in params:
        options.video_layout = _video_layout(params)
    resolution = params.get("Resolution")
    if resolution:
        width, height = parse_resolution(resolution)
        options.resolution = f"{width}x{height}"
    options.format = param_enum(params, "Format", FORMATS, code=20001, default=options.format)
    options.trim = param_bool(params, "Trim", options.trim)
    if "StatusCallback" in params:
        options.status_callback = _callback_url(params.get("StatusCallback"))
    options.status_callback_method = param_enum(
        params, "StatusCallbackMethod", METHODS, code=20001, default=options.status_callback_method
    )
    return options


# ------------------------------------------------------------------------------------------- sources


def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(piece) for piece in source.split("*")))


def _source_matches(patterns: Iterable[str], recording: Recording) -> bool:
    names = (recording.track_name, recording.sid, recording.source_sid, recording.participant_sid)
    return any(_pattern(p).fullmatch(name) for p in patterns for name in names)


def select_sources(options: CompositionOptions, room: Room) -> tuple[list[Recording], list[Recording]]:
    """(audio, video) recordings of ``room`` that the options select; only completed recordings count."""
    usable = [r for r in room.recordings if r.status == "completed"]
    audio = [
        r
        for r in usable
        if r.type == "audio"
        and _source_matches(options.audio_sources, r)
        and not _source_matches(options.audio_sources_excluded, r)
    ]
    video = []
    regions = [r for r in (options.video_layout or {}).values() if isinstance(r, dict)]
    for recording in usable:
        if recording.type != "video":
            continue
        for region in regions:
            if _source_matches(region.get("video_sources", []), recording) and not _source_matches(
                region.get("video_sources_excluded", []), recording
            ):
                video.append(recording)
                break
    return audio, video


def composed_duration(room: Room, recordings: list[Recording], trim: bool) -> int:
    """Seconds of composed media: the union of the recordings' intervals, or the room's span without trim."""
    intervals = sorted(
        (r.date_created, r.date_created + timedelta(seconds=r.duration or 0)) for r in recordings
    )
    if not trim:
        end = room.end_time or max((stop for _, stop in intervals), default=room.date_created)
        return max(1, round((end - room.date_created).total_seconds()))
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for start, stop in intervals:
        if current is None or start > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (start, stop)
        else:
            current = (current[0], max(current[1], stop))
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return max(1, round(total))


# --------------------------------------------------------------------------------------------- model


@dataclass
class Composition:
    sid: str
    account_sid: str
    room_sid: str
    date_created: datetime
    options: CompositionOptions
    status: str = "enqueued"
    date_completed: datetime | None = None
    date_deleted: datetime | None = None
    duration: int = 0
    size: int = 0
    bitrate: int = 0
    media_external_location: str | None = None
    media_video: bool = False
    media_audio: bool = False
    hook_sid: str | None = None
    hook_friendly_name: str | None = None
    started_at: datetime | None = None
    processing_seconds: float | None = None  # planned length of the current processing run
    progress: int = 0
    failed_operation: str | None = None
    error_message: str | None = None
    # Per-composition overrides set through the control API.
    media_bytes_override: int | None = None
    processing_seconds_override: float | None = None
    # Bumped when processing is cancelled (failure, deletion), so stale timers do nothing.
    run: int = 0
    start_pending: bool = False


_DATETIME_FIELDS = ("date_created", "date_completed", "date_deleted", "started_at")


@dataclass
class CompositionConfig:
    """Control knobs: processing time and media size (``None`` means derived from the recorded duration)."""

    processing_seconds: float | None = None
    processing_factor: float = 0.1
    min_processing_seconds: float = 1.0
    media_bytes: int | None = None
    video_kbps: int = 256
    audio_kbps: int = 32

    _JSON_NAMES = {
        "processingSeconds": "processing_seconds",
        "processingFactor": "processing_factor",
        "minProcessingSeconds": "min_processing_seconds",
        "mediaBytes": "media_bytes",
        "videoKbps": "video_kbps",
        "audioKbps": "audio_kbps",
    }

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, attr) for name, attr in self._JSON_NAMES.items()}

    def update(self, body: dict[str, Any]) -> None:
        """Apply a JSON patch; accepts the names of :meth:`to_json` and ``composition``-prefixed aliases."""
        changes: dict[str, Any] = {}
        for key, value in body.items():
            name = key
            if key.startswith("composition") and len(key) > len("composition"):
                rest = key[len("composition") :]
                name = rest[0].lower() + rest[1:]
            attr = self._JSON_NAMES.get(name)
            if attr is None:
                raise bad_request(f"Unknown composition setting {key!r}")
            changes[attr] = _config_value(attr, value)
        for attr, value in changes.items():
            setattr(self, attr, value)


def _config_value(attr: str, value: Any) -> Any:
    nullable = attr in ("processing_seconds", "media_bytes")
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{attr} must be a number")
    if value < 0:
        raise bad_request(f"{attr} must not be negative")
    if attr in ("media_bytes", "video_kbps", "audio_kbps"):
        return int(value)
    return float(value)


# ------------------------------------------------------------------------------------------- service


def _timestamp(now: datetime) -> str:
    now = now.astimezone(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def composition_path(sid: str) -> str:
    return f"/v1/Compositions/{sid}"


class CompositionService:
    """All compositions of the emulator and their state machine; kept in ``state.extensions``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.config = CompositionConfig()
        self.compositions: dict[str, Composition] = {}
        self._media: dict[str, MediaFile] = {}
        # Where media would be stored externally (set by the composition settings), or None.
        self.external_location: Callable[[Composition], str | None] | None = None

    # -- creation ---------------------------------------------------------------------------------------

    def create(
        self,
        room: Room,
        options: CompositionOptions,
        *,
        hook_sid: str | None = None,
        hook_friendly_name: str | None = None,
    ) -> Composition:
        now = self.state.clock.now()
        composition = Composition(
            sid=new_sid("CJ"),
            account_sid=self.state.account_sid,
            room_sid=room.sid,
            date_created=now,
            options=options,
            hook_sid=hook_sid,
            hook_friendly_name=hook_friendly_name,
        )
        self.compositions[composition.sid] = composition
        if hook_sid is not None:
            self._event(
                composition,
                "composition-enqueued",
                {
                    "HookSid": hook_sid,
                    "HookUri": f"/v1/CompositionHooks/{hook_sid}",
                    "HookFriendlyName": hook_friendly_name or "",
                },
            )
        if room.status != "in-progress":
            self._schedule_start(composition)
        return composition

    def on_room_ended(self, room: Room) -> None:
        """Room-completed listener: enqueued compositions of the room start now."""
        for composition in list(self.compositions.values()):
            if composition.room_sid == room.sid and composition.status == "enqueued":
                self._schedule_start(composition)

    # -- state machine ----------------------------------------------------------------------------------

    def _schedule_start(self, composition: Composition) -> None:
        if composition.start_pending or composition.status != "enqueued":
            return
        composition.start_pending = True
        run = composition.run
        due = self.state.clock.now()
        self.state.scheduler.call_at(due, lambda: self._start(composition, run, due))

    def _start(self, composition: Composition, run: int, due: datetime) -> None:
        """Begin processing as of ``due`` (timers that ran late still keep the planned timeline)."""
        composition.start_pending = False
        if composition.run != run or composition.status != "enqueued":
            return
        room = self.state.rooms.get(composition.room_sid)
        composition.status = "processing"
        composition.started_at = due
        composition.progress = 0
        self._event(composition, "composition-started")
        if room is None or room.status != "completed":
            self.fail(composition, "The source room did not complete", FAILED_NO_SOURCES)
            return
        audio, video = select_sources(composition.options, room)
        if not audio and not video:
            self.fail(
                composition, "No recordings match the composition's audio or video sources", FAILED_NO_SOURCES
            )
            return
        composition.media_audio = bool(audio)
        composition.media_video = bool(video)
        composition.duration = composed_duration(room, audio + video, composition.options.trim)
        seconds = self._processing_seconds(composition)
        composition.processing_seconds = seconds
        self._plan(composition, due, seconds, from_percent=0)

    def _processing_seconds(self, composition: Composition) -> float:
        if composition.processing_seconds_override is not None:
            return composition.processing_seconds_override
        if self.config.processing_seconds is not None:
            return self.config.processing_seconds
        return max(self.config.min_processing_seconds, composition.duration * self.config.processing_factor)

    def _plan(self, composition: Composition, start: datetime, seconds: float, from_percent: int) -> None:
        """Schedule progress events for every 10% after ``from_percent`` and the completion."""
        run = composition.run
        remaining_share = (100 - from_percent) / 100
        for percent in range(from_percent + 10, 100, 10):
            share = (percent - from_percent) / 100 / remaining_share if remaining_share else 1
            at = start + timedelta(seconds=seconds * share)
            left = seconds * (1 - share)
            self.state.scheduler.call_at(at, self._progress_step(composition, run, percent, left))
        self.state.scheduler.call_at(
            start + timedelta(seconds=seconds), lambda: self._complete(composition, run)
        )

    def _progress_step(self, composition: Composition, run: int, percent: int, left: float) -> Any:
        def step() -> None:
            if composition.run != run or composition.status != "processing":
                return
            composition.progress = percent
            self._event(
                composition,
                "composition-progress",
                {"PercentageDone": str(percent), "SecondsRemaining": str(max(0, round(left)))},
            )

        return step

    def _complete(self, composition: Composition, run: int) -> None:
        if composition.run != run or composition.status != "processing":
            return
        media = self._build_media(composition)
        composition.size = media.size
        composition.bitrate = round(media.size * 8 / max(1, composition.duration) / 1000)
        composition.status = "completed"
        composition.progress = 100
        composition.date_completed = self.state.clock.now()
        if self.external_location is not None:
            composition.media_external_location = self.external_location(composition)
        self._event(
            composition,
            "composition-available",
            {
                "MediaUri": composition_path(composition.sid) + "/Media",
                "Duration": str(composition.duration),
                "Size": str(composition.size),
                "MediaExternalLocation": composition.media_external_location or "",
            },
        )

    def fail(self, composition: Composition, message: str, operation: str = FAILED_PROCESSING) -> None:
        """Fail an enqueued or processing composition now (``composition-failed``)."""
        if composition.status not in ("enqueued", "processing"):
            raise TwilioError(409, 20409, f"Composition {composition.sid} is {composition.status}")
        composition.run += 1
        composition.start_pending = False
        composition.status = "failed"
        composition.failed_operation = operation
        composition.error_message = message
        self._event(
            composition, "composition-failed", {"FailedOperation": operation, "ErrorMessage": message}
        )

    def delete(self, composition: Composition) -> None:
        """Remove the media and keep the metadata with ``status=deleted``."""
        composition.run += 1
        composition.start_pending = False
        composition.status = "deleted"
        composition.date_deleted = self.state.clock.now()
        self._media.pop(composition.sid, None)

    # -- media ------------------------------------------------------------------------------------------

    def _target_size(self, composition: Composition) -> int:
        if composition.media_bytes_override is not None:
            return composition.media_bytes_override
        if self.config.media_bytes is not None:
            return self.config.media_bytes
        kbps = (self.config.video_kbps if composition.media_video else 0) + (
            self.config.audio_kbps if composition.media_audio else 0
        )
        return composition.duration * kbps * 125

    def _spec(self, composition: Composition, target: int) -> MediaSpec:
        width, height = parse_resolution(composition.options.resolution)
        return MediaSpec(
            container=composition.options.format,
            width=width,
            height=height,
            duration=max(1, composition.duration),
            video=composition.media_video,
            audio=composition.media_audio,
            seed=composition.sid,
            created=composition.date_created,
            target_size=target,
        )

    def _build_media(self, composition: Composition) -> MediaFile:
        media = build_media(self._spec(composition, self._target_size(composition)))
        self._media[composition.sid] = media
        return media

    def media(self, composition: Composition) -> MediaFile:
        """The media of a completed composition (rebuilt from its recorded size after a restart)."""
        if composition.status != "completed":
            raise KeyError(composition.sid)
        media = self._media.get(composition.sid)
        if media is None:
            media = build_media(self._spec(composition, composition.size))
            self._media[composition.sid] = media
        return media

    # -- callbacks --------------------------------------------------------------------------------------

    def _event(self, composition: Composition, event: str, extra: dict[str, str] | None = None) -> None:
        url = composition.options.status_callback
        if not url:
            return
        params = {
            "AccountSid": composition.account_sid,
            "RoomSid": composition.room_sid,
            "CompositionSid": composition.sid,
            "CompositionUri": composition_path(composition.sid),
            "StatusCallbackEvent": event,
            "Timestamp": _timestamp(self.state.clock.now()),
        }
        params.update(extra or {})
        self.state.callbacks.send(url, composition.options.status_callback_method, params, event)

    # -- persistence ------------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        records = []
        for composition in self.compositions.values():
            record = asdict(composition)
            for name, value in record.items():
                if isinstance(value, datetime):
                    record[name] = value.isoformat()
            record.pop("start_pending")
            records.append(record)
        return {"config": self.config.to_json(), "compositions": records}

    def load(self, data: dict[str, Any]) -> None:
        self.config = CompositionConfig()
        self.config.update(data.get("config", {}))
        self.compositions = {}
        self._media = {}
        names = {item.name for item in fields(Composition)}
        for raw in data.get("compositions", []):
            record = {key: value for key, value in raw.items() if key in names}
            for name in _DATETIME_FIELDS:
                if isinstance(record.get(name), str):
                    record[name] = datetime.fromisoformat(record[name])
            record["options"] = CompositionOptions(**raw["options"])
            composition = Composition(**record)
            self.compositions[composition.sid] = composition
        for composition in self.compositions.values():
            self._resume(composition)

    def _resume(self, composition: Composition) -> None:
        """Re-arm timers lost with the process: enqueued ones wait for their room, processing ones go on."""
        room = self.state.rooms.get(composition.room_sid)
        if composition.status == "enqueued" and (room is None or room.status != "in-progress"):
            self._schedule_start(composition)
        elif composition.status == "processing":
            now = self.state.clock.now()
            seconds = composition.processing_seconds or self._processing_seconds(composition)
            end = (composition.started_at or now) + timedelta(seconds=seconds)
            left = max(0.0, (end - now).total_seconds())
            self._plan(composition, now, left, from_percent=composition.progress)


def service_of(state: EmulatorState) -> CompositionService:
    service = state.extensions.get(COMPOSITIONS_KEY)
    if not isinstance(service, CompositionService):
        raise RuntimeError("compositions are not installed")
    return service


# ------------------------------------------------------------------------------------------- rendering


def render_composition(state: EmulatorState, composition: Composition) -> dict[str, Any]:
    url = state.url(composition_path(composition.sid))
    options = composition.options
    return {
        "account_sid": composition.account_sid,
        "status": composition.status,
        "date_created": iso(composition.date_created),
        "date_completed": iso_or_none(composition.date_completed),
        "date_deleted": iso_or_none(composition.date_deleted),
        "sid": composition.sid,
        "room_sid": composition.room_sid,
        "audio_sources": list(options.audio_sources),
        "audio_sources_excluded": list(options.audio_sources_excluded),
        "video_layout": options.video_layout or {},
        "resolution": options.resolution,
        "trim": options.trim,
        "format": options.format,
        "bitrate": composition.bitrate,
        "size": composition.size,
        "duration": composition.duration,
        "media_external_location": composition.media_external_location,
        "status_callback": options.status_callback,
        "status_callback_method": options.status_callback_method,
        "url": url,
        "links": {"media": f"{url}/Media"},
    }


# ---------------------------------------------------------------------------------------------- REST


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def _composition(request: web.Request) -> Composition:
    service = service_of(request.app[STATE_KEY])
    composition = service.compositions.get(request.match_info["Sid"])
    if composition is None:
        raise _not_found(request)
    return composition


def source_room(state: EmulatorState, room_sid: str | None) -> Room:
    """The group room a composition is made of; 400 (20001 or 53106) otherwise."""
    if not room_sid:
        raise bad_request("Missing required parameter RoomSid")
    if not _ROOM_SID_PATTERN.match(room_sid):
        raise bad_request("RoomSid must be a Room SID (RM followed by 32 hex digits)")
    room = state.rooms.get(room_sid)
    if room is None:
        raise bad_request("Room not found", 53106)
    if room.type not in GROUP_ROOM_TYPES:
        raise bad_request("Compositions can only be created for Group Rooms")
    return room


async def create_composition(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    params = await read_params(request)
    room = source_room(state, params.get("RoomSid"))
    options = parse_options(params)
    options.require_sources()
    composition = service_of(state).create(room, options)
    return web.json_response(render_composition(state, composition), status=201)


async def list_compositions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    query = request.query
    status = param_enum(query, "Status", STATUSES, code=20001)
    room_sid = query.get("RoomSid")
    after = param_date(query, "DateCreatedAfter")
    before = param_date(query, "DateCreatedBefore")
    matches = [
        c
        for c in service_of(state).compositions.values()
        if (status is None or c.status == status)
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
        composition.media_bytes_override = _config_value("media_bytes", body["mediaBytes"])
    if "processingSeconds" in body:
        composition.processing_seconds_override = _config_value(
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
