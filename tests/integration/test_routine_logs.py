"""Routine work logs no ERROR: rooms created, joined, completed and deleted (some while live, so Twilio's
last callbacks arrive after the object is gone), with the operator's and kopf's log records captured from
every logger and thread."""

from __future__ import annotations

import logging
from pathlib import Path

import kopf
import pytest
from operator_harness import OperatorHarness, condition

from twilio_video_operator.handlers.object_conditions import register_handlers as register_conditions


def in_progress(room: dict[str, object]) -> bool:
    status = room.get("status")
    return isinstance(status, dict) and status.get("roomStatus") == "in-progress"


def conditions_registrar(registry: kopf.OperatorRegistry, _: OperatorHarness) -> None:
    register_conditions(registry)


async def test_create_join_complete_and_delete_log_no_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with OperatorHarness(tmp_path, registrars=[conditions_registrar]) as h:
        ns = await h.namespace()
        for name in ("standup", "retro", "review"):
            await h.create_room(ns, name, {"maxParticipants": 4})
        for name in ("standup", "retro", "review"):
            await h.wait_room(ns, name, in_progress)
        participants = {
            name: [await h.join(f"{ns}:{name}", who) for who in ("alice", "bob")]
            for name in ("standup", "retro")
        }
        await h.advance_clock(90)
        await h.leave(f"{ns}:standup", participants["standup"][0])
        await h.settled()

        # Completed by spec, then deleted once ended.
        await h.patch_room(ns, "standup", {"spec": {"state": "Completed"}})
        await h.wait_room(ns, "standup", lambda room: condition(room, "Ready").get("reason") == "Completed")
        await h.delete_room(ns, "standup")
        # Deleted while live, participants still in: Twilio's room-ended and participant-disconnected
        # callbacks arrive after the objects are gone.
        for name in ("retro", "review"):
            await h.delete_room(ns, name)
        for name in ("standup", "retro", "review"):
            await h.wait_gone(ns, name)
        deliveries = await h.callbacks()
        await h.settled()

    events = [delivery.get("event") or delivery.get("statusCallbackEvent") for delivery in deliveries]
    assert "room-ended" in str(events)
    late = [
        record for record in caplog.records if "arrived after the object was deleted" in record.getMessage()
    ]
    errors = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]
    assert errors == []
    assert late, "the late callbacks are logged at INFO"
    assert all(record.levelno == logging.INFO for record in late)
