"""set_condition and friends: pure condition bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twilio_video_operator.models import (
    Condition,
    ConditionType,
    Reason,
    conditions_to_dicts,
    get_condition,
    is_condition_true,
    set_condition,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5, microseconds=123456)


def test_new_condition_is_appended_with_now_as_transition_time() -> None:
    result = set_condition([], ConditionType.READY, "False", Reason.CREATING, "creating the room", 1, T0)

    assert [c.type for c in result] == ["Ready"]
    assert result[0].last_transition_time == T0
    assert result[0].observed_generation == 1
    assert result[0].to_dict() == {
        "type": "Ready",
        "status": "False",
        "reason": "Creating",
        "message": "creating the room",
        "lastTransitionTime": "2026-03-01T12:00:00Z",
        "observedGeneration": 1,
    }


def test_same_status_keeps_transition_time_but_refreshes_the_rest() -> None:
    first = set_condition([], "Synced", "False", Reason.RATE_LIMITED, "429 from Twilio", 1, T0)

    second = set_condition(first, "Synced", "False", Reason.RECONCILE_ERROR, "503 from Twilio", 2, T1)

    assert second[0].last_transition_time == T0
    assert (second[0].reason, second[0].message, second[0].observed_generation) == (
        "ReconcileError",
        "503 from Twilio",
        2,
    )


def test_status_change_moves_transition_time_to_whole_seconds() -> None:
    first = set_condition([], "Ready", "False", Reason.CREATING, "", 1, T0)

    second = set_condition(first, "Ready", "True", Reason.IN_PROGRESS, "room in progress", 1, T1)

    assert second[0].last_transition_time == T1.replace(microsecond=0)
    assert second[0].status == "True"


def test_other_conditions_keep_their_order_and_the_input_is_untouched() -> None:
    start = set_condition([], "Ready", "True", "Available", "", 3, T0)
    start = set_condition(start, "Synced", "True", "ReconcileSuccess", "", 3, T0)
    start = set_condition(start, "Stalled", "False", "NotStalled", "", 3, T0)
    snapshot = [c.model_copy() for c in start]

    result = set_condition(start, "Synced", "False", "ReconcileError", "boom", 4, T1)

    assert [c.type for c in result] == ["Ready", "Synced", "Stalled"]
    assert start == snapshot
    assert result[0] == start[0] and result[2] == start[2]


def test_accepts_condition_dicts_as_read_from_the_api() -> None:
    stored = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Available",
            "message": "",
            "lastTransitionTime": "2026-03-01T12:00:00Z",
        }
    ]

    result = set_condition(stored, "Ready", "True", "Available", "still fine", 7, T1)

    assert result[0].last_transition_time == T0
    assert conditions_to_dicts(result)[0]["message"] == "still fine"


def test_duplicate_entries_of_a_type_collapse_to_one() -> None:
    ready = Condition(type="Ready", status="True", reason="Available", last_transition_time=T0)

    result = set_condition([ready, ready], "Ready", "True", "Available", "", 1, T1)

    assert [c.type for c in result] == ["Ready"]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        set_condition([], "Ready", "True", "Available", "", 1, datetime(2026, 1, 1))


def test_lookup_helpers() -> None:
    conditions = set_condition([], "Stalled", "True", Reason.INVALID_SPEC, "spec.type: bad", 2, T0)

    assert is_condition_true(conditions, ConditionType.STALLED)
    assert not is_condition_true(conditions, ConditionType.READY)
    found = get_condition(conditions, "Stalled")
    assert found is not None and found.reason == "InvalidSpec"
    assert get_condition(conditions, "Ready") is None


def test_reason_must_be_one_camel_case_word() -> None:
    with pytest.raises(ValueError, match="reason"):
        set_condition([], "Ready", "False", "not a word", "", 1, T0)
