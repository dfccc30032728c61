"""kopf 1.45 runs a full operator lifecycle against the embedded Kubernetes API."""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import kmock
import kopf

from twilio_video_playground.kube import EmbeddedKubernetes

GROUP, VERSION, PLURAL = "kopftest.openclaw.io", "v1", "gadgets"
API = f"/apis/{GROUP}/{VERSION}"
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


async def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Poll until ``check()`` returns something truthy; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        for _ in itertools.count():
            if result := check():
                return result
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


def make_registry(kube: EmbeddedKubernetes, deleted: list[str]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.networking.request_timeout = 10
        settings.watching.connect_timeout = 5
        settings.posting.level = logging.WARNING

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=kube.url, scheme="Bearer", token=kube.token)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, **_: Any) -> None:
        patch.status["phase"] = "Created"
        patch.status["observedSize"] = spec.get("size")
        kopf.warn(body, reason="Created", message="the gadget was seen")

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def removed(name: str, **_: Any) -> None:
        deleted.append(name)

    return registry


async def run_lifecycle(kube: EmbeddedKubernetes, namespace: str, operator_options: dict[str, Any]) -> None:
    deleted: list[str] = []
    stop = asyncio.Event()
    kube.register_crd(copy.deepcopy(CRD))
    async with aiohttp.ClientSession(kube.url) as http:
        async with http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}) as resp:
            assert resp.status == 201
        operator = asyncio.create_task(
            kopf.operator(
                registry=make_registry(kube, deleted), standalone=True, stop_flag=stop, **operator_options
            )
        )
        try:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Gadget",
                "metadata": {"name": "g1"},
                "spec": {"size": 3},
            }
            async with http.post(f"{API}/namespaces/{namespace}/{PLURAL}", json=body) as resp:
                assert resp.status == 201, await resp.text()

            def status_phase() -> Any:
                obj = kube.get(f"{GROUP}/{VERSION}", PLURAL, namespace, "g1")
                return obj if obj and obj.get("status", {}).get("phase") == "Created" else None

            obj = await eventually(status_phase)
            assert obj["status"]["observedSize"] == 3
            assert obj["metadata"]["finalizers"]  # kopf's own, because of the deletion handler
            assert obj["metadata"]["generation"] == 1  # status and metadata writes never bump it

            async def created_events() -> list[dict[str, Any]]:
                query = {"fieldSelector": "involvedObject.name=g1,reason=Created"}
                async with http.get(f"/api/v1/namespaces/{namespace}/events", params=query) as resp:
                    items: list[dict[str, Any]] = (await resp.json())["items"]
                    return items

            async with asyncio.timeout(15):
                for _ in itertools.count():
                    if await created_events():
                        break
                    await asyncio.sleep(0.05)

            async with http.delete(f"{API}/namespaces/{namespace}/{PLURAL}/g1") as resp:
                assert resp.status == 200
            await eventually(lambda: kube.get(f"{GROUP}/{VERSION}", PLURAL, namespace, "g1") is None)
            assert deleted == ["g1"]
            watches = [
                r for r in kube.emulator if r.action == kmock.action.WATCH and r.resource.plural == PLURAL
            ]
            expected_namespace = None if operator_options.get("clusterwide") else namespace
            assert watches and all(r.namespace == expected_namespace for r in watches)
        finally:
            stop.set()
            await asyncio.wait_for(operator, timeout=15)


async def test_kopf_lifecycle_clusterwide(kube: EmbeddedKubernetes) -> None:
    await run_lifecycle(kube, "kopf-cluster", {"clusterwide": True})


async def test_kopf_lifecycle_in_named_namespace(kube: EmbeddedKubernetes) -> None:
    await run_lifecycle(kube, "kopf-named", {"namespaces": ["kopf-named"]})


async def test_kopf_lifecycle_in_namespace_pattern(kube: EmbeddedKubernetes) -> None:
    """A glob makes kopf list and watch ``/api/v1/namespaces`` to find the namespaces to serve."""
    await run_lifecycle(kube, "kopf-globbed", {"namespaces": ["kopf-glob*"]})
    assert kube.request_counts[("watch", "namespaces")] >= 1
