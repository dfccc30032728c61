"""The fidelity of the embedded Kubernetes API, measured: the API behaviours the operator (kopf), kubectl and
API clients rely on, each run against both backends, the embedded API and the real kube-apiserver of
``tests/real_kube.py``. Every assertion holds on both; where the embedded API is known to differ, the test
pins what each backend does and docs/embedded-kubernetes.md lists the gap (its fidelity table).

The real backend is skipped where the real tier cannot be had (no Go, no binary), except under CI=true.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from fidelity_backends import GADGET_SCHEMA, GADGETS, GROUP, Backend, embedded_backend

from real_kube import RealKube

GADGET_API = f"{GROUP}/v1"
PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
APPLY = "application/apply-patch+yaml"


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    backend_iterator = embedded_backend(tmp_path_factory.mktemp("fidelity-embedded"))
    backend = next(backend_iterator)
    backend.install_crd()
    yield backend
    next(backend_iterator, None)


@pytest.fixture(scope="session")
def real(real_kube: RealKube, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    context = ssl.create_default_context(cafile=str(real_kube.ca_file))
    context.load_cert_chain(str(real_kube.cert_file), str(real_kube.key_file))
    backend = Backend(
        "real",
        real_kube.server,
        real_kube.kubeconfig,
        tmp_path_factory.mktemp("fidelity-real") / "kubectl-cache",
        context=context,
    )
    backend.install_crd()
    return backend


@pytest.fixture(params=["embedded", "real"])
def api(request: pytest.FixtureRequest) -> Backend:
    backend: Backend = request.getfixturevalue(request.param)
    return backend


@pytest.fixture
def ns(api: Backend) -> str:
    name = f"fid-{uuid.uuid4().hex[:8]}"
    api.create_namespace(name)
    return name


def gadgets(ns: str, name: str = "") -> str:
    return f"/apis/{GROUP}/v1/namespaces/{ns}/{GADGETS}" + (f"/{name}" if name else "")


def configmaps(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def gadget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": GADGET_API, "kind": "Gadget", "metadata": {"name": name}, "spec": spec}


def apply_yaml(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj)


# --- objects ---------------------------------------------------------------------------------------------


def test_crud_and_not_found(api: Backend, ns: str) -> None:
    created = api.request("POST", configmaps(ns), {"metadata": {"name": "c1"}, "data": {"a": "1"}})
    assert created.status == 201 and created.body["metadata"]["resourceVersion"]
    assert "generation" not in created.body["metadata"]
    listed = api.request("GET", configmaps(ns))
    assert listed.body["kind"] == "ConfigMapList" and [
        i["metadata"]["name"] for i in listed.body["items"]
    ] == ["c1"]
    replaced = api.request("PUT", configmaps(ns, "c1"), {**created.body, "data": {"a": "2"}})
    assert (
        replaced.status == 200
        and replaced.body["metadata"]["resourceVersion"] != created.body["metadata"]["resourceVersion"]
    )
    deleted = api.request("DELETE", configmaps(ns, "c1"))
    assert deleted.status == 200 and deleted.body["kind"] == "Status" and deleted.body["status"] == "Success"
    missing = api.request("GET", configmaps(ns, "c1"))
    assert (missing.status, missing.body["reason"], missing.body["message"]) == (
        404,
        "NotFound",
        'configmaps "c1" not found',
    )


def test_a_write_that_changes_nothing_keeps_the_resource_version(api: Backend, ns: str) -> None:
    created = api.request("POST", gadgets(ns), gadget("g1", size=2)).body
    same = api.request("PATCH", gadgets(ns, "g1"), {"spec": {"size": 2}})
    assert same.body["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_a_stale_resource_version_is_a_409(api: Backend, ns: str) -> None:
    created = api.request("POST", configmaps(ns), {"metadata": {"name": "c1"}}).body
    api.request("PATCH", configmaps(ns, "c1"), {"data": {"a": "1"}})
    stale = api.request("PUT", configmaps(ns, "c1"), {**created, "data": {"a": "2"}})
    assert (stale.status, stale.body["reason"], stale.body["message"]) == (
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "c1": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )
    missing_version = api.request("PUT", gadgets(ns, "g1"), gadget("g1", size=1))
    assert missing_version.status == 404
    api.request("POST", gadgets(ns), gadget("g1", size=1))
    no_version = api.request("PUT", gadgets(ns, "g1"), gadget("g1", size=2))
    assert (no_version.status, no_version.body["reason"]) == (422, "Invalid")
    assert no_version.body["message"] == (
        f'{GADGETS}.{GROUP} "g1" is invalid: '
        "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    )


def test_generation_moves_with_the_spec_only(api: Backend, ns: str) -> None:
    assert api.request("POST", gadgets(ns), gadget("g1", size=1)).body["metadata"]["generation"] == 1
    labelled = api.request("PATCH", gadgets(ns, "g1"), {"metadata": {"labels": {"a": "b"}}}).body
    assert labelled["metadata"]["generation"] == 1
    status = api.request("PATCH", gadgets(ns, "g1") + "/status", {"status": {"phase": "Ready"}}).body
    assert status["metadata"]["generation"] == 1
    spec = api.request("PATCH", gadgets(ns, "g1"), {"spec": {"size": 2}}).body
    assert spec["metadata"]["generation"] == 2


def test_the_status_subresource_is_separate(api: Backend, ns: str) -> None:
    created = api.request("POST", gadgets(ns), {**gadget("g1", size=1), "status": {"phase": "Made"}}).body
    assert "status" not in created
    main = api.request("PATCH", gadgets(ns, "g1"), {"spec": {"size": 3}, "status": {"phase": "Ignored"}}).body
    assert "status" not in main and main["spec"]["size"] == 3
    status = api.request(
        "PATCH", gadgets(ns, "g1") + "/status", {"spec": {"size": 9}, "status": {"phase": "Ok"}}
    )
    assert status.body["status"] == {"phase": "Ok"} and status.body["spec"]["size"] == 3


# --- reading and watching --------------------------------------------------------------------------------


def test_label_and_field_selectors(api: Backend, ns: str) -> None:
    api.request(
        "POST", gadgets(ns), {**gadget("a", mode="fast"), "metadata": {"name": "a", "labels": {"tier": "x"}}}
    )
    api.request("POST", gadgets(ns), {**gadget("b"), "metadata": {"name": "b", "labels": {"tier": "y"}}})
    api.request("POST", gadgets(ns), gadget("c"))

    def names(query: str) -> list[str]:
        return [
            item["metadata"]["name"] for item in api.request("GET", gadgets(ns), query=query).body["items"]
        ]

    assert names("labelSelector=tier%3Dx") == ["a"]
    assert names("labelSelector=tier%20in%20(x,y)") == ["a", "b"]
    assert names("labelSelector=!tier") == ["c"]
    assert names("fieldSelector=metadata.name%3Db") == ["b"]
    assert names("fieldSelector=spec.mode%3Dsmall") == ["b", "c"]
    refused = api.request("GET", gadgets(ns), query="fieldSelector=spec.size%3D1")
    assert (refused.status, refused.body["reason"]) == (400, "BadRequest")
    assert refused.body["message"] == "field label not supported: spec.size"
    builtin = api.request("GET", configmaps(ns), query="fieldSelector=data.x%3D1")
    assert (builtin.status, builtin.body["message"]) == (
        400,
        '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
    )


def test_list_pages_with_limit_and_continue(api: Backend, ns: str) -> None:
    for name in ("a", "b", "c"):
        api.request("POST", configmaps(ns), {"metadata": {"name": name}})
    first = api.request("GET", configmaps(ns), query="limit=2").body
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    rest = api.request("GET", configmaps(ns), query=f"limit=2&continue={first['metadata']['continue']}").body
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"] and "continue" not in rest["metadata"]


def test_watch_resumes_from_a_resource_version(api: Backend, ns: str) -> None:
    created = api.request("POST", gadgets(ns), gadget("g1", size=1)).body
    api.request("PATCH", gadgets(ns, "g1"), {"spec": {"size": 2}})
    api.request("DELETE", gadgets(ns, "g1"))
    since = created["metadata"]["resourceVersion"]
    events = api.watch(gadgets(ns), f"resourceVersion={since}&timeoutSeconds=5", events=2)
    assert [(e["type"], e["object"]["spec"]["size"]) for e in events] == [("MODIFIED", 2), ("DELETED", 2)]


def test_watch_with_initial_events_ends_them_with_a_bookmark(api: Backend, ns: str) -> None:
    api.request("POST", gadgets(ns), gadget("g1", size=1))
    query = (
        "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=5"
    )
    events = api.watch(gadgets(ns), query, events=2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_from_a_too_old_resource_version_is_410_gone(api: Backend, ns: str) -> None:
    events = api.watch(gadgets(ns), "resourceVersion=1&timeoutSeconds=5", events=1)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert (status["code"], status["reason"]) == (410, "Expired")
    assert status["message"].startswith("too old resource version: 1 (")


# --- deletion --------------------------------------------------------------------------------------------


def test_finalizers_hold_an_object_with_a_deletion_timestamp(api: Backend, ns: str) -> None:
    body = {**gadget("g1", size=1), "metadata": {"name": "g1", "finalizers": ["fidelity.openclaw.io/hold"]}}
    api.request("POST", gadgets(ns), body)
    deleting = api.request("DELETE", gadgets(ns, "g1"))
    assert deleting.status == 200 and deleting.body["metadata"]["deletionTimestamp"]
    assert deleting.body["metadata"]["generation"] == 2
    more = api.request(
        "PATCH", gadgets(ns, "g1"), {"metadata": {"finalizers": ["fidelity.openclaw.io/hold", "x/y"]}}
    )
    assert (more.status, more.body["reason"]) == (422, "Invalid")
    assert "no new finalizers can be added if the object is being deleted" in more.body["message"]
    api.request("PATCH", gadgets(ns, "g1"), {"metadata": {"finalizers": None}})
    assert api.request("GET", gadgets(ns, "g1")).status == 404


def test_a_terminating_namespace_refuses_new_content(api: Backend, ns: str) -> None:
    body = {**gadget("held"), "metadata": {"name": "held", "finalizers": ["fidelity.openclaw.io/hold"]}}
    api.request("POST", gadgets(ns), body)
    deleted = api.request("DELETE", f"/api/v1/namespaces/{ns}")
    assert deleted.status == 200 and deleted.body["status"]["phase"] == "Terminating"
    refused = api.request("POST", configmaps(ns), {"metadata": {"name": "late"}})
    assert (refused.status, refused.body["reason"]) == (403, "Forbidden")
    assert refused.body["message"] == (
        f'configmaps "late" is forbidden: unable to create new content in namespace {ns} '
        "because it is being terminated"
    )
    held = api.request("GET", gadgets(ns, "held"))
    if api.name == "embedded":
        # Known gap: the embedded API deletes a namespace's content itself; on a real cluster the namespace
        # controller of kube-controller-manager does, which the real tier does not run.
        assert held.body["metadata"]["deletionTimestamp"]
    else:
        assert "deletionTimestamp" not in held.body["metadata"]
    api.request("PATCH", gadgets(ns, "held"), {"metadata": {"finalizers": None}})


# --- schemas ---------------------------------------------------------------------------------------------


def test_unknown_fields_are_pruned_with_a_warning_and_defaults_applied(api: Backend, ns: str) -> None:
    created = api.request("POST", gadgets(ns), {**gadget("g1", size=1, bogus=1), "extra": True})
    assert created.status == 201 and created.body["spec"] == {"size": 1, "mode": "small"}
    assert "extra" not in created.body
    assert any('unknown field \\"spec.bogus\\"' in warning for warning in created.warnings), created.warnings
    strict = api.request("POST", gadgets(ns), gadget("g2", bogus=1), query="fieldValidation=Strict")
    assert (strict.status, strict.body["reason"]) == (400, "BadRequest")
    assert 'strict decoding error: unknown field "spec.bogus"' in strict.body["message"]
    invalid = api.request("POST", gadgets(ns), gadget("g3", size=11))
    assert (invalid.status, invalid.body["reason"]) == (422, "Invalid")
    assert invalid.body["message"] == (
        'Gadget.fidelity.openclaw.io "g3" is invalid: spec.size: Invalid value: 11: '
        "spec.size in body should be less than or equal to 10"
    )


# --- OpenAPI ---------------------------------------------------------------------------------------------


def test_openapi_v3_documents_with_hashes_and_group_version_kinds(api: Backend) -> None:
    index = api.request("GET", "/openapi/v3").body
    url = index["paths"][f"apis/{GROUP}/v1"]["serverRelativeURL"]
    document = api.request("GET", url.split("?")[0], query=url.split("?")[1])
    assert document.status == 200 and document.headers["cache-control"] == "public, immutable"
    assert url.endswith("?hash=" + hashlib.sha512(document.raw).hexdigest().upper())
    schemas = document.body["components"]["schemas"]
    assert schemas["io.openclaw.fidelity.v1.Gadget"]["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "Gadget", "version": "v1"}
    ]
    assert (
        schemas["io.openclaw.fidelity.v1.Gadget"]["properties"]["spec"] == GADGET_SCHEMA["properties"]["spec"]
    )
    patch = document.body["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/{GADGETS}/{{name}}"]["patch"]
    assert sorted(p["name"] for p in patch["parameters"]) == [
        "dryRun",
        "fieldManager",
        "fieldValidation",
        "force",
    ]
    stale = api.request("GET", url.split("?")[0], query="hash=0")
    assert stale.status == 301 and stale.headers["location"] == url


def test_openapi_v2_in_json_and_protobuf(api: Backend) -> None:
    swagger = api.request("GET", "/openapi/v2")
    assert swagger.status == 200 and swagger.body["swagger"] == "2.0"
    gadget_definition = swagger.body["definitions"]["io.openclaw.fidelity.v1.Gadget"]
    assert gadget_definition["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "kind": "Gadget", "version": "v1"}
    ]
    protobuf = api.request("GET", "/openapi/v2", headers={"Accept": PROTOBUF_V2})
    if api.name == "embedded":
        assert protobuf.status == 406  # known gap: only JSON is served
    else:
        assert protobuf.status == 200 and protobuf.headers["content-type"].startswith(
            "application/com.github.proto-openapi"
        )


def test_kubectl_explain_and_apply_with_default_validation(api: Backend, ns: str) -> None:
    explained = api.kubectl("explain", "gadget.spec.ports")
    assert explained.returncode == 0, explained.stderr
    assert "<[]Object>" in explained.stdout and "name\t<string> -required-" in explained.stdout
    applied = api.kubectl("apply", "-n", ns, "-f", "-", input=apply_yaml(gadget("k1", size=2)))
    assert applied.returncode == 0 and "gadget.fidelity.openclaw.io/k1 created" in applied.stdout, (
        applied.stderr
    )
    refused = api.kubectl("apply", "-n", ns, "-f", "-", input=apply_yaml(gadget("k2", size=2, bogus=1)))
    assert refused.returncode != 0 and 'unknown field "spec.bogus"' in refused.stderr


# --- server-side apply -----------------------------------------------------------------------------------


def managed(obj: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {
        (entry["manager"], entry["operation"], entry.get("subresource", "")): entry["fieldsV1"]
        for entry in obj["metadata"].get("managedFields") or []
    }


def test_server_side_apply_gitops_with_the_operator_writing_status(api: Backend, ns: str) -> None:
    config = gadget("g1", size=2, ports=[{"name": "http", "port": 80}])
    config["metadata"]["labels"] = {"app": "g"}
    first = api.request(
        "PATCH",
        gadgets(ns, "g1"),
        apply_yaml(config),
        content_type=APPLY,
        query="fieldManager=argocd-controller",
    )
    assert first.status == 201, first.body
    kopf = {"User-Agent": "kopf/1.45.0"}
    api.request(
        "PATCH",
        gadgets(ns, "g1"),
        {"metadata": {"finalizers": ["kopf.zalando.org/KopfFinalizerMarker"]}},
        headers=kopf,
    )
    status = api.request(
        "PATCH", gadgets(ns, "g1") + "/status", {"status": {"phase": "Ready"}}, headers=kopf
    ).body
    again = api.request(
        "PATCH",
        gadgets(ns, "g1"),
        apply_yaml(config),
        content_type=APPLY,
        query="fieldManager=argocd-controller",
    )
    assert again.status == 200
    assert again.body["metadata"]["resourceVersion"] == status["metadata"]["resourceVersion"]
    assert managed(again.body) == {
        ("argocd-controller", "Apply", ""): {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:ports": {'k:{"name":"http"}': {".": {}, "f:name": {}, "f:port": {}}}, "f:size": {}},
        },
        ("kopf", "Update", ""): {
            "f:metadata": {"f:finalizers": {".": {}, 'v:"kopf.zalando.org/KopfFinalizerMarker"': {}}}
        },
        ("kopf", "Update", "status"): {"f:status": {".": {}, "f:phase": {}}},
    }
    entries = again.body["metadata"]["managedFields"]
    assert (entries[0]["manager"], entries[0]["operation"]) == ("argocd-controller", "Apply")
    assert {e["apiVersion"] for e in entries} == {GADGET_API}


def test_apply_conflicts_with_another_manager_and_force_takes_the_field(api: Backend, ns: str) -> None:
    api.request(
        "PATCH",
        gadgets(ns, "g1"),
        apply_yaml(gadget("g1", size=2)),
        content_type=APPLY,
        query="fieldManager=argocd-controller",
    )
    api.request(
        "PATCH", gadgets(ns, "g1"), {"spec": {"size": 3}}, headers={"User-Agent": "kubectl-edit/v1.37"}
    )
    conflict = api.request(
        "PATCH",
        gadgets(ns, "g1"),
        apply_yaml(gadget("g1", size=4)),
        content_type=APPLY,
        query="fieldManager=argocd-controller",
    )
    assert (conflict.status, conflict.body["reason"]) == (409, "Conflict")
    assert (
        conflict.body["message"]
        == f'Apply failed with 1 conflict: conflict with "kubectl-edit" using {GADGET_API}: .spec.size'
    )
    assert conflict.body["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "kubectl-edit" using {GADGET_API}',
            "field": ".spec.size",
        }
    ]
    forced = api.request(
        "PATCH",
        gadgets(ns, "g1"),
        apply_yaml(gadget("g1", size=4)),
        content_type=APPLY,
        query="fieldManager=argocd-controller&force=true",
    )
    assert forced.status == 200 and forced.body["spec"]["size"] == 4
    assert set(managed(forced.body)) == {("argocd-controller", "Apply", "")}


def test_apply_removes_what_its_manager_no_longer_applies_unless_shared(api: Backend, ns: str) -> None:
    both = gadget("g1", size=2, tags=["a"], ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53}])
    api.request("PATCH", gadgets(ns, "g1"), apply_yaml(both), content_type=APPLY, query="fieldManager=a")
    api.request(
        "PATCH",
        gadgets(ns, "g1"),
        apply_yaml(gadget("g1", size=2)),
        content_type=APPLY,
        query="fieldManager=b",
    )
    fewer = gadget("g1", ports=[{"name": "http", "port": 80}])
    result = api.request(
        "PATCH", gadgets(ns, "g1"), apply_yaml(fewer), content_type=APPLY, query="fieldManager=a"
    ).body
    assert result["spec"] == {"size": 2, "mode": "small", "ports": [{"name": "http", "port": 80}]}


def test_apply_needs_a_field_manager_and_force_needs_an_apply(api: Backend, ns: str) -> None:
    missing = api.request("PATCH", gadgets(ns, "g1"), apply_yaml(gadget("g1")), content_type=APPLY)
    assert (missing.status, missing.body["message"]) == (
        422,
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    )
    api.request("POST", gadgets(ns), gadget("g1"))
    forced = api.request("PATCH", gadgets(ns, "g1"), {"spec": {"size": 1}}, query="force=true")
    assert (forced.status, forced.body["message"]) == (
        422,
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
    )
    untyped = api.request(
        "PATCH", gadgets(ns, "g1"), "metadata:\n  name: g1\n", content_type=APPLY, query="fieldManager=x"
    )
    assert (untyped.status, untyped.body["message"]) == (400, "invalid object type: /, Kind=")


def test_kubectl_server_side_apply_is_a_no_op_the_second_time(api: Backend, ns: str) -> None:
    manifest = apply_yaml(gadget("k1", size=2))
    first = api.kubectl(
        "apply", "--server-side", "--field-manager=argocd-controller", "-n", ns, "-f", "-", input=manifest
    )
    assert first.returncode == 0 and "serverside-applied" in first.stdout, first.stderr
    before = api.request("GET", gadgets(ns, "k1")).body["metadata"]["resourceVersion"]
    second = api.kubectl(
        "apply", "--server-side", "--field-manager=argocd-controller", "-n", ns, "-f", "-", input=manifest
    )
    assert second.returncode == 0, second.stderr
    assert api.request("GET", gadgets(ns, "k1")).body["metadata"]["resourceVersion"] == before


# --- reviews and version ---------------------------------------------------------------------------------


def test_token_review_and_subject_access_review(api: Backend, ns: str) -> None:
    api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "app"}})
    issued = api.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/app/token", {"spec": {}})
    assert issued.status == 201
    token = issued.body["status"]["token"]
    claims = token.split(".")[1]
    assert "sub" in yaml.safe_load(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    review = api.request(
        "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": token}}
    ).body
    user = review["status"]["user"]
    assert review["status"]["authenticated"] is True
    assert user["username"] == f"system:serviceaccount:{ns}:app"
    assert set(user["groups"]) == {
        "system:serviceaccounts",
        f"system:serviceaccounts:{ns}",
        "system:authenticated",
    }
    bogus = api.request(
        "POST", "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": "nope"}}
    ).body
    assert bogus["status"].get("authenticated") in (None, False)
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    rule = {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}
    api.request("POST", f"{rbac}/namespaces/{ns}/roles", {"metadata": {"name": "reader"}, "rules": [rule]})
    binding = {
        "metadata": {"name": "app-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}],
    }
    api.request("POST", f"{rbac}/namespaces/{ns}/rolebindings", binding)

    def review_access(verb: str) -> dict[str, Any]:
        body = {
            "spec": {
                "user": f"system:serviceaccount:{ns}:app",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
                "resourceAttributes": {"namespace": ns, "verb": verb, "resource": "configmaps"},
            }
        }
        answer: dict[str, Any] = api.request(
            "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body
        ).body
        return answer["status"]

    allowed = review_access("get")
    assert allowed["allowed"] is True
    assert allowed["reason"] == (
        f'RBAC: allowed by RoleBinding "app-reader/{ns}" of Role "reader" to ServiceAccount "app/{ns}"'
    )
    assert review_access("delete").get("allowed") is False


def test_version(api: Backend) -> None:
    version = api.request("GET", "/version").body
    assert (version["major"], version["minor"]) == ("1", "37")
    assert version["gitVersion"].startswith("v1.37.")
