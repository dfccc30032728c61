"""VideoRoom end to end: the real operator against the embedded Kubernetes API and the Twilio emulator."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorHarness, condition, eventually

from kube_backends import KubeBackend
from twilio_video_operator.kube import COMPOSITIONS, SECRETS
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi


@pytest.fixture
async def harness(tmp_path: Path, kube_backend: KubeBackend) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path, backend=kube_backend) as bed:
        yield bed


def ready_reason(obj: dict[str, Any]) -> str | None:
    found = condition(obj, "Ready")
    return f"{found.get('status')}/{found.get('reason')}" if found else None


def in_progress(obj: dict[str, Any]) -> bool:
    return ready_reason(obj) == "True/InProgress"


async def event_reasons(harness: OperatorHarness, namespace: str, name: str) -> list[str]:
    return [event["reason"] for event in await harness.events(namespace, name)]


@pytest.mark.both_backends
async def test_create_passes_every_field_to_twilio(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
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
    await harness.create_room(ns, "all-fields", spec)
    obj = await harness.wait_room(ns, "all-fields", in_progress)

    rooms = harness.twilio_rooms(f"{ns}:all-fields")
    assert len(rooms) == 1
    twilio = rooms[0]
    assert (twilio.type, twilio.max_participants, twilio.max_participant_duration) == ("group-small", 4, 3600)
    assert (twilio.empty_room_timeout, twilio.unused_room_timeout) == (7, 9)
    assert (twilio.media_region, twilio.video_codecs, twilio.audio_only) == ("ie1", ["H264"], True)
    assert twilio.record_participants_on_connect is True
    assert twilio.recording_rules == [{"type": "include", "kind": "audio"}]
    uid = obj["metadata"]["uid"]  # the room names its object: how an interrupted create's room is known
    base = harness.settings.PUBLIC_BASE_URL  # type: ignore[union-attr]
    callback = f"{base}/twilio/room-events?namespace={ns}&name=all-fields&uid={uid}"
    assert twilio.status_callback == callback

    status = obj["status"]
    assert status["sid"] == twilio.sid and status["uniqueName"] == f"{ns}:all-fields"
    assert status["roomStatus"] == "in-progress" and status["type"] == "group-small"
    assert status["sessions"] == {"count": 1, "recentSids": [twilio.sid]}
    assert status["observedGeneration"] == 1 and "createPending" not in status
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])
    assert condition(obj, "Stalled")["status"] == "False"
    assert await harness.twilio_counts() == {"CreateRoom": 1}
    assert await event_reasons(harness, ns, "all-fields") == ["Created"]


async def test_operator_defaults_and_default_unique_name(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "plain", {})
    obj = await harness.wait_room(ns, "plain", in_progress)
    [twilio] = harness.twilio_rooms(f"{ns}:plain")
    assert (twilio.type, twilio.max_participants) == ("group", 25)
    assert obj["status"]["roomSettings"]["maxParticipants"] == 25


async def test_adopts_an_existing_room_only_when_asked(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    foreign = await harness.create_twilio_room(f"{ns}:shared", UnusedRoomTimeout="60")
    await harness.reset_counts()

    await harness.create_room(ns, "shared", {})
    obj = await harness.wait_room(ns, "shared", lambda o: condition(o, "Stalled").get("status") == "True")
    assert condition(obj, "Stalled")["reason"] == "RoomExists"
    assert foreign in condition(obj, "Stalled")["message"]
    assert ready_reason(obj) == "False/RoomExists"
    assert len(harness.twilio_rooms(f"{ns}:shared")) == 1
    settled_calls = await harness.twilio_counts()
    assert settled_calls == {"CreateRoom": 1, "ListRoom": 1}

    # Resyncs and requests do not call Twilio again while the generation is the same.
    await harness.patch_room(
        ns, "shared", {"metadata": {"annotations": {"video.openclaw.io/reconcile-requested-at": "1"}}}
    )
    await harness.advance_clock(15 * 60)
    await asyncio.sleep(0.5)
    assert await harness.twilio_counts() == settled_calls
    assert "RoomExists" in await event_reasons(harness, ns, "shared")

    await harness.patch_room(ns, "shared", {"spec": {"adoptExisting": True, "unusedRoomTimeout": 60}})
    obj = await harness.wait_room(ns, "shared", in_progress)
    assert obj["status"]["sid"] == foreign and obj["status"]["observedGeneration"] == 2
    assert condition(obj, "Stalled")["status"] == "False"
    assert "Adopted" in await event_reasons(harness, ns, "shared")
    assert len(harness.twilio_rooms(f"{ns}:shared")) == 1


class StopAfterCreate:
    """Wraps the operator's Twilio operations: CreateRoom reaches Twilio, then the operator never returns."""

    def __init__(self, api: RoomApi, created: asyncio.Event) -> None:
        self._api = api
        self._created = created

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    async def create_room(self, **params: Any) -> Any:
        await self._api.create_room(**params)
        self._created.set()
        await asyncio.Event().wait()  # the process "dies" here: cancelled by the crash below


