"""Durations too long for the operator's arithmetic, sent past the schema (an API server that still has an
older CRD): each kind goes Stalled with reason InvalidSpec without a single Twilio request, no handler
(create, timer, delete) fails, no Event carries a traceback, and deleting the object completes.

The embedded API server is given the CRDs with the bounds of every duration field lifted, as they were
before durations were bounded.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorHarness, condition
from rotation_harness import NAMESPACE, Harness, running_operator
from test_composition_harness import (
    bed_fixture,  # noqa: F401 - the bed fixture
    create_composition,
    get_composition,
    recorded_room,
    wait_composition,
    wait_deleted,
)

from twilio_video_operator.controllers.videoroom import Trigger
from twilio_video_operator.crdgen import build_crds
from twilio_video_operator.kube import COMPOSITIONS, SECRETS, SIGNINGKEYROTATIONS
from twilio_video_playground.kube import EmbeddedKubernetes

HUGE = "99999999999999999999h"
#: What the duration fields of the CRDs accepted before they were bounded.
UNBOUNDED_DURATION = {"pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$", "maxLength": 32}
DURATION_FIELDS = {"rotationInterval", "stagePeriod", "overlap", "provisionAhead", "stalledAfter"}


def _schema_nodes(node: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (node.get("properties") or {}).items():
        yield name, sub
        yield from _schema_nodes(sub)
    if isinstance(node.get("items"), dict):
        yield from _schema_nodes(node["items"])


def lenient_crds() -> list[dict[str, Any]]:
    """The CRDs with every duration field back to any Go-style duration of up to 32 characters."""
    crds = copy.deepcopy(build_crds())
    for crd in crds:
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for name, node in _schema_nodes(root):
            if name in DURATION_FIELDS and node.get("type") == "string":
                node.update(UNBOUNDED_DURATION)
                node.pop("x-kubernetes-validations", None)
    return crds


def loosen(kube: EmbeddedKubernetes | None) -> None:
    assert kube is not None
    for crd in lenient_crds():
        kube.register_crd(crd)


def stalled_invalid(obj: Mapping[str, Any]) -> bool:
    stalled = condition(obj, "Stalled")
    return stalled.get("status") == "True" and stalled.get("reason") == "InvalidSpec"


def handler_failures(records: list[logging.LogRecord]) -> list[str]:
    """Log records of a handler or reconcile that raised (kopf logs those with the exception attached)."""
    return [record.getMessage() for record in records if record.exc_info and record.levelno >= logging.ERROR]


def tracebacks(events: list[Mapping[str, Any]]) -> list[str]:
    return [str(event.get("message")) for event in events if "Traceback" in str(event.get("message"))]


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    caplog.set_level(logging.WARNING)
    yield caplog.records


async def test_a_huge_rotation_interval_stalls_and_the_object_can_be_deleted(
    tmp_path: Path, errors: list[logging.LogRecord]
) -> None:
    async with running_operator(tmp_path) as h:
        loosen(h.kube)
        await h.create_rotation("huge", rotationInterval=HUGE)

        status = await h.wait_status("huge", lambda s: stalled_invalid({"status": s}))
        assert "rotationInterval" in condition({"status": status}, "Stalled")["message"]
        await asyncio.sleep(10 * h.tick_seconds)  # timer ticks reconcile the stalled object again

        async with h.http.get(f"{h.emulator.url}/_emulator/requests") as response:
            assert (await response.json())["operations"] == {}
        assert handler_failures(errors) == []
        assert tracebacks(await h.events("huge")) == []

        await h.client.delete(SIGNINGKEYROTATIONS, NAMESPACE, "huge")
        await _wait_gone(h, "huge")
        assert handler_failures(errors) == []


def key_ready(status: Mapping[str, Any]) -> bool:
    ready = condition({"status": status}, "Ready")
    return (ready.get("status"), ready.get("reason")) == ("True", "KeyActive")


async def _make_invalid(h: Harness, name: str) -> dict[str, Any]:
    """A ready rotation whose spec is then made invalid: it stalls and leaves its keys as they are."""
    status = await h.wait_status(name, key_ready)
    await h.client.patch(SIGNINGKEYROTATIONS, NAMESPACE, name, {"spec": {"rotationInterval": HUGE}})
    await h.wait_status(name, lambda s: stalled_invalid({"status": s}))
    return status


async def _wait_gone(h: Harness, name: str) -> None:
    async with asyncio.timeout(10):
        while True:
            if await h.client.get(SIGNINGKEYROTATIONS, NAMESPACE, name) is None:
                return
            await asyncio.sleep(0.05)


async def test_deleting_a_rotation_whose_spec_turned_invalid_still_revokes_its_keys(
    tmp_path: Path, errors: list[logging.LogRecord]
) -> None:
    async with running_operator(tmp_path) as h:
        loosen(h.kube)
        await h.create_rotation("keys", deletionPolicy="Revoke")
        status = await _make_invalid(h, "keys")
        assert status["activeKeySid"] in await h.twilio_keys()

        await h.client.delete(SIGNINGKEYROTATIONS, NAMESPACE, "keys")

        await _wait_gone(h, "keys")
        assert not [name for name in (await h.twilio_keys()).values() if name.startswith("tenant-keys-")]
        assert await h.client.get(SECRETS, NAMESPACE, "keys") is None
        assert handler_failures(errors) == []


async def test_deleting_a_rotation_whose_spec_turned_invalid_still_keeps_its_secret(
    tmp_path: Path, errors: list[logging.LogRecord]
) -> None:
    async with running_operator(tmp_path) as h:
        loosen(h.kube)
        await h.create_rotation("keys")
        status = await _make_invalid(h, "keys")

        await h.client.delete(SIGNINGKEYROTATIONS, NAMESPACE, "keys")

        await _wait_gone(h, "keys")
        assert status["activeKeySid"] in await h.twilio_keys()
        secret = await h.client.get(SECRETS, NAMESPACE, "keys")
        assert secret is not None and not secret["metadata"].get("ownerReferences")
        assert handler_failures(errors) == []


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path) as bed:
        loosen(bed.kube)
        yield bed


async def test_a_huge_provision_ahead_stalls_and_the_room_can_be_deleted(
    harness: OperatorHarness, errors: list[logging.LogRecord]
) -> None:
    ns = await harness.namespace()
    await harness.reset_counts()
    start = (harness.clock() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await harness.create_room(ns, "huge", {"schedule": {"startTime": start, "provisionAhead": HUGE}})

    room = await harness.wait_room(ns, "huge", stalled_invalid)
    assert "provisionAhead" in condition(room, "Stalled")["message"]
    controller = harness.controller
    assert controller is not None
    for trigger in (Trigger.TIMER, Trigger.RESYNC):  # the controller's own timers, on its own loop
        outcome = await harness.in_operator(functools.partial(controller.reconcile, ns, "huge", trigger))
        assert outcome is not None and outcome.stalled

    assert await harness.twilio_calls() == 0
    assert handler_failures(errors) == []
    assert tracebacks(await harness.events(ns, "huge")) == []

    await harness.delete_room(ns, "huge")
    await harness.wait_gone(ns, "huge")
    assert handler_failures(errors) == []


async def test_deleting_a_room_whose_spec_turned_invalid_completes_it_with_its_own_credentials(
    harness: OperatorHarness, errors: list[logging.LogRecord]
) -> None:
    """The room lives in the tenant's own Twilio account: only the credentialsRef Secret can complete it."""
    ns = await harness.namespace()
    account = await harness._control("POST", "accounts", {"friendlyName": "tenant"})
    data = {
        "TWILIO_ACCOUNT_SID": account["accountSid"],
        "TWILIO_API_KEY": account["apiKey"],
        "TWILIO_API_SECRET": account["apiSecret"],
        "TWILIO_AUTH_TOKEN": account["authToken"],
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "twilio", "namespace": ns},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }
    await harness.kube_client.create(SECRETS, ns, secret)
    await harness.create_room(ns, "tenant", {"credentialsRef": {"name": "twilio"}})
    room = await harness.wait_room(
        ns, "tenant", lambda o: (o.get("status") or {}).get("roomStatus") == "in-progress"
    )
    sid = room["status"]["sid"]
    start = (harness.clock() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await harness.patch_room(
        ns, "tenant", {"spec": {"schedule": {"startTime": start, "provisionAhead": HUGE}}}
    )
    await harness.wait_room(ns, "tenant", stalled_invalid)

    await harness.delete_room(ns, "tenant")

    await harness.wait_gone(ns, "tenant")
    [twilio_room] = [found for found in harness.twilio_rooms() if found.sid == sid]
    assert twilio_room.status == "completed"
    assert handler_failures(errors) == []


async def test_a_huge_stalled_after_stalls_before_any_twilio_call_and_can_be_deleted(
    bed: OperatorHarness, errors: list[logging.LogRecord]
) -> None:
    loosen(bed.kube)
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns)
    await bed.reset_counts()
    spec = {"roomSid": room_sid, "stalledAfter": HUGE, "deletionPolicy": "Delete"}
    await create_composition(bed, ns, "huge", spec)

    found = await wait_composition(bed, ns, "huge", stalled_invalid)
    assert "stalledAfter" in condition(found, "Stalled")["message"]
    await bed.advance_clock(3600)
    await asyncio.sleep(1.0)  # the composition timer ticks every 0.1 s

    assert await bed.twilio_calls() == 0
    assert handler_failures(errors) == []
    assert tracebacks(await bed.events(ns, "huge")) == []

    await bed.kube_client.delete(COMPOSITIONS, ns, "huge")
    await wait_deleted(bed, ns, "huge")
    assert await get_composition(bed, ns, "huge") is None
    assert await bed.twilio_calls() == 0
    assert handler_failures(errors) == []
