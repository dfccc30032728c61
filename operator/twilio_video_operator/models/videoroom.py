"""VideoRoom: spec and status."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from twilio_video_operator.models.clientprofile import ClientProfile
from twilio_video_operator.models.common import (
    LocalObjectReference,
    SpecModel,
    StatusModel,
    Timestamp,
    kubernetes_validations,
    model_problems,
)
from twilio_video_operator.models.composition import CompositionTemplate
from twilio_video_operator.models.conditions import CONDITIONS_LIST_SCHEMA, Condition
from twilio_video_operator.models.duration import DurationLimit
from twilio_video_operator.models.notifications import Notifications, NotificationsStatus

RoomType = Literal["group", "group-small", "peer-to-peer", "go"]
RoomCodec = Literal["VP8", "H264"]
RoomStatusValue = Literal["Scheduled", "in-progress", "completed", "failed"]
#: Room types that can record (Twilio records Group rooms only).
RECORDING_ROOM_TYPES = ("group", "group-small")

UNIQUE_NAME_MAX_LENGTH = 128
#: Longest schedule.provisionAhead: Twilio completes a room nobody joined after unusedRoomTimeout (at most
#: an hour), so opening one days early only churns sessions.
PROVISION_AHEAD_MAX = timedelta(hours=24)
#: Identities and identity globs; Twilio identities are short strings.
IDENTITY_MAX_LENGTH = 256
Identity = Annotated[str, StringConstraints(min_length=1, max_length=IDENTITY_MAX_LENGTH)]


def default_unique_name(namespace: str, name: str) -> str:
    """``<namespace>:<name>``, shortened with a stable hash suffix when longer than Twilio allows."""
    full = f"{namespace}:{name}"
    if len(full) <= UNIQUE_NAME_MAX_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    return f"{full[: UNIQUE_NAME_MAX_LENGTH - len(digest) - 1]}-{digest}"


SCHEDULE_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.startTime) || has(self.endTime)",
        "message": "schedule needs startTime, endTime or both",
    },
    {
        "rule": "!has(self.startTime) || !has(self.endTime) || self.endTime > self.startTime",
        "message": "schedule.endTime must be after schedule.startTime",
    },
]


class Schedule(SpecModel):
    """When the room should exist."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*SCHEDULE_RULES))

    start_time: Timestamp | None = Field(
        default=None,
        description=(
            "RFC 3339 time the session starts (1970 to 9999); the room is created provisionAhead earlier."
        ),
    )
    end_time: Timestamp | None = Field(
        default=None,
        description="RFC 3339 time the room is completed (1970 to 9999); must be after startTime.",
    )
    provision_ahead: Annotated[str, DurationLimit(PROVISION_AHEAD_MAX)] = Field(
        default="5m",
        description="How long before startTime to create the room (Go duration, at most 24h).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        if self.start_time is None and self.end_time is None:
            raise ValueError("schedule needs startTime, endTime or both")
        if self.start_time is not None and self.end_time is not None and self.end_time <= self.start_time:
            raise ValueError("schedule.endTime must be after schedule.startTime")
        return self


RULE_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.all) || has(self.publisher) || has(self.track) || has(self.kind)",
        "message": "a recording rule needs all, publisher, track or kind",
    },
    {
        "rule": "!has(self.all) || (self.all && !has(self.publisher) && !has(self.track) && !has(self.kind))",
        "message": "all must be true and is the only filter allowed next to type",
    },
]


