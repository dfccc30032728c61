"""Composition: spec (immutable after creation) and status."""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from twilio_video_operator.models.common import (
    ROOM_SID_PATTERN,
    LocalObjectReference,
    SpecModel,
    StatusModel,
    kubernetes_validations,
    model_problems,
)
from twilio_video_operator.models.conditions import CONDITIONS_LIST_SCHEMA, Condition
from twilio_video_operator.models.duration import DurationLimit
from twilio_video_operator.models.notifications import Notifications, NotificationsStatus

CompositionFormat = Literal["mp4", "webm"]
CompositionState = Literal["enqueued", "processing", "completed", "failed", "deleted"]

RESOLUTION_PATTERN = r"^[0-9]+x[0-9]+$"
RESOLUTION_MIN_SIDE = 16
RESOLUTION_MAX_SIDE = 1280
RESOLUTION_MAX_PIXELS = 921_600

DEFAULT_S3_KEY = "{namespace}/{name}/{sid}.{format}"
#: Placeholders an S3 object key template may use.
S3_KEY_PLACEHOLDERS = frozenset({"namespace", "name", "sid", "format", "roomSid"})

S3_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
#: Longest stalledAfter: Twilio composes rooms of at most a day; processing still going after a week is stuck.
STALLED_AFTER_MAX = timedelta(hours=168)

#: A track name, participant SID or wildcard pattern selecting audio sources.
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


def _template_placeholders(template: str) -> list[str]:
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


class S3Delivery(SpecModel):
    """Upload the finished media to an S3-compatible bucket."""

    bucket: str = Field(min_length=3, max_length=63, pattern=S3_BUCKET_PATTERN, description="Bucket name.")
    key: str = Field(
        default=DEFAULT_S3_KEY,
        min_length=1,
        max_length=1024,
        description=(
            "Object key template. Placeholders: {namespace}, {name} (the Composition), {sid} (the "
            "composition SID), {format} (mp4 or webm) and {roomSid}."
        ),
    )
    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Endpoint URL of an S3-compatible service; unset means AWS S3 for the region.",
    )
    region: str | None = Field(
        default=None, max_length=64, pattern=r"^[a-z0-9-]+$", description="Bucket region, e.g. eu-west-1."
    )
    credentials_ref: LocalObjectReference = Field(
        description=(
            "Secret in the same namespace with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and optionally "
            "AWS_SESSION_TOKEN."
        )
    )

    @field_validator("key")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            fields = _template_placeholders(value)
        except ValueError as error:
            raise ValueError(f"key is not a valid template: {error}") from None
        unknown = sorted({name for name in fields if name not in S3_KEY_PLACEHOLDERS})
        if unknown:
            shown = ", ".join("{" + name + "}" for name in unknown)
            allowed = ", ".join("{" + name + "}" for name in sorted(S3_KEY_PLACEHOLDERS))
            raise ValueError(f"key uses unknown placeholder {shown}; allowed: {allowed}")
        return value

    def object_key(self, *, namespace: str, name: str, sid: str, media_format: str, room_sid: str) -> str:
        """The key template filled in for one composition."""
        return self.key.format(namespace=namespace, name=name, sid=sid, format=media_format, roomSid=room_sid)


class Delivery(SpecModel):
    """Where to deliver the finished media."""

    s3: S3Delivery = Field(description="Upload to an S3-compatible bucket.")


TEMPLATE_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.videoLayout) || (has(self.audioSources) && size(self.audioSources) > 0)",
        "message": "set videoLayout or at least one entry in audioSources",
    }
]


