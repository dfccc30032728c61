"""Compositions end to end: the real operator against the Twilio emulator, the embedded Kubernetes API and a
real S3 service (SeaweedFS)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import kopf
import pytest
from operator_harness import OperatorHarness, condition
from prometheus_client import REGISTRY
from s3_server import s3_server_fixture  # noqa: F401 - the s3_server fixture
from test_composition_harness import (
    FAST,
    bed_fixture,  # noqa: F401 - the bed fixture
    complete_room,
    create_composition,
    create_counts,
    drained,
    event_posted,
    events,
    get_composition,
    has,
    media_sha256,
    put_secret,
    reason_of,
    recorded_room,
    twilio,
    twilio_composition,
    wait_composition,
    wait_deleted,
)

from twilio_video_operator.handlers.composition import register_handlers
from twilio_video_operator.kube import COMPOSITIONS
from twilio_video_operator.kube.composition_objects import CREATED_SPEC_ANNOTATION
from twilio_video_operator.models.annotations import PAUSED
from twilio_video_operator.webhooks.composition_events import composition_callback_url
from twilio_video_playground.s3 import SeaweedS3

MEDIA_BYTES = 11 * 1024 * 1024 + 4321  # three S3 parts of 5 MiB


def s3_delivery(server: SeaweedS3, bucket: str, secret: str = "s3-creds") -> dict[str, object]:
    return {
        "s3": {
            "bucket": bucket,
            "endpoint": server.endpoint,
            "region": server.region,
            "credentialsRef": {"name": secret},
        }
    }


async def s3_secret(bed: OperatorHarness, namespace: str, server: SeaweedS3, name: str = "s3-creds") -> None:
    await put_secret(
        bed,
        namespace,
        name,
        {"AWS_ACCESS_KEY_ID": server.writer.access_key, "AWS_SECRET_ACCESS_KEY": server.writer.secret_key},
    )


@pytest.mark.both_backends
async def test_room_to_composition_to_media_in_the_bucket(bed: OperatorHarness, s3_server: SeaweedS3) -> None:
    """VideoRoom with recording.compose -> room completed -> <room>-recording Composition -> S3."""
    ns = await bed.namespace()
    bucket = s3_server.create_bucket("media")
    await s3_secret(bed, ns, s3_server)
    await bed._control("POST", "compositions/config", {"mediaBytes": MEDIA_BYTES})
    compose = {"videoLayout": {"grid": {"video_sources": ["*"]}}, "delivery": s3_delivery(s3_server, bucket)}
    await bed.create_room(ns, "standup", {"recording": {"participantsOnConnect": True, "compose": compose}})
    room = await bed.wait_room(ns, "standup", lambda r: (r.get("status") or {}).get("sid"))
    await bed.join(room["status"]["uniqueName"], "alice")
    await bed.advance_clock(30)
    await bed.patch_room(ns, "standup", {"spec": {"state": "Completed"}})

    done = await wait_composition(bed, ns, "standup-recording", lambda c: has("delivery")(c), within=30)

    status = done["status"]
    sid = status["sid"]
    assert status["roomSid"] == room["status"]["sid"] and status["compositionStatus"] == "completed"
    assert status["progressPercent"] == 100 and status["sizeBytes"] == MEDIA_BYTES
    assert status["mediaUri"] == f"/v1/Compositions/{sid}/Media" and status["completedAt"]
    key = f"{ns}/standup-recording/{sid}.mp4"
    stored = await asyncio.to_thread(s3_server.read_object, bucket, key)
    expected_sha, expected_size = await media_sha256(bed, sid)
    assert hashlib.sha256(stored).hexdigest() == expected_sha == status["delivery"]["sha256"]
    assert len(stored) == expected_size == status["delivery"]["bytes"] == MEDIA_BYTES
    assert status["delivery"]["url"] == f"{s3_server.endpoint}/{bucket}/{key}"
    assert s3_server.pending_uploads(bucket) == []
    for kind in ("Ready", "Synced", "Delivered"):
        assert condition(done, kind)["status"] == "True", condition(done, kind)
        assert condition(done, kind)["observedGeneration"] == done["metadata"]["generation"]
    assert condition(done, "Stalled")["status"] == "False"
    assert await create_counts(bed) == 1

    deliveries = [d for d in await bed.callbacks() if "composition-events" in d["url"]]
    assert {d["event"] for d in deliveries} >= {
        "composition-started",
        "composition-progress",
        "composition-available",
    }
    assert all(d["status_code"] == 204 for d in deliveries)
    reasons = [reason for _, reason, _ in await events(bed, ns, "standup-recording")]
    assert {"Created", "Completed", "Delivered"} <= set(reasons)


async def test_progress_comes_from_callbacks_not_polls(tmp_path: Path) -> None:
    def slow_polls(registry: kopf.OperatorRegistry, harness: OperatorHarness) -> None:
        timing = replace(FAST, poll_min=60.0, poll_max=60.0)
        register_handlers(registry, clock=harness.clock, tick_seconds=0.1, timing=timing)

    async with OperatorHarness(tmp_path, registrars=[slow_polls]) as bed:
        ns = await bed.namespace()
        room_sid = await recorded_room(bed, ns, complete=False)
        await create_composition(bed, ns, "c1", {"roomSid": room_sid})
        created = await wait_composition(bed, ns, "c1", has("sid"))
        await bed._control(
            "POST", f"compositions/{created['status']['sid']}/config", {"processingSeconds": 2}
        )
        await complete_room(bed, room_sid)
        seen: set[int] = set()

        def progress(obj: dict[str, Any]) -> bool:
            seen.add((obj.get("status") or {}).get("progressPercent") or 0)
            return (obj.get("status") or {}).get("compositionStatus") == "completed"

        await wait_composition(bed, ns, "c1", progress)
        assert len(seen - {0, 100}) >= 2  # intermediate progress was reported
        assert (await bed.twilio_counts()).get("FetchComposition", 0) == 0  # callbacks were enough


async def test_polling_takes_over_when_callbacks_do_not_arrive(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns)
    assert bed.settings is not None
    public_url = bed.settings.PUBLIC_BASE_URL
    bed.settings.PUBLIC_BASE_URL = "http://127.0.0.1:9"  # Twilio cannot reach the operator
    try:
        await create_composition(bed, ns, "c1", {"roomSid": room_sid})
        await bed.advance_clock(5)
        done = await wait_composition(bed, ns, "c1", has("compositionStatus", "completed"))
    finally:
        bed.settings.PUBLIC_BASE_URL = public_url
    assert condition(done, "Ready")["status"] == "True"
    assert (await bed.twilio_counts()).get("FetchComposition", 0) >= 1


async def test_a_composition_from_before_a_restart_is_fetched_at_once(tmp_path: Path) -> None:
    """An object whose composition this process did not create (its callbacks went to a process that is
    gone) is looked at on the first reconcile, not after the poll interval (here a minute)."""

    def slow_polls(registry: kopf.OperatorRegistry, harness: OperatorHarness) -> None:
        timing = replace(FAST, poll_min=60.0, poll_max=60.0)
        register_handlers(registry, clock=harness.clock, tick_seconds=0.1, timing=timing)

    async with OperatorHarness(tmp_path, registrars=[slow_polls]) as bed:
        ns = await bed.namespace()
        room_sid = await recorded_room(bed, ns)
        made = await twilio(bed, "POST", "/v1/Compositions", {"RoomSid": room_sid, "AudioSources": "*"})
        await create_composition(bed, ns, "c1", {"roomSid": room_sid}, annotations={PAUSED: "true"})
        synced = bed.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"sid": made["sid"], "roomSid": room_sid, "compositionStatus": "enqueued"}
        await bed.kube_official.patch_status(
            COMPOSITIONS.plural, ns, "c1", {**status, "lastSyncedAt": synced}
        )
        await bed.advance_clock(5)  # Twilio finishes it; no callback was asked for
        assert (await twilio_composition(bed, made["sid"]))["status"] == "completed"
        fetched = (await bed.twilio_counts()).get("FetchComposition", 0)

        await bed.kube_official.patch(
            COMPOSITIONS.plural, ns, "c1", {"metadata": {"annotations": {PAUSED: None}}}
        )

        await wait_composition(bed, ns, "c1", has("compositionStatus", "completed"))
        assert (await bed.twilio_counts()).get("FetchComposition", 0) == fetched + 1
        assert await create_counts(bed) == 1  # the one made above, none by the operator


@pytest.mark.both_backends
async def test_a_crash_after_create_does_not_create_a_second_composition(bed: OperatorHarness) -> None:
    """The state a crash between CreateComposition and the status write leaves: marker, no SID, a
    composition at Twilio. The operator claims it instead of creating another."""
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns, complete=False)
    spec = {"roomSid": room_sid, "resolution": "1280x720", "trim": False}
    obj = await create_composition(bed, ns, "c1", spec, annotations={PAUSED: "true"})
    uid = obj["metadata"]["uid"]
    assert bed.settings is not None
    marker = (bed.clock() - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await bed.kube_official.patch_status(
        COMPOSITIONS.plural, ns, "c1", {"createPendingAt": marker, "roomSid": room_sid}
    )
    full_spec = (await get_composition(bed, ns, "c1"))["spec"]  # type: ignore[index]
    annotation = json.dumps(full_spec, sort_keys=True, separators=(",", ":"))
    await bed.kube_official.patch(
        COMPOSITIONS.plural, ns, "c1", {"metadata": {"annotations": {CREATED_SPEC_ANNOTATION: annotation}}}
    )
    callback = composition_callback_url(bed.settings.PUBLIC_BASE_URL, ns, "c1", uid)
    made = await twilio(
        bed,
        "POST",
        "/v1/Compositions",
        {
            "RoomSid": room_sid,
            "AudioSources": "*",
            "Resolution": "1280x720",
            "Trim": "false",
            "StatusCallback": callback,
        },
    )
    assert await create_counts(bed) == 1

    await bed.kube_official.patch(
        COMPOSITIONS.plural, ns, "c1", {"metadata": {"annotations": {PAUSED: None}}}
    )
    claimed = await wait_composition(bed, ns, "c1", has("sid"))

    assert claimed["status"]["sid"] == made["sid"] and "createPendingAt" not in claimed["status"]
    await event_posted(bed, ns, "c1", "Normal", "Claimed")
    await complete_room(bed, room_sid)
    await bed.advance_clock(5)
    await wait_composition(bed, ns, "c1", has("compositionStatus", "completed"))
    assert await create_counts(bed) == 1


async def test_failed_at_twilio_shows_twilios_error(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns, complete=False)
    await create_composition(bed, ns, "c1", {"roomSid": room_sid})
    sid = (await wait_composition(bed, ns, "c1", has("sid")))["status"]["sid"]
    await bed._control(
        "POST", f"compositions/{sid}/fail", {"errorMessage": "Media processing blew up (53626)"}
    )

    failed = await wait_composition(bed, ns, "c1", has("compositionStatus", "failed"))

    ready = condition(failed, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Failed")
    assert (
        "Media processing blew up (53626)" in ready["message"] and "CompositionProcessing" in ready["message"]
    )
    await event_posted(bed, ns, "c1", "Warning", "CompositionFailed")


async def test_stuck_processing_is_stalled_with_an_event_and_a_metric(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns, complete=False)
    await create_composition(bed, ns, "c1", {"roomSid": room_sid, "stalledAfter": "30s"})
    sid = (await wait_composition(bed, ns, "c1", has("sid")))["status"]["sid"]
    await bed._control("POST", f"compositions/{sid}/config", {"processingSeconds": 100_000})
    await complete_room(bed, room_sid)
    await wait_composition(bed, ns, "c1", has("compositionStatus", "processing"))
    assert condition(await get_composition(bed, ns, "c1"), "Stalled")["status"] == "False"  # type: ignore[arg-type]

    await bed.advance_clock(31)
    stalled = await wait_composition(bed, ns, "c1", reason_of("Stalled", "ProcessingTimeout"))

    assert condition(stalled, "Stalled")["status"] == "True"
    assert condition(stalled, "Ready")["reason"] == "ProcessingTimeout"
    assert "still processing after 30s" in condition(stalled, "Stalled")["message"]
    await event_posted(bed, ns, "c1", "Warning", "ProcessingTimeout")
    # The gauge is exported just after the status write, on the operator's own thread: wait for it.
    for _ in range(200):
        if (REGISTRY.get_sample_value("twilio_video_operator_composition_stalled") or 0) >= 1:
            break
        await asyncio.sleep(0.05)
    assert (REGISTRY.get_sample_value("twilio_video_operator_composition_stalled") or 0) >= 1


async def test_a_spec_change_is_refused_and_creates_nothing(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns, complete=False)
    await create_composition(bed, ns, "c1", {"roomSid": room_sid})
    await wait_composition(bed, ns, "c1", has("sid"))
    await bed.kube_official.patch(COMPOSITIONS.plural, ns, "c1", {"spec": {"format": "webm"}})

    stalled = await wait_composition(bed, ns, "c1", reason_of("Stalled", "SpecImmutable"))

    assert "spec.format" in condition(stalled, "Stalled")["message"]
    assert condition(stalled, "Stalled")["observedGeneration"] == stalled["metadata"]["generation"] == 2
    await asyncio.sleep(0.5)
    assert await create_counts(bed) == 1


async def test_waits_for_the_room_then_composes_it(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    await create_composition(bed, ns, "c1", {"roomRef": {"name": "later"}})
    waiting = await wait_composition(bed, ns, "c1", reason_of("Ready", "WaitingForRoom"))
    assert "VideoRoom later does not exist" in condition(waiting, "Ready")["message"]

    await bed.create_room(ns, "later", {"recording": {"participantsOnConnect": True}})
    room = await bed.wait_room(ns, "later", lambda r: (r.get("status") or {}).get("sid"))
    created = await wait_composition(bed, ns, "c1", has("sid"))
    assert created["status"]["roomSid"] == room["status"]["sid"]
    assert condition(created, "Ready")["reason"] == "Enqueued"


async def test_deletion_policy_delete_removes_the_twilio_composition(bed: OperatorHarness) -> None:
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns, complete=False)
    await create_composition(bed, ns, "keep", {"roomSid": room_sid})
    await create_composition(bed, ns, "drop", {"roomSid": room_sid, "deletionPolicy": "Delete"})
    kept = (await wait_composition(bed, ns, "keep", has("sid")))["status"]["sid"]
    dropped = (await wait_composition(bed, ns, "drop", has("sid")))["status"]["sid"]

    for name in ("keep", "drop"):
        await bed.kube_official.delete(COMPOSITIONS.plural, ns, name)
    await wait_deleted(bed, ns, "keep", "drop")

    assert (await twilio_composition(bed, dropped))["status"] == "deleted"
    assert (await twilio_composition(bed, kept))["status"] == "enqueued"
    await drained(bed)


async def test_the_operators_own_annotation_is_not_a_change_to_reconcile(
    bed: OperatorHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The created-spec annotation the operator writes after CreateComposition is left out of kopf's
    handled-spec record: a new Composition is reconciled by kopf's create handler once, with no update
    handler after it (before, every create cost one more reconcile about 100 ms later)."""
    caplog.set_level("INFO", logger="kopf")
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns)
    await create_composition(bed, ns, "c1", {"roomSid": room_sid})
    created = await wait_composition(bed, ns, "c1", has("sid"))
    assert CREATED_SPEC_ANNOTATION in created["metadata"]["annotations"]
    await asyncio.sleep(1.5)  # an update handler would have run by now
    handlers = [r.getMessage() for r in caplog.records if "composition-" in r.getMessage()]
    assert any("composition-create" in message for message in handlers), handlers
    assert not [message for message in handlers if "composition-update" in message]

    await bed.kube_official.patch(
        COMPOSITIONS.plural, ns, "c1", {"metadata": {"annotations": {PAUSED: "true"}}}
    )
    async with asyncio.timeout(10):  # a user's annotation is a change kopf hands to the update handler
        while not [r for r in caplog.records if "composition-update" in r.getMessage()]:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
