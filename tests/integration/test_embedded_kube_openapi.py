"""The embedded API's OpenAPI v2 and v3 documents, and the kubectl commands that need them (kubectl 1.37
as a subprocess): explain, and apply, create, replace and edit with kubectl's default validation."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from test_embedded_kube_kubectl import KUBECTL, Kubectl, manifest
from test_embedded_kube_support import GROUP, KIND, VERSION, widget, widget_crd

from twilio_video_playground.kube import EmbeddedKubernetes

REPO = Path(__file__).resolve().parents[2]
PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
ROOM = {
    "apiVersion": "video.openclaw.io/v1alpha1",
    "kind": "VideoRoom",
    "metadata": {"name": "board"},
    "spec": {"maxParticipants": 4},
}


async def fetch(
    kube: EmbeddedKubernetes, path: str, accept: str = "application/json"
) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(kube.url + path, headers={"Accept": accept}, allow_redirects=False) as response,
    ):
        return response.status, await response.read(), response.headers


async def v3_document(kube: EmbeddedKubernetes, key: str) -> dict[str, Any]:
    _, body, _ = await fetch(kube, "/openapi/v3")
    url = yaml.safe_load(body)["paths"][key]["serverRelativeURL"]
    status, document, _ = await fetch(kube, url)
    assert status == 200
    result: dict[str, Any] = yaml.safe_load(document)
    return result


async def test_v3_index_names_every_group_version_with_the_hash_of_its_document(
    kube: EmbeddedKubernetes,
) -> None:
    status, body, _ = await fetch(kube, "/openapi/v3")
    index = yaml.safe_load(body)["paths"]
    assert status == 200
    assert {"api/v1", "apis/video.openclaw.io/v1alpha1", "apis/rbac.authorization.k8s.io/v1"} <= set(index)
    url = index["api/v1"]["serverRelativeURL"]
    status, document, headers = await fetch(kube, url)
    assert status == 200 and headers["Cache-Control"] == "public, immutable"
    assert url.endswith("?hash=" + hashlib.sha512(document).hexdigest().upper())
    status, _, headers = await fetch(kube, "/openapi/v3/api/v1?hash=STALE")
    assert status == 301 and headers["Location"] == url
    status, _, _ = await fetch(kube, "/openapi/v3/apis/nothing.example.com/v1")
    assert status == 404


async def test_a_crd_document_has_its_schema_gvk_and_a_patch_that_takes_field_validation(
    kube: EmbeddedKubernetes,
) -> None:
    document = await v3_document(kube, "apis/video.openclaw.io/v1alpha1")
    schemas = document["components"]["schemas"]
    room = schemas["io.openclaw.video.v1alpha1.VideoRoom"]
    assert room["x-kubernetes-group-version-kind"] == [
        {"group": "video.openclaw.io", "kind": "VideoRoom", "version": "v1alpha1"}
    ]
    assert room["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert room["properties"]["spec"]["properties"]["maxParticipants"]["maximum"] == 50
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    item = document["paths"]["/apis/video.openclaw.io/v1alpha1/namespaces/{namespace}/videorooms/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "VideoRoom"
    assert {p["name"] for p in patch["parameters"]} == {"dryRun", "fieldManager", "fieldValidation", "force"}
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]


async def test_a_registered_crd_changes_the_index_and_gets_a_document(kube: EmbeddedKubernetes) -> None:
    _, before, _ = await fetch(kube, "/openapi/v3")
    assert f"apis/{GROUP}/{VERSION}" not in yaml.safe_load(before)["paths"]
    kube.register_crd(widget_crd())
    document = await v3_document(kube, f"apis/{GROUP}/{VERSION}")
    assert document["components"]["schemas"][f"io.openclaw.test.{VERSION}.{KIND}List"]["required"] == [
        "items"
    ]


async def test_v2_is_json_and_a_protobuf_only_client_gets_406(kube: EmbeddedKubernetes) -> None:
    status, body, _ = await fetch(kube, "/openapi/v2")
    swagger = yaml.safe_load(body)
    assert status == 200 and swagger["swagger"] == "2.0"
    room = swagger["definitions"]["io.openclaw.video.v1alpha1.VideoRoom"]
    assert (
        room["properties"]["metadata"]["$ref"]
        == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert "io.k8s.api.core.v1.Secret" in swagger["definitions"]
    status, body, _ = await fetch(kube, "/openapi/v2", accept=PROTOBUF_V2)
    assert (status, body) == (406, b"")
    status, _, _ = await fetch(kube, "/openapi/v2", accept=f"{PROTOBUF_V2}, application/json;q=0.5")
    assert status == 200


pytestmark_kubectl = pytest.mark.skipif(
    not KUBECTL.exists(), reason="kubectl is not installed in the virtualenv"
)


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path / "kubectl-cache")


@pytestmark_kubectl
async def test_kubectl_explain_reads_the_crd_and_builtin_schemas(
    kube: EmbeddedKubernetes, kubectl: Kubectl
) -> None:
    out = await kubectl.ok("explain", "vroom.spec.maxParticipants")
    assert "KIND:       VideoRoom" in out and "<integer>" in out and "Participant cap" in out
    out = await kubectl.ok("explain", "configmap.data")
    assert "<map[string]string>" in out


@pytestmark_kubectl
async def test_kubectl_apply_create_replace_and_edit_need_no_validate_false(
    kube: EmbeddedKubernetes, kubectl: Kubectl, tmp_path: Path
) -> None:
    out = await kubectl.ok("apply", "-f", str(REPO / "examples" / "videoroom.yaml"))
    assert "created" in out
    await kubectl.ok("apply", "-f", str(REPO / "examples" / "rbac"))
    await kubectl.ok("create", "-f", "-", stdin=manifest(ROOM))
    current = yaml.safe_load(await kubectl.ok("get", "vroom", "board", "-o", "yaml"))
    current["spec"]["maxParticipants"] = 6
    await kubectl.ok("replace", "-f", "-", stdin=manifest(current))
    edited = tmp_path / "editor.sh"
    edited.write_text("#!/bin/sh\nsed -i 's/maxParticipants: 6/maxParticipants: 8/' \"$1\"\n")
    edited.chmod(0o755)
    code, out, err = await kubectl.run("edit", "vroom", "board", env={**os.environ, "EDITOR": str(edited)})
    assert code == 0, err
    room = kube.get("video.openclaw.io/v1alpha1", "videorooms", "default", "board")
    assert room is not None and room["spec"]["maxParticipants"] == 8


@pytestmark_kubectl
async def test_kubectl_validation_is_left_to_the_server_which_refuses_unknown_fields(
    kube: EmbeddedKubernetes, kubectl: Kubectl
) -> None:
    # kubectl finds fieldValidation on the PATCH operation of the kind, so it sends fieldValidation=Strict
    # and leaves unknown fields to the server, as against a real one.
    await kubectl.ok("apply", "-f", "-", stdin=manifest(widget_crd()))
    bad = widget("w1", size=2)
    bad["spec"]["bogus"] = 1
    code, _, err = await kubectl.run("apply", "-f", "-", stdin=manifest(bad))
    assert code != 0 and 'unknown field "spec.bogus"' in err, err
    assert kube.get(f"{GROUP}/{VERSION}", "widgets", "default", "w1") is None
    out = await kubectl.ok("apply", "--validate=false", "-f", "-", stdin=manifest(bad))
    assert "created" in out
