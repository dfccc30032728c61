"""Composition conditions: pure helpers that keep ``Ready``, ``Synced``, ``Stalled`` and
``Delivered`` consistent with what is known about the Twilio composition."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.models.conditions import ConditionStatus, ConditionType, Reason, get_condition
from twilio_video_operator.reconcilers.condition_updates import READY as READY
from twilio_video_operator.reconcilers.condition_updates import STALLED as STALLED
from twilio_video_operator.reconcilers.condition_updates import SYNCED as SYNCED
from twilio_video_operator.reconcilers.condition_updates import stalled as stalled
from twilio_video_operator.reconcilers.condition_updates import with_condition as with_condition

DELIVERED: Final = ConditionType.DELIVERED

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
        status, SYNCED, "True", Reason.RECONCILE_SUCCESS, "Twilio answered as expected.", generation, now
    )
    return status.model_copy(update={"observed_generation": generation, "last_synced_at": now})


def not_stalled(status: CompositionStatus, *, generation: int | None, now: datetime) -> CompositionStatus:
    return with_condition(status, STALLED, "False", Reason.NOT_STALLED, "", generation, now)


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
            ready = ("True", Reason.COMPLETED, f"The media is available ({media}).")
        elif delivered:
            assert status.delivery is not None
            ready = ("True", Reason.COMPLETED, f"The media ({media}) was delivered to {status.delivery.url}.")
        elif condition_reason(status, DELIVERED) in (None, Reason.AWAITING_MEDIA, Reason.DELIVERY_SUCCEEDED):
            ready = ("False", Reason.DELIVERING, f"The media is available ({media}); delivering it.")
        else:
            current = get_condition(status.conditions, READY)
            keep = current is not None and current.reason == Reason.DELIVERY_FAILED
            message = current.message if keep and current else "Delivery of the media failed; retrying."
            ready = ("False", Reason.DELIVERY_FAILED, message)
    elif state == "failed":
        current = get_condition(status.conditions, READY)
        message = failure or (
            current.message
            if current is not None and current.reason == Reason.FAILED and current.message
            else "Twilio reports that the composition failed."
        )
        ready = ("False", Reason.FAILED, message)
    elif state == "deleted":
        ready = ("False", Reason.DELETED, "Twilio deleted the composition's media.")
    elif state == "processing":
        ready = ("False", Reason.PROCESSING, _progress_summary(status))
    else:
        ready = (
            "False",
            Reason.ENQUEUED,
            "Twilio queued the composition; it starts once the room has completed.",
        )
    if state in ACTIVE_STATES and condition_reason(status, STALLED) == Reason.PROCESSING_TIMEOUT:
        stall = get_condition(status.conditions, STALLED)
        ready = ("False", Reason.PROCESSING_TIMEOUT, stall.message if stall else ready[2])
    value, reason, message = ready
    status = with_condition(status, READY, value, reason, message, generation, now)
    if state in TERMINAL_STATES and condition_reason(status, STALLED) == Reason.PROCESSING_TIMEOUT:
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
        return with_condition(status, DELIVERED, "True", Reason.DELIVERY_SUCCEEDED, message, generation, now)
    if state in ("failed", "deleted"):
        message = f"The composition is {state}; there is no media to deliver."
        return with_condition(status, DELIVERED, "False", Reason.NOTHING_TO_DELIVER, message, generation, now)
    reason = condition_reason(status, DELIVERED)
    if reason is None or reason in (
        Reason.AWAITING_MEDIA,
        Reason.DELIVERY_SUCCEEDED,
        Reason.NOTHING_TO_DELIVER,
    ):
        message = (
            "The media is available; delivery starts now."
            if state == "completed"
            else "Waiting for Twilio to finish the composition."
        )
        return with_condition(status, DELIVERED, "False", Reason.AWAITING_MEDIA, message, generation, now)
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
