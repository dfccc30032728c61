"""Pure parts of the Composition reconciler: the plan, claim matching, callbacks before the create answer,
and which objects the periodic tick looks at."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from composition_samples import composition_info

from twilio_video_operator.controllers.composition import needs_attention
from twilio_video_operator.gateway.records import CompositionInfo
from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.reconcilers.composition import observe_callback
from twilio_video_operator.reconcilers.composition_events import parse_event
from twilio_video_operator.reconcilers.composition_plan import (
    CompositionContext,
    Create,
    Deliver,
    Idle,
    Memory,
    Poll,
    Recover,
    RoomTarget,
    Stall,
    Timeout,
    Timing,
    Wait,
    is_ours,
    plan_step,
    processing_since,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ROOM = "RM" + "1" * 32
SID = "CJ" + "2" * 32
UID = "uid-1"
SPEC = CompositionSpec.model_validate({"roomSid": ROOM, "stalledAfter": "10m"})
CTX = CompositionContext(namespace="ns", name="c1", uid=UID, generation=1, spec=SPEC, room=RoomTarget(ROOM))
TIMING = Timing(poll_min=30, poll_max=600)


def plan(status: CompositionStatus, memory: Memory | None = None, ctx: CompositionContext = CTX) -> object:
    return plan_step(ctx, status, memory or Memory(), NOW, TIMING)


def active(state: str, **changes: Any) -> CompositionStatus:
    values: dict[str, Any] = {
        "sid": SID,
        "room_sid": ROOM,
        "composition_status": state,
        "started_at": NOW - timedelta(minutes=1),
        "last_synced_at": NOW,
    }
    values.update(changes)
    return CompositionStatus(**values)


def test_creation_waits_for_a_room_sid() -> None:
    waiting = replace(CTX, room=RoomTarget(None, waiting="VideoRoom x has no Twilio room yet."))
    assert plan(CompositionStatus(), ctx=waiting) == Wait(
        "WaitingForRoom", "VideoRoom x has no Twilio room yet.", 15.0
    )


def test_creation_and_recovery() -> None:
    assert plan(CompositionStatus()) == Create(ROOM)
    pending = CompositionStatus(create_pending_at=NOW, room_sid=ROOM)
    assert plan(pending) == Recover(ROOM)


def test_an_invalid_spec_stalls_before_anything_else() -> None:
    invalid = replace(CTX, spec=None, spec_problems=("spec.resolution: bad",))
    assert plan(active("processing"), ctx=invalid) == Stall("InvalidSpec", "spec.resolution: bad")


def test_a_changed_spec_stalls_only_once_created() -> None:
    changed = replace(CTX, created_spec={**SPEC.to_dict(), "format": "webm"})
    assert isinstance(plan(active("enqueued"), ctx=changed), Stall)
    assert plan(CompositionStatus(), ctx=changed) == Create(ROOM)  # nothing exists yet: use the new spec


def test_polls_wait_for_the_interval_after_the_last_news() -> None:
    assert plan(active("enqueued")) == Idle(30.0)
    assert plan(active("enqueued", last_synced_at=NOW - timedelta(seconds=31))) == Poll()
    assert plan(active("enqueued"), Memory(quiet_polls=2)) == Idle(120.0)


def test_processing_without_a_known_start_looks_the_room_up_first() -> None:
    assert plan(active("processing")) == Poll()
    assert plan(active("processing"), Memory(processing_since=NOW)) == Idle(30.0)


def test_the_watchdog_counts_from_the_start_of_processing() -> None:
    memory = Memory(processing_since=NOW - timedelta(minutes=10))
    step = plan(active("processing"), memory)
    assert isinstance(step, Timeout) and "still processing after 10m" in step.message
    assert plan(active("processing"), Memory(processing_since=NOW - timedelta(minutes=9))) == Idle(30.0)
    enqueued_after_room = Memory(room_ended_at=NOW - timedelta(minutes=11), room_checked=True)
    assert isinstance(
        plan(active("enqueued", started_at=NOW - timedelta(hours=1)), enqueued_after_room), Timeout
    )
    assert plan(active("enqueued"), enqueued_after_room) == Idle(30.0)  # created after the room ended


def test_processing_since() -> None:
    end, created = NOW - timedelta(minutes=5), NOW - timedelta(hours=3)
    assert processing_since("processing", end, created) == end
    assert processing_since("processing", None, created) == created
    assert processing_since("enqueued", None, created) is None
    assert processing_since("enqueued", end, created) == end
    assert processing_since("completed", end, created) is None


def test_delivery_after_completion_respects_the_backoff() -> None:
    delivering = replace(
        CTX,
        spec=CompositionSpec.model_validate(
            {**SPEC.to_dict(), "delivery": {"s3": {"bucket": "media", "credentialsRef": {"name": "s3"}}}}
        ),
    )
    done = active("completed")
    assert plan(done, ctx=delivering) == Deliver()
    assert plan(done, Memory(delivery_retry_at=NOW + timedelta(seconds=7)), ctx=delivering) == Idle(7.0)
    assert plan(done) == Idle(None)  # nothing to deliver


def info(**changes: Any) -> CompositionInfo:
    callback = f"https://op.test/twilio/composition-events?namespace=ns&name=c1&uid={UID}"
    fixed = {"sid": SID, "room_sid": ROOM, "date_created": NOW, "status_callback": callback}
    return composition_info(**{**fixed, "status_callback_method": "POST", **changes})


@pytest.mark.parametrize(
    ("changes", "ours"),
    [
        ({}, True),
        ({"status_callback": None}, True),
        ({"status_callback": "https://op.test/twilio/composition-events?uid=uid-10"}, False),
        ({"room_sid": "RM" + "9" * 32}, False),
        ({"date_created": NOW - timedelta(minutes=5)}, False),
        ({"status": "deleted"}, False),
        ({"resolution": "1280x720"}, False),
        ({"format": "webm"}, False),
        ({"trim": False}, False),
        ({"audio_sources": ("alice",)}, False),
        ({"video_layout": {"grid": {"video_sources": ["*"]}}}, False),
    ],
)
def test_claim_matching(changes: dict[str, Any], ours: bool) -> None:
    assert is_ours(info(**changes), SPEC, ROOM, UID, NOW) is ours


def test_a_callback_before_the_create_answer_records_the_sid() -> None:
    pending = CompositionStatus(create_pending_at=NOW, room_sid=ROOM)
    event = parse_event(
        {
            "AccountSid": "AC" + "0" * 32,
            "CompositionSid": SID,
            "RoomSid": ROOM,
            "StatusCallbackEvent": "composition-started",
        }
    )
    seen = observe_callback(CTX, pending, event, NOW)
    assert seen is not None and seen.status.sid == SID and seen.status.create_pending_at is None
    assert seen.status.composition_status == "processing"
    assert observe_callback(CTX, CompositionStatus(), event, NOW) is None  # not creating: not ours
    assert observe_callback(CTX, active("enqueued", sid="CJ" + "3" * 32), event, NOW) is None


@pytest.mark.parametrize(
    ("status", "spec", "wanted"),
    [
        ({"observedGeneration": 1, "compositionStatus": "processing"}, {}, True),
        ({"observedGeneration": 1, "compositionStatus": "failed"}, {}, False),
        ({"observedGeneration": 1, "compositionStatus": "completed"}, {}, False),
        (
            {"observedGeneration": 1, "compositionStatus": "completed"},
            {"delivery": {"s3": {"bucket": "b"}}},
            True,
        ),
        (
            {"observedGeneration": 1, "compositionStatus": "completed", "delivery": {"sha256": "ab"}},
            {"delivery": {"s3": {"bucket": "b"}}},
            False,
        ),
        ({"observedGeneration": 0, "compositionStatus": "failed"}, {}, True),
        (
            {
                "observedGeneration": 1,
                "conditions": [{"type": "Stalled", "status": "True", "reason": "InvalidSpec"}],
            },
            {},
            False,
        ),
        (
            {
                "observedGeneration": 1,
                "compositionStatus": "processing",
                "conditions": [{"type": "Stalled", "status": "True", "reason": "ProcessingTimeout"}],
            },
            {},
            True,
        ),
    ],
)
def test_the_tick_skips_finished_and_stalled_objects(
    status: dict[str, Any], spec: dict[str, Any], wanted: bool
) -> None:
    body = {"metadata": {"generation": 1}, "spec": spec, "status": status}
    assert needs_attention(body) is wanted


def test_a_new_reconcile_request_polls_now_and_retries_delivery_at_once() -> None:
    memory = Memory(delivery_retry_at=NOW + timedelta(minutes=5))
    memory.request_resync("1")
    assert memory.resync_requested and memory.delivery_retry_at is None
    assert plan(active("enqueued"), memory) == Poll()  # not waiting for the poll interval
    memory.resync_requested = False  # the poll happened
    memory.request_resync("1")  # the same value again is no new request
    assert not memory.resync_requested
    memory.request_resync(None)
    assert not memory.resync_requested and memory.reconcile_request is None
