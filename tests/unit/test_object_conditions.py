"""The condition tally behind ``twilio_video_operator_objects`` and the oldest-stall gauge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twilio_video_operator.reconcilers.object_conditions import CONDITIONS, STATUSES, ConditionTally, state_of

KINDS = ("VideoRoom", "Composition")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def obj(*conditions: tuple[str, str, str], paused: bool = False) -> dict[str, Any]:
    annotations = {"video.openclaw.io/paused": "true"} if paused else {}
    return {
        "metadata": {"annotations": annotations},
        "status": {
            "conditions": [
                {"type": type_, "status": status, "reason": "R", "lastTransitionTime": when}
                for type_, status, when in conditions
            ]
        },
    }


class Exported:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.stalls: dict[str, float | None] = {}

    def count(self, kind: str, condition: str, status: str, value: int) -> None:
        self.counts[(kind, condition, status)] = value

    def stall(self, kind: str, since: float | None) -> None:
        self.stalls[kind] = since


def tally(now: float = 0.0) -> tuple[ConditionTally, Exported]:
    exported = Exported()
    return ConditionTally(KINDS, exported.count, exported.stall, clock=lambda: now), exported


def test_every_series_starts_at_zero() -> None:
    _, exported = tally()
    assert exported.counts == {(k, c, s): 0 for k in KINDS for c in CONDITIONS for s in STATUSES}
    assert exported.stalls == {"VideoRoom": None, "Composition": None}


def test_state_of_reads_conditions_and_the_paused_annotation() -> None:
    stalled = obj(("Ready", "False", "2026-01-01T00:00:00Z"), ("Stalled", "True", "2026-01-01T00:00:00Z"))
    assert state_of(stalled).statuses == ("False", "True", "False")
    assert state_of(stalled).stalled_since == T0.timestamp()
    assert state_of(obj(paused=True)).statuses == ("Unknown", "Unknown", "True")
    assert state_of({"status": "garbage", "metadata": None}).statuses == ("Unknown", "Unknown", "False")
    odd = obj(("Ready", "Maybe", "x"), ("Stalled", "False", "x"))
    assert state_of(odd) == state_of(odd) and state_of(odd).statuses == ("Unknown", "False", "False")


def test_each_object_counts_once_per_condition_and_moves_between_statuses() -> None:
    conditions, exported = tally()
    conditions.observe("VideoRoom", "ns", "a", obj(("Ready", "True", "2026-01-01T00:00:00Z")))
    conditions.observe("VideoRoom", "ns", "b", obj(paused=True))
    assert exported.counts[("VideoRoom", "Ready", "True")] == 1
    assert exported.counts[("VideoRoom", "Ready", "Unknown")] == 1
    assert exported.counts[("VideoRoom", "Stalled", "Unknown")] == 2
    assert exported.counts[("VideoRoom", "Paused", "True")] == 1
    assert exported.counts[("VideoRoom", "Paused", "False")] == 1
    conditions.observe("VideoRoom", "ns", "a", obj(("Ready", "False", "2026-01-01T00:01:00Z")))
    assert exported.counts[("VideoRoom", "Ready", "True")] == 0
    assert exported.counts[("VideoRoom", "Ready", "False")] == 1
    conditions.forget("VideoRoom", "ns", "a")
    conditions.forget("VideoRoom", "ns", "a")  # twice: nothing more to take away
    assert exported.counts[("VideoRoom", "Ready", "False")] == 0
    assert exported.counts[("VideoRoom", "Stalled", "Unknown")] == 1
    assert exported.counts[("Composition", "Ready", "Unknown")] == 0


def test_the_oldest_stall_of_a_kind_is_exported_until_the_last_stall_ends() -> None:
    conditions, exported = tally()
    later = obj(("Stalled", "True", "2026-01-01T00:10:00Z"))
    earlier = obj(("Stalled", "True", "2026-01-01T00:00:00Z"))
    conditions.observe("Composition", "ns", "late", later)
    assert exported.stalls["Composition"] == T0.timestamp() + 600
    conditions.observe("Composition", "ns", "early", earlier)
    assert exported.stalls["Composition"] == T0.timestamp()
    assert exported.stalls["VideoRoom"] is None
    conditions.observe("Composition", "ns", "early", obj(("Stalled", "False", "2026-01-01T00:20:00Z")))
    assert exported.stalls["Composition"] == T0.timestamp() + 600
    conditions.forget("Composition", "ns", "late")
    assert exported.stalls["Composition"] is None
    assert exported.counts[("Composition", "Stalled", "True")] == 0


def test_a_stall_without_a_readable_time_counts_from_when_it_was_first_seen() -> None:
    conditions, exported = tally(now=1234.0)
    conditions.observe("VideoRoom", "ns", "a", obj(("Stalled", "True", "yesterday")))
    assert exported.stalls["VideoRoom"] == 1234.0


def test_clear_forgets_every_object() -> None:
    conditions, exported = tally()
    conditions.observe("VideoRoom", "ns", "a", obj(("Stalled", "True", "2026-01-01T00:00:00Z")))
    conditions.observe("Composition", "ns", "b", obj(paused=True))
    conditions.clear()
    assert set(exported.counts.values()) == {0}
    assert exported.stalls == {"VideoRoom": None, "Composition": None}
