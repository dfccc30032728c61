"""Events through both Event APIs, and ``/version/``, as a real API server serves them."""

from __future__ import annotations

import json

import aiohttp
from test_embedded_kube_support import api

from twilio_video_playground.kube import EmbeddedKubernetes

CORE = "/api/v1/namespaces/default/events"
NEW = "/apis/events.k8s.io/v1/namespaces/default/events"

CORE_EVENT = {
    "metadata": {"name": "w1.1"},
    "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default", "uid": "u1"},
    "reason": "Created",
    "message": "widget created",
    "type": "Normal",
    "source": {"component": "widget-operator", "host": "node-1"},
    "firstTimestamp": "2026-01-01T00:00:00Z",
    "lastTimestamp": "2026-01-01T00:01:00Z",
    "count": 2,
    "reportingComponent": "widget-operator",
    "reportingInstance": "widget-operator-0",
}


async def test_core_events_are_listed_by_events_k8s_io_converted(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        code, _ = await http.post(CORE, CORE_EVENT)
        assert code == 201
        code, listing = await http.get(NEW)
        assert code == 200 and listing["kind"] == "EventList" and listing["apiVersion"] == "events.k8s.io/v1"
        [event] = listing["items"]
        assert event["apiVersion"] == "events.k8s.io/v1" and event["kind"] == "Event"
        assert event["regarding"] == CORE_EVENT["involvedObject"]
        assert event["note"] == "widget created"
        assert (event["reason"], event["type"]) == ("Created", "Normal")
        assert event["reportingController"] == "widget-operator"
        assert event["reportingInstance"] == "widget-operator-0"
        assert event["deprecatedSource"] == {"component": "widget-operator", "host": "node-1"}
        assert event["deprecatedFirstTimestamp"] == "2026-01-01T00:00:00Z"
        assert event["deprecatedLastTimestamp"] == "2026-01-01T00:01:00Z"
        assert event["deprecatedCount"] == 2
        assert event["eventTime"] is None
        for core_only in ("involvedObject", "message", "source", "count", "reportingComponent"):
            assert core_only not in event
        code, same = await http.get(f"{NEW}/w1.1")
        assert code == 200 and same == event
        assert event["metadata"]["uid"] == kube.get("v1", "events", "default", "w1.1")["metadata"]["uid"]  # type: ignore[index]


async def test_events_k8s_io_events_are_core_events(kube: EmbeddedKubernetes) -> None:
    new_event = {
        "metadata": {"name": "e1"},
        "regarding": {"kind": "Widget", "name": "w1", "namespace": "default"},
        "reason": "Synced",
        "note": "in sync",
        "type": "Warning",
        "action": "Sync",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "example.com/widgets",
        "reportingInstance": "widgets-1",
    }
    async with api(kube, with_widgets=False) as http:
        code, created = await http.post(NEW, new_event)
        assert code == 201 and created["note"] == "in sync"
        code, event = await http.get(f"{CORE}/e1")
        assert code == 200 and event["apiVersion"] == "v1"
        assert event["involvedObject"] == new_event["regarding"]
        assert event["message"] == "in sync"
        assert event["reportingComponent"] == "example.com/widgets"
        assert (event["action"], event["eventTime"]) == ("Sync", "2026-01-01T00:00:00.000000Z")
        assert "regarding" not in event and "note" not in event
        # a write through either API changes the one object
        code, patched = await http.patch(f"{CORE}/e1", {"message": "still in sync"})
        assert code == 200
        code, seen = await http.get(f"{NEW}/e1")
        assert seen["note"] == "still in sync"
        assert seen["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
        code, patched = await http.patch(f"{NEW}/e1", {"note": "done"})
        assert code == 200 and patched["note"] == "done"
        _, event = await http.get(f"{CORE}/e1")
        assert event["message"] == "done"
        code, _ = await http.delete(f"{NEW}/e1")
        assert code == 200
        code, _ = await http.get(f"{CORE}/e1")
        assert code == 404


async def test_events_k8s_io_field_selectors_and_watches_see_the_converted_events(
    kube: EmbeddedKubernetes,
) -> None:
    async with api(kube, with_widgets=False) as http:
        await http.post(CORE, CORE_EVENT)
        other = {
            **CORE_EVENT,
            "metadata": {"name": "w2.1"},
            "involvedObject": {"kind": "Widget", "name": "w2"},
        }
        await http.post(CORE, other)
        query = {"fieldSelector": "regarding.name=w1,reportingController=widget-operator"}
        code, listing = await http.get(NEW, params=query)
        assert code == 200
        assert [item["metadata"]["name"] for item in listing["items"]] == ["w1.1"]
        params = {"watch": "true", "fieldSelector": "regarding.name=w2", "timeoutSeconds": "1"}
        async with http.session.get(NEW, params=params) as resp:
            assert resp.status == 200
            lines = [json.loads(line) for line in (await resp.read()).splitlines() if line.strip()]
        assert [(e["type"], e["object"]["metadata"]["name"], e["object"]["note"]) for e in lines] == [
            ("ADDED", "w2.1", "widget created")
        ]


async def test_version_answers_with_and_without_a_trailing_slash(kube: EmbeddedKubernetes) -> None:
    async with aiohttp.ClientSession(kube.url) as session:
        answers = []
        for path in ("/version", "/version/"):
            async with session.get(path) as resp:
                assert resp.status == 200
                answers.append(await resp.json())
        assert answers[0] == answers[1] and answers[0]["gitVersion"].startswith("v1.")
