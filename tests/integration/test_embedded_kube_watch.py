"""Watch streams of the embedded Kubernetes API, as kopf and kubectl consume them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from test_embedded_kube_support import GROUP, WIDGETS, Http, api, widget

from twilio_video_playground.kube import EmbeddedKubernetes


class Stream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, seconds: float = 5.0) -> tuple[str, dict[str, Any]]:
        line = await asyncio.wait_for(self.response.content.readline(), seconds)
        assert line, "the watch stream ended"
        event = json.loads(line)
        return event["type"], event["object"]

    async def ended(self, seconds: float = 5.0) -> bool:
        return await asyncio.wait_for(self.response.content.readline(), seconds) == b""


@asynccontextmanager
async def watch(http: Http, path: str, **params: str) -> AsyncIterator[Stream]:
    async with http.session.get(path, params={"watch": "true", **params}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        yield Stream(response)


async def test_watch_streams_initial_and_live_events(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        async with watch(http, WIDGETS) as stream:
            kind, obj = await stream.next()
            assert (kind, obj["metadata"]["name"], obj["kind"]) == ("ADDED", "w1", "Widget")
            await http.post(WIDGETS, widget("w2"))
            await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}})
            await http.delete(f"{WIDGETS}/w2")
            events = [await stream.next() for _ in range(3)]
            assert [(t, o["metadata"]["name"]) for t, o in events] == [
                ("ADDED", "w2"),
                ("MODIFIED", "w1"),
                ("DELETED", "w2"),
            ]
            assert events[1][1]["spec"]["size"] == 2
            versions = [int(o["metadata"]["resourceVersion"]) for _, o in events]
            assert versions == sorted(versions)


async def test_watch_resumes_from_a_resource_version(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        _, listing = await http.get(WIDGETS)
        await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 3}})
        await http.post(WIDGETS, widget("w2"))
        async with watch(http, WIDGETS, resourceVersion=listing["metadata"]["resourceVersion"]) as stream:
            assert [(t, o["metadata"]["name"]) for t, o in [await stream.next(), await stream.next()]] == [
                ("MODIFIED", "w1"),
                ("ADDED", "w2"),
            ]


async def test_watch_with_selectors_sees_objects_enter_and_leave(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http, watch(http, WIDGETS, labelSelector="app=web") as stream:
        await http.post(WIDGETS, widget("other"))
        body = widget("w1")
        body["metadata"]["labels"] = {"app": "web"}
        await http.post(WIDGETS, body)
        assert (await stream.next())[0] == "ADDED"
        await http.patch(f"{WIDGETS}/w1", {"metadata": {"labels": {"app": "db"}}})
        kind, obj = await stream.next()
        assert (kind, obj["metadata"]["labels"]) == ("DELETED", {"app": "db"})
        await http.patch(f"{WIDGETS}/w1", {"metadata": {"labels": {"app": "web"}}})
        assert (await stream.next())[0] == "ADDED"


async def test_watch_of_one_object_and_of_one_namespace(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post("/api/v1/namespaces", {"metadata": {"name": "elsewhere"}})
        async with (
            watch(http, f"{WIDGETS}/w2") as single,
            watch(http, WIDGETS, fieldSelector="metadata.name=w1") as named,
        ):
            await http.post(f"/apis/{GROUP}/v1/namespaces/elsewhere/widgets", widget("w1"))
            await http.post(WIDGETS, widget("w2"))
            await http.post(WIDGETS, widget("w1"))
            kind, obj = await single.next()
            assert (kind, obj["metadata"]["name"]) == ("ADDED", "w2")
            kind, obj = await named.next()
            assert (kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) == ("ADDED", "default", "w1")


async def test_watch_from_a_compacted_version_is_expired(kube: EmbeddedKubernetes) -> None:
    kube.emulator.store.event_history = 2
    async with api(kube) as http:
        _, first = await http.post(WIDGETS, widget("w1"))
        for size in (2, 3, 4):
            await http.patch(f"{WIDGETS}/w1", {"spec": {"size": size}})
        async with watch(http, WIDGETS, resourceVersion=first["metadata"]["resourceVersion"]) as stream:
            kind, status = await stream.next()
            assert (kind, status["kind"], status["code"], status["reason"]) == (
                "ERROR",
                "Status",
                410,
                "Expired",
            )
            assert await stream.ended()


async def test_watch_timeout_and_initial_events_bookmark(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        params = {"timeoutSeconds": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"}
        async with watch(http, WIDGETS, **params) as stream:
            assert (await stream.next())[0] == "ADDED"
            kind, bookmark = await stream.next()
            assert kind == "BOOKMARK"
            assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert await stream.ended(seconds=5)


async def test_stopping_the_server_ends_open_watches(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http, watch(http, WIDGETS) as stream:
        await asyncio.wait_for(kube.stop(), timeout=5)
        assert await stream.ended()
