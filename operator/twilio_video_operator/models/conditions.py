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
    """Condition reasons (one CamelCase word each)."""

    # Ready
    AVAILABLE = "Available"
    SCHEDULED = "Scheduled"
    CREATING = "Creating"
    COMPLETED = "Completed"
    FAILED = "Failed"
    DELETING = "Deleting"
    PAUSED = "Paused"
    ENQUEUED = "Enqueued"
    PROCESSING = "Processing"
    DELETED = "Deleted"
    WAITING_FOR_ROOM = "WaitingForRoom"
    KEY_ACTIVE = "KeyActive"
    # Synced
    RECONCILE_SUCCESS = "ReconcileSuccess"
    RECONCILE_ERROR = "ReconcileError"
    THROTTLED = "Throttled"
    CREDENTIALS_INVALID = "CredentialsInvalid"
    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    ACCOUNT_NOT_ALLOWED = "AccountNotAllowed"
    # Stalled
    INVALID_SPEC = "InvalidSpec"
    FOREIGN_ROOM = "ForeignRoom"
    ROOM_NOT_FOUND = "RoomNotFound"
    REJECTED_BY_TWILIO = "RejectedByTwilio"
    PROCESSING_TIMEOUT = "ProcessingTimeout"
    NOT_STALLED = "NotStalled"
    # Rotating
    STAGING = "Staging"
    OVERLAPPING = "Overlapping"
    IDLE = "Idle"
    ROTATION_FAILED = "RotationFailed"
    # Delivered
    DELIVERING = "Delivering"
    DELIVERY_SUCCEEDED = "DeliverySucceeded"
    DELIVERY_FAILED = "DeliveryFailed"


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
