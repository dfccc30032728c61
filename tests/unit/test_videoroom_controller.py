"""The VideoRoom controller with in-memory fakes for Kubernetes and Twilio: credentials, callbacks,
deletion, timers and backoff."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from twilio_video_operator.controllers.videoroom import Trigger, VideoRoomController
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import AuthError, NotFoundError, RetryableError, ThrottledError
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo
from twilio_video_operator.reconcilers.credentials import CredentialsConnector, SecretData
from twilio_video_operator.reconcilers.videoroom_desired import Defaults
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi, RunReport, merge_patch

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
OPERATOR = CredentialSet(account_sid="AC" + "0" * 32, api_key="SKop", api_secret=SecretStr("operator-secret"))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def apply_patch(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            apply_patch(target[key], value)
        else:
            target[key] = value


class FakeObjects:
    """Kubernetes: VideoRooms and Secrets by (namespace, name), Events and Compositions recorded."""

    def __init__(self) -> None:
        self.rooms: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], SecretData] = {}
        self.events: list[tuple[str, str, str]] = []
        self.patches = 0

    def add(self, name: str, spec: dict[str, Any], **metadata: Any) -> None:
        self.rooms[("ns", name)] = {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "VideoRoom",
            "metadata": {"name": name, "namespace": "ns", "generation": 1, "uid": f"uid-{name}", **metadata},
            "spec": spec,
            "status": {},
        }

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.rooms[("ns", name)]["status"])

    async def get_room(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.rooms.get((namespace, name))
        return None if found is None else {**found, "status": dict(found["status"])}

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        return self.secrets.get((namespace, name))

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.patches += 1
        apply_patch(self.rooms[(namespace, name)]["status"], patch)

    async def post_event(
        self, body: Mapping[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        self.events.append((type, reason, message))

    async def create_composition(self, owner: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> bool:
        return True


def room_info(sid: str, unique_name: str, status: str = "in-progress") -> RoomInfo:
    return RoomInfo(
        sid=sid,
        status=status,
        unique_name=unique_name,
        type="group",
        account_sid=OPERATOR.account_sid,
        max_participants=25,
        max_participant_duration=14400,
        date_created=T0,
        date_updated=T0,
        end_time=None if status == "in-progress" else T0,
        duration=None if status == "in-progress" else 5,
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


class FakeTwilio:
    """Rooms in memory, calls counted by name, errors injectable per operation."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomInfo] = {}
        self.calls: list[str] = []
        self.errors: dict[str, BaseException] = {}
        self.credentials: list[CredentialSet] = []
        self.refused_tokens: set[str] = set()

    def api(self, creds: CredentialSet) -> RoomApi:
        self.credentials.append(creds)
        return _Api(self, creds)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.errors:
            raise self.errors[name]


