"""How many objects of each kind are Ready, Stalled or Paused, and since when the oldest stall has lasted.

Fed with every object as the API server holds it (what ``kubectl`` and Argo CD see), not with what a
reconcile meant to write. Per kind and per condition, every object counts once under the status of that
condition: ``True``, ``False`` or ``Unknown`` (the condition is absent or unreadable). ``Paused`` is the
``video.openclaw.io/paused: "true"`` annotation rather than a status condition.

The oldest stall of a kind is the earliest ``lastTransitionTime`` of a ``Stalled=True`` condition among the
objects of that kind: an alert on ``now - oldest stall`` fires for any object stalled longer than its
threshold, and keeps counting across operator restarts because the time comes from the object.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from twilio_video_operator.models.annotations import PAUSED

READY: Final = "Ready"
STALLED: Final = "Stalled"
PAUSED_CONDITION: Final = "Paused"
#: Values of the ``condition`` label.
CONDITIONS: Final = (READY, STALLED, PAUSED_CONDITION)
#: Values of the ``status`` label.
STATUSES: Final = ("True", "False", "Unknown")

Key = tuple[str, str, str]
"""``(kind, namespace, name)``."""

CountExport = Callable[[str, str, str, int], None]
"""``(kind, condition, status, count)``."""
StallExport = Callable[[str, "float | None"], None]
"""``(kind, Unix time of the oldest stall, or None when no object of the kind is stalled)``."""


@dataclass(frozen=True)
class ObjectState:
    """What the gauges need of one object."""

    statuses: tuple[str, str, str]
    """The status of Ready, Stalled and Paused, in the order of :data:`CONDITIONS`."""
    stalled_since: float | None
    """Unix time at which Stalled turned True, while it is True."""


def _condition(conditions: Any, type_: str) -> Mapping[str, Any] | None:
    if not isinstance(conditions, list):
        return None
    for item in conditions:
        if isinstance(item, Mapping) and item.get("type") == type_:
            return item
    return None


def _status(condition: Mapping[str, Any] | None) -> str:
    value = None if condition is None else condition.get("status")
    return value if value in ("True", "False") else "Unknown"


def _unix_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def state_of(obj: Mapping[str, Any]) -> ObjectState:
    """The Ready, Stalled and Paused status of an object as stored (malformed parts count as Unknown)."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    paused = isinstance(annotations, Mapping) and annotations.get(PAUSED) == "true"
    stalled = _condition(conditions, STALLED)
    stalled_status = _status(stalled)
    since = None
    if stalled is not None and stalled_status == "True":
        # An unreadable time counts from now on: the object is stalled, for an unknown while.
        since = _unix_time(stalled.get("lastTransitionTime"))
    return ObjectState(
        statuses=(_status(_condition(conditions, READY)), stalled_status, "True" if paused else "False"),
        stalled_since=since,
    )


class ConditionTally:
    """The state of every known object, counted per kind, condition and status (O(1) per change, plus
    the stalled objects of the kind when a stall starts or ends)."""

    def __init__(
        self,
        kinds: Iterable[str],
        export_count: CountExport,
        export_stall: StallExport,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._export_count = export_count
        self._export_stall = export_stall
        self._clock = clock
        self._states: dict[Key, ObjectState] = {}
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._stalled: dict[str, dict[Key, float]] = {}
        for kind in kinds:
            self._stalled[kind] = {}
            for condition in CONDITIONS:
                for status in STATUSES:
                    export_count(kind, condition, status, 0)
            export_stall(kind, None)

    def observe(self, kind: str, namespace: str, name: str, obj: Mapping[str, Any]) -> None:
        """The object as the API server now holds it."""
        key = (kind, namespace, name)
        new = state_of(obj)
        old = self._states.get(key)
        if old is not None and old.statuses == new.statuses and old.stalled_since == new.stalled_since:
            return
        self._states[key] = new
        self._count(kind, new.statuses, 1)
        if old is not None:
            self._count(kind, old.statuses, -1)
        stalled = self._stalled.setdefault(kind, {})
        was_stalled = key in stalled
        if new.statuses[1] == "True":
            since = new.stalled_since
            if since is None:
                since = stalled.get(key, self._clock())
            stalled[key] = since
        else:
            stalled.pop(key, None)
        if was_stalled or key in stalled:
            self._export_oldest(kind)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """The object is gone."""
        key = (kind, namespace, name)
        old = self._states.pop(key, None)
        if old is None:
            return
        self._count(kind, old.statuses, -1)
        if self._stalled.get(kind, {}).pop(key, None) is not None:
            self._export_oldest(kind)

    def clear(self) -> None:
        """Forget every object (the process stops watching): the counts go to 0, the stall series away."""
        for key in list(self._states):
            self.forget(*key)

    def count(self, kind: str, condition: str, status: str) -> int:
        return self._counts[(kind, condition, status)]

    def _count(self, kind: str, statuses: tuple[str, str, str], delta: int) -> None:
        for condition, status in zip(CONDITIONS, statuses, strict=True):
            label = (kind, condition, status)
            self._counts[label] += delta
            self._export_count(kind, condition, status, self._counts[label])

    def _export_oldest(self, kind: str) -> None:
        stalled = self._stalled.get(kind) or {}
        self._export_stall(kind, min(stalled.values()) if stalled else None)
