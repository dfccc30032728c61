"""Lists, selectors, paging, server-side Tables and discovery of the embedded Kubernetes API."""

from __future__ import annotations

from typing import Any

import pytest
from test_embedded_kube_support import API_VERSION, GROUP, WIDGETS, api, widget

from twilio_video_playground.kube import EmbeddedKubernetes

TABLE_ACCEPT = ",".join(
    [
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        "application/json",
    ]
)


def labelled(name: str, **labels: str) -> dict[str, Any]:
    body = widget(name)
    body["metadata"]["labels"] = labels
    return body


def names(listing: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in listing["items"]]


async def test_list_response_shape(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        code, listing = await http.get(WIDGETS)
        assert code == 200
        assert listing["kind"] == "WidgetList" and listing["apiVersion"] == API_VERSION
        assert listing["metadata"]["resourceVersion"].isdigit()
        assert listing["items"][0]["kind"] == "Widget" and listing["items"][0]["apiVersion"] == API_VERSION
        code, everywhere = await http.get(f"/apis/{GROUP}/v1/widgets")
        assert code == 200 and names(everywhere) == ["w1"]
        _, namespaces = await http.get("/api/v1/namespaces")
        assert namespaces["kind"] == "NamespaceList"


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front, back)", ["a", "c"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app=web,tier=front", ["a"]),
    ],
)
async def test_label_selectors(kube: EmbeddedKubernetes, selector: str, expected: list[str]) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, labelled("a", app="web", tier="front"))
        await http.post(WIDGETS, labelled("b", app="web"))
        await http.post(WIDGETS, labelled("c", app="db", tier="back"))
        await http.post(WIDGETS, labelled("d"))
        code, listing = await http.get(WIDGETS, params={"labelSelector": selector})
        assert code == 200 and names(listing) == expected


async def test_field_selectors(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("a"))
        await http.post(WIDGETS, widget("b"))
        _, listing = await http.get(WIDGETS, params={"fieldSelector": "metadata.name=b"})
        assert names(listing) == ["b"]
        _, listing = await http.get(
            f"/apis/{GROUP}/v1/widgets", params={"fieldSelector": "metadata.namespace!=default"}
        )
        assert names(listing) == []
        code, status = await http.get(WIDGETS, params={"fieldSelector": "spec.size=1"})
        assert (code, status["reason"]) == (400, "BadRequest")
        code, status = await http.get(WIDGETS, params={"labelSelector": "in (("})
        assert (code, status["reason"]) == (400, "BadRequest")


async def test_paging_with_limit_and_continue(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        for name in ("a", "b", "c", "d", "e"):
            await http.post(WIDGETS, widget(name))
        seen: list[str] = []
        params = {"limit": "2"}
        while True:
            _, page = await http.get(WIDGETS, params=params)
            seen += names(page)
            if not page["metadata"].get("continue"):
                break
            assert page["metadata"]["remainingItemCount"] == 5 - len(seen)
            params = {"limit": "2", "continue": page["metadata"]["continue"]}
        assert seen == ["a", "b", "c", "d", "e"]


async def test_delete_collection_by_label(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, labelled("a", app="web"))
        await http.post(WIDGETS, labelled("b"))
        code, deleted = await http.delete(WIDGETS, params={"labelSelector": "app=web"})
        assert code == 200 and names(deleted) == ["a"]
        _, listing = await http.get(WIDGETS)
        assert names(listing) == ["b"]


async def test_table_with_printer_columns(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1", size=3))
        await http.patch(
            f"{WIDGETS}/w1/status", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        )
        code, table = await http.get(WIDGETS, headers={"Accept": TABLE_ACCEPT})
        assert code == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
        columns = [(c["name"], c["type"]) for c in table["columnDefinitions"]]
        assert columns == [
            ("Name", "string"),
            ("Size", "integer"),
            ("Mode", "string"),
            ("Ready", "string"),
            ("Age", "date"),
        ]
        cells = table["rows"][0]["cells"]
        assert cells[:4] == ["w1", 3, "small", "True"]
        assert cells[4].endswith("s")  # an age such as "0s", not a timestamp
        assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
        _, one = await http.get(
            f"{WIDGETS}/w1", headers={"Accept": TABLE_ACCEPT}, params={"includeObject": "Object"}
        )
        assert len(one["rows"]) == 1 and one["rows"][0]["object"]["spec"]["size"] == 3


async def test_default_tables_of_builtins(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await http.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "sa"}})
        _, table = await http.get(
            "/api/v1/namespaces/default/serviceaccounts", headers={"Accept": TABLE_ACCEPT}
        )
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Secrets", "Age"]
        _, table = await http.get("/api/v1/namespaces", headers={"Accept": TABLE_ACCEPT})
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
        assert ["default", "Active"] in [row["cells"][:2] for row in table["rows"]]


async def test_discovery(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, versions = await http.get("/api")
        assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
        _, groups = await http.get("/apis")
        by_name = {group["name"]: group for group in groups["groups"]}
        for group in (GROUP, "apiextensions.k8s.io", "coordination.k8s.io", "events.k8s.io"):
            assert group in by_name
        _, group = await http.get(f"/apis/{GROUP}")
        assert group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == "v1"
        _, resources = await http.get(f"/apis/{GROUP}/v1")
        entries = {entry["name"]: entry for entry in resources["resources"]}
        assert entries["widgets"]["shortNames"] == ["wdg"] and entries["widgets"]["categories"] == ["testing"]
        assert entries["widgets"]["singularName"] == "widget" and "watch" in entries["widgets"]["verbs"]
        assert entries["widgets/status"]["verbs"] == ["get", "patch", "update"]
        _, core = await http.get("/api/v1")
        core_names = {entry["name"] for entry in core["resources"]}
        assert {"namespaces", "events", "secrets", "configmaps", "serviceaccounts"} <= core_names
        _, version = await http.get("/version")
        assert version["major"] == "1"
        code, _ = await http.get("/apis/nothing.example.com")
        assert code == 404
