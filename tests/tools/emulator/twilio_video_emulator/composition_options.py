"""What a composition is asked to compose: request parameters, source selection and duration."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from multidict import MultiMapping

from .core import (
    TwilioError,
    param_bool,
    param_enum,
    param_json,
)
from .entities import Recording, Room

FORMATS = ("mp4", "webm")
METHODS = ("GET", "POST")
GROUP_ROOM_TYPES = ("group", "group-small")
DEFAULT_RESOLUTION = "640x480"
MAX_PIXELS = 921_600
_RESOLUTION_PATTERN = re.compile(r"^(\d{1,5})x(\d{1,5})$")


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
