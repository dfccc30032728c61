"""Compositions: the resource and its processing state machine on the emulator clock.

A composition is ``enqueued`` until its source room is completed, then ``processing`` (with
``composition-started`` and ``composition-progress`` callbacks about every 10%), then ``completed`` with a
synthesized media file (``composition-available``) or ``failed`` (``composition-failed``). Deleting keeps
the metadata with ``status=deleted`` and ``date_deleted`` and removes the media. The HTTP side (REST,
media redirects, control endpoints) is in ``composition_routes.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from .composition_options import (
    CompositionOptions,
    bad_request,
    composed_duration,
    parse_resolution,
    select_sources,
)
from .core import (
    EmulatorState,
    TwilioError,
    iso,
    iso_or_none,
    new_sid,
)
from .entities import Room
from .media import MediaFile, MediaSpec, build_media

COMPOSITIONS_KEY = "compositions"
STATUSES = ("enqueued", "processing", "completed", "deleted", "failed")
FAILED_NO_SOURCES = "CompositionStart"
FAILED_PROCESSING = "CompositionProcessing"


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
            changes[attr] = config_value(attr, value)
        for attr, value in changes.items():
            setattr(self, attr, value)


def config_value(attr: str, value: Any) -> Any:
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
            account_sid=room.account_sid,
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
        token = self.state.auth_token_of(composition.account_sid)
        self.state.callbacks.send(url, composition.options.status_callback_method, params, event, token)

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
