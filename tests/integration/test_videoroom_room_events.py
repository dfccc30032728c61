"""Room status callbacks and moderation, end to end: signed callbacks from the emulator reach the operator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from operator_harness import OperatorHarness, condition
from prometheus_client import REGISTRY
from twilio.request_validator import RequestValidator


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path) as bed:
        yield bed


ROOM_EVENTS = "/twilio/room-events"


def in_progress(obj: dict[str, Any]) -> bool:
    ready = condition(obj, "Ready")
    return ready.get("status") == "True" and ready.get("reason") == "InProgress"


def participant_status(harness: OperatorHarness, room_sid: str, identity: str) -> list[str]:
    assert harness.emulator is not None
    room = harness.emulator.state.rooms[room_sid]
    return [p.status for p in room.participants.values() if p.identity == identity]


async def test_participant_counts_come_from_callbacks_without_polling(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "counts", {})
    obj = await harness.wait_room(ns, "counts", in_progress)
    sid = obj["status"]["sid"]
    seconds_before = (
        REGISTRY.get_sample_value("twilio_video_operator_participant_seconds_total", {"room_type": "group"})
        or 0.0
    )
    await harness.reset_counts()

    await harness.join(sid, "alice")
    bob = await harness.join(sid, "bob")
    await harness.wait_room(
        ns, "counts", lambda o: o["status"]["participants"] == {"connected": 2, "peak": 2}
    )
    await harness.advance_clock(30)
    await harness.leave(sid, bob)
    obj = await harness.wait_room(ns, "counts", lambda o: o["status"]["participants"]["connected"] == 1)
    assert obj["status"]["participants"]["peak"] == 2
    await harness.settled()
    assert await harness.twilio_calls() == 0
    seconds_after = REGISTRY.get_sample_value(
        "twilio_video_operator_participant_seconds_total", {"room_type": "group"}
    )
    assert seconds_after is not None and seconds_after - seconds_before >= 30


async def test_blocked_identity_is_disconnected_when_it_joins(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "mod", {"moderation": {"blockedIdentities": ["mallory"]}})
    obj = await harness.wait_room(ns, "mod", in_progress)
    sid = obj["status"]["sid"]
    await harness.reset_counts()

    await harness.join(sid, "alice")
    await harness.join(sid, "mallory")
    await harness.settled()
    assert participant_status(harness, sid, "mallory") == ["disconnected"]
    assert participant_status(harness, sid, "alice") == ["connected"]
    await harness.settled()
    obj = await harness.wait_room(ns, "mod", lambda o: o["status"]["participants"]["connected"] == 1)
    counts = await harness.twilio_counts()
    assert counts == {"UpdateRoomParticipant": 1}  # no listing: the callback named the participant
    removed = [e for e in await harness.events(ns, "mod") if e["reason"] == "ParticipantRemoved"]
    assert len(removed) == 1 and "'mallory'" in removed[0]["message"] and sid in removed[0]["message"]


async def test_changed_block_list_removes_a_connected_participant(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "mod2", {})
    obj = await harness.wait_room(ns, "mod2", in_progress)
    sid = obj["status"]["sid"]
    await harness.join(sid, "alice")
    await harness.join(sid, "carol")
    await harness.settled()
    await harness.reset_counts()

    await harness.patch_room(ns, "mod2", {"spec": {"moderation": {"blockedIdentities": ["carol", "dave"]}}})
    await harness.wait_room(ns, "mod2", lambda o: o["status"]["observedGeneration"] == 2 and in_progress(o))
    await harness.settled()
    assert participant_status(harness, sid, "carol") == ["disconnected"]
    assert participant_status(harness, sid, "alice") == ["connected"]
    assert await harness.twilio_counts() == {"ListRoomParticipant": 1, "UpdateRoomParticipant": 1}
    removed = [e for e in await harness.events(ns, "mod2") if e["reason"] == "ParticipantRemoved"]
    assert [("'carol'" in e["message"]) for e in removed] == [True]
    text = str(await harness.events(ns))
    assert harness.emulator is not None and harness.emulator.credentials["api_secret"] not in text


async def _post(
    harness: OperatorHarness,
    params: dict[str, str] | None = None,
    *,
    signature: str | None = None,
    body: bytes | None = None,
    method: str = "POST",
    content_type: str = "application/x-www-form-urlencoded",
) -> int:
    assert harness.http is not None and harness.settings is not None
    data = body if body is not None else urlencode(params or {}).encode()
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    url = harness.settings.PUBLIC_BASE_URL + ROOM_EVENTS
    async with harness.http.request(method, url, data=data, headers=headers) as response:
        return response.status


def sign(harness: OperatorHarness, params: dict[str, str]) -> str:
    assert harness.emulator is not None and harness.settings is not None
    validator = RequestValidator(harness.emulator.credentials["auth_token"])
    return str(validator.compute_signature(harness.settings.PUBLIC_BASE_URL + ROOM_EVENTS, params))


async def test_forged_and_replayed_callbacks_change_nothing(harness: OperatorHarness) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "guard", {})
    obj = await harness.wait_room(ns, "guard", in_progress)
    sid = obj["status"]["sid"]
    await harness.join(sid, "alice")
    await harness.wait_room(ns, "guard", lambda o: o["status"]["participants"]["connected"] == 1)
    delivered = [d for d in await harness.callbacks() if d["event"] == "participant-connected"]
    original = dict(delivered[-1]["params"])
    before = await harness.get_room(ns, "guard")
    assert before is not None

    # A replay of the genuine, validly signed callback is accepted (204) and dropped as a duplicate.
    assert await _post(harness, original, signature=sign(harness, original)) == 204
    # The same event with a new sequence number needs a new signature: the old one is refused.
    forged = {**original, "SequenceNumber": "999", "ParticipantSid": "PA" + "0" * 32}
    assert await _post(harness, forged, signature=sign(harness, original)) == 403
    assert await _post(harness, forged) == 403  # no signature at all
    ended = {**original, "StatusCallbackEvent": "room-ended", "RoomStatus": "completed"}
    assert await _post(harness, ended, signature="bm90IGEgc2lnbmF0dXJl") == 403
    other_account = {**original, "AccountSid": "AC" + "1" * 32}
    assert await _post(harness, other_account, signature=sign(harness, other_account)) == 403
    # Requests that are not callbacks at all.
    assert await _post(harness, original, method="GET") == 405
    assert await _post(harness, original, method="PUT") == 405
    assert await _post(harness, body=b"A" * (64 * 1024 + 1), signature="x") == 413
    assert await _post(harness, original, content_type="application/json", signature="x") == 400
    missing = {key: value for key, value in original.items() if key != "RoomSid"}
    assert await _post(harness, missing, signature=sign(harness, missing)) == 400
    # A genuine callback about a room this operator does not manage is accepted and ignored.
    stranger = {**original, "RoomSid": "RM" + "f" * 32, "SequenceNumber": "1000"}
    assert await _post(harness, stranger, signature=sign(harness, stranger)) == 204

    await harness.settled()
    await asyncio.sleep(0.2)
    after = await harness.get_room(ns, "guard")
    assert after is not None and after["status"] == before["status"]
    rejected = REGISTRY.get_sample_value(
        "twilio_video_operator_webhooks_rejected_total", {"endpoint": "room-events", "reason": "signature"}
    )
    assert rejected is not None and rejected >= 3


async def test_health_and_metrics_share_the_server(harness: OperatorHarness) -> None:
    assert harness.http is not None and harness.settings is not None
    async with harness.http.get(harness.settings.PUBLIC_BASE_URL + "/metrics") as response:
        text = await response.text()
    assert "twilio_video_operator_reconcile_total" in text
    async with harness.http.get(harness.settings.PUBLIC_BASE_URL + "/healthz") as response:
        assert response.status == 200


async def test_routine_deletion_logs_no_error_when_twilio_reports_the_end_late(
    harness: OperatorHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting a live room completes it; Twilio's room-ended (and the participants' last events) arrive
    after the object is gone. That is expected: INFO and a counter, never an ERROR with a traceback."""
    ns = await harness.namespace()
    await harness.create_room(ns, "routine", {})
    obj = await harness.wait_room(ns, "routine", in_progress)
    await harness.join(obj["status"]["sid"], "alice")
    await harness.settled()
    late = "twilio_video_operator_webhooks_late_total"
    before = REGISTRY.get_sample_value(late, {"endpoint": "room-events"}) or 0.0
    caplog.clear()

    await harness.delete_room(ns, "routine")
    await harness.wait_gone(ns, "routine")
    await harness.settled()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert (REGISTRY.get_sample_value(late, {"endpoint": "room-events"}) or 0.0) > before
