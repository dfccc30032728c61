"""``twilio_video_operator_objects`` and the oldest-stall gauge follow the objects as the API server holds
them: a ready room, a paused one and a stalled one (its credentials Secret is missing), then the stalled one
deleted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import kopf
import pytest
from operator_harness import OperatorHarness, condition, eventually
from test_reconcile_metrics import Samples, scrape, total

from twilio_video_operator.handlers.object_conditions import register_handlers


def conditions_registrar(registry: kopf.OperatorRegistry, _: OperatorHarness) -> None:
    register_handlers(registry)


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path, registrars=[conditions_registrar]) as harness:
        yield harness


def objects(samples: Samples, condition: str, status: str) -> float:
    return total(
        samples, "twilio_video_operator_objects", kind="VideoRoom", condition=condition, status=status
    )


async def test_rooms_are_counted_by_condition_and_the_oldest_stall_is_exported(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    await bed.create_room(ns, "ready", {})
    await bed.create_room(ns, "paused", {}, annotations={"video.openclaw.io/paused": "true"})
    before = time.time()
    await bed.create_room(ns, "stalled", {"credentialsRef": {"name": "missing"}})
    await bed.wait_room(ns, "ready", lambda room: condition(room, "Ready").get("status") == "True")
    stalled = await bed.wait_room(
        ns, "stalled", lambda room: condition(room, "Stalled").get("status") == "True"
    )
    since = condition(stalled, "Stalled")["lastTransitionTime"]

    async def counted() -> Samples | None:
        samples = await scrape(bed)
        return (
            samples
            if objects(samples, "Stalled", "True") == 1 and objects(samples, "Ready", "True") == 1
            else None
        )

    samples = await eventually(counted)
    assert objects(samples, "Paused", "True") == 1
    assert objects(samples, "Paused", "False") == 2
    assert sum(objects(samples, "Ready", status) for status in ("True", "False", "Unknown")) == 3
    oldest = total(samples, "twilio_video_operator_oldest_stall_timestamp_seconds", kind="VideoRoom")
    assert before - 2 <= oldest <= time.time(), (oldest, since)
    assert total(samples, "twilio_video_operator_objects", kind="Composition") == 0

    await bed.delete_room(ns, "stalled")
    await bed.wait_gone(ns, "stalled")

    async def stall_cleared() -> Samples | None:
        samples = await scrape(bed)
        gone = not any(
            name == "twilio_video_operator_oldest_stall_timestamp_seconds" and ("kind", "VideoRoom") in labels
            for name, labels in samples
        )
        return samples if gone and objects(samples, "Stalled", "True") == 0 else None

    samples = await eventually(stall_cleared)
    assert objects(samples, "Paused", "False") == 1
