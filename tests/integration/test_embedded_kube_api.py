"""The embedded Kubernetes API behaves like a real API server for object writes and reads (over HTTP)."""

from __future__ import annotations

import re

import kmock
from test_embedded_kube_support import (
    API_VERSION,
    JSON_PATCH,
    KIND,
    STRATEGIC,
    WIDGETS,
    api,
    widget,
)

from twilio_video_playground.kube import EmbeddedKubernetes

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_create_sets_server_fields(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, obj = await http.post(WIDGETS, widget("w1"))
        assert code == 201
        meta = obj["metadata"]
        assert meta["generation"] == 1
        assert re.match(r"^[0-9a-f-]{36}$", meta["uid"])
        assert TIMESTAMP.match(meta["creationTimestamp"])
        assert isinstance(meta["resourceVersion"], str) and meta["resourceVersion"].isdigit()
        assert meta["namespace"] == "default"
        assert obj["apiVersion"] == API_VERSION and obj["kind"] == KIND
        assert kube.get(API_VERSION, "widgets", "default", "w1") == obj


async def test_resource_version_is_global_and_grows_on_every_write(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, first = await http.post(WIDGETS, widget("w1"))
        _, cm = await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
        _, patched = await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}})
        versions = [int(o["metadata"]["resourceVersion"]) for o in (first, cm, patched)]
        assert versions == sorted(versions) and len(set(versions)) == 3
        _, again = await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}})
        assert again["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]  # a no-op write
        _, listed = await http.get(WIDGETS)
        assert int(listed["metadata"]["resourceVersion"]) >= versions[-1]


async def test_generation_bumps_only_on_spec_changes(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        _, obj = await http.patch(f"{WIDGETS}/w1", {"metadata": {"labels": {"a": "b"}}})
        assert obj["metadata"]["generation"] == 1
        _, obj = await http.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}})
        assert obj["metadata"]["generation"] == 1
        _, obj = await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 5}})
        assert obj["metadata"]["generation"] == 2
        _, obj = await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 6}})
        assert obj["metadata"]["generation"] == 3


async def test_stale_resource_version_is_a_conflict(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, obj = await http.post(WIDGETS, widget("w1"))
        stale = obj["metadata"]["resourceVersion"]
        await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}})
        obj["spec"]["size"] = 3
        code, status = await http.put(f"{WIDGETS}/w1", obj)
        assert code == 409 and status["reason"] == "Conflict" and status["kind"] == "Status"
        assert "the object has been modified" in status["message"]
        code, status = await http.patch(
            f"{WIDGETS}/w1", {"metadata": {"resourceVersion": stale}, "spec": {"size": 4}}
        )
        assert (code, status["reason"]) == (409, "Conflict")
        assert kube.get(API_VERSION, "widgets", "default", "w1")["spec"]["size"] == 2  # type: ignore[index]


async def test_put_replaces_and_requires_a_resource_version(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, obj = await http.post(WIDGETS, widget("w1", color="red"))
        replacement = widget("w1", size=7)
        code, status = await http.put(f"{WIDGETS}/w1", replacement)
        assert (code, status["reason"]) == (422, "Invalid")
        assert "metadata.resourceVersion" in status["message"]
        replacement["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"]
        code, replaced = await http.put(f"{WIDGETS}/w1", replacement)
        assert code == 200
        assert replaced["spec"] == {"size": 7, "mode": "small", "limits": {"cpu": 2}}  # color is gone
        assert replaced["metadata"]["uid"] == obj["metadata"]["uid"]
        assert replaced["metadata"]["generation"] == 2


async def test_status_subresource_is_separate(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, obj = await http.post(WIDGETS, {**widget("w1"), "status": {"phase": "Forged"}})
        assert "status" not in obj  # dropped on create
        _, obj = await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}, "status": {"phase": "Ignored"}})
        assert obj["spec"]["size"] == 2 and "status" not in obj
        _, obj = await http.patch(f"{WIDGETS}/w1/status", {"spec": {"size": 9}, "status": {"phase": "Ready"}})
        assert obj["spec"]["size"] == 2 and obj["status"] == {"phase": "Ready"}
        obj["status"]["phase"] = "Replaced"
        code, obj = await http.put(f"{WIDGETS}/w1/status", obj)
        assert code == 200 and obj["status"]["phase"] == "Replaced"
        code, fetched = await http.get(f"{WIDGETS}/w1/status")
        assert code == 200 and fetched["status"]["phase"] == "Replaced"


