"""The operator's thin Kubernetes client against the embedded API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import kopf
import pytest
from aiohttp import web

from local_http import serve_locally
from twilio_video_operator.kube import SECRETS, VIDEOROOMS, KubeApiError, KubeClient
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.resources import EVENTS
from twilio_video_playground.kube import EmbeddedKubernetes


@pytest.fixture
async def client(kube: EmbeddedKubernetes) -> AsyncIterator[KubeClient]:
    info = kopf.ConnectionInfo(server=kube.url, scheme="Bearer", token=kube.token)
    async with KubeClient(info) as api:
        yield api


def room(name: str) -> dict[str, object]:
    return {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "VideoRoom",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {"maxParticipants": 4},
    }


async def test_create_get_list_and_delete(client: KubeClient) -> None:
    created = await client.create(VIDEOROOMS, "default", room("standup"))
    assert created["metadata"]["generation"] == 1
    fetched = await client.get(VIDEOROOMS, "default", "standup")
    assert fetched is not None and fetched["spec"]["maxParticipants"] == 4
    await client.create(VIDEOROOMS, "default", {**room("other"), "metadata": {"name": "other"}})
    labelled = await client.list(VIDEOROOMS, "default", label_selector="team=a")
    assert [item["metadata"]["name"] for item in labelled] == ["standup"]
    assert await client.delete(VIDEOROOMS, "default", "standup") is True
    assert await client.delete(VIDEOROOMS, "default", "standup") is False
    assert await client.get(VIDEOROOMS, "default", "standup") is None


async def test_status_patch_goes_to_the_subresource_only(client: KubeClient) -> None:
    await client.create(VIDEOROOMS, "default", room("standup"))
    patched = await client.patch_status(VIDEOROOMS, "default", "standup", {"sid": "RM" + "0" * 32})
    assert patched["status"]["sid"] == "RM" + "0" * 32
    assert patched["metadata"]["generation"] == 1
    merged = await client.patch(VIDEOROOMS, "default", "standup", {"spec": {"maxParticipants": 6}})
    assert merged["metadata"]["generation"] == 2
    assert merged["status"]["sid"] == "RM" + "0" * 32


async def test_errors_carry_the_status_reason(client: KubeClient) -> None:
    await client.create(VIDEOROOMS, "default", room("standup"))
    with pytest.raises(KubeApiError) as conflict:
        await client.create(VIDEOROOMS, "default", room("standup"))
    assert conflict.value.conflict and conflict.value.reason == "AlreadyExists"
    with pytest.raises(KubeApiError) as invalid:
        await client.patch(VIDEOROOMS, "default", "standup", {"spec": {"maxParticipants": 51}})
    assert invalid.value.status == 422 and "spec.maxParticipants" in invalid.value.message


async def test_secrets_and_events(client: KubeClient) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"}, "data": {"A": "Yg=="}}
    await client.create(SECRETS, "default", secret)
    assert (await client.get(SECRETS, "default", "keys") or {}).get("data") == {"A": "Yg=="}
    involved = await client.create(VIDEOROOMS, "default", room("standup"))
    await post_event(client, involved, "Normal", "Created", "created room")
    events = await client.list(EVENTS, "default")
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("Created", "standup")]


async def test_waiting_for_a_pooled_connection_is_not_a_timeout() -> None:
    """Requests queued behind a busy pool wait their turn; only a slow server answer times out."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("delay", "0.2")))
        return web.json_response({"kind": "Status"})

    app = web.Application()
    app.router.add_get("/slow", slow)
    runner, url = await serve_locally(app)
    info = kopf.ConnectionInfo(server=url, scheme="Bearer", token="t")
    try:
        async with KubeClient(info, timeout=0.5, max_connections=2) as api:
            # Ten requests of 0.2 s through two connections: the last ones wait about 0.8 s for a connection.
            answers = await asyncio.gather(*(api.request("GET", "/slow") for _ in range(10)))
            assert answers == [{"kind": "Status"}] * 10
            with pytest.raises(TimeoutError):
                await api.request("GET", "/slow", params={"delay": "1.0"})
    finally:
        await runner.cleanup()
