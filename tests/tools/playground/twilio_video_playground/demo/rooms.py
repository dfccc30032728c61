"""Step 1: the manifests of ``examples/*.yaml`` are applied, the operator processes them, and the rooms
are Ready (a scheduled room waits for its slot)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from twilio_video_operator import API_GROUP
from twilio_video_operator.handlers import KINDS
from twilio_video_operator.kube import KubeClient
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.kubectl import kubectl_path, print_table, show_with_kubectl
from twilio_video_playground.demo.objects import (
    Body,
    condition,
    is_converged,
    is_true,
    status_of,
    wait_object,
)
from twilio_video_playground.demo.waiting import POLL_INTERVAL, StepFailed, expect
from twilio_video_playground.playground import AppliedObject


@dataclass
class Convergence:
    converged: list[AppliedObject] = field(default_factory=list)
    pending: list[AppliedObject] = field(default_factory=list)  # handled, but not processed in time
    unhandled: list[AppliedObject] = field(default_factory=list)  # no handlers for the kind in this build


async def wait_converged(
    client: KubeClient,
    objects: Sequence[AppliedObject],
    *,
    handled: Callable[[AppliedObject], bool],
    wait_seconds: float,
) -> Convergence:
    """Poll until every handled object converged or ``wait_seconds`` passed (unhandled: not waited for)."""
    result = Convergence(unhandled=[obj for obj in objects if not handled(obj)])
    waiting = [obj for obj in objects if handled(obj)]
    deadline = time.monotonic() + wait_seconds
    while waiting:
        still: list[AppliedObject] = []
        for obj in waiting:
            body = await client.get(obj.resource, obj.namespace, obj.name)
            (result.converged if body is not None and is_converged(body) else still).append(obj)
        waiting = still
        if not waiting or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_INTERVAL)
    result.pending = waiting
    return result


EXPECTED = {"VideoRoom": "to be Ready (or Scheduled)", "Composition": "to be processed"}


def settled(obj: AppliedObject, body: Body) -> bool:
    """Where the story needs the object: rooms open (Ready) or waiting for their slot, keys active."""
    if not is_converged(body):
        return False
    if obj.kind == "VideoRoom":
        return is_true(body, "Ready") or status_of(body).get("roomStatus") == "Scheduled"
    if obj.kind == "SigningKeyRotation":
        return is_true(body, "Ready")
    return True  # a Composition of a room in progress waits for the room to end


def summary(obj: AppliedObject, body: Body) -> str:
    status = status_of(body)
    if obj.kind == "VideoRoom" and status.get("roomStatus") == "Scheduled":
        return f"Scheduled ({condition(body, 'Ready').get('message', 'waiting for its slot')})"
    if obj.kind == "VideoRoom":
        return f"Ready, Twilio room {status.get('sid')} {status.get('roomStatus')}"
    if obj.kind == "SigningKeyRotation":
        return f"Ready, active key {status.get('activeKeySid')} (revision {status.get('revision')})"
    ready = condition(body, "Ready")
    reason = f" {ready['reason']}" if ready.get("reason") else ""
    return f"processed (Ready={ready.get('status', '-')}{reason})"


async def apply_examples(demo: Demo) -> None:
    print(f"Applying {demo.examples}/*.yaml")
    applied = await demo.playground.apply(demo.examples)
    ours = [obj for obj in applied if obj.resource.group == API_GROUP]
    expect(bool(ours), f"no {API_GROUP} objects in {demo.examples}")
    for obj in applied:
        print(f"  {obj.display} {obj.action}")

    def handled(obj: AppliedObject) -> bool:
        resource = obj.resource
        return (resource.group, resource.version, resource.plural, obj.kind) in KINDS

    client = demo.playground.client
    print(f"Waiting up to {demo.wait_seconds:.0f}s for the operator")
    convergence = await wait_converged(client, ours, handled=handled, wait_seconds=demo.wait_seconds)
    for obj in convergence.unhandled:
        print(f"  {obj.display}: no handlers for {obj.kind} in this build; not waited for")
    if convergence.pending:
        names = ", ".join(obj.display for obj in convergence.pending)
        raise StepFailed(
            f"gave up after {demo.wait_seconds:.0f}s waiting for the operator to process {names}"
        )
    bodies: dict[AppliedObject, Body | None] = {}
    for obj in convergence.converged:
        what = f"{obj.display} {EXPECTED.get(obj.kind, 'to be Ready')}"
        body = await wait_object(demo, obj.resource, obj.name, what, partial(settled, obj))
        bodies[obj] = body
        print(f"  {obj.display}: {summary(obj, body)}")

    print("$ kubectl get twilio -A")
    kubectl = kubectl_path()
    if kubectl is None:
        print("(kubectl is not installed next to this Python; listing the objects directly)")
        print_table(ours, bodies)
    elif not await show_with_kubectl(kubectl, demo.playground.kubeconfig_path):
        raise StepFailed("kubectl get twilio -A failed")
