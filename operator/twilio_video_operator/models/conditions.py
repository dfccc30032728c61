"""Status conditions (the ``metav1.Condition`` shape), their types and reasons, and a pure setter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from twilio_video_operator.models.common import StatusModel

ConditionStatus = Literal["True", "False", "Unknown"]

#: One CamelCase word, as Kubernetes expects for ``reason``.
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

#: Schema hints for a ``conditions`` list: a map keyed by ``type`` (at most one entry per type).
CONDITIONS_LIST_SCHEMA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


class ConditionType(StrEnum):
    """Condition types used by the three kinds."""

    READY = "Ready"
    """Summary: the object is what its spec asks for."""
    SYNCED = "Synced"
    """The last reconcile against Twilio succeeded."""
    STALLED = "Stalled"
    """True only for errors retrying will not clear; retries stop until the spec or credentials change."""
    ROTATING = "Rotating"
    """SigningKeyRotation: a rotation is under way (a key is staged or a previous key still overlaps)."""
    DELIVERED = "Delivered"
    """Composition: the media was delivered to the configured target."""


class Reason(StrEnum):
    """Every condition reason the operator writes: one vocabulary for the three kinds.

    One CamelCase word each; the same word means the same thing on every kind. docs/crd-reference.md lists
    them with the kinds and conditions that use them, and a unit test keeps this enum, the code and that
    table in step (no reason declared and unused, none used and undocumented). The ``Delivered`` condition
    of a Composition also carries the reasons of
    :class:`~twilio_video_operator.delivery.errors.DeliveryReason`.
    """

    # -- a reconcile that went well, or a step on the way ------------------------------------------------
    RECONCILE_SUCCESS = "ReconcileSuccess"
    """Synced: Twilio answered as expected."""
    NOT_STALLED = "NotStalled"
    """Stalled False: nothing needs a person."""
    CREATING = "Creating"
    """Ready False: the Twilio room, composition or first key is being created."""
    PAUSED = "Paused"
    """Synced False: the ``video.openclaw.io/paused`` annotation stops reconciling."""
    # VideoRoom
    SCHEDULED = "Scheduled"
    """Ready True: the room opens at ``schedule.startTime - provisionAhead``."""
    IN_PROGRESS = "InProgress"
    """Ready True: the Twilio room is live."""
    COMPLETED = "Completed"
    """Ready True: the room session ended as asked for; the composition's media is available."""
    PENDING_NEXT_SESSION = "PendingNextSession"
    """Synced True: Twilio ended the session; ``keepAlive`` opens the next one."""
    # Composition
    WAITING_FOR_ROOM = "WaitingForRoom"
    """Ready False: the VideoRoom of ``roomRef`` has no Twilio room yet."""
    ENQUEUED = "Enqueued"
    """Ready False: Twilio queued the composition."""
    PROCESSING = "Processing"
    """Ready False: Twilio is processing the composition."""
    DELIVERING = "Delivering"
    """Ready False: the media is available and being delivered."""
    AWAITING_MEDIA = "AwaitingMedia"
    """Delivered False: the media is not available yet."""
    DELIVERY_SUCCEEDED = "DeliverySucceeded"
    """Delivered True: the media reached its destination."""
    NOTHING_TO_DELIVER = "NothingToDeliver"
    """Delivered False: the composition failed or was deleted, so there is no media."""
    DELIVERY_FAILED = "DeliveryFailed"
    """Ready False: the last delivery attempt failed (``Delivered`` gives the cause); retried."""
    # SigningKeyRotation
    KEY_ACTIVE = "KeyActive"
    """Ready True: the active key is in the Secret."""
    STAGING = "Staging"
    """Rotating True: a new key is staged as next."""
    OVERLAPPING = "Overlapping"
    """Rotating True: the previous key stays valid until its overlap ends."""
    ROTATION_FAILED = "RotationFailed"
    """Rotating True: a rotation step failed; retried with backoff."""
    IDLE = "Idle"
    """Rotating False: no rotation under way."""

    # -- what Twilio reports ----------------------------------------------------------------------------
    FAILED = "Failed"
    """Ready False: Twilio reports that the room or composition failed."""
    DELETED = "Deleted"
    """Ready False: Twilio deleted the composition's media."""

    # -- transient errors (Synced False; retried) --------------------------------------------------------
    RATE_LIMITED = "RateLimited"
    """Twilio throttled the request (HTTP 429)."""
    TWILIO_UNAVAILABLE = "TwilioUnavailable"
    """Twilio answered 5xx, timed out, or the circuit breaker is open."""
    RECONCILE_ERROR = "ReconcileError"
    """Any other failed step (the message says which)."""

    # -- errors a person must fix (Stalled True; also on Ready and Synced) -------------------------------
    INVALID_SPEC = "InvalidSpec"
    """The spec breaks a rule of the CRD or one the operator checks."""
    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    """The ``credentialsRef`` Secret does not exist."""
    INVALID_CREDENTIALS = "InvalidCredentials"
    """The ``credentialsRef`` Secret lacks a key or holds unusable values."""
    AUTH_FAILED = "AuthFailed"
    """Twilio refused the credentials (HTTP 401/403), or a Secret's Auth Token for its account."""
    ACCOUNT_NOT_ALLOWED = "AccountNotAllowed"
    """A tenant Secret names the operator's own Twilio account."""
    NAME_NOT_ALLOWED = "NameNotAllowed"
    """VideoRoom: the unique name is not one the namespace may use on the shared account."""
    ROOM_EXISTS = "RoomExists"
    """VideoRoom: a room with the unique name exists and ``adoptExisting`` is off."""
    ROOM_CLAIMED = "RoomClaimed"
    """VideoRoom: another object already uses the Twilio room."""
    ROOM_NOT_OWNED = "RoomNotOwned"
    """The room in status (VideoRoom) or to compose (Composition) is not one this object may use."""
    SPEC_IMMUTABLE = "SpecImmutable"
    """Composition: the spec changed after the Twilio composition was created."""
    REJECTED_BY_TWILIO = "RejectedByTwilio"
    """Composition: Twilio refused to create the composition with these parameters."""
    PROCESSING_TIMEOUT = "ProcessingTimeout"
    """Composition: Twilio took longer than ``stalledAfter``."""
    SECRET_NOT_OWNED = "SecretNotOwned"  # noqa: S105 - a condition reason, not a secret
    """SigningKeyRotation: a Secret named ``secretName`` exists and belongs to no rotation of this object."""


