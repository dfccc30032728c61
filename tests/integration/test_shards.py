"""Sharding: two operator releases with different namespace selectors split the tenants of one cluster, and
neither ever touches an object of the other's namespaces (no status, no finalizer, no annotation, no write
at all, no Twilio room)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from official_client import OfficialClient

from twilio_video_emulator.server import Emulator, start_emulator
from twilio_video_operator.handlers import base_registry
from twilio_video_operator.handlers.videoroom import register_handlers
from twilio_video_operator.runner import run_operator
from twilio_video_operator.settings import load_settings
from twilio_video_playground.kube import EmbeddedKubernetes

ROOMS = ("standup", "retro")
WAIT = 20.0


def ready(obj: Mapping[str, Any] | None) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return bool((obj or {}).get("status", {}).get("sid")) and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


@contextlib.asynccontextmanager
async def shard_operator(
    kube: EmbeddedKubernetes, emulator: Emulator, kubeconfig: Path, shard: str
) -> AsyncIterator[None]:
    """An operator (VideoRoom handlers) reconciling the namespaces labelled ``shard=<shard>``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = int(sock.getsockname()[1])
    creds = emulator.credentials
    settings = load_settings(
        TWILIO_ACCOUNT_SID=creds["account_sid"],
        TWILIO_AUTH_TOKEN=creds["auth_token"],
        TWILIO_API_KEY=creds["api_key"],
        TWILIO_API_SECRET=creds["api_secret"],
        TWILIO_BASE_URL=creds["url"],
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        HTTP_PORT=port,
        WATCH_NAMESPACE_SELECTOR=f"shard={shard}",
        LEADER_ELECTION_NAMESPACE="default",
        LEADER_ELECTION_LEASE_NAME=f"operator-{shard}",
        POD_NAME=f"operator-{shard}",
    )
    registry = base_registry()
    register_handlers(registry)
    stop, ready_flag = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_operator(
            settings,
            kubeconfig=kubeconfig,
            stop_flag=stop,
            ready_flag=ready_flag,
            registry=registry,
            http_socket=sock,
        )
    )
    waiter = asyncio.create_task(ready_flag.wait())
    await asyncio.wait({task, waiter}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        task.result()
    assert ready_flag.is_set(), "the shard's operator did not start"
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def labelled_namespace(client: OfficialClient, name: str, shard: str) -> None:
    await client.create_namespace(name)
    await asyncio.to_thread(client.core.patch_namespace, name, {"metadata": {"labels": {"shard": shard}}})


async def rooms_of(client: OfficialClient, namespace: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in await client.list("videorooms", namespace)}


async def wait_ready(client: OfficialClient, namespace: str) -> None:
    async with asyncio.timeout(WAIT):
        while not all(ready(obj) for obj in (await rooms_of(client, namespace)).values()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)


def untouched(obj: Mapping[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    return (
        not obj.get("status")
        and not metadata.get("finalizers")
        and not [key for key in metadata.get("annotations") or {} if "video.openclaw.io" in key]
    )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    started = await start_emulator(host="127.0.0.1", port=0)
    yield started
    await started.stop()


async def test_two_shards_never_touch_each_others_objects(
    kube: EmbeddedKubernetes, kubeconfig: Path, emulator: Emulator
) -> None:
    client = OfficialClient(kubeconfig)
    try:
        await labelled_namespace(client, "tenant-a", "a")
        await labelled_namespace(client, "tenant-b", "b")
        for namespace in ("tenant-a", "tenant-b"):
            for name in ROOMS:
                body = {
                    "apiVersion": "video.openclaw.io/v1alpha1",
                    "kind": "VideoRoom",
                    "metadata": {"name": name},
                }
                await client.create("videorooms", namespace, {**body, "spec": {}})

        async with shard_operator(kube, emulator, kubeconfig, "a"):
            await wait_ready(client, "tenant-a")
            await asyncio.sleep(1)  # room for a stray write to show
            assert all(untouched(obj) for obj in (await rooms_of(client, "tenant-b")).values())
        names = sorted(room.unique_name for room in emulator.state.rooms.values())
        assert names == sorted(f"tenant-a:{name}" for name in ROOMS)

        before = {
            name: obj["metadata"]["resourceVersion"]
            for name, obj in (await rooms_of(client, "tenant-a")).items()
        }
        async with shard_operator(kube, emulator, kubeconfig, "b"):
            await wait_ready(client, "tenant-b")
            await asyncio.sleep(1)
            after = {
                name: obj["metadata"]["resourceVersion"]
                for name, obj in (await rooms_of(client, "tenant-a")).items()
            }
        assert after == before  # not a single write to shard a's objects
        coordination = k8s.CoordinationV1Api(client.api_client)
        leases = await asyncio.to_thread(coordination.list_namespaced_lease, "default")
        assert sorted(item.metadata.name for item in leases.items) == ["operator-a", "operator-b"]
    finally:
        client.close()
