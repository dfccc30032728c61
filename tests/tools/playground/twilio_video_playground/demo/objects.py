"""Reading the operator's objects: conditions, status fields, and waiting for them to reach a state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twilio_video_operator.kube import Resource
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.waiting import wait_for

NAMESPACE = "default"
Body = dict[str, Any]


def status_of(body: Body | None) -> dict[str, Any]:
    return dict((body or {}).get("status") or {})


def condition(body: Body | None, kind: str) -> dict[str, Any]:
    """The condition of type ``kind`` (an empty dict when absent)."""
    for found in status_of(body).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return {}


def is_true(body: Body | None, kind: str) -> bool:
    return condition(body, kind).get("status") == "True"


def describe_condition(body: Body | None, kind: str) -> str:
    found = condition(body, kind)
    if not found:
        return f"no {kind} condition yet"
    message = f": {found['message']}" if found.get("message") else ""
    return f"{kind}={found.get('status')} {found.get('reason', '')}{message}".rstrip()


def describe_conditions(body: Body | None) -> list[str]:
    conditions = status_of(body).get("conditions") or []
    return [describe_condition(body, str(found.get("type"))) for found in conditions] or [
        "(no status conditions yet)"
    ]


def is_converged(body: Body) -> bool:
    """The operator has processed the object's current spec."""
    observed = status_of(body).get("observedGeneration")
    generation = (body.get("metadata") or {}).get("generation")
    if observed is None:
        return False
    return generation is None or int(observed) >= int(generation)


async def wait_object(
    demo: Demo,
    resource: Resource,
    name: str,
    what: str,
    accept: Callable[[Body], bool],
    *,
    shown: str = "Ready",
) -> Body:
    """Wait (bounded) until the object exists and ``accept`` holds; on failure the message names ``what``
    and the object's ``shown`` condition."""
    client = demo.playground.client

    async def probe() -> Body | None:
        body = await client.get(resource, NAMESPACE, name)
        return body if body is not None and accept(body) else None

    async def explain() -> str:
        body = await client.get(resource, NAMESPACE, name)
        return f"{name} does not exist" if body is None else describe_condition(body, shown)

    return await wait_for(what, probe, within=demo.wait_seconds, explain=explain)
