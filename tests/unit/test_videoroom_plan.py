"""The pure VideoRoom planner: every branch of plan(), absorb() and fail()."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twilio_video_operator.gateway.errors import (
    AuthError,
    CircuitOpenError,
    GatewayError,
    NotFoundError,
    RetryableError,
    TerminalError,
    ThrottledError,
)
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo
from twilio_video_operator.models.conditions import Reason, get_condition
from twilio_video_operator.models.videoroom import (
    CompositionTemplate,
    CreatePending,
    RoomSettings,
    SessionHistory,
    VideoRoomSpec,
    VideoRoomStatus,
)
from twilio_video_operator.reconcilers import videoroom_conditions as cond
from twilio_video_operator.reconcilers.videoroom import (
    CLAIM_CLOCK_SKEW,
    CONFLICT_RETRY_SECONDS,
    REJECTED_RETRY_SECONDS,
    Action,
    CompleteRoom,
    CreateRecordingComposition,
    CreateRoom,
    CredentialsCheck,
    DisconnectParticipants,
    Facts,
    Failure,
    FetchRoom,
    ListParticipants,
    LookupRoom,
    Note,
    Plan,
    PlanInput,
    UpdateRecordingRules,
    Working,
    absorb,
    fail,
    plan,
)
from twilio_video_operator.reconcilers.videoroom_desired import Defaults, moderation_digest

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DEFAULTS = Defaults(
    room_type="group", max_participants=25, status_callback="https://op.example/twilio/room-events"
)
NS, NAME = "team", "standup"
UNIQUE = "team:standup"


def room(
    sid: str = "RM1",
    status: str = "in-progress",
    unique_name: str = UNIQUE,
    created: datetime = NOW,
    **fields: Any,
) -> RoomInfo:
    values: dict[str, Any] = {
        "sid": sid,
        "status": status,
        "unique_name": unique_name,
        "type": "group",
        "account_sid": "AC1",
        "max_participants": 25,
        "max_participant_duration": 14400,
        "date_created": created,
        "date_updated": created,
        "end_time": None,
        "duration": None,
        "status_callback": None,
        "status_callback_method": "POST",
        "video_codecs": ("VP8", "H264"),
        "media_region": "us1",
        "audio_only": False,
        "record_participants_on_connect": False,
        "empty_room_timeout": 5,
        "unused_room_timeout": 5,
        "large_room": False,
        "url": None,
    }
    values.update(fields)
    return RoomInfo(**values)


def participant(identity: str, sid: str | None = None, status: str = "connected") -> ParticipantInfo:
    return ParticipantInfo(
        sid=sid or f"PA-{identity}",
        room_sid="RM1",
        account_sid="AC1",
        identity=identity,
        status=status,
        date_created=NOW,
        start_time=NOW,
        end_time=None,
        duration=None,
    )


def make_input(
    spec: Mapping[str, Any] | None = None,
    status: VideoRoomStatus | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> PlanInput:
    parsed_status = (
        status if isinstance(status, VideoRoomStatus) else VideoRoomStatus.model_validate(status or {})
    )
    values: dict[str, Any] = {
        "namespace": NS,
        "name": NAME,
        "generation": 1,
        "spec": VideoRoomSpec.model_validate(dict(spec or {})),
        "status": parsed_status,
        "now": NOW,
        "defaults": DEFAULTS,
        "credentials": CredentialsCheck("operator:abc"),
        # The room in status is the one this process opened (see test_tenancy_plan.py for the others).
        "verified_sid": parsed_status.sid,
    }
    values.update(overrides)
    return PlanInput(**values)


def live_status(**fields: Any) -> VideoRoomStatus:
    base: dict[str, Any] = {
        "sid": "RM1",
        "uniqueName": UNIQUE,
        "roomStatus": "in-progress",
        "type": "group",
        "participants": {"connected": 0, "peak": 0},
        "sessions": {"count": 1, "recentSids": ["RM1"]},
        "roomSettings": {"type": "group", "maxParticipants": 25, "videoCodecs": ["VP8", "H264"]},
        "moderationDigest": moderation_digest("RM1", ()),
        "credentialsRevision": "operator:abc",
    }
    base.update(fields)
    return VideoRoomStatus.model_validate(base)


def ended_status(room_status: str = "completed", **fields: Any) -> VideoRoomStatus:
    return live_status(roomStatus=room_status, endedAt="2026-03-02T11:00:00Z", **fields)


def ready(status: VideoRoomStatus) -> tuple[str, str]:
    condition = get_condition(status.conditions, cond.READY)
    assert condition is not None
    return condition.status, condition.reason


def synced(status: VideoRoomStatus) -> tuple[str, str, str]:
    condition = get_condition(status.conditions, cond.SYNCED)
    assert condition is not None
    return condition.status, condition.reason, condition.message


def stalled_reason(status: VideoRoomStatus) -> str | None:
    condition = get_condition(status.conditions, cond.STALLED)
    return condition.reason if condition is not None and condition.status == "True" else None


Responder = Callable[[Action], Any]


def drive(
    inp: PlanInput, respond: Responder, max_steps: int = 12
) -> tuple[Plan | Failure, list[Action], list[Note]]:
    """Run plan/absorb/fail to the end like the executor does, answering actions with ``respond``."""
    work = Working(inp.status)
    actions: list[Action] = []
    for _ in range(max_steps):
        step = plan(inp, work)
        if step.action is None:
            return step, actions, [*work.notes, *step.notes]
        actions.append(step.action)
        work = Working(step.status, work.facts, work.notes)
        try:
            result = respond(step.action)
        except GatewayError as error:
            outcome = fail(inp, work, step.action, error)
            if isinstance(outcome, Working):
                work = outcome
                continue
            return outcome, actions, [*work.notes, *outcome.notes]
        work = absorb(inp, work, step.action, result)
    raise AssertionError("did not settle")


def answers(**by_type: Any) -> Responder:
    """Answer each action type with a value, a list of successive values, or by raising an exception."""
    queues = {name: list(value) if isinstance(value, list) else [value] for name, value in by_type.items()}

    def respond(action: Action) -> Any:
        queue = queues[type(action).__name__]
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(value, BaseException):
            raise value
        return value(action) if callable(value) else value

    return respond


def created_room(action: Action) -> RoomInfo:
    assert isinstance(action, CreateRoom)
    return room(sid="RM9", unique_name=action.params["unique_name"])


# ----------------------------------------------------------------------------------- pause, spec, stall


def test_paused_touches_nothing_but_synced() -> None:
    inp = make_input(status=live_status(), annotations={"video.openclaw.io/paused": "true"}, observe=True)
    step = plan(inp, Working(inp.status))
    assert step.action is None and step.paused
    assert synced(step.status)[:2] == ("False", Reason.PAUSED)
    assert step.status.sid == "RM1"


def test_reconcile_request_token_is_recorded_and_forces_one_fetch() -> None:
    inp = make_input(status=live_status(), annotations={"video.openclaw.io/reconcile-requested-at": "t1"})
    step = plan(inp, Working(inp.status))
    assert step.action == FetchRoom("RM1")
    assert step.status.last_handled_reconcile_at == "t1"
    final, actions, _ = drive(inp, answers(FetchRoom=room()))
    assert actions == [FetchRoom("RM1")]
    assert isinstance(final, Plan) and final.status.last_handled_reconcile_at == "t1"
    again = make_input(status=final.status, annotations={"video.openclaw.io/reconcile-requested-at": "t1"})
    assert plan(again, Working(again.status)).action is None


def test_unparsable_spec_stalls_with_invalid_spec() -> None:
    inp = make_input(spec=None, spec_problems=("spec.maxParticipants: too big",))
    inp = replace(inp, spec=None)
    step = plan(inp, Working(inp.status))
    assert step.stalled and step.action is None
    assert stalled_reason(step.status) == Reason.INVALID_SPEC
    assert ready(step.status) == ("False", Reason.INVALID_SPEC)
    assert step.notes == (Note("Warning", Reason.INVALID_SPEC, "spec.maxParticipants: too big"),)


@pytest.mark.parametrize(
    ("spec", "defaults", "fragment"),
    [
        ({"recording": {"participantsOnConnect": True}}, Defaults(room_type="go"), "recording needs a group"),
        ({"type": "peer-to-peer", "audioOnly": True}, DEFAULTS, "audio-only"),
    ],
)
def test_rules_involving_operator_defaults_stall(
    spec: dict[str, Any], defaults: Defaults, fragment: str
) -> None:
    inp = make_input(spec=spec, defaults=defaults)
    step = plan(inp, Working(inp.status))
    assert stalled_reason(step.status) == Reason.INVALID_SPEC
    assert fragment in synced(step.status)[2]


def test_a_stall_is_kept_without_calls_until_generation_or_credentials_change() -> None:
    first = make_input(
        spec={}, credentials=CredentialsCheck("s@1", (Reason.CREDENTIALS_NOT_FOUND, "no Secret"))
    )
    stalled = plan(first, Working(first.status))
    assert stalled_reason(stalled.status) == Reason.CREDENTIALS_NOT_FOUND
    assert stalled.notes  # a Warning Event the first time

    same = make_input(
        spec={},
        status=stalled.status,
        credentials=CredentialsCheck("s@1", (Reason.CREDENTIALS_NOT_FOUND, "x")),
    )
    kept = plan(same, Working(same.status))
    assert kept.stalled and kept.action is None and kept.notes == ()

    new_secret = make_input(spec={}, status=stalled.status, credentials=CredentialsCheck("s@2"))
    assert isinstance(plan(new_secret, Working(new_secret.status)).action, CreateRoom)

    new_generation = make_input(
        spec={},
        status=stalled.status,
        generation=2,
        credentials=CredentialsCheck("s@1", (Reason.INVALID_CREDENTIALS, "x")),
    )
    step = plan(new_generation, Working(new_generation.status))
    assert stalled_reason(step.status) == Reason.INVALID_CREDENTIALS
    assert step.notes  # a new stall is announced


def test_stall_keeps_a_create_pending_marker_for_later_recovery() -> None:
    marker = {"uniqueName": UNIQUE, "requestedAt": "2026-03-02T11:59:00Z"}
    inp = make_input(
        spec={}, status={"createPending": marker}, credentials=CredentialsCheck("r", ("AuthFailed", "x"))
    )
    assert plan(inp, Working(inp.status)).status.create_pending is not None


# ------------------------------------------------------------------------------------------- create


def test_create_sends_every_spec_field_and_writes_the_marker_first() -> None:
    spec = {
        "type": "group-small",
        "maxParticipants": 4,
        "maxParticipantDuration": 3600,
        "emptyRoomTimeout": 7,
        "unusedRoomTimeout": 9,
        "mediaRegion": "ie1",
        "videoCodecs": ["H264"],
        "audioOnly": True,
        "recording": {"participantsOnConnect": True, "rules": [{"type": "include", "kind": "audio"}]},
    }
    inp = make_input(spec=spec)
    step = plan(inp, Working(inp.status))
    assert isinstance(step.action, CreateRoom) and step.persist_first
    assert step.status.create_pending == CreatePending(unique_name=UNIQUE, requested_at=NOW)
    assert ready(step.status) == ("False", Reason.CREATING)
    assert dict(step.action.params) == {
        "unique_name": UNIQUE,
        "type": "group-small",
        "max_participants": 4,
        "status_callback": "https://op.example/twilio/room-events",
        "status_callback_method": "POST",
        "max_participant_duration": 3600,
        "empty_room_timeout": 7,
        "unused_room_timeout": 9,
        "media_region": "ie1",
        "video_codecs": ["H264"],
        "audio_only": True,
        "record_participants_on_connect": True,
        "recording_rules": [{"type": "include", "kind": "audio"}],
    }


def test_create_uses_operator_defaults_and_no_callback_when_unset() -> None:
    inp = make_input(spec={"uniqueName": "custom"}, defaults=Defaults(room_type="go", max_participants=2))
    step = plan(inp, Working(inp.status))
    assert isinstance(step.action, CreateRoom)
    params = step.action.params
    assert (params["unique_name"], params["type"], params["max_participants"]) == ("custom", "go", 2)
    assert params["status_callback"] is None and params["status_callback_method"] is None
    assert params["recording_rules"] is None and params["record_participants_on_connect"] is None


def test_created_room_starts_a_session() -> None:
    inp = make_input(spec={"moderation": {"blockedIdentities": ["eve"]}})
    final, actions, notes = drive(inp, answers(CreateRoom=created_room))
    assert [type(a) for a in actions] == [CreateRoom]
    assert isinstance(final, Plan)
    status = final.status
    assert (status.sid, status.room_status, status.create_pending) == ("RM9", "in-progress", None)
    assert status.sessions == SessionHistory(count=1, recent_sids=["RM9"])
    assert status.participants is not None and status.participants.connected == 0
    assert status.moderation_digest == moderation_digest("RM9", ["eve"])  # nobody to check in a new room
    assert status.room_settings is not None and status.room_settings.max_participants == 25
    assert ready(status) == ("True", Reason.IN_PROGRESS)
    assert synced(status)[:2] == ("True", Reason.RECONCILE_SUCCESS)
    assert status.observed_generation == 1 and status.last_synced_at == NOW  # whole seconds
    assert [n.reason for n in notes] == ["Created"]


def test_adopt_existing_looks_up_first_and_adopts() -> None:
    inp = make_input(spec={"adoptExisting": True})
    final, actions, notes = drive(inp, answers(LookupRoom=room(sid="RM7", created=NOW - timedelta(days=1))))
    assert actions == [LookupRoom(UNIQUE)]
    assert isinstance(final, Plan) and final.status.sid == "RM7"
    assert final.status.moderation_digest is None or final.status.moderation_digest == moderation_digest(
        "RM7", ()
    )
    assert [n.reason for n in notes] == ["Adopted"]


def test_adopt_existing_creates_when_nothing_is_found() -> None:
    inp = make_input(spec={"adoptExisting": True})
    final, actions, _ = drive(inp, answers(LookupRoom=None, CreateRoom=created_room))
    assert [type(a) for a in actions] == [LookupRoom, CreateRoom]
    assert isinstance(final, Plan) and final.status.sid == "RM9"


def test_adopted_room_with_blocked_identities_is_checked_once() -> None:
    inp = make_input(spec={"adoptExisting": True, "moderation": {"blockedIdentities": ["eve"]}})
    people = [participant("eve"), participant("ann")]
    final, actions, notes = drive(
        inp, answers(LookupRoom=room(sid="RM7"), ListParticipants=[people], DisconnectParticipants=[["eve"]])
    )
    assert actions == [LookupRoom(UNIQUE), ListParticipants("RM7"), DisconnectParticipants("RM7", ("eve",))]
    assert isinstance(final, Plan)
    assert final.status.participants is not None and final.status.participants.connected == 1
    assert final.status.moderation_digest == moderation_digest("RM7", ["eve"])
    assert [n.reason for n in notes] == ["Adopted", "ParticipantRemoved"]
    assert "'eve'" in notes[1].message


# -------------------------------------------------------------------------------- idempotency marker


def marker(at: datetime = NOW - timedelta(minutes=1), unique_name: str = UNIQUE) -> dict[str, Any]:
    return {"createPending": {"uniqueName": unique_name, "requestedAt": at.isoformat()}}


def test_marker_with_our_room_claims_it_without_creating() -> None:
    inp = make_input(spec={}, status=marker())
    final, actions, notes = drive(
        inp, answers(LookupRoom=room(sid="RM5", created=NOW - timedelta(seconds=30)))
    )
    assert actions == [LookupRoom(UNIQUE)]
    assert isinstance(final, Plan) and final.status.sid == "RM5" and final.status.create_pending is None
    assert notes[0].reason == "Created" and "interrupted" in notes[0].message


def test_marker_without_room_creates_and_keeps_the_first_request_time() -> None:
    inp = make_input(spec={}, status=marker(at=NOW - timedelta(minutes=3)))
    work = absorb(inp, Working(inp.status), LookupRoom(UNIQUE), None)
    step = plan(inp, work)
    assert isinstance(step.action, CreateRoom)
    assert step.status.create_pending is not None
    assert step.status.create_pending.requested_at == NOW - timedelta(minutes=3)


def test_marker_for_an_old_unique_name_is_looked_up_by_that_name() -> None:
    inp = make_input(spec={"uniqueName": "renamed"}, status=marker(unique_name="old-name"))
    assert plan(inp, Working(inp.status)).action == LookupRoom("old-name")
    work = absorb(inp, Working(inp.status), LookupRoom("old-name"), None)
    step = plan(inp, work)
    assert isinstance(step.action, CreateRoom) and step.action.params["unique_name"] == "renamed"
    assert step.status.create_pending is not None and step.status.create_pending.unique_name == "renamed"


def test_room_older_than_the_marker_is_foreign() -> None:
    old = room(sid="RM3", created=NOW - timedelta(minutes=1) - CLAIM_CLOCK_SKEW - timedelta(seconds=1))
    inp = make_input(spec={}, status=marker())
    final, actions, notes = drive(inp, answers(LookupRoom=old))
    assert actions == [LookupRoom(UNIQUE)]
    assert isinstance(final, Plan) and final.stalled
    assert stalled_reason(final.status) == Reason.ROOM_EXISTS
    assert final.status.create_pending is None and final.status.sid is None
    assert "RM3" in notes[-1].message and "adoptExisting" in notes[-1].message


def test_marker_is_resolved_even_when_the_room_is_no_longer_wanted() -> None:
    inp = make_input(spec={"state": "Completed"}, status=marker())
    final, actions, notes = drive(
        inp, answers(LookupRoom=room(sid="RM5"), CompleteRoom=room(sid="RM5", status="completed"))
    )
    assert actions == [LookupRoom(UNIQUE), CompleteRoom("RM5")]
    assert isinstance(final, Plan) and final.status.room_status == "completed"
    assert [n.reason for n in notes] == ["Created", "Completed"]

    nothing = drive(inp, answers(LookupRoom=None))[0]
    assert isinstance(nothing, Plan) and nothing.status.create_pending is None
    assert ready(nothing.status) == ("True", Reason.COMPLETED)


def test_foreign_room_found_when_no_room_is_wanted_is_not_a_stall() -> None:
    inp = make_input(spec={"state": "Completed"}, status=marker(at=NOW))
    final, _, _ = drive(inp, answers(LookupRoom=room(sid="RM3", created=NOW - timedelta(hours=1))))
    assert isinstance(final, Plan) and not final.stalled and final.status.create_pending is None


def test_name_taken_without_marker_is_a_foreign_room() -> None:
    exists = TerminalError("Room exists", operation="CreateRoom", status=400, code=53113)
    inp = make_input(spec={})
    final, actions, _ = drive(inp, answers(CreateRoom=exists, LookupRoom=room(sid="RM3")))
    assert [type(a) for a in actions] == [CreateRoom, LookupRoom]
    assert isinstance(final, Plan) and stalled_reason(final.status) == Reason.ROOM_EXISTS


def test_name_taken_with_adopt_existing_adopts() -> None:
    exists = TerminalError("Room exists", operation="CreateRoom", status=400, code=53113)
    inp = make_input(spec={"adoptExisting": True})
    final, actions, notes = drive(inp, answers(LookupRoom=[None, room(sid="RM3")], CreateRoom=exists))
    assert [type(a) for a in actions] == [LookupRoom, CreateRoom, LookupRoom]
    assert isinstance(final, Plan) and final.status.sid == "RM3"
    assert [n.reason for n in notes] == ["Adopted"]


def test_name_taken_but_not_listed_retries_soon() -> None:
    exists = TerminalError("Room exists", operation="CreateRoom", status=400, code=53113)
    inp = make_input(spec={})
    final, actions, _ = drive(inp, answers(CreateRoom=exists, LookupRoom=None))
    assert [type(a) for a in actions] == [CreateRoom, LookupRoom]  # never a second create
    assert isinstance(final, Plan) and final.retry_after == CONFLICT_RETRY_SECONDS
    assert synced(final.status)[:2] == ("False", Reason.CREATING)
    assert final.status.create_pending is not None  # the next attempt looks up before creating


# ------------------------------------------------------------------------------------------ live room


def test_live_room_without_observation_costs_nothing() -> None:
    inp = make_input(spec={}, status=live_status())
    final, actions, notes = drive(inp, answers())
    assert actions == [] and notes == []
    assert isinstance(final, Plan) and ready(final.status) == ("True", Reason.IN_PROGRESS)


def test_observation_fetches_once_and_records_an_ended_room() -> None:
    inp = make_input(spec={}, status=live_status(), observe=True)
    ended = room(status="completed", end_time=NOW - timedelta(minutes=2), duration=600)
    final, actions, _ = drive(inp, answers(FetchRoom=ended))
    assert actions == [FetchRoom("RM1")]
    assert isinstance(final, Plan)
    status = final.status
    assert (status.room_status, status.ended_at, status.duration_seconds) == (
        "completed",
        ended.end_time,
        600,
    )
    assert (
        ready(status) == ("True", Reason.COMPLETED)
        and "keepAlive is off" in get_condition(status.conditions, "Ready").message
    )  # type: ignore[union-attr]


def test_observation_of_a_vanished_room() -> None:
    inp = make_input(spec={}, status=live_status(), observe=True)
    final, _, notes = drive(inp, answers(FetchRoom=None))
    assert isinstance(final, Plan) and final.status.room_status == "completed"
    assert notes[0] == Note("Warning", "RoomGone", "Twilio no longer knows room RM1; it is treated as ended.")


def test_state_completed_completes_the_live_room() -> None:
    inp = make_input(
        spec={"state": "Completed"}, status=live_status(participants={"connected": 2, "peak": 3})
    )
    done = room(status="completed", end_time=NOW, duration=42)
    final, actions, notes = drive(inp, answers(CompleteRoom=done))
    assert actions == [CompleteRoom("RM1")]
    assert isinstance(final, Plan)
    assert (final.status.room_status, final.status.duration_seconds) == ("completed", 42)
    assert final.status.participants is not None and final.status.participants.model_dump() == {
        "connected": 0,
        "peak": 3,
    }
    assert ready(final.status) == ("True", Reason.COMPLETED) and [n.reason for n in notes] == ["Completed"]


def test_completing_a_room_twilio_no_longer_knows() -> None:
    missing = NotFoundError("not found", operation="UpdateRoom", status=404, code=20404)
    inp = make_input(spec={"state": "Completed"}, status=live_status())
    final, _, _ = drive(inp, answers(CompleteRoom=missing))
    assert (
        isinstance(final, Plan) and final.status.room_status == "completed" and final.status.ended_at == NOW
    )


def test_schedule_end_completes_and_is_requeued_before() -> None:
    schedule = {"startTime": "2026-03-02T11:00:00Z", "endTime": "2026-03-02T13:00:00Z"}
    inp = make_input(spec={"schedule": schedule}, status=live_status())
    step = plan(inp, Working(inp.status))
    assert step.action is None and step.requeue_at == datetime(2026, 3, 2, 13, tzinfo=UTC)
    later = replace(inp, now=datetime(2026, 3, 2, 13, tzinfo=UTC))
    assert plan(later, Working(later.status)).action == CompleteRoom("RM1")


def test_changed_block_list_lists_participants_once_and_removes_blocked_ones() -> None:
    spec = {"moderation": {"blockedIdentities": ["eve", "mallory"]}}
    inp = make_input(spec=spec, status=live_status(participants={"connected": 3, "peak": 3}))
    people = [participant("eve"), participant("ann"), participant("mallory", status="disconnected")]
    final, actions, notes = drive(inp, answers(ListParticipants=[people], DisconnectParticipants=[["eve"]]))
    assert actions == [ListParticipants("RM1"), DisconnectParticipants("RM1", ("eve",))]
    assert isinstance(final, Plan) and final.status.moderation_digest == moderation_digest(
        "RM1", ["eve", "mallory"]
    )
    assert final.status.participants is not None and final.status.participants.connected == 1
    assert [n.reason for n in notes] == ["ParticipantRemoved"]
    again = make_input(spec=spec, status=final.status)
    assert drive(again, answers())[1] == []


def test_block_list_with_nobody_to_remove_or_emptied_needs_no_disconnect() -> None:
    spec = {"moderation": {"blockedIdentities": ["eve"]}}
    inp = make_input(spec=spec, status=live_status())
    final, actions, _ = drive(inp, answers(ListParticipants=[[participant("ann")]]))
    assert actions == [ListParticipants("RM1")]
    emptied = make_input(spec={}, status=live_status(moderationDigest="stale"))
    final, actions, _ = drive(emptied, answers())
    assert (
        actions == []
        and isinstance(final, Plan)
        and final.status.moderation_digest == moderation_digest("RM1", ())
    )


def test_changes_twilio_cannot_apply_are_reported_for_the_next_session() -> None:
    spec = {"maxParticipants": 10, "videoCodecs": ["H264"], "uniqueName": "new-name", "mediaRegion": "de1"}
    inp = make_input(spec=spec, status=live_status())
    final, actions, _ = drive(inp, answers())
    assert actions == []
    assert isinstance(final, Plan)
    status, reason, message = synced(final.status)
    assert (status, reason) == ("True", Reason.PENDING_NEXT_SESSION)
    assert "maxParticipants: 25 -> 10" in message and "videoCodecs: VP8,H264 -> H264" in message
    assert "uniqueName: team:standup -> new-name" in message
    assert "mediaRegion" not in message  # the live room does not report it: nothing to compare


def test_removed_fields_the_session_was_opened_with_are_reported_too() -> None:
    settings = {
        "type": "group",
        "maxParticipants": 25,
        "emptyRoomTimeout": 10,
        "unusedRoomTimeout": 5,
        "videoCodecs": ["H264"],
        "audioOnly": True,
        "recordParticipantsOnConnect": True,
        "fromSpec": ["emptyRoomTimeout", "videoCodecs", "audioOnly", "recording.participantsOnConnect"],
    }
    inp = make_input(spec={}, status=live_status(roomSettings=settings))
    final, actions, _ = drive(inp, answers())
    assert actions == []
    assert isinstance(final, Plan)
    status, reason, message = synced(final.status)
    assert (status, reason) == ("True", Reason.PENDING_NEXT_SESSION)
    for change in (
        "emptyRoomTimeout: 10 -> Twilio's default",
        "videoCodecs: H264 -> Twilio's default",
        "audioOnly: True -> Twilio's default",
        "recording.participantsOnConnect: True -> Twilio's default",
    ):
        assert change in message
    assert "unusedRoomTimeout" not in message  # Twilio's default when the session opened: not a removal


def test_fields_the_spec_sets_are_recorded_with_the_session() -> None:
    spec = {
        "emptyRoomTimeout": 7,
        "videoCodecs": ["VP8"],
        "recording": {"rules": [{"type": "exclude", "all": True}]},
    }
    final, _, _ = drive(make_input(spec=spec), answers(CreateRoom=created_room))
    assert isinstance(final, Plan) and final.status.room_settings is not None
    assert final.status.room_settings.from_spec == [
        "emptyRoomTimeout",
        "videoCodecs",
        "recording.participantsOnConnect",
    ]
    plain, _, _ = drive(make_input(spec={}), answers(CreateRoom=created_room))
    assert isinstance(plain, Plan) and plain.status.room_settings is not None
    assert plain.status.room_settings.from_spec is None


# ------------------------------------------------------------------------------- live recording rules

AUDIO_ONLY = [{"type": "exclude", "all": True}, {"type": "include", "kind": "audio"}]
NOT_BOB = [{"type": "include", "all": True}, {"type": "exclude", "publisher": "bob"}]


def recording(rules: list[dict[str, Any]] | None = None, on_connect: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"participantsOnConnect": on_connect}
    if rules is not None:
        body["rules"] = rules
    return {"recording": body}


def test_a_room_created_with_rules_records_them_and_costs_nothing_more() -> None:
    inp = make_input(spec=recording(AUDIO_ONLY))
    final, actions, _ = drive(inp, answers(CreateRoom=created_room))
    assert [type(a) for a in actions] == [CreateRoom]
    assert isinstance(final, Plan) and final.status.recording_rules is not None
    assert [rule.to_dict() for rule in final.status.recording_rules] == AUDIO_ONLY
    again = make_input(spec=recording(AUDIO_ONLY), status=final.status, observe=True)
    assert drive(again, answers(FetchRoom=room(sid="RM9")))[1] == [FetchRoom("RM9")]  # the resync only


def test_changed_rules_are_applied_to_the_live_room_once() -> None:
    inp = make_input(spec=recording(NOT_BOB), status=live_status(recordingRules=AUDIO_ONLY))
    final, actions, notes = drive(inp, answers(UpdateRecordingRules=[NOT_BOB]))
    assert actions == [UpdateRecordingRules("RM1", tuple(NOT_BOB))]
    assert isinstance(final, Plan)
    assert [rule.to_dict() for rule in final.status.recording_rules or []] == NOT_BOB
    assert synced(final.status)[:2] == ("True", Reason.RECONCILE_SUCCESS)
    assert ready(final.status) == ("True", Reason.IN_PROGRESS)
    assert notes == [
        Note(
            "Normal",
            "RecordingRulesUpdated",
            "Applied recording rules to Twilio room RM1: include all; exclude publisher=bob.",
        )
    ]
    again = make_input(spec=recording(NOT_BOB), status=final.status)
    assert drive(again, answers())[1] == []


def test_rules_added_to_a_live_room_created_without_any_are_applied() -> None:
    inp = make_input(spec=recording(AUDIO_ONLY), status=live_status())
    _, actions, _ = drive(inp, answers(UpdateRecordingRules=[AUDIO_ONLY]))
    assert actions == [UpdateRecordingRules("RM1", tuple(AUDIO_ONLY))]


@pytest.mark.parametrize(
    ("on_connect", "spec", "implied"),
    [
        (True, recording(on_connect=True), "include"),
        (False, {}, "exclude"),
        (None, recording(on_connect=True), "include"),  # the room does not say: the spec does
        (None, {}, "exclude"),
    ],
)
def test_removed_rules_reset_the_room_to_what_recording_on_connect_implies(
    on_connect: bool | None, spec: dict[str, Any], implied: str
) -> None:
    settings = {"type": "group", "maxParticipants": 25, "recordParticipantsOnConnect": on_connect}
    inp = make_input(spec=spec, status=live_status(recordingRules=AUDIO_ONLY, roomSettings=settings))
    final, actions, notes = drive(inp, answers(UpdateRecordingRules=[[]]))
    assert actions == [UpdateRecordingRules("RM1", ({"type": implied, "all": True},), reset=True)]
    assert isinstance(final, Plan) and final.status.recording_rules is None
    assert notes[0].reason == "RecordingRulesUpdated" and "was removed" in notes[0].message
    assert drive(make_input(spec=spec, status=final.status), answers())[1] == []


def test_rules_of_an_adopted_room_are_not_known_so_the_spec_is_applied() -> None:
    inp = make_input(spec={"adoptExisting": True, **recording(AUDIO_ONLY)})
    _, actions, notes = drive(inp, answers(LookupRoom=room(sid="RM7"), UpdateRecordingRules=[AUDIO_ONLY]))
    assert actions == [LookupRoom(UNIQUE), UpdateRecordingRules("RM7", tuple(AUDIO_ONLY))]
    assert [n.reason for n in notes] == ["Adopted", "RecordingRulesUpdated"]


def test_rules_wait_for_the_next_session_when_the_live_room_cannot_record() -> None:
    settings = {"type": "peer-to-peer", "maxParticipants": 10}
    inp = make_input(
        spec=recording(AUDIO_ONLY), status=live_status(type="peer-to-peer", roomSettings=settings)
    )
    final, actions, _ = drive(inp, answers())
    assert actions == []
    assert isinstance(final, Plan)
    status, reason, message = synced(final.status)
    assert (status, reason) == ("True", Reason.PENDING_NEXT_SESSION)
    assert "type: peer-to-peer -> group" in message and "recording.rules: a peer-to-peer room" in message


def test_rules_twilio_rejects_stall_as_invalid_spec() -> None:
    bad = TerminalError(
        "Invalid Recording Rule(s)", operation="UpdateRoomRecordingRule", status=400, code=53120
    )
    inp = make_input(spec=recording(NOT_BOB), status=live_status())
    final, _, notes = drive(inp, answers(UpdateRecordingRules=bad))
    assert isinstance(final, Failure) and not final.retry
    assert stalled_reason(final.status) == Reason.INVALID_SPEC
    assert "spec.recording.rules" in synced(final.status)[2]
    assert [n.reason for n in notes] == [Reason.INVALID_SPEC]


def test_rules_sent_to_a_room_that_just_ended_fetch_it_and_record_the_end() -> None:
    ended = TerminalError("Room completed", operation="UpdateRoomRecordingRule", status=400, code=53118)
    inp = make_input(spec=recording(NOT_BOB), status=live_status())
    done = room(status="completed", end_time=NOW, duration=60)
    final, actions, _ = drive(inp, answers(UpdateRecordingRules=ended, FetchRoom=done))
    assert actions == [UpdateRecordingRules("RM1", tuple(NOT_BOB)), FetchRoom("RM1")]
    assert isinstance(final, Plan) and final.status.room_status == "completed"
    assert ready(final.status) == ("True", Reason.COMPLETED)


def test_rules_refused_as_ended_by_a_room_twilio_still_lists_are_retried_later() -> None:
    ended = TerminalError("Room completed", operation="UpdateRoomRecordingRule", status=400, code=53118)
    inp = make_input(spec=recording(NOT_BOB), status=live_status())
    final, actions, _ = drive(inp, answers(UpdateRecordingRules=ended, FetchRoom=room()))
    assert [type(a) for a in actions] == [UpdateRecordingRules, FetchRoom, UpdateRecordingRules]
    assert isinstance(final, Failure) and final.retry and final.retry_after == REJECTED_RETRY_SECONDS


def test_rules_sent_to_a_room_twilio_forgot() -> None:
    missing = NotFoundError("not found", operation="UpdateRoomRecordingRule", status=404, code=20404)
    inp = make_input(spec=recording(NOT_BOB), status=live_status())
    final, _, notes = drive(inp, answers(UpdateRecordingRules=missing))
    assert isinstance(final, Plan) and final.status.room_status == "completed"
    assert notes[0].reason == "RoomGone"


def test_same_codecs_in_another_order_are_no_change() -> None:
    inp = make_input(spec={"videoCodecs": ["H264", "VP8"]}, status=live_status())
    final, _, _ = drive(inp, answers())
    assert isinstance(final, Plan) and synced(final.status)[1] == Reason.RECONCILE_SUCCESS


# --------------------------------------------------------------------------------- ended, keepAlive


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({}, "keepAlive is off"),
        ({"state": "Completed"}, "state is Completed"),
        ({"keepAlive": True, "schedule": {"endTime": "2026-03-02T11:30:00Z"}}, "the schedule ended"),
    ],
)
def test_ended_room_stays_ended(spec: dict[str, Any], why: str) -> None:
    inp = make_input(spec=spec, status=ended_status())
    final, actions, _ = drive(inp, answers())
    assert actions == []
    assert isinstance(final, Plan) and ready(final.status) == ("True", Reason.COMPLETED)
    assert why in get_condition(final.status.conditions, "Ready").message  # type: ignore[union-attr]


def test_failed_room_is_not_ready() -> None:
    inp = make_input(spec={}, status=ended_status("failed"))
    final, _, _ = drive(inp, answers())
    assert isinstance(final, Plan) and ready(final.status) == ("False", Reason.FAILED)


def test_keep_alive_opens_a_new_session_and_keeps_the_last_five_sids() -> None:
    history = {"count": 5, "recentSids": ["RMa", "RMb", "RMc", "RMd", "RM1"]}
    inp = make_input(spec={"keepAlive": True}, status=ended_status(sessions=history))
    final, actions, notes = drive(inp, answers(CreateRoom=created_room))
    assert [type(a) for a in actions] == [CreateRoom]
    assert isinstance(final, Plan)
    status = final.status
    assert status.sid == "RM9" and status.ended_at is None and status.room_status == "in-progress"
    assert status.sessions == SessionHistory(count=6, recent_sids=["RMb", "RMc", "RMd", "RM1", "RM9"])
    assert [n.reason for n in notes] == ["Created"]


def test_no_room_when_completed_before_creation() -> None:
    inp = make_input(spec={"state": "Completed"})
    final, actions, _ = drive(inp, answers())
    assert actions == [] and isinstance(final, Plan)
    assert final.status.room_status is None and ready(final.status) == ("True", Reason.COMPLETED)


def test_schedule_in_the_future_waits_with_a_requeue() -> None:
    schedule = {
        "startTime": "2026-03-02T14:00:00Z",
        "endTime": "2026-03-02T15:00:00Z",
        "provisionAhead": "10m",
    }
    inp = make_input(spec={"schedule": schedule})
    final, actions, _ = drive(inp, answers())
    assert actions == [] and isinstance(final, Plan)
    # Waiting for the window is the desired state: Ready True (Argo CD Healthy, kubectl wait returns).
    assert final.status.room_status == "Scheduled" and ready(final.status) == ("True", Reason.SCHEDULED)
    message = get_condition(final.status.conditions, "Ready").message  # type: ignore[union-attr]
    assert message == "The room opens at 2026-03-02T13:50:00+00:00."
    assert final.requeue_at == datetime(2026, 3, 2, 13, 50, tzinfo=UTC)
    opened = replace(inp, now=datetime(2026, 3, 2, 13, 50, tzinfo=UTC))
    assert isinstance(plan(opened, Working(opened.status)).action, CreateRoom)


# -------------------------------------------------------------------------------------- composition


def test_completed_room_with_compose_creates_the_composition_once() -> None:
    spec = {"recording": {"participantsOnConnect": True, "compose": {"format": "webm"}}}
    inp = make_input(spec=spec, status=ended_status())
    step = plan(inp, Working(inp.status))
    assert isinstance(step.action, CreateRecordingComposition)
    assert step.action.name == "standup-recording"
    expected = {**CompositionTemplate(format="webm").to_dict(), "roomRef": {"name": NAME}}
    assert dict(step.action.spec) == expected
    final, _, notes = drive(inp, answers(CreateRecordingComposition=True))
    assert isinstance(final, Plan) and final.status.recording_composition == "standup-recording"
    assert [n.reason for n in notes] == ["CompositionCreated"]
    existing, _, notes = drive(inp, answers(CreateRecordingComposition=False))
    assert notes == [] and isinstance(existing, Plan) and existing.status.recording_composition
    assert drive(make_input(spec=spec, status=existing.status), answers())[1] == []


def test_failed_room_is_not_composed() -> None:
    spec = {"recording": {"compose": {}}}
    assert drive(make_input(spec=spec, status=ended_status("failed")), answers())[1] == []


# ------------------------------------------------------------------------------------------- failures


def failure_of(
    error: GatewayError, spec: dict[str, Any] | None = None, status: VideoRoomStatus | None = None
) -> Failure:
    inp = make_input(spec=spec or {}, status=status)
    outcome, _, _ = drive(
        inp, answers(CreateRoom=error, CompleteRoom=error, ListParticipants=error, FetchRoom=error)
    )
    assert isinstance(outcome, Failure)
    return outcome


def test_throttling_is_retried_with_twilio_hint() -> None:
    failure = failure_of(ThrottledError("slow down", operation="CreateRoom", status=429, retry_after=3.0))
    assert failure.retry and failure.retry_after == 3.0
    assert synced(failure.status)[:2] == ("False", Reason.RATE_LIMITED)
    assert failure.status.create_pending is not None  # stays: the next attempt looks up first


@pytest.mark.parametrize(
    "error",
    [
        RetryableError("boom", operation="CreateRoom", status=500, maybe_applied=True),
        CircuitOpenError("open", operation="CreateRoom", retry_after=30.0),
    ],
)
def test_unavailable_twilio_is_retried(error: GatewayError) -> None:
    failure = failure_of(error)
    assert failure.retry and synced(failure.status)[:2] == ("False", Reason.TWILIO_UNAVAILABLE)
    assert ready(failure.status) == ("False", Reason.CREATING)
    assert stalled_reason(failure.status) is None


def test_retry_after_a_maybe_applied_create_looks_up_first() -> None:
    failure = failure_of(RetryableError("timeout", operation="CreateRoom", maybe_applied=True))
    retry = make_input(spec={}, status=failure.status)
    assert plan(retry, Working(retry.status)).action == LookupRoom(UNIQUE)


def test_auth_failure_stalls() -> None:
    failure = failure_of(AuthError("Authenticate", operation="CreateRoom", status=401, code=20003))
    assert not failure.retry and stalled_reason(failure.status) == Reason.AUTH_FAILED
    assert failure.notes and failure.notes[0].type == "Warning"


def test_twilio_rejecting_the_settings_stalls_as_invalid_spec_and_drops_the_marker() -> None:
    failure = failure_of(TerminalError("bad", operation="CreateRoom", status=400, code=53124))
    assert not failure.retry and stalled_reason(failure.status) == Reason.INVALID_SPEC
    assert failure.status.create_pending is None
    assert "Twilio rejected the room settings" in synced(failure.status)[2]


def test_other_rejections_are_retried_slowly() -> None:
    error = TerminalError("odd", operation="UpdateRoom", status=400, code=53112)
    failure = failure_of(error, spec={"state": "Completed"}, status=live_status())
    assert failure.retry and failure.retry_after == REJECTED_RETRY_SECONDS
    assert synced(failure.status)[:2] == ("False", Reason.RECONCILE_ERROR)


def test_room_vanishing_under_a_participant_call_is_recorded_as_ended() -> None:
    missing = NotFoundError("gone", operation="ListRoomParticipant", status=404)
    inp = make_input(spec={"moderation": {"blockedIdentities": ["eve"]}}, status=live_status())
    final, actions, _ = drive(inp, answers(ListParticipants=missing))
    assert actions == [ListParticipants("RM1")]
    assert isinstance(final, Plan) and final.status.room_status == "completed"


def test_fetch_errors_leave_ready_and_are_retried() -> None:
    error = RetryableError("down", operation="FetchRoom", status=503)
    inp = make_input(spec={}, status=live_status(conditions=[]), observe=True)
    outcome, _, _ = drive(inp, answers(FetchRoom=error))
    assert isinstance(outcome, Failure) and outcome.retry
    assert ready(outcome.status) == ("Unknown", Reason.TWILIO_UNAVAILABLE)


def test_facts_default_is_empty() -> None:
    assert Facts() == Facts(fetched=False, looked_up=None, foreign=None, conflict=False, participants=None)
    assert RoomSettings().model_dump(exclude_none=True) == {}


def test_schedule_moved_later_after_a_session_keeps_the_last_room_status() -> None:
    schedule = {"startTime": "2026-03-02T14:00:00Z", "endTime": "2026-03-02T15:00:00Z"}
    inp = make_input(spec={"keepAlive": True, "schedule": schedule}, status=ended_status())
    final, actions, _ = drive(inp, answers())
    assert actions == [] and isinstance(final, Plan)
    assert final.status.room_status == "completed" and ready(final.status) == ("True", Reason.SCHEDULED)


def test_fetching_a_live_room_refreshes_what_twilio_reports() -> None:
    inp = make_input(spec={}, status=live_status(type=None), observe=True)
    final, _, _ = drive(inp, answers(FetchRoom=room(type="group-small")))
    assert isinstance(final, Plan) and final.status.type == "group-small" and final.status.ended_at is None


def test_claiming_a_room_already_in_the_history_does_not_count_a_new_session() -> None:
    status = VideoRoomStatus.model_validate({**marker(), "sessions": {"count": 1, "recentSids": ["RM5"]}})
    inp = make_input(spec={}, status=status)
    final, _, _ = drive(inp, answers(LookupRoom=room(sid="RM5")))
    assert isinstance(final, Plan) and final.status.sessions == SessionHistory(count=1, recent_sids=["RM5"])


def test_unknown_actions_are_refused() -> None:
    inp = make_input(spec={})
    with pytest.raises(TypeError):
        absorb(inp, Working(inp.status), object(), None)  # type: ignore[arg-type]
