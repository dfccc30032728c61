"""Condition updates that every kind's status shares: one condition set, or the three that say "stalled"."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol, Self, TypeVar

from twilio_video_operator.models.conditions import Condition, ConditionStatus, ConditionType, set_condition

READY: Final = ConditionType.READY
SYNCED: Final = ConditionType.SYNCED
STALLED: Final = ConditionType.STALLED

MAX_MESSAGE = 1024


class ConditionedStatus(Protocol):
    """A status model with ``conditions`` (the pydantic models of every kind)."""

    @property
    def conditions(self) -> list[Condition]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...


S = TypeVar("S", bound=ConditionedStatus)


def clip(message: str) -> str:
    """A condition message of at most :data:`MAX_MESSAGE` characters."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def with_condition(
    status: S,
    type: str,
    value: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> S:
    """A copy of ``status`` with one condition set (``lastTransitionTime`` moves only on a status change)."""
    conditions = set_condition(status.conditions, type, value, reason, clip(message), generation, now)
    return status.model_copy(update={"conditions": conditions})


def stalled(status: S, reason: str, message: str, *, generation: int | None, now: datetime) -> S:
    """An error that retrying will not fix: ``Ready``, ``Synced`` and ``Stalled`` all say so."""
    status = with_condition(status, READY, "False", reason, message, generation, now)
    status = with_condition(status, SYNCED, "False", reason, message, generation, now)
    status = with_condition(status, STALLED, "True", reason, message, generation, now)
    return status.model_copy(update={"observed_generation": generation})
