"""Namespaces, built-in resources, CRD registration and the review APIs of the embedded Kubernetes API."""

from __future__ import annotations

import asyncio
import base64
import copy
from pathlib import Path

import yaml
from test_embedded_kube_support import GROUP, WIDGETS, api, widget, widget_crd

from twilio_video_playground.kube import AccessRule, EmbeddedKubernetes

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def test_initial_namespaces_and_namespace_crud(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        _, listing = await http.get("/api/v1/namespaces")
        assert {"default", "kube-system"} <= {item["metadata"]["name"] for item in listing["items"]}
        code, created = await http.post(
            "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
        )
        assert code == 201 and created["status"] == {"phase": "Active"}
        assert created["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
        code, fetched = await http.get("/api/v1/namespaces/team-a")
        assert code == 200 and fetched["metadata"]["uid"] == created["metadata"]["uid"]
        code, status = await http.post("/api/v1/namespaces", {"metadata": {"name": "Bad.Name"}})
        assert (code, status["reason"]) == (422, "Invalid")


async def test_objects_in_a_missing_namespace_are_not_found(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, status = await http.post(f"/apis/{GROUP}/v1/namespaces/nowhere/widgets", widget("w1"))
        assert (code, status["reason"], status["message"]) == (
            404,
            "NotFound",
            'namespaces "nowhere" not found',
        )


async def test_deleting_a_namespace_deletes_its_contents(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post("/api/v1/namespaces", {"metadata": {"name": "doomed"}})
        held = widget("held")
        held["metadata"]["finalizers"] = ["example.com/hold"]
        await http.post(f"/apis/{GROUP}/v1/namespaces/doomed/widgets", held)
        await http.post("/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "c"}})
        code, namespace = await http.delete("/api/v1/namespaces/doomed")
        assert code == 200 and namespace["status"]["phase"] == "Terminating"
        assert kube.get("v1", "configmaps", "doomed", "c") is None
        assert kube.get(f"{GROUP}/v1", "widgets", "doomed", "held")["metadata"]["deletionTimestamp"]  # type: ignore[index]
        code, status = await http.post("/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "late"}})
        assert (code, status["reason"]) == (403, "Forbidden")
        await http.patch(
            f"/apis/{GROUP}/v1/namespaces/doomed/widgets/held", {"metadata": {"finalizers": None}}
        )
        assert kube.get("v1", "namespaces", None, "doomed") is None


async def test_secrets_configmaps_serviceaccounts_leases_and_events(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        code, secret = await http.post(
            "/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}, "stringData": {"key": "value"}}
        )
        assert code == 201 and secret["type"] == "Opaque" and "stringData" not in secret
        assert base64.b64decode(secret["data"]["key"]) == b"value"
        code, cm = await http.post(
            "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}
        )
        assert code == 201 and "generation" not in cm["metadata"]
        code, _ = await http.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "sa"}})
        assert code == 201
        lease = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}}
        code, _ = await http.post("/apis/coordination.k8s.io/v1/namespaces/default/leases", lease)
        assert code == 201
        code, lease = await http.patch(
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/leader",
            {"spec": {"holderIdentity": "you"}},
        )
        assert code == 200 and lease["spec"]["holderIdentity"] == "you"
        event = {
            "metadata": {"generateName": "w1."},
            "involvedObject": {"kind": "Widget", "name": "w1", "namespace": "default", "uid": "u1"},
            "reason": "Tested",
            "message": "hello",
            "type": "Normal",
        }
        code, _ = await http.post("/api/v1/namespaces/default/events", event)
        assert code == 201
        query = {
            "fieldSelector": "involvedObject.name=w1,involvedObject.kind=Widget,"
            "involvedObject.uid=u1,type=Normal"
        }
        _, events = await http.get("/api/v1/namespaces/default/events", params=query)
        assert [e["reason"] for e in events["items"]] == ["Tested"]
        new_event = {
            "metadata": {"name": "e1"},
            "regarding": {"kind": "Widget", "name": "w1"},
            "reason": "R",
            "note": "n",
            "type": "Normal",
            "action": "Test",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "t",
            "reportingInstance": "t-1",
        }
        code, _ = await http.post("/apis/events.k8s.io/v1/namespaces/default/events", new_event)
        assert code == 201


async def test_crd_registration_and_removal(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        code, _ = await http.get(f"/apis/{GROUP}/v1")
        assert code == 404
        code, crd = await http.post(CRDS, widget_crd())
        assert code == 201
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions == {"NamesAccepted": "True", "Established": "True"}
        assert crd["status"]["acceptedNames"]["shortNames"] == ["wdg"]
        code, _ = await http.get(f"/apis/{GROUP}/v1")
        assert code == 200
        code, _ = await http.post(WIDGETS, widget("w1", size=40))
        assert code == 201

        changed = widget_crd()
        changed["metadata"]["resourceVersion"] = crd["metadata"]["resourceVersion"]
        changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
            "size"
        ]["maximum"] = 10
        code, updated = await http.put(f"{CRDS}/widgets.{GROUP}", changed)
        assert code == 200 and updated["metadata"]["generation"] == 2
        code, status = await http.post(WIDGETS, widget("w2", size=40))
        assert code == 422 and "less than or equal to 10" in status["message"]

        code, _ = await http.delete(f"{CRDS}/widgets.{GROUP}")
        assert code == 200
        assert (
            kube.get("apiextensions.k8s.io/v1", "customresourcedefinitions", None, f"widgets.{GROUP}") is None
        )
        code, _ = await http.get(f"/apis/{GROUP}/v1")
        assert code == 404
        assert kube.get(f"{GROUP}/v1", "widgets", "default", "w1") is None


async def test_invalid_crd_is_rejected(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        crd = widget_crd()
        crd["metadata"]["name"] = "wrong.name"
        del crd["spec"]["versions"][0]["schema"]
        code, status = await http.post(CRDS, crd)
        assert (code, status["reason"]) == (422, "Invalid")
        fields = {cause["field"] for cause in status["details"]["causes"]}
        assert {"metadata.name", "spec.versions[0].schema.openAPIV3Schema"} <= fields


async def test_multi_version_crd_serves_the_same_objects(kube: EmbeddedKubernetes) -> None:
    crd = widget_crd()
    beta = copy.deepcopy(crd["spec"]["versions"][0])
    beta.update(name="v1beta1", storage=False)
    crd["spec"]["versions"].append(beta)
    kube.register_crd(crd)
    async with api(kube, with_widgets=False) as http:
        await http.post(WIDGETS, widget("w1"))
        code, obj = await http.get(f"/apis/{GROUP}/v1beta1/namespaces/default/widgets/w1")
        assert code == 200 and obj["apiVersion"] == f"{GROUP}/v1beta1"
        _, group = await http.get(f"/apis/{GROUP}")
        assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]


async def test_crds_load_from_a_directory(tmp_path: Path) -> None:
    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump(widget_crd()))
    (tmp_path / "notes.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap"}))
    async with EmbeddedKubernetes(tmp_path) as kube, api(kube, with_widgets=False) as http:
        code, _ = await http.post(WIDGETS, widget("w1"))
        assert code == 201


