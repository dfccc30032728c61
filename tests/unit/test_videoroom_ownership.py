"""Rooms that name their object in their StatusCallback: no create-pending marker, and the room of an
interrupted create recognised by the object's uid (reconcilers/videoroom_ownership.py and the planner)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from test_videoroom_plan import (
    DEFAULTS,
    NOW,
    UNIQUE,
    answers,
    created_room,
    drive,
    ended_status,
    live_status,
    make_input,
    ready,
    room,
    stalled_reason,
)

from twilio_video_operator.gateway.errors import TerminalError
from twilio_video_operator.models.conditions import Reason
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom import (
    CompleteRoom,
    CreateRoom,
    FetchRoom,
    LookupRoom,
    Plan,
    PlanInput,
    Working,
    absorb,
    doubt_remains,
    plan,
)
from twilio_video_operator.reconcilers.videoroom_ownership import made_for, no_create_since, room_callback_url

UID = "0b8c2d4e-1111-4222-8333-944455556666"
OURS = room_callback_url(DEFAULTS.status_callback or "", "team", "standup", UID)
THEIRS = room_callback_url(DEFAULTS.status_callback or "", "team", "standup", "another-uid")
EXISTS = TerminalError("Room exists", operation="CreateRoom", status=400, code=53113)


def owned_input(spec: dict[str, Any] | None = None, status: Any = None, **overrides: Any) -> PlanInput:
    return make_input(spec=spec or {}, status=status, uid=UID, **overrides)


def test_the_callback_names_the_object_and_only_its_uid_claims_a_room() -> None:
    assert f"https://op.example/twilio/room-events?namespace=team&name=standup&uid={UID}" == OURS
    assert made_for(room(status_callback=OURS), UID)
    assert not made_for(room(status_callback=THEIRS), UID)
    assert not made_for(room(status_callback=None), UID)
    assert not made_for(room(status_callback=OURS), "")


def test_a_create_writes_nothing_first_and_names_the_object_in_its_callback() -> None:
    inp = owned_input()
    step = plan(inp, Working(inp.status))
    assert isinstance(step.action, CreateRoom)
    assert not step.persist_first and step.status.create_pending is None
    assert step.action.params["status_callback"] == OURS


def test_without_a_verifiable_callback_the_marker_is_written_first() -> None:
    inp = owned_input(defaults=replace(DEFAULTS, status_callback=None))
    step = plan(inp, Working(inp.status))
    assert isinstance(step.action, CreateRoom) and step.persist_first
    assert step.status.create_pending is not None and step.action.params["status_callback"] is None


def test_name_taken_by_this_objects_room_claims_it() -> None:
    inp = owned_input()
    mine = room(sid="RM5", status_callback=OURS, created=NOW - timedelta(hours=3))
    final, actions, notes = drive(inp, answers(CreateRoom=EXISTS, LookupRoom=mine))
    assert [type(a) for a in actions] == [CreateRoom, LookupRoom]
    assert isinstance(final, Plan) and final.status.sid == "RM5" and not final.stalled
    assert notes[0].reason == "Created" and "interrupted" in notes[0].message


def test_name_taken_by_a_room_of_another_object_is_foreign_and_can_be_adopted() -> None:
    theirs = room(sid="RM3", status_callback=THEIRS)
    final, _, _ = drive(owned_input(), answers(CreateRoom=EXISTS, LookupRoom=theirs))
    assert isinstance(final, Plan) and stalled_reason(final.status) == Reason.ROOM_EXISTS

    adopting = owned_input(spec={"adoptExisting": True})
    final, _, notes = drive(adopting, answers(LookupRoom=theirs))
    assert isinstance(final, Plan) and final.status.sid == "RM3"
    assert [n.reason for n in notes] == ["Adopted"]


def test_a_room_of_this_object_claimed_by_another_is_never_taken() -> None:
    mine = room(sid="RM5", status_callback=OURS)
    inp = owned_input(claimed_by=lambda sid: "team/other" if sid == "RM5" else None)
    final, _, _ = drive(inp, answers(CreateRoom=EXISTS, LookupRoom=mine))
    assert isinstance(final, Plan) and stalled_reason(final.status) == Reason.ROOM_CLAIMED


def test_a_create_in_doubt_is_looked_up_before_settling_into_completed() -> None:
    inp = owned_input(spec={"state": "Completed"}, generation=2, create_in_doubt=True)
    mine = room(sid="RM5", status_callback=OURS)
    final, actions, notes = drive(
        inp, answers(LookupRoom=mine, CompleteRoom=room(sid="RM5", status="completed"))
    )
    assert actions == [LookupRoom(UNIQUE), CompleteRoom("RM5")]
    assert isinstance(final, Plan) and final.status.room_status == "completed"
    assert [n.reason for n in notes] == ["Created", "Completed"]

    theirs = room(sid="RM3", status_callback=THEIRS)
    final, actions, _ = drive(inp, answers(LookupRoom=theirs))
    assert actions == [LookupRoom(UNIQUE)]
    assert isinstance(final, Plan) and not final.stalled and ready(final.status) == ("True", Reason.COMPLETED)


def test_a_create_in_doubt_under_an_older_name_is_looked_up_by_that_name() -> None:
    inp = owned_input(spec={"uniqueName": "team:renamed"}, create_in_doubt=True, doubt_name=UNIQUE)
    mine = room(sid="RM5", status_callback=OURS)
    final, actions, _ = drive(inp, answers(LookupRoom=mine))
    assert actions == [LookupRoom(UNIQUE)]  # the room it made is the session; the new name waits
    assert isinstance(final, Plan) and final.status.sid == "RM5"

    final, actions, _ = drive(inp, answers(LookupRoom=None, CreateRoom=created_room))
    assert [type(a) for a in actions] == [LookupRoom, CreateRoom]
    assert isinstance(final, Plan) and final.status.sid == "RM9"


def test_a_session_wanted_in_doubt_costs_no_lookup_before_the_create() -> None:
    inp = owned_input(create_in_doubt=True)
    final, actions, _ = drive(inp, answers(CreateRoom=created_room))
    assert [type(a) for a in actions] == [CreateRoom]
    assert isinstance(final, Plan) and final.status.sid == "RM9"


def test_no_lookup_when_the_stored_status_rules_out_a_create() -> None:
    completed = drive(owned_input(spec={"state": "Completed"}, generation=2), answers())[0]
    assert isinstance(completed, Plan)
    inp = owned_input(
        spec={"state": "Completed"}, status=completed.status, generation=2, create_in_doubt=True
    )
    final, actions, _ = drive(inp, answers())
    assert actions == [] and isinstance(final, Plan)
    assert not doubt_remains(inp, Working(inp.status).facts)


def test_what_rules_out_a_create_since_the_status_was_written() -> None:
    def spec(**fields: Any) -> VideoRoomSpec:
        return VideoRoomSpec.model_validate(fields)

    later = {"schedule": {"startTime": (NOW + timedelta(days=1)).isoformat()}}
    empty = VideoRoomStatus()
    # A spec that never changed and never wanted a session.
    assert no_create_since(spec(state="Completed"), empty, 1, NOW)
    assert no_create_since(spec(**later), empty, 1, NOW)
    assert not no_create_since(spec(), empty, 1, NOW)
    assert not no_create_since(spec(state="Completed"), empty, 2, NOW)
    # A room recorded without keepAlive at this generation: only the first session is ever created.
    recorded = ended_status(observedGeneration=2)
    assert no_create_since(spec(), recorded, 2, NOW)
    assert not no_create_since(spec(keepAlive=True), recorded, 2, NOW)
    assert not no_create_since(spec(), recorded, 3, NOW)
    assert not no_create_since(spec(), live_status(), 2, NOW)  # no observedGeneration


def test_an_unverified_room_seen_in_progress_clears_the_doubt() -> None:
    inp = owned_input(status=live_status(), verified_sid=None, create_in_doubt=True)
    work = Working(inp.status)
    step = plan(inp, work)
    assert step.action == FetchRoom("RM1")
    work = absorb(inp, work, FetchRoom("RM1"), room(sid="RM1"))
    assert not doubt_remains(inp, work.facts)
    gone = absorb(inp, Working(inp.status), FetchRoom("RM1"), room(sid="RM1", status="completed"))
    assert doubt_remains(inp, gone.facts)