class _Api:
    def __init__(self, twilio: FakeTwilio, creds: CredentialSet | None = None) -> None:
        self.t = twilio
        self.creds = creds

    async def verify_auth_token(self) -> None:
        self.t._call("verify_auth_token")
        token = self.creds.auth_token if self.creds is not None else None
        if token is None or token.get_secret_value() in self.t.refused_tokens:
            raise AuthError("Authenticate", operation="ListKey", status=401)

    async def create_room(self, **params: Any) -> RoomInfo:
        self.t._call("create_room")
        room = room_info(f"RM{len(self.t.rooms) + 1}", params["unique_name"])
        self.t.rooms[room.sid] = room
        return room

    async def fetch_room(self, sid_or_unique_name: str) -> RoomInfo | None:
        self.t._call("fetch_room")
        return self.t.rooms.get(sid_or_unique_name)

    async def find_in_progress_room(self, unique_name: str) -> RoomInfo | None:
        self.t._call("find_in_progress_room")
        return next(
            (r for r in self.t.rooms.values() if r.unique_name == unique_name and r.in_progress), None
        )

    async def complete_room(self, sid: str) -> RoomInfo:
        self.t._call("complete_room")
        if sid not in self.t.rooms:
            raise NotFoundError("not found", operation="UpdateRoom", status=404)
        self.t.rooms[sid] = room_info(sid, self.t.rooms[sid].unique_name or "", "completed")
        return self.t.rooms[sid]

    async def list_participants(
        self, room_sid: str, status: str | None = "connected"
    ) -> list[ParticipantInfo]:
        self.t._call("list_participants")
        return []

    async def disconnect_participant(self, room_sid: str, sid_or_identity: str) -> ParticipantInfo | None:
        self.t._call("disconnect_participant")
        return ParticipantInfo(
            sid_or_identity, room_sid, None, sid_or_identity, "disconnected", None, None, None, 3
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def objects() -> FakeObjects:
    return FakeObjects()


@pytest.fixture
def twilio() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def remembered() -> list[CredentialSet]:
    return []


def connector(
    objects: FakeObjects,
    api_for: Callable[[CredentialSet], RoomApi],
    operator: CredentialSet,
    *,
    on_read: Callable[[CredentialSet], None] | None = None,
) -> CredentialsConnector:
    """The credentials connector over the fake Secrets, asking the fake Twilio about Auth Tokens."""

    async def check_token(creds: CredentialSet) -> None:
        await api_for(creds).verify_auth_token()

    return CredentialsConnector(operator, objects.read_secret, check_token, on_read=on_read)


@pytest.fixture
def controller(
    objects: FakeObjects, twilio: FakeTwilio, clock: Clock, remembered: list[CredentialSet]
) -> VideoRoomController:
    return VideoRoomController(
        objects,
        twilio.api,
        credentials=connector(objects, twilio.api, OPERATOR, on_read=remembered.append),
        defaults=Defaults(status_callback="https://op/twilio/room-events"),
        resync_interval=timedelta(minutes=10),
        clock=clock,
        rng=random.Random(1),
    )


async def until(check: Callable[[], bool]) -> None:
    """Let the controller's tasks run until ``check()`` holds (at most two seconds)."""
    async with asyncio.timeout(2):
        while True:
            if check():
                return
            await asyncio.sleep(0.01)


def callback(event: str, room_sid: str = "RM1", **params: str) -> dict[str, str]:
    return {"AccountSid": OPERATOR.account_sid, "RoomSid": room_sid, "StatusCallbackEvent": event, **params}


# ----------------------------------------------------------------------------------------- reconcile


async def test_reconcile_creates_indexes_and_then_costs_nothing(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {})
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and outcome.status.sid == "RM1"
    assert controller.knows_room("RM1") and twilio.calls == ["create_room"]
    again = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert again is not None and twilio.calls == ["create_room"]
    assert await controller.reconcile("ns", "missing", Trigger.TIMER) is None


async def test_observing_triggers_fetch_the_live_room(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {})
    await controller.reconcile("ns", "r", Trigger.TIMER)
    for trigger in (Trigger.RESUME, Trigger.RESYNC, Trigger.REQUEST):
        await controller.reconcile("ns", "r", trigger)
    await controller.reconcile("ns", "r", Trigger.TIMER)
    assert twilio.calls == ["create_room", "fetch_room", "fetch_room", "fetch_room"]


async def test_objects_being_deleted_are_not_reconciled(
    controller: VideoRoomController, objects: FakeObjects
) -> None:
    objects.add("r", {}, deletionTimestamp="2026-03-02T12:00:00Z")
    assert await controller.reconcile("ns", "r", Trigger.TIMER) is None


async def test_missing_secret_stalls_without_twilio_calls(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {"credentialsRef": {"name": "tenant"}})
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and outcome.stalled and twilio.calls == []
    assert "CredentialsNotFound" in str(objects.status("r")["conditions"])


async def test_secret_without_the_needed_keys_names_them_and_no_value(
    controller: VideoRoomController, objects: FakeObjects
) -> None:
    objects.add("r", {"credentialsRef": {"name": "tenant"}})
    objects.secrets[("ns", "tenant")] = SecretData(
        "7", {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_API_SECRET": "hush"}
    )
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and outcome.stalled
    text = str(objects.status("r"))
    assert "InvalidCredentials" in text and "TWILIO_API_KEY" in text and "hush" not in text


async def test_tenant_credentials_are_used_and_read_once_per_version(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio, remembered: list[CredentialSet]
) -> None:
    data = {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_API_KEY": "SKtenant",
        "TWILIO_API_SECRET": "tenant-secret",
        "TWILIO_AUTH_TOKEN": "tenant-token",
    }
    objects.secrets[("ns", "tenant")] = SecretData("7", data)
    objects.add("r", {"credentialsRef": {"name": "tenant"}})
    await controller.reconcile("ns", "r", Trigger.TIMER)
    await controller.reconcile("ns", "r", Trigger.RESYNC)
    assert {c.api_key for c in twilio.credentials} == {"SKtenant"}
    assert len(remembered) == 1 and remembered[0].auth_token is not None
    assert twilio.calls.count("verify_auth_token") == 1  # once per version of the Secret
    assert objects.status("r")["credentialsRevision"] == "tenant@7"
    objects.secrets[("ns", "tenant")] = SecretData("8", {**data, "TWILIO_API_SECRET": "rotated"})
    await controller.reconcile("ns", "r", Trigger.TIMER)
    assert len(remembered) == 2 and objects.status("r")["credentialsRevision"] == "tenant@8"
    assert twilio.calls.count("verify_auth_token") == 2


async def test_invalid_spec_needs_no_credentials(
    controller: VideoRoomController, objects: FakeObjects
) -> None:
    objects.add("r", {"maxParticipants": 500})
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and outcome.stalled
    assert "spec.maxParticipants" in str(objects.status("r")["conditions"])


async def test_garbage_status_is_ignored(controller: VideoRoomController, objects: FakeObjects) -> None:
    objects.add("r", {})
    objects.rooms[("ns", "r")]["status"] = {"participants": {"connected": -4}}
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and outcome.status.sid == "RM1"


async def test_retry_delay_backs_off_and_honours_retry_after(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {})
    twilio.errors["create_room"] = ThrottledError(
        "slow", operation="CreateRoom", status=429, retry_after=30.0
    )
    delays = []
    for _ in range(3):
        outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
        assert outcome is not None and outcome.retry
        delays.append(controller.retry_delay("ns", "r", outcome))
    assert all(delay >= 30.0 for delay in delays)
    twilio.errors["create_room"] = RetryableError("down", operation="CreateRoom", status=503)
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None
    assert 4.0 <= controller.retry_delay("ns", "r", outcome) <= 8.0  # fourth failure: 8s x [0.5, 1]
    twilio.errors.clear()
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and not outcome.retry
    assert controller.retry_delay("ns", "r", RunReport(status=outcome.status, retry=True)) <= 1.0


async def test_a_crashing_reconcile_is_counted_and_raised(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {})
    twilio.errors["create_room"] = ValueError("bug")
    with pytest.raises(ValueError, match="bug"):
        await controller.reconcile("ns", "r", Trigger.TIMER)


# ----------------------------------------------------------------------------------------- callbacks


async def live_room(
    controller: VideoRoomController, objects: FakeObjects, spec: dict[str, Any] | None = None
) -> None:
    objects.add("r", spec or {})
    await controller.reconcile("ns", "r", Trigger.TIMER)


async def test_callbacks_of_unknown_rooms_or_other_accounts_are_ignored(
    controller: VideoRoomController, objects: FakeObjects
) -> None:
    await live_room(controller, objects)
    before = objects.status("r")
    await controller.handle_callback(
        OPERATOR.account_sid, callback("participant-connected", room_sid="RM404")
    )
    await controller.handle_callback("AC" + "9" * 32, callback("participant-connected"))
    await controller.handle_callback(OPERATOR.account_sid, {"AccountSid": OPERATOR.account_sid})
    assert objects.status("r") == before


async def test_participant_callbacks_update_counts(
    controller: VideoRoomController, objects: FakeObjects
) -> None:
    await live_room(controller, objects)
    await controller.handle_callback(
        OPERATOR.account_sid, callback("participant-connected", ParticipantIdentity="a")
    )
    await controller.handle_callback(
        OPERATOR.account_sid, callback("participant-connected", ParticipantIdentity="b")
    )
    await controller.handle_callback(
        OPERATOR.account_sid, callback("participant-disconnected", ParticipantDuration="12")
    )
    assert objects.status("r")["participants"] == {"connected": 1, "peak": 2}


async def test_blocked_participant_is_disconnected_from_the_callback(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    await live_room(controller, objects, {"moderation": {"blockedIdentities": ["mallory"]}})
    params = callback("participant-connected", ParticipantIdentity="mallory", ParticipantSid="PA1")
    await controller.handle_callback(OPERATOR.account_sid, params)
    assert twilio.calls[-1] == "disconnect_participant"
    assert objects.events[-1][1] == "ParticipantRemoved" and "'mallory'" in objects.events[-1][2]


async def test_failed_disconnect_is_retried_by_a_reconcile(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    await live_room(controller, objects, {"moderation": {"blockedIdentities": ["mallory"]}})
    twilio.errors["disconnect_participant"] = RetryableError(
        "down", operation="UpdateRoomParticipant", status=503
    )
    params = callback("participant-connected", ParticipantIdentity="mallory")
    await controller.handle_callback(OPERATOR.account_sid, params)
    assert "moderationDigest" not in objects.status("r")
    assert controller.queue.timers.pop_due(clock.now) == [(("ns", "r"), False)]


async def test_room_ended_callback_is_confirmed_with_one_fetch_before_status_says_so(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    await live_room(controller, objects)
    controller.queue.timers.pop_due(clock.now + timedelta(hours=1))  # drop the resync set by the reconcile
    twilio.rooms["RM1"] = room_info("RM1", "ns:r", "completed")
    await controller.handle_callback(OPERATOR.account_sid, callback("room-ended", RoomStatus="completed"))
    assert objects.status("r")["roomStatus"] == "in-progress"
    assert controller.queue.timers.pop_due(clock.now) == [(("ns", "r"), True)]  # an observing reconcile
    twilio.calls.clear()
    await controller.reconcile("ns", "r", Trigger.RESYNC)
    assert twilio.calls == ["fetch_room"] and objects.status("r")["roomStatus"] == "completed"


async def test_a_room_ended_callback_twilio_contradicts_changes_nothing(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    """A signed room-ended for a live room (its account's Auth Token in the wrong hands) ends nothing."""
    await live_room(controller, objects)
    await controller.handle_callback(OPERATOR.account_sid, callback("room-ended", RoomStatus="completed"))
    await controller.reconcile("ns", "r", Trigger.RESYNC)
    assert objects.status("r")["roomStatus"] == "in-progress"
    assert twilio.rooms["RM1"].status == "in-progress"


async def test_paused_or_deleted_objects_ignore_callbacks(
    controller: VideoRoomController, objects: FakeObjects
) -> None:
    await live_room(controller, objects)
    objects.rooms[("ns", "r")]["metadata"]["annotations"] = {"video.openclaw.io/paused": "true"}
    await controller.handle_callback(OPERATOR.account_sid, callback("participant-connected"))
    assert objects.status("r")["participants"]["connected"] == 0
    del objects.rooms[("ns", "r")]
    await controller.handle_callback(OPERATOR.account_sid, callback("participant-connected"))
    assert not controller.knows_room("RM1")


# ------------------------------------------------------------------------------------------- deletion


async def test_finalize_completes_the_live_room(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    await live_room(controller, objects)
    body = await objects.get_room("ns", "r")
    assert body is not None
    released = await controller.finalize("ns", "r", body)
    assert released.retry_after is None and twilio.rooms["RM1"].status == "completed"
    assert objects.events[-1][1] == "Completed" and not controller.knows_room("RM1")


async def test_finalize_with_retain_or_paused_makes_no_call(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    await live_room(controller, objects, {"deletionPolicy": "Retain"})
    body = await objects.get_room("ns", "r")
    assert body is not None
    assert (await controller.finalize("ns", "r", body)).message == "retained"
    assert twilio.calls == ["create_room"] and objects.events[-1][1] == "Retained"
    body["metadata"]["annotations"] = {"video.openclaw.io/paused": "true"}
    del objects.rooms[("ns", "r")]
    assert "paused" in (await controller.finalize("ns", "r", body)).message


async def test_finalize_tolerates_a_room_twilio_forgot(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    await live_room(controller, objects)
    twilio.rooms.clear()
    body = await objects.get_room("ns", "r")
    assert body is not None
    assert (await controller.finalize("ns", "r", body)).retry_after is None


async def test_finalize_resolves_a_pending_create(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {})
    twilio.rooms["RM7"] = room_info("RM7", "ns:r")
    objects.rooms[("ns", "r")]["status"] = {
        "createPending": {"uniqueName": "ns:r", "requestedAt": "2026-03-02T11:59:00Z"}
    }
    body = await objects.get_room("ns", "r")
    assert body is not None
    await controller.finalize("ns", "r", body)
    assert (
        twilio.calls == ["find_in_progress_room", "complete_room"]
        and twilio.rooms["RM7"].status == "completed"
    )


async def test_finalize_without_a_room_or_with_broken_credentials_releases(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("none", {})
    body = await objects.get_room("ns", "none")
    assert body is not None and (await controller.finalize("ns", "none", body)).message == "no live room"
    objects.add("r", {"credentialsRef": {"name": "missing"}})
    objects.rooms[("ns", "r")]["status"] = {"sid": "RM1", "roomStatus": "in-progress"}
    body = await objects.get_room("ns", "r")
    assert body is not None
    released = await controller.finalize("ns", "r", body)
    assert released.retry_after is None and objects.events[-1][1] == "CompleteFailed"
    assert twilio.calls == []


async def test_finalize_waits_on_transient_errors_and_gives_up_on_auth_errors(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    await live_room(controller, objects)
    body = await objects.get_room("ns", "r")
    assert body is not None
    twilio.errors["complete_room"] = RetryableError(
        "down", operation="UpdateRoom", status=503, retry_after=4.0
    )
    assert (await controller.finalize("ns", "r", body)).retry_after == 4.0
    twilio.errors["complete_room"] = AuthError("no", operation="UpdateRoom", status=401)
    released = await controller.finalize("ns", "r", body)
    assert released.retry_after is None and objects.events[-1][1] == "CompleteFailed"


# --------------------------------------------------------------------------------------------- timers


async def test_resync_is_jittered_and_requeues_are_honoured(
    controller: VideoRoomController, objects: FakeObjects, clock: Clock
) -> None:
    objects.add("r", {})
    await controller.reconcile("ns", "r", Trigger.TIMER)
    resync = controller.queue.timers.resync_at(("ns", "r"))
    assert resync is not None and T0 + timedelta(minutes=9) <= resync <= T0 + timedelta(minutes=11)
    schedule = {"startTime": "2026-03-02T14:00:00Z", "endTime": "2026-03-02T15:00:00Z"}
    objects.add("later", {"schedule": schedule})
    await controller.reconcile("ns", "later", Trigger.TIMER)
    resyncs = controller.queue.timers.pop_due(T0 + timedelta(minutes=30))
    assert sorted(resyncs) == [(("ns", "later"), True), (("ns", "r"), True)]
    assert controller.queue.timers.next_due() == datetime(2026, 3, 2, 13, 55, tzinfo=UTC)  # startTime - 5m
    opening = datetime(2026, 3, 2, 13, 55, tzinfo=UTC)
    assert controller.queue.timers.pop_due(opening) == [(("ns", "later"), False)]


async def test_timer_loop_runs_resyncs_and_scheduled_wakeups(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    objects.add("r", {})
    await controller.reconcile("ns", "r", Trigger.TIMER)
    controller.start()
    try:
        clock.now += timedelta(minutes=12)
        controller.wake()
        await until(lambda: "fetch_room" in twilio.calls)
        controller.request("ns", "r")
        await until(lambda: objects.patches >= 3)
        assert twilio.calls == ["create_room", "fetch_room"]
        del objects.rooms[("ns", "r")]
        controller.request("ns", "r")
        await until(lambda: not controller.knows_room("RM1"))
    finally:
        await controller.stop()


async def test_timer_loop_retries_failures_with_backoff(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    objects.add("r", {})
    twilio.errors["create_room"] = RetryableError("down", operation="CreateRoom", status=503)
    controller.start()
    try:
        controller.request("ns", "r")
        await until(lambda: twilio.calls.count("create_room") >= 1)
        await asyncio.sleep(0.05)
        wake = controller.queue.timers.next_due()
        assert wake is not None and wake > clock.now  # a retry is scheduled, not run in a loop
        twilio.errors.clear()
        clock.now += timedelta(seconds=2)
        controller.wake()
        await until(lambda: "sid" in objects.status("r"))
    finally:
        await controller.stop()


def test_merge_patch_is_shared_with_callbacks() -> None:
    assert merge_patch({"a": 1}, {"a": 2}) == {"a": 2}


async def test_rooms_get_a_status_callback_only_when_their_callbacks_can_be_verified(
    objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    sent: list[Any] = []

    class Recording(_Api):
        async def create_room(self, **params: Any) -> RoomInfo:
            sent.append(params["status_callback"])
            return await super().create_room(**params)

    def api_for(creds: CredentialSet) -> RoomApi:
        return Recording(twilio, creds)

    def controller_with(operator: CredentialSet) -> VideoRoomController:
        defaults = Defaults(status_callback="https://op/twilio/room-events")
        credentials = connector(objects, api_for, operator)
        return VideoRoomController(objects, api_for, credentials=credentials, defaults=defaults, clock=clock)

    with_token = CredentialSet(account_sid=OPERATOR.account_sid, auth_token=SecretStr("token"))
    objects.add("a", {})
    await controller_with(with_token).reconcile("ns", "a", Trigger.TIMER)
    objects.add("b", {})
    await controller_with(OPERATOR).reconcile("ns", "b", Trigger.TIMER)  # API key only: no Auth Token
    data = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_API_KEY": "SK1", "TWILIO_API_SECRET": "s"}
    objects.secrets[("ns", "tenant")] = SecretData("1", data)
    objects.add("c", {"credentialsRef": {"name": "tenant"}})
    await controller_with(with_token).reconcile("ns", "c", Trigger.TIMER)
    objects.secrets[("ns", "tenant2")] = SecretData("1", {**data, "TWILIO_AUTH_TOKEN": "t"})
    objects.add("d", {"credentialsRef": {"name": "tenant2"}})
    await controller_with(with_token).reconcile("ns", "d", Trigger.TIMER)
    named = "https://op/twilio/room-events?namespace=ns&name={0}&uid=uid-{0}"  # the room names its object
    assert sent == [named.format("a"), None, None, named.format("d")]


class LosingApi(_Api):
    """Rooms keep the StatusCallback they were created with; ``lose`` answers the next create with a
    lost-answer error after the room was made."""

    lose = False

    async def create_room(self, **params: Any) -> RoomInfo:
        made = await super().create_room(**params)
        made = replace(made, status_callback=params.get("status_callback"))
        self.t.rooms[made.sid] = made
        if LosingApi.lose:
            LosingApi.lose = False
            raise RetryableError("timeout", operation="CreateRoom", maybe_applied=True)
        return made


def verifying_controller(objects: FakeObjects, twilio: FakeTwilio, clock: Clock) -> VideoRoomController:
    """A controller whose rooms name their object in their StatusCallback (the operator's token is set)."""

    def api_for(creds: CredentialSet) -> RoomApi:
        return LosingApi(twilio, creds)

    with_token = CredentialSet(account_sid=OPERATOR.account_sid, auth_token=SecretStr("token"))
    return VideoRoomController(
        objects,
        api_for,
        credentials=connector(objects, api_for, with_token),
        defaults=Defaults(status_callback="https://op/twilio/room-events"),
        clock=clock,
    )


async def test_a_create_whose_answer_was_lost_is_found_and_completed_when_no_longer_wanted(
    objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    controller = verifying_controller(objects, twilio, clock)
    objects.add("r", {})
    LosingApi.lose = True
    outcome = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert outcome is not None and outcome.retry and objects.patches == 1  # the failure, no marker
    assert "createPending" not in objects.status("r") and twilio.rooms["RM1"].in_progress

    objects.rooms[("ns", "r")]["spec"] = {"state": "Completed"}
    objects.rooms[("ns", "r")]["metadata"]["generation"] = 2
    twilio.calls.clear()
    await controller.reconcile("ns", "r", Trigger.TIMER)
    assert twilio.calls == ["find_in_progress_room", "complete_room"]
    assert twilio.rooms["RM1"].status == "completed" and objects.status("r")["sid"] == "RM1"

    twilio.calls.clear()
    await controller.reconcile("ns", "r", Trigger.RESYNC)
    assert twilio.calls == []  # the doubt is settled: nothing more to look up


async def test_after_a_restart_deletion_completes_the_room_an_interrupted_create_made(
    objects: FakeObjects, twilio: FakeTwilio, clock: Clock
) -> None:
    objects.add("r", {})
    objects.add("other", {"uniqueName": "ns:shared"})
    LosingApi.lose = True
    await verifying_controller(objects, twilio, clock).reconcile("ns", "r", Trigger.TIMER)
    LosingApi.lose = True
    await verifying_controller(objects, twilio, clock).reconcile("ns", "other", Trigger.TIMER)
    stranger = "https://op/twilio/room-events?namespace=ns&name=other&uid=uid-of-an-earlier-object"
    twilio.rooms["RM2"] = replace(twilio.rooms["RM2"], status_callback=stranger)  # not this object's

    restarted = verifying_controller(objects, twilio, clock)  # knows nothing of either create
    twilio.calls.clear()
    body = await objects.get_room("ns", "r")
    assert body is not None
    assert (await restarted.finalize("ns", "r", body)).message == "completed"
    assert twilio.calls == ["find_in_progress_room", "complete_room"]
    assert twilio.rooms["RM1"].status == "completed" and twilio.rooms["RM2"].in_progress

    body = await objects.get_room("ns", "other")
    assert body is not None
    twilio.calls.clear()
    await restarted.finalize("ns", "other", body)
    assert twilio.calls == ["find_in_progress_room"] and twilio.rooms["RM2"].in_progress  # not its uid


async def test_a_resume_is_skipped_after_a_successful_reconcile_only(
    controller: VideoRoomController, objects: FakeObjects, twilio: FakeTwilio
) -> None:
    objects.add("r", {})
    twilio.errors["create_room"] = RetryableError("503", operation="CreateRoom")
    failed = await controller.reconcile("ns", "r", Trigger.TIMER)
    assert failed is not None and failed.retry
    del twilio.errors["create_room"]
    resumed = await controller.reconcile("ns", "r", Trigger.RESUME, first=True)  # kopf's retry: it runs
    assert resumed is not None and resumed.status.sid is not None
    assert await controller.reconcile("ns", "r", Trigger.RESUME, first=True) is None
