"""SigningKeyRotation: spec, status and the keys of the Secret it maintains."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from twilio_video_operator.models.common import (
    OBJECT_NAME_MAX_LENGTH,
    OBJECT_NAME_PATTERN,
    Duration,
    LocalObjectReference,
    SpecModel,
    StatusModel,
    kubernetes_validations,
    model_problems,
)
from twilio_video_operator.models.conditions import CONDITIONS_LIST_SCHEMA, Condition
from twilio_video_operator.models.duration import parse_duration


class SecretKeys:
    """Names of the keys in the Secret a SigningKeyRotation writes (apps can ``envFrom`` it)."""

    ACCOUNT_SID = "TWILIO_ACCOUNT_SID"
    API_KEY = "TWILIO_API_KEY"
    API_SECRET = "TWILIO_API_SECRET"  # noqa: S105 (a key name, not a secret)
    API_KEY_NEXT = "TWILIO_API_KEY_NEXT"
    API_SECRET_NEXT = "TWILIO_API_SECRET_NEXT"  # noqa: S105 (a key name, not a secret)
    API_KEY_PREVIOUS = "TWILIO_API_KEY_PREVIOUS"
    API_SECRET_PREVIOUS = "TWILIO_API_SECRET_PREVIOUS"  # noqa: S105 (a key name, not a secret)


FRIENDLY_NAME_PREFIX_MAX_LENGTH = 48

SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "duration(self.rotationInterval) > duration(self.stagePeriod) + duration(self.overlap)",
        "message": "rotationInterval must be longer than stagePeriod + overlap",
    }
]


class SigningKeyRotationSpec(SpecModel):
    """A Twilio API key kept in a Secret and replaced on a schedule, with staging and overlap."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*SPEC_RULES))

    secret_name: str = Field(
        min_length=1,
        max_length=OBJECT_NAME_MAX_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
        description="Secret in the same namespace that the operator owns and writes the keys to.",
    )
    rotation_interval: Duration = Field(
        default="720h", description="Time between rotations (Go duration, at most 87600h = 10 years)."
    )
    stage_period: Duration = Field(
        default="2m",
        description=(
            "How long a new key sits in the Secret as next before it becomes active (Go duration, at most "
            "87600h = 10 years)."
        ),
    )
    overlap: Duration = Field(
        default="2h",
        description=(
            "How long the previous key stays valid after the switch; must be at least the longest token TTL "
            "(Go duration, at most 87600h = 10 years)."
        ),
    )
    friendly_name_prefix: str | None = Field(
        default=None,
        min_length=1,
        max_length=FRIENDLY_NAME_PREFIX_MAX_LENGTH,
        description="Prefix of the Twilio key FriendlyName; unset means <namespace>-<name>.",
    )
    credentials_ref: LocalObjectReference | None = Field(
        default=None,
        description=(
            "Secret with credentials allowed to manage keys (Auth Token or a Main key); unset means the "
            "operator's credentials."
        ),
    )
    deletion_policy: Literal["Retain", "Revoke"] = Field(
        default="Retain",
        description="What deleting the object does to its keys at Twilio: Retain them or Revoke them.",
    )

    @model_validator(mode="after")
    def _interval_fits(self) -> SigningKeyRotationSpec:
        cycle = parse_duration(self.stage_period) + parse_duration(self.overlap)
        if parse_duration(self.rotation_interval) <= cycle:
            raise ValueError("rotationInterval must be longer than stagePeriod + overlap")
        return self


KeySlot = Literal["active", "next"]


class PendingKey(StatusModel):
    """Create-pending marker: written before a key is requested from Twilio, cleared once it is stored.

    A marker still present on the next reconcile, with no stored key for it, means the create call may
    have produced a key whose secret was lost: keys with this friendly name are revoked, then the key is
    requested again.
    """

    friendly_name: str = Field(
        description="FriendlyName the key is created with (prefix, object and revision)."
    )
    slot: KeySlot = Field(description="Where the key goes: active (first key) or next (staging).")
    revision: int = Field(ge=1, description="Revision the key will have once active.")
    since: datetime = Field(description="When the create call was started.")


class SigningKeyRotationStatus(StatusModel):
    """Observed state of the rotation (key SIDs only; secrets live in the Secret alone)."""

    active_key_sid: str | None = Field(default=None, description="SID (SK...) of the active key.")
    next_key_sid: str | None = Field(default=None, description="SID of the staged key, while staging.")
    previous_key_sid: str | None = Field(default=None, description="SID of the previous key, during overlap.")
    revision: int | None = Field(default=None, ge=0, description="Number of keys made active so far.")
    next_key_staged_at: datetime | None = Field(
        default=None, description="When the staged key was written to the Secret."
    )
    last_rotation_time: datetime | None = Field(default=None, description="When a key last became active.")
    next_rotation_time: datetime | None = Field(default=None, description="When the next rotation starts.")
    previous_key_revoke_time: datetime | None = Field(
        default=None, description="When the previous key will be (or was) revoked."
    )
    failed_attempts: int | None = Field(
        default=None, ge=0, description="Consecutive failed rotation attempts (drives the backoff)."
    )
    last_attempt_time: datetime | None = Field(default=None, description="When the last attempt was made.")
    last_failure_time: datetime | None = Field(
        default=None, description="When the last attempt failed (the backoff counts from here)."
    )
    pending_key: PendingKey | None = Field(
        default=None, description="Create-pending marker of a key being created (no secret, ever)."
    )
    last_rotate_request: str | None = Field(
        default=None,
        description="Value of the rotate-requested-at annotation that was last acted upon.",
    )
    refused_credentials_fingerprint: str | None = Field(
        default=None,
        description=(
            "One-way digest of the credentials Twilio refused for the Keys API (Stalled, reason AuthFailed); "
            "retries resume when the credentials change."
        ),
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this status reflects."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Rotating, Synced and Stalled.",
        json_schema_extra=CONDITIONS_LIST_SCHEMA,
    )


def validate_signingkeyrotation_spec(spec: Mapping[str, Any] | None) -> list[str]:
    """Problems with a SigningKeyRotation spec, as ``spec.<path>: message`` lines (empty when valid)."""
    return model_problems(SigningKeyRotationSpec, spec)


#: The spec fields deleting a SigningKeyRotation uses (which Secret, which keys, with which credentials).
DELETION_FIELDS = ("secretName", "friendlyNamePrefix", "credentialsRef", "deletionPolicy")


def spec_for_deletion(spec: Mapping[str, Any] | None) -> SigningKeyRotationSpec | None:
    """The spec as deletion reads it, so that an object whose spec does not validate can still be cleaned up.

    The whole spec when it is valid; otherwise the fields deletion uses with defaults for the rest; otherwise
    ``secretName`` alone, which means ``deletionPolicy: Retain`` (the Secret is kept and nothing is revoked,
    as nothing says more may be done); ``None`` when not even the Secret's name validates.
    """
    data = dict(spec) if isinstance(spec, Mapping) else {}
    candidates = (
        data,
        {key: data[key] for key in DELETION_FIELDS if key in data},
        {key: data[key] for key in ("secretName",) if key in data},
    )
    for candidate in candidates:
        try:
            return SigningKeyRotationSpec.model_validate(candidate)
        except ValidationError:
            continue
    return None
