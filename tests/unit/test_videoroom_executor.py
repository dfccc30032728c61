"""The VideoRoom executor: order of status writes, Twilio calls and Events, with fakes for both sides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import pytest

from twilio_video_operator.gateway.errors import RetryableError, TerminalError
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom import CredentialsCheck, PlanInput
from twilio_video_operator.reconcilers.videoroom_desired import Defaults
from twilio_video_operator.reconcilers.videoroom_executor import ReconcileRun, merge_patch

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
#: Defaults under which rooms name their object in their StatusCallback (no create-pending marker).
NAMED = Defaults(status_callback="https://op/twilio/room-events")


def room(sid: str = "RM1", status: str = "in-progress", unique_name: str = "ns:r") -> RoomInfo:
    return RoomInfo(
        sid=sid,
        status=status,
        unique_name=unique_name,
        type="group",
        account_sid="AC1",
        max_participants=25,
        max_participant_duration=14400,
        date_created=NOW,
        date_updated=NOW,
        end_time=NOW if status != "in-progress" else None,
        duration=10 if status != "in-progress" else None,
        status_callback=None,
        status_callback_method=None,
        video_codecs=("VP8",),
        media_region="us1",
        audio_only=False,
        record_participants_on_connect=False,
        empty_room_timeout=5,
        unused_room_timeout=5,
        large_room=False,
        url=None,
    )


class Journal:
    """Records, in order, every call made on the Twilio and the Kubernetes side."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []


