"""``/healthz`` of a real operator follows its reconciles: healthy while idle or resyncing, unhealthy once
VideoRooms that are due stop being reconciled.

The operator's progress rule gets a grace of 2 s instead of 5 minutes, and VideoRooms resync every second,
so the whole story takes a few seconds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorHarness, eventually

from twilio_video_operator import context
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress

GRACE = 2.0


@pytest.fixture
async def bed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OperatorHarness]:
    monkeypatch.setattr(context, "ReconcileProgress", functools.partial(ReconcileProgress, grace=GRACE))
    async with OperatorHarness(tmp_path, resync_interval=timedelta(seconds=1)) as harness:
        yield harness


async def healthz(bed: OperatorHarness) -> tuple[int, dict[str, Any]]:
    assert bed.http is not None and bed.settings is not None
    async with bed.http.get(bed.settings.PUBLIC_BASE_URL + "/healthz") as answer:
        body: dict[str, Any] = await answer.json()
        return answer.status, body


async def stays_healthy(bed: OperatorHarness, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        assert await healthz(bed) == (200, {"status": "ok", "reason": "ok", "leader": True})
        await asyncio.sleep(0.2)


async def test_healthz_fails_when_due_videorooms_are_no_longer_reconciled(bed: OperatorHarness) -> None:
    await stays_healthy(bed, 1.5 * GRACE)  # no objects: nothing is ever due

    ns = await bed.namespace()
    await bed.create_room(ns, "standup", {})
    await bed.wait_room(ns, "standup", lambda room: (room.get("status") or {}).get("sid"))
    await stays_healthy(bed, 2 * GRACE)  # resynced every second: never overdue

    # The controller's timer loop is gone: the room's resync comes due and nothing reconciles it.
    assert bed.controller is not None
    await bed.in_operator(bed.controller.stop)

    async def unhealthy() -> dict[str, Any] | None:
        status, body = await healthz(bed)
        return body if status == 503 else None

    body = await eventually(unhealthy, wait=5 * GRACE)
    assert body["status"] == "unhealthy"
    assert body["reason"].startswith("no VideoRoom reconcile has finished for ")
    assert f"({ns}/standup by " in body["reason"] and "limit 2s)" in body["reason"]
