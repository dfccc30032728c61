"""Every kind's reconciles show in ``/metrics``: one operator with the VideoRoom, Composition and
SigningKeyRotation handlers, objects of each kind (some of them failing), and the operator's own
``/metrics`` read before and after.

The series are compared as deltas (the process's registry is shared with other tests).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from operator_harness import OperatorHarness, condition, eventually
from prometheus_client.parser import text_string_to_metric_families
from test_composition_harness import (
    composition_registrar,
    create_composition,
    has,
    recorded_room,
    wait_composition,
)

from twilio_video_operator.handlers.signingkeyrotation import register_handlers as register_rotations
from twilio_video_operator.kube import SIGNINGKEYROTATIONS

KINDS = ("VideoRoom", "Composition", "SigningKeyRotation")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def rotation_registrar(registry: kopf.OperatorRegistry, harness: OperatorHarness) -> None:
    register_rotations(registry, clock=harness.clock, tick_seconds=0.2)


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path, registrars=[composition_registrar, rotation_registrar]) as harness:
        yield harness


async def scrape(bed: OperatorHarness) -> Samples:
    assert bed.http is not None and bed.settings is not None
    async with bed.http.get(bed.settings.PUBLIC_BASE_URL + "/metrics") as answer:
        assert answer.status == 200
        text = await answer.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (found, pairs), value in samples.items() if found == name and wanted <= set(pairs))


async def create_rotation(bed: OperatorHarness, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "SigningKeyRotation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    await bed.kube_client.create(SIGNINGKEYROTATIONS, namespace, body)


async def rotation_status(bed: OperatorHarness, namespace: str, name: str) -> dict[str, Any]:
    obj = await bed.kube_client.get(SIGNINGKEYROTATIONS, namespace, name)
    return dict((obj or {}).get("status") or {})


async def test_every_kind_reports_reconciles_errors_durations_and_last_time(bed: OperatorHarness) -> None:
    started = time.time()
    before = await scrape(bed)
    ns = await bed.namespace()

    # VideoRooms: one that opens, one whose credentials Secret does not exist.
    await bed.create_room(ns, "standup", {})
    await bed.create_room(ns, "tenant", {"credentialsRef": {"name": "no-such-secret"}})
    # Compositions: one composed and then not deliverable (no S3 credentials), one waiting for its room.
    room_sid = await recorded_room(bed, ns)
    delivery = {
        "s3": {
            "bucket": "media",
            "endpoint": "http://127.0.0.1:9",
            "region": "us-east-1",
            "credentialsRef": {"name": "no-such-secret"},
        }
    }
    await create_composition(bed, ns, "recording", {"roomSid": room_sid, "delivery": delivery})
    await create_composition(bed, ns, "waiting", {"roomRef": {"name": "not-yet"}})
    # SigningKeyRotations: one that activates a key, one whose credentials Secret does not exist.
    await create_rotation(bed, ns, "keys", {"secretName": "keys"})
    await create_rotation(bed, ns, "broken", {"secretName": "broken", "credentialsRef": {"name": "nope"}})

    await bed.wait_room(ns, "standup", lambda room: (room.get("status") or {}).get("sid"))
    await bed.wait_room(ns, "tenant", lambda room: condition(room, "Synced").get("status") == "False")
    await bed.advance_clock(5)
    await wait_composition(bed, ns, "recording", has("compositionStatus", "completed"))
    # A delivery attempt failed (the S3 Secret is missing): not just the wait for the media.
    await wait_composition(
        bed, ns, "recording", lambda c: condition(c, "Delivered").get("reason") == "CredentialsNotFound"
    )
    await wait_composition(
        bed, ns, "waiting", lambda c: condition(c, "Ready").get("reason") == "WaitingForRoom"
    )

    async def keys_settled() -> bool:
        good, bad = await rotation_status(bed, ns, "keys"), await rotation_status(bed, ns, "broken")
        return bool(good.get("activeKeySid")) and (bad.get("failedAttempts") or 0) >= 1

    await eventually(keys_settled)
    after = await scrape(bed)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    for kind in KINDS:
        assert moved("twilio_video_operator_reconcile_total", kind=kind) >= 2, kind
        assert moved("twilio_video_operator_reconcile_errors_total", kind=kind) >= 1, kind
        assert moved("twilio_video_operator_reconcile_time_seconds_count", kind=kind) >= 2, kind
        assert moved("twilio_video_operator_reconcile_time_seconds_bucket", kind=kind, le="+Inf") >= 2, kind
        last = total(after, "twilio_video_operator_last_reconcile_timestamp_seconds", kind=kind)
        assert last >= started - 1, kind
        errors = moved("twilio_video_operator_reconcile_total", kind=kind, result="error") + moved(
            "twilio_video_operator_reconcile_total", kind=kind, result="stalled"
        )
        assert errors >= 1, kind
    assert (
        moved("twilio_video_operator_reconcile_total", kind="VideoRoom", result="requeue_after")
        + moved("twilio_video_operator_reconcile_total", kind="VideoRoom", result="success")
        >= 1
    )
    assert (
        moved("twilio_video_operator_reconcile_total", kind="SigningKeyRotation", result="requeue_after") >= 1
    )
    # Every result is one of the documented values.
    results = {
        dict(pairs)["result"]
        for (name, pairs), _ in after.items()
        if name == "twilio_video_operator_reconcile_total" and dict(pairs)["kind"] in KINDS
    }
    assert results <= {"success", "requeue_after", "error", "stalled", "paused"}

    compositions = {
        status: total(after, "twilio_video_operator_compositions", composition_status=status)
        for status in ("enqueued", "processing", "completed", "failed", "deleted", "none")
    }
    assert compositions == {
        "enqueued": 0,
        "processing": 0,
        "completed": 1,
        "failed": 0,
        "deleted": 0,
        "none": 1,
    }

    # Objects are due and keep being reconciled: the operator is healthy.
    assert bed.http is not None and bed.settings is not None
    async with bed.http.get(bed.settings.PUBLIC_BASE_URL + "/healthz") as answer:
        assert (answer.status, await answer.json()) == (200, {"status": "ok", "reason": "ok", "leader": True})
