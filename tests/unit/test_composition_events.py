"""Composition callbacks and fetches folded into the status: monotonic, duplicate- and order-safe."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import permutations
from typing import Any

import pytest
from composition_samples import composition_info

from twilio_video_operator.gateway.records import CompositionInfo
from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.models.conditions import get_condition
from twilio_video_operator.reconcilers.composition_events import (
    CompositionEvent,
    MalformedEvent,
    apply_event,
    apply_fetch,
    parse_event,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "AC" + "a" * 32
SID = "CJ" + "b" * 32
ROOM = "RM" + "c" * 32
SPEC = CompositionSpec.model_validate({"roomSid": ROOM})


def params(event: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "CompositionSid": SID,
        "RoomSid": ROOM,
        "StatusCallbackEvent": event,
        "Timestamp": "2026-05-01T11:59:58.123Z",
        **extra,
    }


STARTED = params("composition-started")
PROGRESS_10 = params("composition-progress", PercentageDone="10", SecondsRemaining="90")
PROGRESS_50 = params("composition-progress", PercentageDone="50", SecondsRemaining="50")
AVAILABLE = params(
    "composition-available", MediaUri=f"/v1/Compositions/{SID}/Media", Duration="42", Size="123456"
)
FAILED = params("composition-failed", FailedOperation="CompositionProcessing", ErrorMessage="boom (53626)")


def fold(status: CompositionStatus, *events: dict[str, str]) -> CompositionStatus:
    for raw in events:
        status = apply_event(status, parse_event(raw), SPEC, generation=1, now=NOW).status
    return status


def ready(status: CompositionStatus) -> tuple[str, str, str]:
    condition = get_condition(status.conditions, "Ready")
    assert condition is not None
    return condition.status, condition.reason, condition.message


def start() -> CompositionStatus:
    return CompositionStatus(sid=SID, room_sid=ROOM, composition_status="enqueued")


def test_parse_a_complete_event() -> None:
    event = parse_event(AVAILABLE)
    assert event == CompositionEvent(
        event="composition-available",
        account_sid=ACCOUNT,
        composition_sid=SID,
        room_sid=ROOM,
        timestamp=datetime(2026, 5, 1, 11, 59, 58, 123000, tzinfo=UTC),
        duration=42,
        size=123456,
        media_uri=f"/v1/Compositions/{SID}/Media",
    )
    assert event.dedupe_key == (SID, "composition-available", None)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"StatusCallbackEvent": "room-ended"}, "not a composition event"),
        ({"AccountSid": "nope"}, "AccountSid"),
        ({"CompositionSid": ""}, "CompositionSid"),
        ({"RoomSid": "RMxyz"}, "RoomSid"),
        ({"PercentageDone": "ten"}, "PercentageDone is not a whole number"),
        ({"PercentageDone": "101"}, "over 100"),
        ({"Size": "-1"}, "Size is negative"),
        ({"Timestamp": "yesterday"}, "Timestamp"),
    ],
)
def test_malformed_events_are_named(change: dict[str, str], problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        parse_event({**PROGRESS_10, **change})


def test_the_happy_path_ends_completed_with_media_facts() -> None:
    status = fold(start(), STARTED, PROGRESS_10, PROGRESS_50, AVAILABLE)
    assert status.composition_status == "completed"
    assert (status.progress_percent, status.seconds_remaining) == (100, 0)
    assert (status.duration_seconds, status.size_bytes) == (42, 123456)
    assert status.media_uri == f"/v1/Compositions/{SID}/Media"
    assert status.completed_at == datetime(2026, 5, 1, 11, 59, 58, 123000, tzinfo=UTC)
    assert ready(status)[:2] == ("True", "Completed")
    assert status.last_synced_at == NOW


def test_progress_is_reported_in_ready() -> None:
    status = fold(start(), STARTED, PROGRESS_50)
    assert (status.progress_percent, status.seconds_remaining) == (50, 50)
    assert ready(status) == (
        "False",
        "Processing",
        "Twilio is processing the composition: 50% done, about 50s left.",
    )


def test_a_late_progress_never_moves_a_completed_composition_back() -> None:
    completed = fold(start(), STARTED, PROGRESS_50, AVAILABLE)
    seen = apply_event(completed, parse_event(PROGRESS_10), SPEC, generation=1, now=NOW)
    assert not seen.changed
    assert seen.status.composition_status == "completed" and seen.status.progress_percent == 100


def test_progress_only_grows() -> None:
    status = fold(start(), STARTED, PROGRESS_50, PROGRESS_10)
    assert status.progress_percent == 50


def test_duplicates_change_nothing() -> None:
    once = fold(start(), STARTED, PROGRESS_50)
    seen = apply_event(once, parse_event(PROGRESS_50), SPEC, generation=1, now=NOW)
    assert not seen.changed and seen.status == once


@pytest.mark.parametrize("order", list(permutations([STARTED, PROGRESS_10, PROGRESS_50, AVAILABLE])))
def test_any_order_of_delivery_ends_in_the_same_state(order: tuple[dict[str, str], ...]) -> None:
    status = fold(start(), *order)
    assert status.composition_status == "completed"
    assert (status.progress_percent, status.size_bytes, status.duration_seconds) == (100, 123456, 42)


def test_the_first_terminal_state_wins() -> None:
    assert fold(start(), FAILED, AVAILABLE).composition_status == "failed"
    assert fold(start(), AVAILABLE, FAILED).composition_status == "completed"


def test_failure_carries_twilios_error() -> None:
    status = fold(start(), STARTED, FAILED)
    assert ready(status) == ("False", "Failed", "boom (53626) (failed operation: CompositionProcessing)")


def info(status: str, **changes: Any) -> CompositionInfo:
    fixed = {"sid": SID, "room_sid": ROOM, "date_created": NOW, "status": status, "account_sid": ACCOUNT}
    return composition_info(**{**fixed, **changes})


def test_a_fetch_fills_in_a_completed_composition() -> None:
    seen = apply_fetch(
        start(), info("completed", size=99, duration=7, date_completed=NOW), SPEC, generation=1, now=NOW
    )
    assert seen.changed and seen.entered == "completed"
    status = seen.status
    assert (status.size_bytes, status.duration_seconds, status.completed_at) == (99, 7, NOW)
    assert status.media_uri == f"/v1/Compositions/{SID}/Media"
    assert status.progress_percent == 100


def test_a_fetch_does_not_undo_news_from_callbacks() -> None:
    processing = fold(start(), STARTED, PROGRESS_50)
    seen = apply_fetch(processing, info("enqueued"), SPEC, generation=1, now=NOW)
    assert not seen.changed and seen.status.progress_percent == 50
    assert seen.status.last_synced_at == NOW  # but Twilio was heard from


def test_a_composition_twilio_forgot_is_deleted() -> None:
    seen = apply_fetch(start(), None, SPEC, generation=1, now=NOW)
    assert seen.entered == "deleted" and ready(seen.status)[1] == "Deleted"