class RecordingRule(SpecModel):
    """One Twilio recording rule: include or exclude tracks matching the filters."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*RULE_RULES))

    type: Literal["include", "exclude"] = Field(description="include or exclude the matching tracks.")
    all: bool | None = Field(default=None, description="Match every track; must be true, alone with type.")
    publisher: str | None = Field(
        default=None, min_length=1, max_length=256, description="Participant identity or SID."
    )
    track: str | None = Field(default=None, min_length=1, max_length=128, description="Track name or SID.")
    kind: Literal["audio", "video"] | None = Field(default=None, description="Track kind.")

    @model_validator(mode="after")
    def _filters(self) -> RecordingRule:
        others = [self.publisher, self.track, self.kind]
        if self.all is None and all(value is None for value in others):
            raise ValueError("a recording rule needs all, publisher, track or kind")
        if self.all is not None and (not self.all or any(value is not None for value in others)):
            raise ValueError("all must be true and is the only filter allowed next to type")
        return self


class Recording(SpecModel):
    """Recording of the room and, optionally, composing it when the room completes."""

    participants_on_connect: bool = Field(
        default=False, description="Record every participant's tracks from the moment they connect."
    )
    rules: list[RecordingRule] | None = Field(
        default=None, min_length=1, max_length=20, description="Twilio recording rules (1 to 20)."
    )
    compose: CompositionTemplate | None = Field(
        default=None,
        description=(
            "When the room completes, create a Composition named <room>-recording, owned by this room, "
            "with these settings."
        ),
    )


#: Twilio allows 20 subscribe rules per participant; one of them is the leading ``include all``.
MAX_SUBSCRIBE_RULES = 20
#: Subscribe rules left for mutes: one per muted kind (``both`` takes two).
MUTE_RULES_MAX = MAX_SUBSCRIBE_RULES - 1
MUTE_RULES_RULE = {
    "rule": "size(self) + size(self.filter(m, !has(m.tracks) || m.tracks == 'both')) <= "
    + str(MUTE_RULES_MAX),
    "message": f"mutedIdentities need at most {MUTE_RULES_MAX} subscribe rules (audio or video: 1, both: 2)",
}
MuteTracks = Literal["audio", "video", "both"]
#: Why an identity is muted or blocked, as written in Events.
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=256), Field(description="Reason given for the identity.")
]
REASONS_MAX = 100
REASON_KEYS_RULE = {
    "rule": "self.all(identity, size(identity) >= 1 && size(identity) <= 256)",
    "message": "reasons are keyed by identities of 1 to 256 characters",
}


class MutedIdentity(SpecModel):
    """An identity whose tracks nobody else in the room receives."""

    identity: Identity = Field(description="Participant identity (exact, no globs).")
    tracks: MuteTracks = Field(
        default="both", description="Which of its tracks are withheld: audio, video or both."
    )

    def kinds(self) -> tuple[str, ...]:
        """Twilio track kinds withheld, in a fixed order."""
        return ("audio", "video") if self.tracks == "both" else (self.tracks,)


class Moderation(SpecModel):
    """Participant moderation."""

    blocked_identities: list[Identity] = Field(
        default_factory=list,
        max_length=1000,
        description="Identities that are disconnected when connected and refused tokens.",
    )
    muted_identities: list[MutedIdentity] = Field(
        default_factory=list,
        max_length=MUTE_RULES_MAX,
        description=(
            "Identities whose audio, video or both every other participant's subscribe rules exclude "
            f"(Twilio Track Subscriptions); at most {MUTE_RULES_MAX} subscribe rules, audio or video "
            "counting 1 and both 2."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["identity"],
            **kubernetes_validations(MUTE_RULES_RULE),
        },
    )
    reasons: dict[str, Reason] | None = Field(
        default=None,
        max_length=REASONS_MAX,
        description=(
            "Why an identity is muted or unmuted (identity to reason, at most 256 characters each), quoted "
            "in the Events."
        ),
        json_schema_extra=kubernetes_validations(REASON_KEYS_RULE),
    )

    @field_validator("reasons")
    @classmethod
    def _reason_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and any(not 1 <= len(key) <= IDENTITY_MAX_LENGTH for key in value):
            raise ValueError(REASON_KEYS_RULE["message"])
        return value

    @field_validator("muted_identities")
    @classmethod
    def _mutes_fit(cls, value: list[MutedIdentity]) -> list[MutedIdentity]:
        identities = [mute.identity for mute in value]
        if len(set(identities)) != len(identities):
            raise ValueError("mutedIdentities lists an identity twice")
        if sum(len(mute.kinds()) for mute in value) > MUTE_RULES_MAX:
            raise ValueError(MUTE_RULES_RULE["message"])
        return value


#: Longest a successful Verify check lets an identity get tokens without a new code.
VERIFICATION_TTL_MAX = timedelta(hours=24)
VERIFY_SERVICE_SID_PATTERN = r"^VA[0-9a-fA-F]{32}$"


class AccessVerification(SpecModel):
    """Tokens only after a Twilio Verify check of the identity (the identity is the phone number or email
    address the code was sent to)."""

    service_sid: str = Field(
        pattern=VERIFY_SERVICE_SID_PATTERN,
        min_length=34,
        max_length=34,
        description=(
            "Verify Service SID (VA...) of the operator's Twilio account that sent the code; one the admin "
            "granted the namespace (TENANT_TWILIO_SERVICES)."
        ),
    )
    ttl: Annotated[str, DurationLimit(VERIFICATION_TTL_MAX)] = Field(
        default="10m",
        description=(
            "How long a successful check lets the identity get tokens for this room without a new code "
            "(Go duration, at most 24h)."
        ),
    )


class Access(SpecModel):
    """Who may receive tokens for this room."""

    allowed_identities: list[Identity] | None = Field(
        default=None,
        max_length=1000,
        description="Identities (shell-style globs with *) the token service may mint for; unset means any.",
    )
    verification: AccessVerification | None = Field(
        default=None,
        description=(
            "Require a Twilio Verify check: POST /v1/token must carry the identity's verificationCode "
            "(and optionally the verificationSid) until a check succeeded; then, for ttl, the "
            "verificationPass of the answer stands for it on every replica."
        ),
    )


class Tokens(SpecModel):
    """Access Token settings for this room."""

    signing_key_rotation_ref: LocalObjectReference | None = Field(
        default=None,
        description="SigningKeyRotation whose active key signs this room's tokens; unset: the operator key.",
    )
    max_ttl_seconds: int = Field(
        default=3600, ge=60, le=86400, description="Longest token lifetime the token service grants."
    )


RECORDING_TYPE_RULE = {
    "rule": "!has(self.recording) || !has(self.type) || self.type == 'group' || self.type == 'group-small'",
    "message": "recording needs a group or group-small room",
}


class VideoRoomSpec(SpecModel):
    """Desired Twilio Video room. Unset fields take the operator's or Twilio's defaults."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(RECORDING_TYPE_RULE))

    unique_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=UNIQUE_NAME_MAX_LENGTH,
        description="Twilio UniqueName of the room; unset means <namespace>:<name>.",
    )
    type: RoomType | None = Field(
        default=None,
        description="Room type; unset means the operator setting VIDEO_ROOM_TYPE (default group).",
    )
    max_participants: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="Participant cap; unset means the operator setting VIDEO_MAX_PARTICIPANTS (default 25).",
    )
    max_participant_duration: int | None = Field(
        default=None, ge=600, le=86400, description="Longest a participant may stay, in seconds."
    )
    empty_room_timeout: int | None = Field(
        default=None,
        ge=1,
        le=60,
        description="Minutes an empty room stays open after the last participant left.",
    )
    unused_room_timeout: int | None = Field(
        default=None, ge=1, le=60, description="Minutes a room nobody joined stays open."
    )
    media_region: str | None = Field(
        default=None,
        max_length=16,
        pattern=r"^([a-z]{2}[0-9]|gll)$",
        description="Twilio media region, e.g. us1, ie1, de1, au1, jp1, sg1, in1, br1, us2 or gll.",
    )
    video_codecs: list[RoomCodec] | None = Field(
        default=None,
        min_length=1,
        max_length=2,
        description="Video codecs allowed in the room.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    audio_only: bool | None = Field(default=None, description="Only audio tracks may be published.")
    state: Literal["Active", "Completed"] = Field(
        default="Active",
        description="Set Completed to end the session now (stops billing); a completed room cannot restart.",
    )
    schedule: Schedule | None = Field(default=None, description="Create and complete the room on a schedule.")
    keep_alive: bool = Field(
        default=False,
        description=(
            "When Twilio completes the room on its own while state is Active (and inside the schedule, if "
            "any), open a new session."
        ),
    )
    recording: Recording | None = Field(
        default=None, description="Recording settings; unset records nothing."
    )
    moderation: Moderation | None = Field(default=None, description="Participant moderation.")
    access: Access | None = Field(default=None, description="Who may receive tokens for this room.")
    notifications: Notifications | None = Field(
        default=None,
        description=(
            "Reminders before the scheduled start, and (through the recording's Composition) the "
            "recording's link or an escalation when composing fails, by SMS, WhatsApp, email or Studio."
        ),
    )
    client_profile: ClientProfile | None = Field(
        default=None,
        description="twilio-video.js connect options returned with every token; unset: operator defaults.",
    )
    tokens: Tokens | None = Field(
        default=None, description="Which key signs tokens and their longest lifetime."
    )
    adopt_existing: bool = Field(
        default=False,
        description="Adopt an in-progress Twilio room with this uniqueName that the operator did not create.",
    )
    deletion_policy: Literal["Complete", "Retain"] = Field(
        default="Complete",
        description="What deleting the object does to the Twilio room: Complete it or Retain it.",
    )
    credentials_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret with TWILIO_ACCOUNT_SID, TWILIO_API_KEY, TWILIO_API_SECRET and optionally "
            "TWILIO_AUTH_TOKEN; unset means the operator's credentials. Label the Secret "
            "video.openclaw.io/credentials to have its changes applied at once, not at the next resync."
        ),
    )

    @field_validator("unique_name")
    @classmethod
    def _unique_name_characters(cls, value: str | None) -> str | None:
        # Twilio refuses these with 53102; the name also stands in for the SID in URL paths.
        if value is not None and any(char == "/" or ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError("uniqueName may not contain '/' or control characters (Twilio error 53102)")
        return value

    @field_validator("video_codecs")
    @classmethod
    def _codecs_unique(cls, value: list[RoomCodec] | None) -> list[RoomCodec] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("videoCodecs lists a codec twice")
        return value

    @model_validator(mode="after")
    def _recording_needs_group(self) -> VideoRoomSpec:
        if self.recording is not None and self.type is not None and self.type not in RECORDING_ROOM_TYPES:
            raise ValueError(f"recording needs a group or group-small room, not type {self.type}")
        return self


class ParticipantCounts(StatusModel):
    """Participant counts of the current session."""

    connected: int | None = Field(default=None, ge=0, description="Participants connected now.")
    peak: int | None = Field(default=None, ge=0, description="Most participants connected at once.")


class SessionHistory(StatusModel):
    """Twilio rooms (sessions) opened for this object."""

    count: int | None = Field(default=None, ge=0, description="Sessions opened so far.")
    recent_sids: list[str] | None = Field(
        default=None, description="SIDs of the last few sessions, newest last."
    )


class CreatePending(StatusModel):
    """Written before CreateRoom is sent; a marker without a SID afterwards means the outcome is unknown."""

    unique_name: str = Field(description="UniqueName the room is being created with.")
    requested_at: datetime = Field(description="When the create was about to be sent.")


class AppliedRecordingRule(StatusModel):
    """A recording rule as the operator applied it to the current session."""

    type: str = Field(description="include or exclude.")
    all: bool | None = Field(default=None, description="Matches every track.")
    publisher: str | None = Field(default=None, description="Participant identity or SID.")
    track: str | None = Field(default=None, description="Track name or SID.")
    kind: str | None = Field(default=None, description="Track kind.")


class RoomSettings(StatusModel):
    """Settings the current session was opened with (fixed for the life of a Twilio room)."""

    type: str | None = Field(default=None, description="Room type.")
    max_participants: int | None = Field(default=None, description="Participant cap.")
    max_participant_duration: int | None = Field(default=None, description="Seconds.")
    empty_room_timeout: int | None = Field(default=None, description="Minutes.")
    unused_room_timeout: int | None = Field(default=None, description="Minutes.")
    media_region: str | None = Field(default=None, description="Media region.")
    video_codecs: list[str] | None = Field(default=None, description="Video codecs.")
    audio_only: bool | None = Field(default=None, description="Audio-only room.")
    record_participants_on_connect: bool | None = Field(default=None, description="Recording on connect.")
    from_spec: list[str] | None = Field(
        default=None,
        description=(
            "Fields the spec set explicitly when the session opened (the others took defaults); removing "
            "one from the spec is reported as a change for the next session."
        ),
    )


class MuteRecord(StatusModel):
    """A mute as the operator recorded it when the spec asked for it (the audit trail's current state)."""

    identity: str = Field(description="Muted identity.")
    tracks: str = Field(description="audio, video or both.")
    since: datetime | None = Field(default=None, description="When the operator saw the mute in the spec.")
    by: str | None = Field(
        default=None, description="Field manager that set it (from metadata.managedFields), or unknown."
    )
    reason: str | None = Field(default=None, description="spec.moderation.reasons entry at that time.")


class VideoRoomStatus(StatusModel):
    """Observed state of the Twilio room."""

    sid: str | None = Field(default=None, description="Twilio Room SID (RM...) of the current session.")
    unique_name: str | None = Field(default=None, description="UniqueName the room was created with.")
    room_status: RoomStatusValue | None = Field(
        default=None, description="Scheduled (not created yet), in-progress, completed or failed."
    )
    type: str | None = Field(default=None, description="Room type Twilio reports.")
    created_at: datetime | None = Field(default=None, description="When Twilio created the room.")
    ended_at: datetime | None = Field(default=None, description="When the room completed.")
    duration_seconds: int | None = Field(default=None, ge=0, description="Length of the completed session.")
    participants: ParticipantCounts | None = Field(default=None, description="Participant counts.")
    sessions: SessionHistory | None = Field(default=None, description="Sessions opened for this object.")
    last_synced_at: datetime | None = Field(default=None, description="Last successful sync with Twilio.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Synced and Stalled.",
        json_schema_extra=CONDITIONS_LIST_SCHEMA,
    )
    create_pending: CreatePending | None = Field(
        default=None, description="Set while a CreateRoom call may be in flight (idempotency marker)."
    )
    room_settings: RoomSettings | None = Field(
        default=None, description="Settings of the current session; spec changes apply to the next one."
    )
    recording_rules: list[AppliedRecordingRule] | None = Field(
        default=None,
        description=(
            "spec.recording.rules as applied to the current session (at creation or since); absent: the "
            "session records as recording.participantsOnConnect said when it opened."
        ),
    )
    moderation_digest: str | None = Field(
        default=None, description="Digest of the blocked identities already enforced in the current session."
    )
    muted_identities: list[MuteRecord] | None = Field(
        default=None, description="Mutes in force: who, which tracks, since when, set by whom and why."
    )
    mute_digest: str | None = Field(
        default=None,
        description=(
            "Digest of the subscribe rules applied to every participant of the current session; absent "
            "while the operator has set none."
        ),
    )
    last_handled_reconcile_at: str | None = Field(
        default=None, description="Last value of the reconcile-requested-at annotation acted upon."
    )
    credentials_revision: str | None = Field(
        default=None,
        description="Which credentials the last reconcile used (Secret name and resourceVersion).",
    )
    recording_composition: str | None = Field(
        default=None, description="Name of the Composition created for the recording, once created."
    )
    # Written only by the notifier's own merge patches (never in the reconcile's status writes).
    notifications: NotificationsStatus | None = Field(
        default=None, exclude=True, description="Notifications sent for this room (reminders)."
    )


def validate_videoroom_spec(spec: Mapping[str, Any] | None) -> list[str]:
    """Problems with a VideoRoom spec, as ``spec.<path>: message`` lines (empty when valid)."""
    return model_problems(VideoRoomSpec, spec)


#: The spec fields deleting a VideoRoom uses (what to do with the room, with which credentials).
DELETION_FIELDS = ("deletionPolicy", "credentialsRef")


def spec_for_deletion(spec: Mapping[str, Any] | None) -> VideoRoomSpec | None:
    """The spec as deletion reads it, so that a room whose spec does not validate is still completed with
    the right credentials: the whole spec when valid, otherwise the fields deletion uses (the others take
    their defaults), ``None`` when those do not validate either."""
    data = dict(spec) if isinstance(spec, Mapping) else {}
    for candidate in (data, {key: data[key] for key in DELETION_FIELDS if key in data}):
        try:
            return VideoRoomSpec.model_validate(candidate)
        except ValidationError:
            continue
    return None
