"""VideoRoom conditions: pure helpers that set ``Ready``, ``Synced`` and ``Stalled`` together."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from twilio_video_operator.models.conditions import ConditionStatus, Reason, get_condition
from twilio_video_operator.models.videoroom import VideoRoomStatus
from twilio_video_operator.reconcilers.condition_updates import READY as READY
from twilio_video_operator.reconcilers.condition_updates import STALLED as STALLED
from twilio_video_operator.reconcilers.condition_updates import SYNCED as SYNCED
from twilio_video_operator.reconcilers.condition_updates import stalled as stalled
from twilio_video_operator.reconcilers.condition_updates import with_condition as with_condition

#: Reasons that mean "retrying will not help until the spec or the credentials change".
STALL_REASONS: Final = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.ROOM_EXISTS,
        Reason.AUTH_FAILED,
        Reason.INVALID_CREDENTIALS,
        Reason.CREDENTIALS_NOT_FOUND,
        Reason.ACCOUNT_NOT_ALLOWED,
        Reason.NAME_NOT_ALLOWED,
        Reason.ROOM_CLAIMED,
        Reason.ROOM_NOT_OWNED,
    }
)


def healthy(
    status: VideoRoomStatus,
    *,
    ready: ConditionStatus,
    ready_reason: str,
    ready_message: str,
    synced_reason: str = Reason.RECONCILE_SUCCESS,
    synced_message: str = "The room matches the spec.",
    generation: int | None,
    now: datetime,
) -> VideoRoomStatus:
    """Conditions of a successful reconcile: ``Ready`` as given, ``Synced`` True, ``Stalled`` False."""
    status = with_condition(status, READY, ready, ready_reason, ready_message, generation, now)
    status = with_condition(status, SYNCED, "True", synced_reason, synced_message, generation, now)
    status = with_condition(status, STALLED, "False", Reason.NOT_STALLED, "", generation, now)
    synced_at = now.replace(microsecond=0)
    return status.model_copy(update={"observed_generation": generation, "last_synced_at": synced_at})


def unsynced(
    status: VideoRoomStatus, reason: str, message: str, *, generation: int | None, now: datetime
) -> VideoRoomStatus:
    """Conditions of a transient failure: ``Synced`` False, ``Ready`` left as it was (or Unknown if unset)."""
    if get_condition(status.conditions, READY) is None:
        status = with_condition(status, READY, "Unknown", reason, message, generation, now)
    status = with_condition(status, SYNCED, "False", reason, message, generation, now)
    status = with_condition(status, STALLED, "False", Reason.NOT_STALLED, "", generation, now)
    return status.model_copy(update={"observed_generation": generation})


def paused(status: VideoRoomStatus, *, generation: int | None, now: datetime) -> VideoRoomStatus:
    """Conditions of a paused object: ``Synced`` False/Paused; ``Ready`` and ``Stalled`` untouched."""
    message = "Reconciliation is paused by the video.openclaw.io/paused annotation; Twilio is not called."
    return with_condition(status, SYNCED, "False", Reason.PAUSED, message, generation, now)


def is_paused(status: VideoRoomStatus) -> bool:
    condition = get_condition(status.conditions, SYNCED)
    return condition is not None and condition.reason == Reason.PAUSED


def stall_of(status: VideoRoomStatus) -> tuple[str, int | None] | None:
    """``(reason, observedGeneration)`` of a ``Stalled`` True condition, else ``None``."""
    condition = get_condition(status.conditions, STALLED)
    if condition is None or condition.status != "True":
        return None
    return condition.reason, condition.observed_generation