class Condition(StatusModel):
    """One observation about the object; at most one per type."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Kind of condition: Ready, Synced, Stalled, Rotating or Delivered.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=REASON_PATTERN,
        description="Machine-readable cause of the last transition, one CamelCase word.",
    )
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: datetime = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )


def _as_condition(item: Condition | Mapping[str, Any]) -> Condition:
    return item if isinstance(item, Condition) else Condition.model_validate(dict(item))


def get_condition(conditions: Iterable[Condition | Mapping[str, Any]], type: str) -> Condition | None:
    """The condition of the given type, or ``None``."""
    for item in conditions:
        condition = _as_condition(item)
        if condition.type == type:
            return condition
    return None


def is_condition_true(conditions: Iterable[Condition | Mapping[str, Any]], type: str) -> bool:
    """Whether the condition of the given type is present with status ``True``."""
    condition = get_condition(conditions, type)
    return condition is not None and condition.status == "True"


def set_condition(
    conditions: Iterable[Condition | Mapping[str, Any]],
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Return a new list with the condition ``type`` set; the input is left untouched.

    ``lastTransitionTime`` moves to ``now`` (whole seconds, as Kubernetes stores it) only when ``status``
    changes or the condition is new; reason, message and observedGeneration are always refreshed. Other
    conditions keep their order; a new condition is appended and duplicates of ``type`` are dropped.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    current = [_as_condition(item) for item in conditions]
    stamp = now.replace(microsecond=0)
    result: list[Condition] = []
    found = False
    for condition in current:
        if condition.type != type:
            result.append(condition)
            continue
        if found:  # a duplicate entry of the same type: keep only the first
            continue
        found = True
        changed = condition.status != status
        result.append(
            Condition(
                type=str(type),
                status=status,
                reason=str(reason),
                message=message,
                last_transition_time=stamp if changed else condition.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        result.append(
            Condition(
                type=str(type),
                status=status,
                reason=str(reason),
                message=message,
                last_transition_time=stamp,
                observed_generation=generation,
            )
        )
    return result


def conditions_to_dicts(conditions: Iterable[Condition]) -> list[dict[str, Any]]:
    """The JSON/YAML form of a condition list, ready for a status patch."""
    return [condition.to_dict() for condition in conditions]
