"""Composition conditions: reasons, and pure helpers that keep ``Ready``, ``Synced``, ``Stalled`` and
``Delivered`` consistent with what is known about the Twilio composition."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.models.conditions import ConditionStatus, get_condition
from twilio_video_operator.reconcilers.condition_updates import READY as READY
from twilio_video_operator.reconcilers.condition_updates import STALLED as STALLED
from twilio_video_operator.reconcilers.condition_updates import SYNCED as SYNCED
from twilio_video_operator.reconcilers.condition_updates import stalled as stalled
from twilio_video_operator.reconcilers.condition_updates import with_condition as with_condition

DELIVERED: Final = "Delivered"

# Ready
CREATING: Final = "Creating"
WAITING_FOR_ROOM: Final = "WaitingForRoom"
ENQUEUED: Final = "Enqueued"
PROCESSING: Final = "Processing"
COMPLETED: Final = "Completed"
DELIVERING: Final = "Delivering"
DELIVERY_FAILED: Final = "DeliveryFailed"
FAILED: Final = "Failed"
DELETED: Final = "Deleted"
# Synced
RECONCILE_SUCCESS: Final = "ReconcileSuccess"
RECONCILE_ERROR: Final = "ReconcileError"
THROTTLED: Final = "Throttled"
TWILIO_UNAVAILABLE: Final = "TwilioUnavailable"
# Stalled (also used on Ready and Synced while stalled)
INVALID_SPEC: Final = "InvalidSpec"
SPEC_IMMUTABLE: Final = "SpecImmutable"
REJECTED_BY_TWILIO: Final = "RejectedByTwilio"
CREDENTIALS_INVALID: Final = "CredentialsInvalid"
CREDENTIALS_NOT_FOUND: Final = "CredentialsNotFound"
PROCESSING_TIMEOUT: Final = "ProcessingTimeout"
ROOM_NOT_OWNED: Final = "RoomNotOwned"
NOT_STALLED: Final = "NotStalled"
# Delivered
AWAITING_MEDIA: Final = "AwaitingMedia"
DELIVERY_SUCCEEDED: Final = "DeliverySucceeded"
NOTHING_TO_DELIVER: Final = "NothingToDeliver"

ACTIVE_STATES: Final = frozenset({"enqueued", "processing"})
TERMINAL_STATES: Final = frozenset({"completed", "failed", "deleted"})


def condition_reason(status: CompositionStatus, type: str) -> str | None:
    condition = get_condition(status.conditions, type)
    return condition.reason if condition is not None else None


def stall_of(status: CompositionStatus) -> tuple[str, int | None, datetime] | None:
    """``(reason, observedGeneration, lastTransitionTime)`` of a ``Stalled`` True condition, else ``None``."""
    condition = get_condition(status.conditions, STALLED)
    if condition is None or condition.status != "True":
        return None
    return condition.reason, condition.observed_generation, condition.last_transition_time


def unsynced(
    status: CompositionStatus, reason: str, message: str, *, generation: int | None, now: datetime
) -> CompositionStatus:
    """A transient failure talking to Twilio: ``Synced`` False; ``Ready`` stays (Unknown if unset)."""
    if get_condition(status.conditions, READY) is None:
        status = with_condition(status, READY, "Unknown", reason, message, generation, now)
    status = with_condition(status, SYNCED, "False", reason, message, generation, now)
    return status.model_copy(update={"observed_generation": generation})


def synced(status: CompositionStatus, *, generation: int | None, now: datetime) -> CompositionStatus:
    """The last call to Twilio succeeded."""
    status = with_condition(
        status, SYNCED, "True", RECONCILE_SUCCESS, "Twilio answered as expected.", generation, now
    )
    return status.model_copy(update={"observed_generation": generation, "last_synced_at": now})


def not_stalled(status: CompositionStatus, *, generation: int | None, now: datetime) -> CompositionStatus:
    return with_condition(status, STALLED, "False", NOT_STALLED, "", generation, now)


def summarize(
    status: CompositionStatus,
    spec: CompositionSpec | None,
    *,
    generation: int | None,
    now: datetime,
    failure: str | None = None,
) -> CompositionStatus:
    """``Ready`` (and ``Delivered`` when the spec delivers) from the composition's Twilio state.

    Only for a composition that exists (``status.sid`` set). ``failure`` is Twilio's error for a failed
    composition; without it a ``Failed`` message already present is kept. A ``ProcessingTimeout`` stall is
    lifted once Twilio has finished one way or another.
    """
    state = status.composition_status
    delivery = spec.delivery if spec is not None else None
    delivered = status.delivery is not None and status.delivery.sha256 is not None
    ready: tuple[ConditionStatus, str, str]
    if state == "completed":
        media = _media_summary(status)
        if delivery is None:
            ready = ("True", COMPLETED, f"The media is available ({media}).")
        elif delivered:
            assert status.delivery is not None
            ready = ("True", COMPLETED, f"The media ({media}) was delivered to {status.delivery.url}.")
        elif condition_reason(status, DELIVERED) in (None, AWAITING_MEDIA, DELIVERY_SUCCEEDED):
            ready = ("False", DELIVERING, f"The media is available ({media}); delivering it.")
        else:
            current = get_condition(status.conditions, READY)
            keep = current is not None and current.reason == DELIVERY_FAILED
            message = current.message if keep and current else "Delivery of the media failed; retrying."
            ready = ("False", DELIVERY_FAILED, message)
    elif state == "failed":
        current = get_condition(status.conditions, READY)
        message = failure or (
            current.message
            if current is not None and current.reason == FAILED and current.message
            else "Twilio reports that the composition failed."
        )
        ready = ("False", FAILED, message)
    elif state == "deleted":
        ready = ("False", DELETED, "Twilio deleted the composition's media.")
    elif state == "processing":
        ready = ("False", PROCESSING, _progress_summary(status))
    else:
        ready = ("False", ENQUEUED, "Twilio queued the composition; it starts once the room has completed.")
    if state in ACTIVE_STATES and condition_reason(status, STALLED) == PROCESSING_TIMEOUT:
        stall = get_condition(status.conditions, STALLED)
        ready = ("False", PROCESSING_TIMEOUT, stall.message if stall else ready[2])
    value, reason, message = ready
    status = with_condition(status, READY, value, reason, message, generation, now)
    if state in TERMINAL_STATES and condition_reason(status, STALLED) == PROCESSING_TIMEOUT:
        status = not_stalled(status, generation=generation, now=now)
    if delivery is not None:
        status = _delivered_condition(status, generation=generation, now=now)
    return status


def _delivered_condition(
    status: CompositionStatus, *, generation: int | None, now: datetime
) -> CompositionStatus:
    state = status.composition_status
    if status.delivery is not None and status.delivery.sha256 is not None:
        message = f"Delivered {status.delivery.bytes} bytes to {status.delivery.url}."
        return with_condition(status, DELIVERED, "True", DELIVERY_SUCCEEDED, message, generation, now)
    if state in ("failed", "deleted"):
        message = f"The composition is {state}; there is no media to deliver."
        return with_condition(status, DELIVERED, "False", NOTHING_TO_DELIVER, message, generation, now)
    reason = condition_reason(status, DELIVERED)
    if reason is None or reason in (AWAITING_MEDIA, DELIVERY_SUCCEEDED, NOTHING_TO_DELIVER):
        message = (
            "The media is available; delivery starts now."
            if state == "completed"
            else "Waiting for Twilio to finish the composition."
        )
        return with_condition(status, DELIVERED, "False", AWAITING_MEDIA, message, generation, now)
    return status  # keep the reason of the last failed attempt


def _media_summary(status: CompositionStatus) -> str:
    parts = []
    if status.duration_seconds is not None:
        parts.append(f"{status.duration_seconds}s")
    if status.size_bytes is not None:
        parts.append(f"{status.size_bytes} bytes")
    return ", ".join(parts) or "size unknown"


def _progress_summary(status: CompositionStatus) -> str:
    if status.progress_percent is None:
        return "Twilio is processing the composition."
    text = f"Twilio is processing the composition: {status.progress_percent}% done"
    if status.seconds_remaining is not None:
        text += f", about {status.seconds_remaining}s left"
    return text + "."
