"""VideoRoom ``clientProfile``: twilio-video.js connect options handed out with every token."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from twilio_video_operator.models.common import SpecModel, kubernetes_validations

DEGRADATION_RULES: list[dict[str, str]] = [
    {
        "rule": "self.restoreAtLevel >= self.audioOnlyBelowLevel",
        "message": "restoreAtLevel must be at least audioOnlyBelowLevel",
    }
]


class NetworkQuality(SpecModel):
    """Network Quality API verbosity (twilio-video.js networkQuality); an empty object enables it."""

    local: int | None = Field(
        default=None, ge=1, le=3, description="Verbosity for the local participant (1..3)."
    )
    remote: int | None = Field(
        default=None, ge=0, le=3, description="Verbosity for remote participants (0..3, 0 = off)."
    )


class VideoCodecPreference(SpecModel):
    """One entry of twilio-video.js preferredVideoCodecs."""

    codec: Literal["VP8", "H264", "VP9"] = Field(description="Codec name.")
    simulcast: bool | None = Field(default=None, description="Publish simulcast layers (VP8 only).")


class Degradation(SpecModel):
    """Client-side policy: drop to audio-only on a poor network, bring video back when it recovers."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*DEGRADATION_RULES))

    audio_only_below_level: int = Field(
        default=2, ge=0, le=5, description="Go audio-only when network quality stays below this level (0..5)."
    )
    after_seconds: int = Field(
        default=10, ge=1, le=3600, description="How long quality must stay low before going audio-only."
    )
    restore_at_level: int = Field(
        default=3, ge=0, le=5, description="Restore video once quality is at least this level (0..5)."
    )
    restore_after_seconds: int = Field(
        default=30, ge=1, le=3600, description="How long quality must stay good before restoring video."
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> Degradation:
        if self.restore_at_level < self.audio_only_below_level:
            raise ValueError("restoreAtLevel must be at least audioOnlyBelowLevel")
        return self


class ClientProfile(SpecModel):
    """twilio-video.js connect() options; unset fields use the operator defaults."""

    bandwidth_profile: dict[str, Any] | None = Field(
        default=None,
        description="twilio-video.js bandwidthProfile, passed through as given (e.g. {video: {mode: grid}}).",
    )
    network_quality: NetworkQuality | None = Field(
        default=None, description="Enable the Network Quality API with these verbosity levels."
    )
    dominant_speaker: bool | None = Field(default=None, description="Enable dominant speaker detection.")
    preferred_video_codecs: list[VideoCodecPreference] | None = Field(
        default=None, min_length=1, max_length=3, description="Codecs to prefer, most preferred first."
    )
    max_audio_bitrate: int | None = Field(
        default=None, ge=6000, le=510000, description="Upper bound for audio in bits per second (Opus range)."
    )
    degradation: Degradation | None = Field(
        default=None, description="Audio-only fallback on a poor network; an empty object uses the defaults."
    )
