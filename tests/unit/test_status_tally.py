"""The per-status counts behind the VideoRoom and Composition gauges."""

from __future__ import annotations

import pytest

from twilio_video_operator.reconcilers.status_tally import StatusTally

LABELS = ("in-progress", "completed", "none")


def test_counts_follow_changes_and_unknown_statuses_count_as_none() -> None:
    exported: dict[str, int] = {}
    tally: StatusTally[str] = StatusTally(LABELS, exported.__setitem__)
    assert exported == {"in-progress": 0, "completed": 0, "none": 0}
    tally.set("a", "in-progress")
    tally.set("b", "in-progress")
    tally.set("c", None)
    tally.set("d", "Scheduled")  # not a label of this gauge
    assert exported == {"in-progress": 2, "completed": 0, "none": 2}
    tally.set("a", "completed")
    tally.set("a", "completed")  # no change
    tally.discard("b")
    tally.discard("unknown")
    assert exported == {"in-progress": 0, "completed": 1, "none": 2}
    assert len(tally) == 3 and tally.count("none") == 2


def test_only_changed_labels_are_exported() -> None:
    calls: list[tuple[str, int]] = []
    tally: StatusTally[str] = StatusTally(LABELS, lambda label, count: calls.append((label, count)))
    calls.clear()
    tally.set("a", "in-progress")
    tally.set("a", "completed")
    assert calls == [("in-progress", 1), ("completed", 1), ("in-progress", 0)]


def test_labels_must_include_none() -> None:
    with pytest.raises(ValueError, match="none"):
        StatusTally(("completed",), lambda label, count: None)
