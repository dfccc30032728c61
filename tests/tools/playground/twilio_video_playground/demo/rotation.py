"""Step 5: the signing key of the room's tokens is rotated on request while clients keep joining with
freshly minted tokens: the staged key takes over, and every join is accepted, also with a token signed by
the previous key just before the switch."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twilio_video_operator.kube import SIGNINGKEYROTATIONS
from twilio_video_operator.models.annotations import RECONCILE_REQUESTED_AT, ROTATE_REQUESTED_AT
from twilio_video_playground.demo.clients import Minted, join_or_fail, leave, mint
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.joining import ROOM
from twilio_video_playground.demo.objects import NAMESPACE, is_converged, is_true, status_of, wait_object
from twilio_video_playground.demo.waiting import StepFailed, expect

ROTATION = "video-keys"  # examples/signingkeyrotation.yaml, which signs the standup room's tokens
STAGE_PERIOD = 3.0  # seconds; the example's 2m would make the demo wait two minutes
JOIN_INTERVAL = 1.0


@dataclass
class Joins:
    accepted: int = 0
    keys: list[str] = field(default_factory=list)  # signing keys seen, in order

    async def one(self, demo: Demo, identity: str, minted: Minted | None = None) -> Minted:
        minted = minted or await mint(demo, ROOM, identity)
        participant = await join_or_fail(demo, minted)
        await leave(demo, minted.room_name, participant)
        self.accepted += 1
        if minted.key_sid not in self.keys:
            self.keys.append(minted.key_sid)
        print(f"  {identity}: token signed by {minted.key_sid} -> joined, left")
        return minted


async def annotate(demo: Demo, annotation: str, value: str) -> None:
    patch = {"metadata": {"annotations": {annotation: value}}}
    await demo.playground.client.patch(SIGNINGKEYROTATIONS, NAMESPACE, ROTATION, patch)


async def keys(demo: Demo) -> dict[str, Any]:
    body = await demo.playground.client.get(SIGNINGKEYROTATIONS, NAMESPACE, ROTATION)
    return status_of(body)


async def rotate_while_joining(demo: Demo) -> None:
    client = demo.playground.client
    before = await keys(demo)
    old = str(before.get("activeKeySid"))
    print(f"SigningKeyRotation {NAMESPACE}/{ROTATION}: active key {old} (revision {before.get('revision')})")
    await client.patch(
        SIGNINGKEYROTATIONS, NAMESPACE, ROTATION, {"spec": {"stagePeriod": f"{STAGE_PERIOD:.0f}s"}}
    )
    what = f"the operator to process the shorter stagePeriod of {ROTATION}"
    await wait_object(demo, SIGNINGKEYROTATIONS, ROTATION, what, is_converged, shown="Synced")
    print(f"  spec.stagePeriod shortened to {STAGE_PERIOD:.0f}s for the demo (the example says 2m)")

    joins = Joins()
    await joins.one(demo, "guest-1")
    requested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await annotate(demo, ROTATE_REQUESTED_AT, requested)
    print(f"Annotated {ROTATE_REQUESTED_AT}={requested}")

    new, early, staged_at, nudges, status = "", None, 0.0, 0, before
    deadline = time.monotonic() + demo.wait_seconds
    while not (new and new in joins.keys):
        if time.monotonic() > deadline:
            raise StepFailed(
                f"gave up after {demo.wait_seconds:.0f}s waiting for tokens signed by a new key of "
                f"{ROTATION} (status: active {status.get('activeKeySid')}, next {status.get('nextKeySid')})"
            )
        status = await keys(demo)
        if not staged_at and status.get("nextKeySid"):
            staged_at = time.monotonic()
            print(f"Staged next key {status['nextKeySid']} (the Secret now holds TWILIO_API_KEY_NEXT)")
            early = await mint(demo, ROOM, "guest-early")
            print(f"  guest-early gets a token signed by {early.key_sid} just before the switch")
        if not new and status.get("activeKeySid") not in (None, old):
            new = str(status["activeKeySid"])
            previous = status.get("previousKeySid")
            print(f"Switched: active key {new}, previous key {previous} (still valid for the overlap)")
        elif not new and staged_at and time.monotonic() - staged_at > STAGE_PERIOD * (1 + nudges):
            nudges += 1  # past the stage period: ask for a reconcile now rather than at the next timer tick
            await annotate(demo, RECONCILE_REQUESTED_AT, f"demo-{nudges}")
        await joins.one(demo, f"guest-{joins.accepted + 1}")
        await asyncio.sleep(JOIN_INTERVAL)

    if early is not None:
        print("  guest-early joins now, after the switch, with that earlier token:")
        await joins.one(demo, "guest-early", early)
    body = await client.get(SIGNINGKEYROTATIONS, NAMESPACE, ROTATION)
    expect(is_true(body, "Ready"), f"SigningKeyRotation {ROTATION} is not Ready after the rotation")
    signers = " then ".join(joins.keys)
    print(f"{joins.accepted} joins, {joins.accepted} accepted; tokens signed by {signers}")