async def test_token_review(kube: EmbeddedKubernetes) -> None:
    kube.allow_tokens["sa-token"] = {
        "username": "system:serviceaccount:default:app",
        "groups": ["system:serviceaccounts"],
    }
    async with api(kube, with_widgets=False) as http:
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": "sa-token"},
        }
        code, answer = await http.post("/apis/authentication.k8s.io/v1/tokenreviews", review)
        assert code == 201 and answer["status"]["authenticated"] is True
        assert answer["status"]["user"]["username"] == "system:serviceaccount:default:app"
        assert "token" not in answer["spec"]
        review["spec"]["token"] = "forged"
        _, answer = await http.post("/apis/authentication.k8s.io/v1/tokenreviews", review)
        assert answer["status"]["authenticated"] is False


async def test_subject_access_review(kube: EmbeddedKubernetes) -> None:
    kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=("video.openclaw.io",),
            resources=("videorooms/token",),
            namespaces=("team-a",),
            users=("system:serviceaccount:team-a:app",),
        )
    )
    attributes = {
        "verb": "create",
        "group": "video.openclaw.io",
        "resource": "videorooms",
        "subresource": "token",
        "namespace": "team-a",
        "name": "r1",
    }
    async with api(kube, with_widgets=False) as http:
        path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        body = {"spec": {"user": "system:serviceaccount:team-a:app", "resourceAttributes": attributes}}
        code, answer = await http.post(path, body)
        assert code == 201 and answer["status"]["allowed"] is True and answer["kind"] == "SubjectAccessReview"
        denied = copy.deepcopy(body)
        denied["spec"]["resourceAttributes"]["namespace"] = "team-b"
        _, answer = await http.post(path, denied)
        assert answer["status"]["allowed"] is False
        code, status = await http.post(path, {"spec": {"resourceAttributes": attributes}})
        assert (code, status["reason"]) == (422, "Invalid")
        code, _ = await http.get(path)
        assert code == 405


async def test_restart_keeps_state_and_serves_watches(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
    await kube.stop()
    await kube.start()
    async with (
        api(kube, with_widgets=False) as http,
        http.session.get(WIDGETS, params={"watch": "true"}) as response,
    ):
        line = await asyncio.wait_for(response.content.readline(), 5)
        assert b'"ADDED"' in line and b'"w1"' in line