class FakeApi:
    def __init__(self, journal: Journal, **answers: Any) -> None:
        self.journal = journal
        self.answers = answers

    def _answer(self, name: str, *args: Any) -> Any:
        self.journal.entries.append((name, args))
        value = self.answers.get(name)
        if isinstance(value, BaseException):
            raise value
        return value

    async def create_room(self, **params: Any) -> RoomInfo:
        return self._answer("create_room", params["unique_name"])  # type: ignore[no-any-return]

    async def fetch_room(self, sid_or_unique_name: str) -> RoomInfo | None:
        return self._answer("fetch_room", sid_or_unique_name)  # type: ignore[no-any-return]

    async def find_in_progress_room(self, unique_name: str) -> RoomInfo | None:
        return self._answer("find_in_progress_room", unique_name)  # type: ignore[no-any-return]

    async def complete_room(self, sid: str) -> RoomInfo:
        return self._answer("complete_room", sid)  # type: ignore[no-any-return]

    async def list_participants(
        self, room_sid: str, status: str | None = "connected"
    ) -> list[ParticipantInfo]:
        return self._answer("list_participants", room_sid)  # type: ignore[no-any-return]

    async def disconnect_participant(self, room_sid: str, sid_or_identity: str) -> ParticipantInfo | None:
        gone = self.answers.get("gone", ())
        self.journal.entries.append(("disconnect_participant", (room_sid, sid_or_identity)))
        return None if sid_or_identity in gone else participant(sid_or_identity)

    async def update_recording_rules(
        self, room_sid: str, rules: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        self._answer("update_recording_rules", room_sid, [dict(rule) for rule in rules])
        return [dict(rule) for rule in rules]


def participant(identity: str) -> ParticipantInfo:
    return ParticipantInfo(
        sid=f"PA-{identity}",
        room_sid="RM1",
        account_sid="AC1",
        identity=identity,
        status="connected",
        date_created=NOW,
        start_time=NOW,
        end_time=None,
        duration=None,
    )


class FakeWriter:
    def __init__(self, journal: Journal, *, composition_exists: bool = False) -> None:
        self.journal = journal
        self.composition_exists = composition_exists

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.journal.entries.append(("patch_status", dict(patch)))

    async def post_event(
        self, body: Mapping[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        self.journal.entries.append(("event", reason))

    async def create_composition(self, owner: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> bool:
        self.journal.entries.append(("create_composition", name))
        return not self.composition_exists


def make_input(spec: dict[str, Any], status: dict[str, Any] | None = None, **extra: Any) -> PlanInput:
    parsed = VideoRoomStatus.model_validate(status or {})
    extra.setdefault("verified_sid", parsed.sid)  # the room in status is the one this process opened
    extra.setdefault("defaults", Defaults())
    return PlanInput(
        namespace="ns",
        name="r",
        generation=1,
        spec=VideoRoomSpec.model_validate(spec),
        status=parsed,
        now=NOW,
        credentials=CredentialsCheck("operator:x"),
        **extra,
    )


def names(journal: Journal) -> list[str]:
    return [entry[0] for entry in journal.entries]


async def test_marker_is_stored_before_create_and_cleared_after() -> None:
    journal = Journal()
    run = ReconcileRun(make_input({}), {}, FakeApi(journal, create_room=room()), FakeWriter(journal))
    outcome = await run.execute()
    assert names(journal) == ["patch_status", "create_room", "event", "patch_status"]
    marker_patch, final_patch = journal.entries[0][1], journal.entries[3][1]
    assert marker_patch["createPending"]["uniqueName"] == "ns:r"
    assert final_patch["createPending"] is None and final_patch["sid"] == "RM1"
    assert journal.entries[2] == ("event", "Created")
    assert outcome.status.sid == "RM1" and outcome.twilio_calls == 1
    assert not outcome.retry and not outcome.stalled and not outcome.observed


async def test_a_room_that_names_its_object_costs_one_status_write() -> None:
    journal = Journal()
    created: list[str] = []
    inp = make_input({}, uid="u-1", defaults=NAMED)
    api, writer = FakeApi(journal, create_room=room()), FakeWriter(journal)
    outcome = await ReconcileRun(inp, {}, api, writer, on_create=created.append).execute()
    assert names(journal) == ["create_room", "event", "patch_status"]  # no marker first
    assert created == ["ns:r"] and not outcome.create_in_doubt


async def test_a_create_whose_answer_was_lost_stays_in_doubt() -> None:
    lost = RetryableError("timeout", operation="CreateRoom", maybe_applied=True)
    refused = RetryableError("503", operation="CreateRoom", maybe_applied=False)
    for error, doubt in ((lost, True), (refused, False)):
        journal = Journal()
        inp = make_input({}, uid="u-1", defaults=NAMED)
        outcome = await ReconcileRun(
            inp, {}, FakeApi(journal, create_room=error), FakeWriter(journal)
        ).execute()
        assert outcome.retry and outcome.status.create_pending is None
        assert (outcome.create_in_doubt, outcome.doubt_name) == ((True, "ns:r") if doubt else (False, None))


async def test_unchanged_status_is_not_written_again() -> None:
    journal = Journal()
    first = await ReconcileRun(
        make_input({}), {}, FakeApi(journal, create_room=room()), FakeWriter(journal)
    ).execute()
    journal.entries.clear()
    settled = make_input({}, first.status.to_dict())
    settled = PlanInput(**{**settled.__dict__, "now": NOW})
    outcome = await ReconcileRun(settled, {}, FakeApi(journal), FakeWriter(journal)).execute()
    assert names(journal) == []  # same conditions, same lastSyncedAt: nothing to patch
    assert outcome.twilio_calls == 0


async def test_observation_is_reported() -> None:
    journal = Journal()
    status = {"sid": "RM1", "roomStatus": "in-progress"}
    inp = make_input({}, status, observe=True)
    outcome = await ReconcileRun(inp, {}, FakeApi(journal, fetch_room=room()), FakeWriter(journal)).execute()
    assert outcome.observed and outcome.twilio_calls == 1
    assert names(journal) == ["fetch_room", "patch_status"]


async def test_a_retryable_failure_writes_the_status_and_asks_for_a_retry() -> None:
    journal = Journal()
    error = RetryableError("timeout", operation="CreateRoom", maybe_applied=True, retry_after=2.0)
    outcome = await ReconcileRun(
        make_input({}), {}, FakeApi(journal, create_room=error), FakeWriter(journal)
    ).execute()
    assert outcome.retry and outcome.retry_after == 2.0 and not outcome.stalled
    assert outcome.error_reason == "TwilioUnavailable" and "timeout" in (outcome.error or "")
    assert names(journal) == ["patch_status", "create_room", "patch_status"]
    assert outcome.status.create_pending is not None


async def test_a_rejected_create_stalls_and_posts_a_warning() -> None:
    journal = Journal()
    error = TerminalError("AudioOnly not supported", operation="CreateRoom", status=400, code=53124)
    outcome = await ReconcileRun(
        make_input({}), {}, FakeApi(journal, create_room=error), FakeWriter(journal)
    ).execute()
    assert outcome.stalled and not outcome.retry
    assert names(journal) == ["patch_status", "create_room", "event", "patch_status"]
    assert journal.entries[2] == ("event", "InvalidSpec")


async def test_disconnects_are_noted_only_for_participants_still_there() -> None:
    journal = Journal()
    spec = {"moderation": {"blockedIdentities": ["eve", "zed"]}}
    status = {"sid": "RM1", "roomStatus": "in-progress", "participants": {"connected": 2, "peak": 2}}
    api = FakeApi(journal, list_participants=[participant("eve"), participant("zed")], gone=("zed",))
    outcome = await ReconcileRun(make_input(spec, status), {}, api, FakeWriter(journal)).execute()
    assert names(journal) == [
        "list_participants",
        "disconnect_participant",
        "disconnect_participant",
        "event",
        "patch_status",
    ]
    assert outcome.twilio_calls == 2  # one listing, one disconnect round
    assert outcome.status.participants is not None and outcome.status.participants.connected == 1


async def test_changed_recording_rules_are_sent_noted_and_recorded_in_one_patch() -> None:
    journal = Journal()
    rules = [{"type": "include", "kind": "audio"}]
    spec = {"recording": {"rules": rules}}
    status = {"sid": "RM1", "roomStatus": "in-progress", "recordingRules": [{"type": "exclude", "all": True}]}
    outcome = await ReconcileRun(
        make_input(spec, status), {}, FakeApi(journal), FakeWriter(journal)
    ).execute()
    assert journal.entries[:2] == [
        ("update_recording_rules", ("RM1", rules)),
        ("event", "RecordingRulesUpdated"),
    ]
    assert names(journal)[2:] == ["patch_status"]
    assert journal.entries[2][1]["recordingRules"] == rules
    assert outcome.twilio_calls == 1 and not outcome.retry

    journal.entries.clear()
    again = await ReconcileRun(
        make_input(spec, outcome.status.to_dict()), {}, FakeApi(journal), FakeWriter(journal)
    ).execute()
    assert "update_recording_rules" not in names(journal) and again.twilio_calls == 0


async def test_composition_needs_no_twilio_credentials() -> None:
    journal = Journal()
    spec = {"recording": {"compose": {}}}
    status = {"sid": "RM1", "roomStatus": "completed"}
    outcome = await ReconcileRun(make_input(spec, status), {}, None, FakeWriter(journal)).execute()
    assert names(journal) == ["create_composition", "event", "patch_status"]
    assert outcome.status.recording_composition == "r-recording"


async def test_twilio_actions_without_credentials_are_a_bug() -> None:
    journal = Journal()
    with pytest.raises(RuntimeError, match="no Twilio credentials"):
        await ReconcileRun(make_input({}), {}, None, FakeWriter(journal)).execute()


def test_merge_patch() -> None:
    old = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": True}
    new = {"a": 1, "b": {"c": 4}, "e": [1], "f": None}
    assert merge_patch(old, new) == {"b": {"c": 4, "d": None}, "e": [1], "f": None, "gone": None}
    assert merge_patch(old, old) == {}
    assert merge_patch({"x": {"y": 1}}, {"x": 5}) == {"x": 5}