@pytest.mark.both_backends
async def test_crash_between_create_and_status_write_leaves_one_room(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    created = asyncio.Event()
    harness.api_hook = lambda api: StopAfterCreate(api, created)  # type: ignore[assignment,return-value]
    await harness.create_room(ns, "crash", {})
    async with asyncio.timeout(5):
        await created.wait()
    await harness.stop_operator(crash=True)
    harness.api_hook = None
    obj = await harness.get_room(ns, "crash")
    assert obj is not None and not obj.get("status")  # nothing reached the status: no marker either
    assert len(harness.twilio_rooms(f"{ns}:crash")) == 1

    await harness.reset_counts()
    await harness.start_operator()
    obj = await harness.wait_room(ns, "crash", in_progress)
    rooms = harness.twilio_rooms(f"{ns}:crash")
    assert len(rooms) == 1 and obj["status"]["sid"] == rooms[0].sid
    assert "createPending" not in obj["status"]
    counts = await harness.twilio_counts()
    # The create is answered 53113 (the name is taken); the room found by name names this object's uid.
    assert counts == {"CreateRoom": 1, "ListRoom": 1}
    assert "Created" in await event_reasons(harness, ns, "crash")


@pytest.mark.both_backends
async def test_complete_by_spec_costs_two_twilio_calls(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.reset_counts()
    await harness.create_room(ns, "done", {})
    obj = await harness.wait_room(ns, "done", in_progress)
    await harness.patch_room(ns, "done", {"spec": {"state": "Completed"}})
    obj = await harness.wait_room(ns, "done", lambda o: o["status"].get("roomStatus") == "completed")
    await harness.settled()
    obj = await harness.wait_room(ns, "done", lambda o: ready_reason(o) == "True/Completed")
    [twilio] = harness.twilio_rooms(f"{ns}:done")
    assert twilio.status == "completed" and obj["status"]["sid"] == twilio.sid
    assert obj["status"]["endedAt"] and obj["status"]["durationSeconds"] is not None
    counts = await harness.twilio_counts()
    assert counts == {"CreateRoom": 1, "UpdateRoom": 1}  # create + complete; no lookup needed
    assert sorted(await event_reasons(harness, ns, "done")) == ["Completed", "Created"]  # listed by name


async def test_twilio_timeout_without_keep_alive_is_final(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "unused", {"unusedRoomTimeout": 1})
    first = await harness.wait_room(ns, "unused", in_progress)
    await harness.reset_counts()
    await harness.advance_clock(90)
    obj = await harness.wait_room(ns, "unused", lambda o: o["status"].get("roomStatus") == "completed")
    await harness.settled()
    obj = await harness.wait_room(ns, "unused", lambda o: ready_reason(o) == "True/Completed")
    assert obj["status"]["sid"] == first["status"]["sid"]
    assert "keepAlive is off" in condition(obj, "Ready")["message"]
    assert obj["status"]["participants"]["connected"] == 0
    assert len(harness.twilio_rooms(f"{ns}:unused")) == 1
    # Learned from the room-ended callback, confirmed with a single FetchRoom; nothing polls.
    assert await harness.twilio_calls() == 1


async def test_twilio_timeout_with_keep_alive_opens_a_new_session(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "alive", {"unusedRoomTimeout": 1, "keepAlive": True})
    first = await harness.wait_room(ns, "alive", in_progress)
    await harness.advance_clock(90)
    obj = await harness.wait_room(
        ns, "alive", lambda o: o["status"].get("sid") != first["status"]["sid"] and in_progress(o)
    )
    sessions = obj["status"]["sessions"]
    assert sessions["count"] == 2 and sessions["recentSids"] == [first["status"]["sid"], obj["status"]["sid"]]
    rooms = harness.twilio_rooms(f"{ns}:alive")
    assert sorted(room.status for room in rooms) == ["completed", "in-progress"]


async def test_schedule_in_the_future(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    now = harness.clock()
    start, end = now + timedelta(hours=1), now + timedelta(hours=2)
    schedule = {"startTime": _rfc3339(start), "endTime": _rfc3339(end), "provisionAhead": "10m"}
    await harness.create_room(ns, "later", {"schedule": schedule, "unusedRoomTimeout": 60})
    obj = await harness.wait_room(ns, "later", lambda o: ready_reason(o) == "True/Scheduled")
    assert obj["status"]["roomStatus"] == "Scheduled" and not harness.twilio_rooms(f"{ns}:later")

    await harness.advance_clock(45 * 60)
    await asyncio.sleep(0.3)
    assert not harness.twilio_rooms(f"{ns}:later")  # still 5 minutes before provisioning

    await harness.advance_clock(6 * 60)  # now 9 minutes before startTime: inside provisionAhead
    obj = await harness.wait_room(ns, "later", in_progress)
    await harness.join(f"{ns}:later", "host")  # keeps the room from ending on its own

    await harness.advance_clock(70 * 60)  # past endTime
    obj = await harness.wait_room(ns, "later", lambda o: ready_reason(o) == "True/Completed")
    assert "the schedule ended" in condition(obj, "Ready")["message"]
    [twilio] = harness.twilio_rooms(f"{ns}:later")
    assert twilio.status == "completed"


def _rfc3339(moment: Any) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.mark.both_backends
async def test_delete_completes_the_room(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "bye", {})
    obj = await harness.wait_room(ns, "bye", in_progress)
    assert obj["metadata"]["finalizers"] == ["video.openclaw.io/finalizer"]
    await harness.delete_room(ns, "bye")
    await harness.wait_gone(ns, "bye")
    [twilio] = harness.twilio_rooms(f"{ns}:bye")
    assert twilio.status == "completed"


async def test_delete_with_retain_makes_no_twilio_call(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "keep", {"deletionPolicy": "Retain", "unusedRoomTimeout": 60})
    await harness.wait_room(ns, "keep", in_progress)
    await harness.reset_counts()
    await harness.delete_room(ns, "keep")
    await harness.wait_gone(ns, "keep")
    [twilio] = harness.twilio_rooms(f"{ns}:keep")
    assert twilio.status == "in-progress"
    assert await harness.twilio_calls() == 0


async def test_delete_does_not_hang_when_the_room_is_already_gone(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "gone", {})
    obj = await harness.wait_room(ns, "gone", in_progress)
    await harness.stop_operator()
    # Twilio forgets the room while the operator is away (the status still says in-progress).
    assert harness.emulator is not None
    harness.emulator.state.rooms.pop(obj["status"]["sid"])
    harness.emulator.state.room_names.pop(f"{ns}:gone")
    await harness.start_operator()
    await harness.delete_room(ns, "gone")
    await harness.wait_gone(ns, "gone")


async def test_invalid_spec_stalls_without_calling_twilio(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.reset_counts()
    schedule = {"startTime": "2030-01-01T10:00:00Z", "endTime": "2030-01-01T09:00:00Z"}
    await harness.create_room(ns, "bad", {"schedule": schedule})
    obj = await harness.wait_room(ns, "bad", lambda o: condition(o, "Stalled").get("status") == "True")
    assert condition(obj, "Stalled")["reason"] == "InvalidSpec"
    assert "endTime must be after" in condition(obj, "Stalled")["message"]
    assert obj["status"]["observedGeneration"] == 1
    await asyncio.sleep(0.3)
    assert await harness.twilio_calls() == 0

    await harness.patch_room(ns, "bad", {"spec": {"schedule": None}})
    await harness.wait_room(ns, "bad", in_progress)


async def test_paused_object_is_left_alone(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    paused = {"video.openclaw.io/paused": "true"}
    await harness.create_room(ns, "paused", {}, annotations=paused)
    obj = await harness.wait_room(ns, "paused", lambda o: condition(o, "Synced").get("reason") == "Paused")
    await asyncio.sleep(0.3)
    assert await harness.twilio_calls() == 0 and "sid" not in obj["status"]

    await harness.patch_room(ns, "paused", {"metadata": {"annotations": {"video.openclaw.io/paused": None}}})
    await harness.wait_room(ns, "paused", in_progress)


async def test_idle_room_costs_nothing_between_resyncs(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "idle", {"unusedRoomTimeout": 60})
    await harness.wait_room(ns, "idle", in_progress)
    await harness.reset_counts()
    await harness.advance_clock(8 * 60)  # below the shortest jittered resync (9 minutes)
    await asyncio.sleep(0.5)
    assert await harness.twilio_calls() == 0

    await harness.advance_clock(4 * 60)  # past the longest one (11 minutes)
    assert await eventually(lambda: _fetches(harness), wait=5) == 1
    await asyncio.sleep(0.3)
    assert await harness.twilio_counts() == {"FetchRoom": 1}

    annotations = {"video.openclaw.io/reconcile-requested-at": "now"}
    await harness.patch_room(ns, "idle", {"metadata": {"annotations": annotations}})
    await eventually(lambda: _fetches(harness, 2), wait=5)
    obj = await harness.wait_room(ns, "idle", lambda o: o["status"].get("lastHandledReconcileAt") == "now")
    assert in_progress(obj)


async def _fetches(harness: OperatorHarness, at_least: int = 1) -> int:
    count = (await harness.twilio_counts()).get("FetchRoom", 0)
    return count if count >= at_least else 0


async def test_tenant_credentials_from_a_secret(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    creds = await harness.subaccount()
    await harness.create_room(ns, "tenant", {"credentialsRef": {"name": "twilio"}})
    obj = await harness.wait_room(ns, "tenant", lambda o: condition(o, "Stalled").get("status") == "True")
    assert condition(obj, "Stalled")["reason"] == "CredentialsNotFound"

    data = {
        "TWILIO_ACCOUNT_SID": creds["account_sid"],
        "TWILIO_API_KEY": creds["api_key"],
        "TWILIO_API_SECRET": creds["api_secret"],
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "twilio", "namespace": ns},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }
    await harness.kube_client.create(SECRETS, ns, secret)
    await harness.advance_clock(12 * 60)  # the next resync reads the Secret again
    obj = await harness.wait_room(ns, "tenant", in_progress)
    assert obj["status"]["credentialsRevision"].startswith("twilio@")
    text = str(obj) + str(await harness.events(ns))
    assert creds["api_secret"] not in text and creds["auth_token"] not in text


def recorded_kinds(twilio_room: Any, participant_sid: str) -> list[str]:
    return sorted(r.type for r in twilio_room.recordings if r.participant_sid == participant_sid)


async def test_recording_rules_change_on_the_live_room(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    nothing = [{"type": "exclude", "all": True}]
    audio = [{"type": "include", "kind": "audio"}]
    await harness.create_room(ns, "rules", {"recording": {"rules": nothing}})
    obj = await harness.wait_room(ns, "rules", in_progress)
    assert obj["status"]["recordingRules"] == nothing
    [twilio] = harness.twilio_rooms(f"{ns}:rules")
    alice = await harness.join(twilio.sid, "alice")
    assert recorded_kinds(twilio, alice) == []

    await harness.reset_counts()
    await harness.patch_room(ns, "rules", {"spec": {"recording": {"rules": audio}}})
    obj = await harness.wait_room(ns, "rules", lambda o: o["status"].get("recordingRules") == audio)
    assert twilio.recording_rules == audio and twilio.sid == obj["status"]["sid"]
    assert await harness.twilio_counts() == {"UpdateRoomRecordingRule": 1}
    assert condition(obj, "Synced")["reason"] == "ReconcileSuccess"
    assert "RecordingRulesUpdated" in await event_reasons(harness, ns, "rules")
    assert recorded_kinds(twilio, alice) == ["audio"]  # her published audio is recorded from now on
    bob = await harness.join(twilio.sid, "bob")
    assert recorded_kinds(twilio, bob) == ["audio"]

    # Applied once: a resync of the room fetches it and sends the rules no more.
    annotations = {"video.openclaw.io/reconcile-requested-at": "after-rules"}
    await harness.patch_room(ns, "rules", {"metadata": {"annotations": annotations}})
    await harness.wait_room(ns, "rules", lambda o: o["status"].get("lastHandledReconcileAt") == "after-rules")
    await asyncio.sleep(0.3)
    counts = await harness.twilio_counts()
    assert counts["UpdateRoomRecordingRule"] == 1 and set(counts) == {"UpdateRoomRecordingRule", "FetchRoom"}

    # Rules removed: the room goes back to what recording on connect (off) implies.
    await harness.patch_room(ns, "rules", {"spec": {"recording": {"rules": None}}})
    obj = await harness.wait_room(ns, "rules", lambda o: "recordingRules" not in o["status"])
    assert twilio.recording_rules == nothing
    carol = await harness.join(twilio.sid, "carol")
    assert recorded_kinds(twilio, carol) == []
    assert len(harness.twilio_rooms(f"{ns}:rules")) == 1 and twilio.status == "in-progress"


async def test_a_fixed_credentials_secret_is_picked_up_at_once(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    creds = await harness.subaccount()
    data = {"TWILIO_ACCOUNT_SID": creds["account_sid"], "TWILIO_API_KEY": creds["api_key"]}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "tenant", "namespace": ns, "labels": {"video.openclaw.io/credentials": "true"}},
        "data": _encoded(data),
    }
    await harness.kube_client.create(SECRETS, ns, secret)
    await harness.create_room(ns, "fixed", {"credentialsRef": {"name": "tenant"}})

    def stalled(reason: str) -> Any:
        return lambda o: (
            condition(o, "Stalled").get("status") == "True" and ready_reason(o) == f"False/{reason}"
        )

    await harness.wait_room(ns, "fixed", stalled("InvalidCredentials"))
    assert await harness.twilio_calls() == 0

    # The resync clock never moves in this test: each fix is noticed through the watch on the Secret.
    wrong = {**data, "TWILIO_API_SECRET": "not-the-secret"}
    await harness.kube_client.patch(SECRETS, ns, "tenant", {"data": _encoded(wrong)})
    await harness.wait_room(ns, "fixed", stalled("AuthFailed"), timeout=5)

    right = {**data, "TWILIO_API_SECRET": creds["api_secret"]}
    await harness.kube_client.patch(SECRETS, ns, "tenant", {"data": _encoded(right)})
    obj = await harness.wait_room(ns, "fixed", in_progress, timeout=5)
    assert condition(obj, "Stalled")["status"] == "False"
    assert len(harness.twilio_rooms(f"{ns}:fixed")) == 1
    text = str(obj) + str(await harness.events(ns))
    assert creds["api_secret"] not in text and "not-the-secret" not in text

    # The operator only ever lists and watches the labelled Secrets: the API server filters the others out.
    assert harness.kube is not None
    reads = [r for r in harness.kube.emulator if r.method == "GET" and r.url.path.endswith("/secrets")]
    assert reads and {r.params.get("labelSelector") for r in reads} == {"video.openclaw.io/credentials"}


def _encoded(data: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}


async def test_completed_room_with_compose_gets_an_owned_composition(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    spec = {"recording": {"participantsOnConnect": True, "compose": {"format": "webm"}}}
    created = await harness.create_room(ns, "rec", spec)
    await harness.wait_room(ns, "rec", in_progress)
    await harness.patch_room(ns, "rec", {"spec": {"state": "Completed"}})
    obj = await harness.wait_room(ns, "rec", lambda o: o["status"].get("recordingComposition"))
    composition = await harness.kube_client.get(COMPOSITIONS, ns, "rec-recording")
    assert composition is not None
    assert composition["spec"]["roomRef"] == {"name": "rec"} and composition["spec"]["format"] == "webm"
    [owner] = composition["metadata"]["ownerReferences"]
    assert owner["uid"] == created["metadata"]["uid"] and owner["kind"] == "VideoRoom"
    assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
    assert obj["status"]["recordingComposition"] == "rec-recording"
