"""A Twilio composition record as the gateway returns it, for the Composition unit tests."""

from __future__ import annotations

from typing import Any

from twilio_video_operator.gateway.records import CompositionInfo


def composition_info(**changes: Any) -> CompositionInfo:
    """An enqueued audio-only mp4 composition of every source; ``changes`` override any field and must
    include ``sid``, ``room_sid`` and ``date_created``."""
    values: dict[str, Any] = {
        "account_sid": None,
        "status": "enqueued",
        "date_completed": None,
        "date_deleted": None,
        "audio_sources": ("*",),
        "audio_sources_excluded": (),
        "video_layout": None,
        "resolution": "640x480",
        "format": "mp4",
        "trim": True,
        "bitrate": None,
        "size": None,
        "duration": None,
        "media_external_location": None,
        "status_callback": None,
        "status_callback_method": None,
        "url": None,
        "media_url": None,
    }
    values.update(changes)
    return CompositionInfo(**values)