async def test_merge_strategic_and_json_patches(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1", tags=["a"], color="red", labels={"x": "1", "y": "2"}))
        _, obj = await http.patch(f"{WIDGETS}/w1", {"spec": {"color": None, "labels": {"x": None, "z": "3"}}})
        assert "color" not in obj["spec"] and obj["spec"]["labels"] == {"y": "2", "z": "3"}
        strategic = {
            "spec": {"tags": ["b"], "$setElementOrder/tags": ["b"], "labels": {"$patch": "replace", "q": "1"}}
        }
        _, obj = await http.patch(f"{WIDGETS}/w1", strategic, STRATEGIC)
        assert obj["spec"]["tags"] == ["b"] and obj["spec"]["labels"] == {"q": "1"}
        ops = [
            {"op": "test", "path": "/spec/size", "value": 1},
            {"op": "add", "path": "/spec/tags/-", "value": "c"},
            {"op": "replace", "path": "/spec/size", "value": 4},
            {"op": "copy", "from": "/spec/mode", "path": "/spec/color"},
            {"op": "remove", "path": "/spec/labels/q"},
        ]
        code, obj = await http.patch(f"{WIDGETS}/w1", ops, JSON_PATCH)
        assert code == 200
        assert (
            obj["spec"]["tags"] == ["b", "c"] and obj["spec"]["size"] == 4 and obj["spec"]["color"] == "small"
        )


async def test_failed_json_patch_test_is_invalid(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, obj = await http.post(WIDGETS, widget("w1"))
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        ]
        code, status = await http.patch(f"{WIDGETS}/w1", ops, JSON_PATCH)
        assert (code, status["reason"], status["code"]) == (422, "Invalid", 422)
        ops[0]["value"] = obj["metadata"]["resourceVersion"]
        code, obj = await http.patch(f"{WIDGETS}/w1", ops, JSON_PATCH)
        assert code == 200 and obj["metadata"]["finalizers"] == ["x/y"]
        code, status = await http.patch(f"{WIDGETS}/w1", {"op": "nonsense"}, JSON_PATCH)
        assert (code, status["reason"]) == (400, "BadRequest")
        code, status = await http.patch(f"{WIDGETS}/w1", {"a": 1}, "application/apply-patch+yaml")
        assert (code, status["reason"]) == (422, "Invalid")  # an apply without fieldManager
        assert "fieldManager: Required value" in status["message"]
        code, status = await http.patch(f"{WIDGETS}/w1", {"a": 1}, "application/x-unknown-patch")
        assert (code, status["reason"]) == (415, "UnsupportedMediaType")


async def test_finalizers_hold_deletion(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        body = widget("w1")
        body["metadata"]["finalizers"] = ["example.com/hold"]
        await http.post(WIDGETS, body)
        code, obj = await http.delete(f"{WIDGETS}/w1")
        assert code == 200 and TIMESTAMP.match(obj["metadata"]["deletionTimestamp"])
        assert obj["metadata"]["generation"] == 2  # marking for deletion bumps it, as real servers do
        code, again = await http.delete(f"{WIDGETS}/w1")
        assert code == 200 and again["metadata"]["deletionTimestamp"] == obj["metadata"]["deletionTimestamp"]
        code, status = await http.patch(
            f"{WIDGETS}/w1", {"metadata": {"finalizers": ["example.com/hold", "new"]}}
        )
        assert code == 422 and "no new finalizers can be added" in status["message"]
        code, status = await http.post(WIDGETS, widget("w1"))
        assert (code, status["reason"]) == (409, "AlreadyExists")
        code, _ = await http.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
        assert code == 200
        code, status = await http.get(f"{WIDGETS}/w1")
        assert (code, status["reason"]) == (404, "NotFound")
        code, _ = await http.post(WIDGETS, widget("w1"))
        assert code == 201


async def test_delete_without_finalizers_and_preconditions(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        _, obj = await http.post(WIDGETS, widget("w1"))
        code, status = await http.delete(f"{WIDGETS}/w1", {"preconditions": {"uid": "someone-else"}})
        assert (code, status["reason"]) == (409, "Conflict")
        code, gone = await http.delete(f"{WIDGETS}/w1", {"preconditions": {"uid": obj["metadata"]["uid"]}})
        assert code == 200 and gone["metadata"]["name"] == "w1"
        assert kube.get(API_VERSION, "widgets", "default", "w1") is None
        code, status = await http.delete(f"{WIDGETS}/w1")
        assert (code, status["reason"], status["details"]["kind"]) == (404, "NotFound", "widgets")
        await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
        code, status = await http.delete("/api/v1/namespaces/default/configmaps/c")
        assert code == 200 and status["status"] == "Success" and status["details"]["name"] == "c"


async def test_generate_name(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        body = widget("ignored")
        body["metadata"] = {"generateName": "gen-"}
        _, first = await http.post(WIDGETS, body)
        _, second = await http.post(WIDGETS, body)
        assert re.match(r"^gen-[a-z0-9]{5}$", first["metadata"]["name"])
        assert first["metadata"]["name"] != second["metadata"]["name"]
        code, status = await http.post(
            WIDGETS, {"apiVersion": API_VERSION, "kind": KIND, "spec": {"size": 1}}
        )
        assert code == 422 and "name or generateName is required" in status["message"]
        code, status = await http.post(WIDGETS, widget("Not_Valid"))
        assert code == 422 and status["details"]["causes"][0]["field"] == "metadata.name"


async def test_dry_run_persists_nothing(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, obj = await http.post(WIDGETS, widget("w1"), params={"dryRun": "All"})
        assert code == 201 and obj["metadata"]["name"] == "w1"
        assert kube.get(API_VERSION, "widgets", "default", "w1") is None


async def test_canonical_errors(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, status = await http.get(f"{WIDGETS}/missing")
        assert (code, status["reason"], status["message"]) == (
            404,
            "NotFound",
            'widgets.test.openclaw.io "missing" not found',
        )
        await http.post(WIDGETS, widget("w1"))
        code, status = await http.post(WIDGETS, widget("w1"))
        assert (code, status["reason"]) == (409, "AlreadyExists")
        code, status = await http.put(WIDGETS, widget("w1"))
        assert (code, status["reason"]) == (405, "MethodNotAllowed")
        code, status = await http.get("/apis/authentication.k8s.io/v1/tokenreviews")
        assert (code, status["reason"]) == (405, "MethodNotAllowed")
        code, status = await http.call("POST", WIDGETS, None, headers={"Content-Type": "application/json"})
        assert (code, status["reason"]) == (400, "BadRequest")
        wrong_namespace = widget("w2")
        wrong_namespace["metadata"]["namespace"] = "kube-system"
        code, status = await http.post(WIDGETS, wrong_namespace)
        assert (code, status["reason"]) == (400, "BadRequest")
        code, status = await http.get("/apis/nothing.example.com/v1/things")
        assert (code, status["reason"]) == (404, "NotFound")
        code, _ = await http.get("/openapi/v3/apis/nothing.example.com/v1")
        assert code == 404


async def test_kmock_reactions_take_precedence_for_fault_injection(kube: EmbeddedKubernetes) -> None:
    kube.emulator[kmock.method.GET, kmock.resource("v1/configmaps"), kmock.name("flaky")][:1] << 503
    async with api(kube) as http:
        await http.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "flaky"}})
        code, _ = await http.get("/api/v1/namespaces/default/configmaps/flaky")
        assert code == 503
        code, obj = await http.get("/api/v1/namespaces/default/configmaps/flaky")
        assert code == 200 and obj["metadata"]["name"] == "flaky"


async def test_request_counts(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        await http.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "x"}})
        await http.get(WIDGETS)
        await http.get(WIDGETS)
    counts = kube.request_counts
    assert counts[("create", "widgets.test.openclaw.io")] == 1
    assert counts[("patch", "widgets.test.openclaw.io/status")] == 1
    assert counts[("list", "widgets.test.openclaw.io")] == 2
