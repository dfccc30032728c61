"""Server-side mute, pure parts: the spec's bounds, the subscribe rules, the audit trail (who, why, which
field manager), the planner's enforcement on live rooms and the participant-connected callback."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from twilio_video_operator.gateway.errors import GatewayError, NotFoundError, TerminalError
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo
from twilio_video_operator.models.videoroom import MuteRecord, VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom import (
    Action,
    CreateRoom,
    CredentialsCheck,
    FetchRoom,
    ListParticipants,
    Note,
    Plan,
    PlanInput,
    UpdateSubscribeRules,
    Working,
    absorb,
    begin,
    fail,
    plan,
)
from twilio_video_operator.reconcilers.videoroom_callbacks import RoomCallback, apply_room_callback
from twilio_video_operator.reconcilers.videoroom_desired import Defaults, moderation_digest
from twilio_video_operator.reconcilers.videoroom_mutes import (
    DEFAULT_RULES,
    UNKNOWN_MANAGER,
    audit_mutes,
    manager_of,
    mute_digest,
    mute_rules,
    parse_managed_fields,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DEFAULTS = Defaults(room_type="group", max_participants=25, status_callback=None)


def spec_of(mutes: list[dict[str, Any]] | None = None, **moderation: Any) -> VideoRoomSpec:
    return VideoRoomSpec.model_validate({"moderation": {"mutedIdentities": mutes or [], **moderation}})


# ------------------------------------------------------------------------------------------------ spec


def test_tracks_default_to_both_and_identities_are_unique() -> None:
    spec = spec_of([{"identity": "bob"}])
    assert spec.moderation is not None and spec.moderation.muted_identities[0].tracks == "both"
    with pytest.raises(ValidationError, match="lists an identity twice"):
        spec_of([{"identity": "bob", "tracks": "audio"}, {"identity": "bob", "tracks": "video"}])
    with pytest.raises(ValidationError):
        spec_of([{"identity": "bob", "tracks": "data"}])


def test_mutes_are_bounded_by_twilio_s_twenty_subscribe_rules() -> None:
    nineteen = [{"identity": f"p{i}", "tracks": "audio"} for i in range(19)]
    assert len(mute_rules(spec_of(nineteen))) == 20
    with pytest.raises(ValidationError, match="at most 19 subscribe rules"):
        spec_of([{"identity": f"p{i}"} for i in range(10)])  # 10 x both = 20 rules + include all
    assert (
        len(
            mute_rules(
                spec_of([{"identity": f"p{i}"} for i in range(9)] + [{"identity": "x", "tracks": "video"}])
            )
        )
        == 20
    )


def test_reasons_are_bounded() -> None:
    with pytest.raises(ValidationError):
        spec_of(reasons={"bob": "x" * 257})
    with pytest.raises(ValidationError, match="identities of 1 to 256"):
        spec_of(reasons={"": "why"})
    with pytest.raises(ValidationError):
        spec_of(reasons={f"p{i}": "r" for i in range(101)})


# ----------------------------------------------------------------------------------------------- rules


def test_rules_include_all_then_exclude_each_muted_kind_by_identity() -> None:
    spec = spec_of([{"identity": "zed", "tracks": "video"}, {"identity": "amy"}])
    assert mute_rules(spec) == (
        {"type": "include", "all": True},
        {"type": "exclude", "publisher": "amy", "kind": "audio"},
        {"type": "exclude", "publisher": "amy", "kind": "video"},
        {"type": "exclude", "publisher": "zed", "kind": "video"},
    )
    assert mute_rules(spec_of()) == () and mute_rules(None) == ()
    assert mute_digest("RM1", ()) is None
    assert mute_digest("RM1", mute_rules(spec)) != mute_digest("RM2", mute_rules(spec))


# ------------------------------------------------------------------------------------------ managers


def entry(
    manager: str, time: str, fields: Mapping[str, Any], subresource: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "manager": manager,
        "operation": "Update",
        "apiVersion": "video.openclaw.io/v1alpha1",
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    if subresource:
        item["subresource"] = subresource
    return item


def muting(*identities: str) -> dict[str, Any]:
    items = {f'k:{{"identity":"{who}"}}': {".": {}, "f:identity": {}, "f:tracks": {}} for who in identities}
    return {"f:spec": {"f:moderation": {".": {}, "f:mutedIdentities": items}}}


MANAGED = [
    entry("kubectl-client-side-apply", "2026-03-02T10:00:00Z", {"f:spec": {"f:maxParticipants": {}}}),
    entry("moderator-app", "2026-03-02T11:00:00Z", muting("bob")),
    entry("kubectl-edit", "2026-03-02T11:30:00Z", muting("carol")),
    entry("twilio-video-operator", "2026-03-02T11:45:00Z", {"f:status": {"f:mutedIdentities": {}}}, "status"),
    {"manager": "broken"},
]


def test_the_manager_owning_the_entry_muted_it() -> None:
    entries = parse_managed_fields(MANAGED)
    assert [e.manager for e in entries] == ["kubectl-client-side-apply", "moderator-app", "kubectl-edit"]
    assert manager_of(entries, "bob") == "moderator-app"
    assert manager_of(entries, "carol") == "kubectl-edit"


def test_an_unmute_is_the_latest_writer_of_spec_moderation() -> None:
    entries = parse_managed_fields(MANAGED)
    assert manager_of(entries, None) == "kubectl-edit"
    assert manager_of(entries, "dave") == "kubectl-edit"  # owned by nobody: the same fallback
    assert manager_of(parse_managed_fields(MANAGED[:1]), "bob") == UNKNOWN_MANAGER
    assert manager_of(parse_managed_fields(None), "bob") == UNKNOWN_MANAGER
    odd = [entry("odd", "t", {"f:spec": {"f:moderation": {"f:mutedIdentities": {"k:not json": {}}}}})]
    assert manager_of(parse_managed_fields(odd), "bob") == "odd"


# ----------------------------------------------------------------------------------------------- audit


def test_audit_records_mutes_once_and_reports_changes_and_unmutes() -> None:
    entries = parse_managed_fields(MANAGED)
    spec = spec_of([{"identity": "bob", "tracks": "audio"}], reasons={"bob": "shouting"})
    records, changes = audit_mutes(spec, None, entries, NOW)
    assert records == [
        MuteRecord(identity="bob", tracks="audio", since=NOW, by="moderator-app", reason="shouting")
    ]
    assert [(c.reason, c.identity) for c in changes] == [("Muted", "bob")]
    assert changes[0].message == (
        "Muted 'bob' (audio) for every other participant; reason: shouting; changed by moderator-app."
    )
    later = NOW + timedelta(minutes=5)
    assert audit_mutes(spec, records, entries, later) == (records, ())

    video = spec_of([{"identity": "bob", "tracks": "both"}])
    changed, changes = audit_mutes(video, records, entries, later)
    assert changed is not None and changed[0].tracks == "both" and changed[0].since == later
    assert "(audio and video)" in changes[0].message and "no reason given" in changes[0].message

    gone, changes = audit_mutes(spec_of(reasons={"bob": "apologised"}), changed, entries, later)
    assert gone is None
    assert [(c.reason, c.message) for c in changes] == [
        (
            "Unmuted",
            "Unmuted 'bob' (audio and video) for every other participant; reason: apologised; changed by "
            "kubectl-edit.",
        )
    ]


# ------------------------------------------------------------------------------------------- planning


def participant(identity: str, status: str = "connected") -> ParticipantInfo:
    return ParticipantInfo(
        sid=f"PA-{identity}",
        room_sid="RM1",
        account_sid="AC1",
        identity=identity,
        status=status,
        date_created=NOW,
        start_time=NOW,
        end_time=None,
        duration=None,
    )


def live_status(**fields: Any) -> VideoRoomStatus:
    base: dict[str, Any] = {
        "sid": "RM1",
        "uniqueName": "team:standup",
        "roomStatus": "in-progress",
        "type": "group",
        "participants": {"connected": 0, "peak": 0},
        "sessions": {"count": 1, "recentSids": ["RM1"]},
        "roomSettings": {"type": "group", "maxParticipants": 25},
        "moderationDigest": moderation_digest("RM1", ()),
        "credentialsRevision": "operator:abc",
    }
    base.update(fields)
    return VideoRoomStatus.model_validate(base)


def make_input(spec: Mapping[str, Any], status: VideoRoomStatus, **overrides: Any) -> PlanInput:
    values: dict[str, Any] = {
        "namespace": "team",
        "name": "standup",
        "generation": 1,
        "spec": VideoRoomSpec.model_validate(dict(spec)),
        "status": status,
        "now": NOW,
        "defaults": DEFAULTS,
        "credentials": CredentialsCheck("operator:abc"),
        "verified_sid": status.sid,
        "managed_fields": parse_managed_fields(MANAGED),
    }
    values.update(overrides)
    return PlanInput(**values)


Responder = Callable[[Action], Any]


def drive(inp: PlanInput, respond: Responder) -> tuple[Plan, list[Action], list[Note]]:
    """Run begin/plan/absorb/fail to the end like the executor does."""
    work = begin(inp)
    actions: list[Action] = []
    for _ in range(12):
        step = plan(inp, work)
        if step.action is None:
            return step, actions, [*work.notes, *step.notes]
        actions.append(step.action)
        work = Working(step.status, work.facts, work.notes)
        try:
            result = respond(step.action)
        except GatewayError as error:
            outcome = fail(inp, work, step.action, error)
            assert isinstance(outcome, Working), outcome
            work = outcome
            continue
        work = absorb(inp, work, step.action, result)
    raise AssertionError("did not settle")


def responder(people: list[ParticipantInfo], **extra: Any) -> Responder:
    def respond(action: Action) -> Any:
        if isinstance(action, ListParticipants):
            return people
        name = type(action).__name__
        if isinstance(action, UpdateSubscribeRules) and name not in extra:
            return list(action.participants)
        if name in extra:
            value = extra[name]
            if isinstance(value, BaseException):
                raise value
            return value(action) if callable(value) else value
        raise AssertionError(f"unexpected {action}")

    return respond


MUTE_BOB = {"moderation": {"mutedIdentities": [{"identity": "bob", "tracks": "audio"}]}}


def test_a_new_mute_sets_every_connected_participant_s_rules_once_with_one_event() -> None:
    inp = make_input(MUTE_BOB, live_status())
    people = [participant("ann"), participant("bob"), participant("cid", status="disconnected")]
    final, actions, notes = drive(inp, responder(people))
    rules = mute_rules(inp.spec)
    assert actions == [ListParticipants("RM1"), UpdateSubscribeRules("RM1", ("PA-ann", "PA-bob"), rules)]
    assert final.status.mute_digest == mute_digest("RM1", rules)
    assert [n.reason for n in notes] == ["Muted"] and "moderator-app" in notes[0].message
    assert (
        final.status.muted_identities is not None and final.status.muted_identities[0].by == "moderator-app"
    )

    again = make_input(MUTE_BOB, final.status)
    assert drive(again, responder(people))[1:] == ([], [])


def test_blocked_participants_are_removed_not_given_rules() -> None:
    spec = {"moderation": {"mutedIdentities": [{"identity": "bob"}], "blockedIdentities": ["eve"]}}
    inp = make_input(spec, live_status(moderationDigest=None))
    people = [participant("ann"), participant("eve")]
    _, actions, _ = drive(inp, responder(people, DisconnectParticipants=["eve"]))
    assert [type(a).__name__ for a in actions] == [
        "ListParticipants",
        "DisconnectParticipants",
        "UpdateSubscribeRules",
    ]
    assert isinstance(actions[2], UpdateSubscribeRules) and actions[2].participants == ("PA-ann",)


def test_an_empty_room_only_records_the_digest() -> None:
    inp = make_input(MUTE_BOB, live_status())
    final, actions, _ = drive(inp, responder([]))
    assert actions == [ListParticipants("RM1")] and final.status.mute_digest is not None


def test_unmuting_everyone_restores_twilio_s_default_and_drops_the_digest() -> None:
    muted = make_input(MUTE_BOB, live_status())
    status = drive(muted, responder([]))[0].status
    inp = make_input({}, status)
    final, actions, notes = drive(inp, responder([participant("ann")]))
    assert actions == [ListParticipants("RM1"), UpdateSubscribeRules("RM1", ("PA-ann",), DEFAULT_RULES)]
    assert final.status.mute_digest is None and final.status.muted_identities is None
    assert [n.reason for n in notes] == ["Unmuted"]


def test_a_room_nobody_muted_never_touches_subscribe_rules() -> None:
    inp = make_input({}, live_status(), observe=True)
    _, actions, notes = drive(inp, responder([participant("ann")], FetchRoom=lambda a: room_info("RM1")))
    assert actions == [FetchRoom("RM1")] and notes == []


def test_an_observing_reconcile_sets_the_rules_again_while_mutes_are_in_force() -> None:
    settled = drive(make_input(MUTE_BOB, live_status()), responder([]))[0].status
    inp = make_input(MUTE_BOB, settled, observe=True)
    _, actions, notes = drive(inp, responder([participant("ann")], FetchRoom=lambda a: room_info("RM1")))
    assert [type(a).__name__ for a in actions] == ["FetchRoom", "ListParticipants", "UpdateSubscribeRules"]
    assert notes == []


def test_a_fresh_room_starts_with_the_digest_and_a_new_session_sets_rules_again() -> None:
    inp = make_input(MUTE_BOB, VideoRoomStatus())
    final, actions, _ = drive(inp, responder([], CreateRoom=lambda a: room_info("RM9")))
    assert [type(a) for a in actions] == [CreateRoom]
    assert final.status.mute_digest == mute_digest("RM9", mute_rules(inp.spec))


def test_rules_sent_to_a_room_that_just_ended_fetch_it_and_record_the_end() -> None:
    inp = make_input(MUTE_BOB, live_status())
    ended = TerminalError(
        "room completed", operation="UpdateRoomParticipantSubscribeRule", status=400, code=53118
    )
    fetched = room_info("RM1", status="completed")
    final, actions, _ = drive(
        inp, responder([participant("ann")], UpdateSubscribeRules=ended, FetchRoom=fetched)
    )
    assert [type(a).__name__ for a in actions] == ["ListParticipants", "UpdateSubscribeRules", "FetchRoom"]
    assert final.status.room_status == "completed"


def test_a_room_that_vanished_under_the_rules_is_ended() -> None:
    inp = make_input(MUTE_BOB, live_status())
    work = Working(inp.status, notes=())
    action = UpdateSubscribeRules("RM1", ("PA-ann",), mute_rules(inp.spec))
    outcome = fail(
        inp,
        work,
        action,
        NotFoundError("gone", operation="UpdateRoomParticipantSubscribeRule", status=404, code=20404),
    )
    assert isinstance(outcome, Working) and outcome.status.room_status == "completed"


def test_nothing_is_recorded_while_paused_or_invalid() -> None:
    paused = make_input(MUTE_BOB, live_status(), annotations={"video.openclaw.io/paused": "true"})
    assert begin(paused).notes == ()
    invalid = make_input(MUTE_BOB, live_status(), spec_problems=("spec.x: bad",))
    assert begin(invalid).notes == ()


def room_info(sid: str, status: str = "in-progress") -> RoomInfo:
    return RoomInfo(
        sid=sid,
        status=status,
        unique_name="team:standup",
        type="group",
        account_sid="AC1",
        max_participants=25,
        max_participant_duration=14400,
        date_created=NOW,
        date_updated=NOW,
        end_time=None,
        duration=None,
        status_callback=None,
        status_callback_method="POST",
        video_codecs=(),
        media_region="us1",
        audio_only=False,
        record_participants_on_connect=False,
        empty_room_timeout=5,
        unused_room_timeout=5,
        large_room=False,
        url=None,
    )


# ------------------------------------------------------------------------------------------- callbacks


def connected(identity: str, sid: str | None = "PA-new") -> RoomCallback:
    return RoomCallback(
        account_sid="AC1",
        room_sid="RM1",
        event="participant-connected",
        participant_sid=sid,
        participant_identity=identity,
    )


def test_a_participant_who_joins_while_someone_is_muted_gets_the_rules() -> None:
    spec = VideoRoomSpec.model_validate(MUTE_BOB)
    effects = apply_room_callback(live_status(), spec, connected("ann"), NOW)
    assert effects.subscribe == ("PA-new",)
    assert apply_room_callback(live_status(), spec, connected("bob"), NOW).subscribe == ("PA-new",)
    assert apply_room_callback(live_status(), VideoRoomSpec(), connected("ann"), NOW).subscribe == ()
    assert apply_room_callback(live_status(), spec, connected("ann", sid=None), NOW).subscribe == ()
    ended = live_status(roomStatus="completed")
    assert apply_room_callback(ended, spec, connected("ann"), NOW).subscribe == ()
