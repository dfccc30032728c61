"""Step 4: a recorded room (``examples/recording/videoroom.yaml``) holds a meeting and is completed; the
operator creates its Composition, Twilio (the emulator) composes it, and the operator delivers the media
to an S3 bucket of a local SeaweedFS, where the demo checks size and checksum."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from twilio_video_operator.kube import COMPOSITIONS, VIDEOROOMS
from twilio_video_operator.logs import register_secret
from twilio_video_playground.demo.clients import advance_clock, join_or_fail, mint
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.objects import NAMESPACE, is_true, status_of, wait_object
from twilio_video_playground.demo.waiting import StepFailed, expect
from twilio_video_playground.playground import ManifestApplier, load_manifests
from twilio_video_playground.s3 import SeaweedS3

MANIFEST = ("recording", "videoroom.yaml")
ROOM = "board-meeting"
PEOPLE = ("alice", "bob")
MEETING_SECONDS = 60  # emulator time the meeting lasts: the length of the recordings
PROCESSING_SECONDS = 10  # emulator time given to Twilio to compose (a tenth of the duration, at least 1 s)


def recorded_room(demo: Demo) -> dict[str, Any]:
    directory = demo.examples.joinpath(*MANIFEST[:-1])
    for path, manifest in load_manifests(directory):
        if path.name == MANIFEST[-1] and (manifest.get("metadata") or {}).get("name") == ROOM:
            return manifest
    raise StepFailed(f"{directory / MANIFEST[-1]} does not define the VideoRoom {ROOM}")


def s3_target(manifest: dict[str, Any]) -> dict[str, Any]:
    try:
        target: dict[str, Any] = manifest["spec"]["recording"]["compose"]["delivery"]["s3"]
    except (KeyError, TypeError):
        raise StepFailed(f"VideoRoom {ROOM} has no recording.compose.delivery.s3") from None
    return target


async def create_credentials(demo: Demo, name: str, s3: SeaweedS3) -> None:
    writer = s3.writer
    register_secret(writer.secret_key)
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": writer.access_key, "AWS_SECRET_ACCESS_KEY": writer.secret_key},
    }
    await ManifestApplier(demo.playground.client).apply(secret)


def stored_object(s3: SeaweedS3, bucket: str, key: str) -> tuple[int, str]:
    data = s3.read_object(bucket, key)
    return len(data), hashlib.sha256(data).hexdigest()


async def record_and_deliver(demo: Demo) -> None:
    manifest = recorded_room(demo)
    target = s3_target(manifest)
    s3 = SeaweedS3(demo.state_dir / "s3", buckets=(str(target["bucket"]),))
    await asyncio.to_thread(s3.start)
    try:
        await deliver_into(demo, manifest, target, s3)
    finally:
        await asyncio.to_thread(s3.stop, crash=True)


async def deliver_into(demo: Demo, manifest: dict[str, Any], target: dict[str, Any], s3: SeaweedS3) -> None:
    bucket, credentials = str(target["bucket"]), str(target["credentialsRef"]["name"])
    print(f"SeaweedFS serves S3 on {s3.endpoint} with the bucket {bucket}")
    await create_credentials(demo, credentials, s3)
    print(f"Secret {NAMESPACE}/{credentials} holds a generated S3 access key (not shown)")
    target["endpoint"] = s3.endpoint
    await ManifestApplier(demo.playground.client).apply(manifest)
    print(f"Applied {demo.examples.joinpath(*MANIFEST)} with the delivery endpoint set to {s3.endpoint}")
    room = await wait_object(demo, VIDEOROOMS, ROOM, f"VideoRoom {NAMESPACE}/{ROOM} to be Ready", ready)
    print(f"VideoRoom {NAMESPACE}/{ROOM}: Ready, Twilio room {status_of(room).get('sid')}")

    for identity in PEOPLE:
        minted = await mint(demo, ROOM, identity)
        participant = await join_or_fail(demo, minted)
        print(f"{identity} joins with a token signed by {minted.key_sid} -> participant {participant}")
    await advance_clock(demo, MEETING_SECONDS)
    print(f"The meeting lasts {MEETING_SECONDS}s (emulator clock advanced)")

    await demo.playground.client.patch(VIDEOROOMS, NAMESPACE, ROOM, {"spec": {"state": "Completed"}})
    what = f"VideoRoom {NAMESPACE}/{ROOM} to be completed"
    await wait_object(
        demo, VIDEOROOMS, ROOM, what, lambda body: status_of(body).get("roomStatus") == "completed"
    )
    print("spec.state: Completed -> Twilio room completed, recordings finalized")

    name = f"{ROOM}-recording"
    what = f"the operator to create Composition {NAMESPACE}/{name} at Twilio"
    composition = await wait_object(
        demo, COMPOSITIONS, name, what, lambda body: bool(status_of(body).get("sid"))
    )
    print(f"Composition {NAMESPACE}/{name} created, Twilio composition {status_of(composition).get('sid')}")
    await advance_clock(demo, PROCESSING_SECONDS)
    what = f"Composition {NAMESPACE}/{name} to be delivered"
    composition = await wait_object(demo, COMPOSITIONS, name, what, delivered, shown="Delivered")
    status = status_of(composition)
    delivery = dict(status.get("delivery") or {})
    print(f"Twilio finished composing ({status.get('durationSeconds')}s, {status.get('sizeBytes')} bytes)")
    print(f"status.delivery: url {delivery.get('url')}")
    print(f"  bytes {delivery.get('bytes')}, sha256 {delivery.get('sha256')}")

    key = str(delivery.get("url", "")).removeprefix(f"{s3.endpoint}/{bucket}/")
    size, digest = await asyncio.to_thread(stored_object, s3, bucket, key)
    expect(
        (size, digest) == (delivery.get("bytes"), delivery.get("sha256")),
        f"the object in the bucket has {size} bytes and sha256 {digest}, not what status.delivery says",
    )
    print(f"The bucket holds s3://{bucket}/{key}: same size and sha256")


def ready(body: dict[str, Any]) -> bool:
    return is_true(body, "Ready")


def delivered(body: dict[str, Any]) -> bool:
    return is_true(body, "Delivered") and bool(status_of(body).get("delivery"))
