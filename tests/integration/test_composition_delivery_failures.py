"""Delivery failures seen through the operator: S3 down, wrong credentials, wrong bucket. Each is retried
with backoff under a clear ``Delivered`` condition, and no partial object ever shows up in the bucket."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorHarness, condition
from s3_server import s3_server_fixture  # noqa: F401 - the s3_server fixture
from test_composition_harness import (
    bed_fixture,  # noqa: F401 - the bed fixture
    create_composition,
    events,
    has,
    media_sha256,
    put_secret,
    reason_of,
    recorded_room,
    wait_composition,
)

# The suite's secret scanner (tests/secret_scan.py), used here on its own to add the S3 secret.
from secret_scan import SecretScanner, install_collectors
from twilio_video_playground.s3 import SeaweedS3

MIB = 1024 * 1024
MEDIA_BYTES = 40 * MIB  # eight parts: the upload is still running when S3 dies


@pytest.fixture
def scanner(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[SecretScanner]:
    """Collects the operator's and kopf's log records (DEBUG included) while the test runs."""
    caplog.set_level(logging.DEBUG)
    found = SecretScanner()
    collector = install_collectors(found, monkeypatch)
    yield found
    logging.getLogger().removeHandler(collector)


def delivery(server: SeaweedS3, bucket: str) -> dict[str, Any]:
    return {
        "s3": {
            "bucket": bucket,
            "endpoint": server.endpoint,
            "region": server.region,
            "credentialsRef": {"name": "s3-creds"},
        }
    }


async def credentials(bed: OperatorHarness, ns: str, server: SeaweedS3, secret: str | None = None) -> None:
    data = {
        "AWS_ACCESS_KEY_ID": server.writer.access_key,
        "AWS_SECRET_ACCESS_KEY": secret or server.writer.secret_key,
    }
    await put_secret(bed, ns, "s3-creds", data)


async def composed(
    bed: OperatorHarness, ns: str, spec_delivery: dict[str, Any], media_bytes: int = MIB
) -> None:
    await bed._control("POST", "compositions/config", {"mediaBytes": media_bytes})
    room_sid = await recorded_room(bed, ns)
    await create_composition(bed, ns, "c1", {"roomSid": room_sid, "delivery": spec_delivery})
    await bed.advance_clock(5)


def delivered(obj: dict[str, Any]) -> bool:
    return condition(obj, "Delivered").get("status") == "True"


async def test_s3_down_is_retried_until_it_is_back(bed: OperatorHarness, tmp_path: Path) -> None:
    server = SeaweedS3(tmp_path / "s3", buckets=("media",))
    ns = await bed.namespace()
    await credentials(bed, ns, server)
    await composed(bed, ns, delivery(server, "media"))

    failing = await wait_composition(bed, ns, "c1", reason_of("Delivered", "StorageUnavailable"))
    assert failing["status"]["compositionStatus"] == "completed"
    assert condition(failing, "Ready")["reason"] == "DeliveryFailed"
    assert "next attempt in" in condition(failing, "Delivered")["message"]

    await asyncio.to_thread(server.start)
    try:
        done = await wait_composition(bed, ns, "c1", delivered)
        sha, size = await media_sha256(bed, done["status"]["sid"])
        key = f"{ns}/c1/{done['status']['sid']}.mp4"
        assert server.object_keys("media") == [key] and server.pending_uploads("media") == []
        stored = await asyncio.to_thread(server.read_object, "media", key)
        assert hashlib.sha256(stored).hexdigest() == sha == done["status"]["delivery"]["sha256"]
        assert len(stored) == size
    finally:
        await asyncio.to_thread(server.stop, crash=True)


async def test_s3_failing_mid_upload_leaves_no_partial_object(bed: OperatorHarness, tmp_path: Path) -> None:
    server = SeaweedS3(tmp_path / "s3", buckets=("media",))
    await asyncio.to_thread(server.start)
    try:
        ns = await bed.namespace()
        await credentials(bed, ns, server)
        await composed(bed, ns, delivery(server, "media"), media_bytes=MEDIA_BYTES)

        def upload_started() -> None:
            deadline = time.monotonic() + 20
            while not server.pending_uploads("media"):
                if time.monotonic() > deadline:
                    raise AssertionError("no multipart upload started")
                time.sleep(0.005)

        await asyncio.to_thread(upload_started)
        await asyncio.to_thread(server.stop, crash=True)
        await wait_composition(bed, ns, "c1", reason_of("Delivered", "StorageUnavailable"))
        await asyncio.to_thread(server.start)
        assert server.object_keys("media") == []  # the interrupted upload never became an object

        done = await wait_composition(bed, ns, "c1", delivered, within=30)
        assert server.pending_uploads("media") == []  # the stale upload was cleaned up
        key = f"{ns}/c1/{done['status']['sid']}.mp4"
        stored = await asyncio.to_thread(server.read_object, "media", key)
        assert len(stored) == MEDIA_BYTES
        assert hashlib.sha256(stored).hexdigest() == done["status"]["delivery"]["sha256"]
    finally:
        await asyncio.to_thread(server.stop, crash=True)


async def test_wrong_credentials_get_a_clear_condition_and_recover_once_fixed(
    bed: OperatorHarness,
    s3_server: SeaweedS3,
    scanner: SecretScanner,
) -> None:
    ns = await bed.namespace()
    bucket = s3_server.create_bucket("media")
    wrong = "wrong-secret-value-0123456789"
    await credentials(bed, ns, s3_server, secret=wrong)
    await composed(bed, ns, delivery(s3_server, bucket))

    failing = await wait_composition(bed, ns, "c1", reason_of("Delivered", "InvalidCredentials"))
    assert "rejected the credentials" in condition(failing, "Delivered")["message"]
    assert s3_server.object_keys(bucket) == []

    await credentials(bed, ns, s3_server)
    done = await wait_composition(bed, ns, "c1", delivered)
    assert s3_server.object_keys(bucket) == [f"{ns}/c1/{done['status']['sid']}.mp4"]

    # Neither S3 secret access key, the wrong one nor the right one, is in the operator's logs, in the
    # Events or in the Composition's status.
    scanner.add_secret(wrong, "the wrong S3 secret access key")
    scanner.add_secret(s3_server.writer.secret_key, "the S3 secret access key")
    event_list = await bed.events(ns)
    scanner.add_objects("Kubernetes API", [*event_list, done])
    sources = {source.split(":")[0] for source, _ in scanner.evidence}
    assert {
        "Kubernetes API",
        "log record of kopf.objects",
        "log record of twilio_video_operator.reconcilers.composition",
    } <= sources  # the scan had something to read
    assert ("Warning", "DeliveryFailed") in {(e["type"], e["reason"]) for e in event_list}
    assert scanner.scan() == []


async def test_a_wrong_bucket_gets_a_clear_condition(bed: OperatorHarness, s3_server: SeaweedS3) -> None:
    ns = await bed.namespace()
    await credentials(bed, ns, s3_server)
    await composed(bed, ns, delivery(s3_server, "no-such-bucket"))

    failing = await wait_composition(bed, ns, "c1", reason_of("Delivered", "BucketNotFound"))

    assert "bucket 'no-such-bucket' does not exist" in condition(failing, "Delivered")["message"]
    assert condition(failing, "Delivered")["status"] == "False" and has("delivery")(failing) is False
    reasons = [(kind, reason) for kind, reason, _ in await events(bed, ns, "c1")]
    assert reasons.count(("Warning", "DeliveryFailed")) == 1  # one Event per distinct failure, not per retry
