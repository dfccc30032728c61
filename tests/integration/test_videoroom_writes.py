"""How many Kubernetes writes one VideoRoom create costs, counted by the embedded API.

Today five: kopf adds its finalizer (PATCH), the controller stores the create-pending marker before Twilio
is asked (status PATCH), posts the ``Created`` Event, stores the room (status PATCH), and kopf records the
handled spec (PATCH). docs/controllers.md says why each is there; this test keeps a sixth from creeping in.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorHarness

ROOM = "videorooms.video.openclaw.io"
READS = frozenset({"get", "list", "watch"})
HANDLED = "/last-handled-configuration"  # kopf's annotation, under the operator's prefix


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path) as harness:
        yield harness


def settled(room: dict[str, Any]) -> bool:
    """Ready, and kopf has recorded the spec it handled (its last write of the create)."""
    conditions = (room.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    annotations = (room.get("metadata") or {}).get("annotations") or {}
    return ready and any(key.endswith(HANDLED) for key in annotations)


async def test_a_room_create_costs_at_most_five_writes(bed: OperatorHarness) -> None:
    assert bed.kube is not None
    ns = await bed.namespace()
    before = Counter(bed.kube.request_counts)

    await bed.create_room(ns, "standup", {})
    await bed.wait_room(ns, "standup", settled)
    await asyncio.sleep(0.5)  # anything late (a callback's status write) is counted too

    served = Counter(bed.kube.request_counts)
    served.subtract(before)
    writes = {
        (verb, resource): count
        for (verb, resource), count in served.items()
        if count > 0 and verb not in READS and (resource.startswith(ROOM) or resource == "events")
    }
    writes[("create", ROOM)] -= 1  # the test's own create
    by_kind = Counter({key: count for key, count in writes.items() if count})
    assert by_kind == {
        ("patch", ROOM): 2,  # kopf: the finalizer, then the handled spec
        ("patch", f"{ROOM}/status"): 2,  # the create-pending marker, then the room
        ("create", "events"): 1,  # Created
    }, by_kind