class CompositionTemplate(SpecModel):
    """How to compose a room's recordings into one media file (a Composition spec without the room)."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*TEMPLATE_RULES))

    audio_sources: list[SourceName] = Field(
        default=["*"],
        max_length=64,
        description="Audio track names or participant SIDs to mix; '*' is a wildcard.",
    )
    audio_sources_excluded: list[SourceName] = Field(
        default_factory=list,
        max_length=64,
        description="Audio sources to leave out; '*' is a wildcard. Empty by default.",
    )
    video_layout: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Twilio video layout (free-form JSON), e.g. {grid: {video_sources: ['*']}}. Unset produces an "
            "audio-only composition."
        ),
    )
    resolution: str = Field(
        default="640x480",
        max_length=9,
        pattern=RESOLUTION_PATTERN,
        description="WIDTHxHEIGHT: each side 16..1280 pixels, at most 921600 pixels in total.",
    )
    format: CompositionFormat = Field(default="mp4", description="Container format: mp4 or webm.")
    trim: bool = Field(default=True, description="Cut out the parts where no participant was connected.")
    delivery: Delivery | None = Field(default=None, description="Deliver the media once composed.")
    stalled_after: Annotated[str, DurationLimit(STALLED_AFTER_MAX)] = Field(
        default="2h",
        description="Mark Stalled if still processing after this long (Go duration, at most 168h = 7 days).",
    )
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="What deleting the object does to the Twilio composition: Retain it or Delete it.",
    )

    @field_validator("resolution")
    @classmethod
    def _resolution_in_range(cls, value: str) -> str:
        width_text, _, height_text = value.partition("x")  # the pattern has been checked already
        width, height = int(width_text), int(height_text)
        if not (RESOLUTION_MIN_SIDE <= width <= RESOLUTION_MAX_SIDE) or not (
            RESOLUTION_MIN_SIDE <= height <= RESOLUTION_MAX_SIDE
        ):
            raise ValueError(
                f"resolution {value}: width and height must each be "
                f"{RESOLUTION_MIN_SIDE}..{RESOLUTION_MAX_SIDE} pixels"
            )
        if width * height > RESOLUTION_MAX_PIXELS:
            raise ValueError(f"resolution {value}: at most {RESOLUTION_MAX_PIXELS} pixels in total")
        return value

    @model_validator(mode="after")
    def _has_some_source(self) -> CompositionTemplate:
        if self.video_layout is None and not self.audio_sources:
            raise ValueError("set videoLayout or at least one entry in audioSources")
        return self


SPEC_RULES: list[dict[str, str]] = [
    {"rule": "has(self.roomRef) != has(self.roomSid)", "message": "set exactly one of roomRef and roomSid"},
    {"rule": "self == oldSelf", "message": "spec is immutable; create a new Composition instead"},
]


class CompositionSpec(CompositionTemplate):
    """A Twilio composition of one room's recordings. Immutable after creation."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*TEMPLATE_RULES, *SPEC_RULES))

    room_ref: LocalObjectReference | None = Field(
        default=None, description="VideoRoom in the same namespace whose current or last session to compose."
    )
    room_sid: str | None = Field(
        default=None, pattern=ROOM_SID_PATTERN, description="Twilio Room SID (RM...) to compose."
    )
    notifications: Notifications | None = Field(
        default=None,
        description=(
            "recordingAvailable and compositionFailed notifications; unset: those of the roomRef VideoRoom."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one_room(self) -> CompositionSpec:
        if (self.room_ref is None) == (self.room_sid is None):
            raise ValueError("set exactly one of roomRef and roomSid")
        return self


class DeliveryStatus(StatusModel):
    """Result of delivering the media."""

    url: str | None = Field(default=None, description="Where the media was delivered (no credentials).")
    bytes: int | None = Field(default=None, ge=0, description="Size of the delivered object in bytes.")
    sha256: str | None = Field(default=None, description="Hex SHA-256 of the delivered bytes.")
    delivered_at: datetime | None = Field(default=None, description="When delivery completed.")


class CompositionStatus(StatusModel):
    """Observed state of the Twilio composition."""

    sid: str | None = Field(default=None, description="Twilio Composition SID (CJ...).")
    room_sid: str | None = Field(default=None, description="SID of the composed room, resolved from roomRef.")
    composition_status: CompositionState | None = Field(
        default=None, description="Twilio status: enqueued, processing, completed, failed or deleted."
    )
    progress_percent: int | None = Field(default=None, ge=0, le=100, description="Processing progress.")
    seconds_remaining: int | None = Field(default=None, ge=0, description="Twilio's estimate of time left.")
    duration_seconds: int | None = Field(default=None, ge=0, description="Length of the media in seconds.")
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the media in bytes.")
    media_uri: str | None = Field(default=None, description="Twilio URI of the media subresource.")
    delivery: DeliveryStatus | None = Field(default=None, description="Outcome of spec.delivery.")
    started_at: datetime | None = Field(default=None, description="When Twilio accepted the composition.")
    completed_at: datetime | None = Field(default=None, description="When the composition completed.")
    create_pending_at: datetime | None = Field(
        default=None,
        description=(
            "Set just before the create call and cleared once the SID is recorded; if found set without a "
            "SID, the operator looks the composition up instead of creating a second one."
        ),
    )
    last_synced_at: datetime | None = Field(default=None, description="Last successful sync with Twilio.")
    # Written only by the notifier's own merge patches (never in the reconcile's status writes).
    notifications: NotificationsStatus | None = Field(
        default=None, exclude=True, description="Notifications sent about this composition."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Synced, Stalled and (with delivery) Delivered.",
        json_schema_extra=CONDITIONS_LIST_SCHEMA,
    )


def validate_composition_spec(spec: Mapping[str, Any] | None) -> list[str]:
    """Problems with a Composition spec, as ``spec.<path>: message`` lines (empty when valid)."""
    return model_problems(CompositionSpec, spec)


def composition_spec_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """Problems for fields changed between two Composition specs (the spec is immutable).

    Both sides are compared with defaults filled in when they validate, so spelling out a default is no
    change.
    """
    before, after = _normalised(old), _normalised(new)
    changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return [f"spec.{key}: the spec is immutable after creation; create a new Composition" for key in changed]


def _normalised(spec: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(spec or {})
    if model_problems(CompositionSpec, data):
        return data
    return CompositionSpec.model_validate(data).to_dict()
