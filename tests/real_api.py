"""A small synchronous client of the real kube-apiserver (``tests/real_kube.py``) as its admin, for the test
beds that run on it: installing the project's CRDs, emptying namespaces (the server has no namespace
controller, so a namespace is never really deleted), and reading objects the way the test beds read the
embedded API's store.

It keeps one TLS connection pool (urllib3, which the official ``kubernetes`` client also uses), so the test
beds' polling costs no handshake per read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

from real_kube import RealKube

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
ESTABLISH_TIMEOUT = 60.0
RETRY_429_FOR = 60.0
FIELD_MANAGER = "e2e-test-bed"
# What a namespace that is emptied loses besides the custom objects: what the test beds and the operator
# leave in it.
NAMESPACED_LEFTOVERS = (
    "/api/v1/namespaces/{ns}/secrets",
    "/api/v1/namespaces/{ns}/configmaps",
    "/api/v1/namespaces/{ns}/events",
    "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
    "/api/v1/namespaces/{ns}/serviceaccounts",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
)


class RealApiError(Exception):
    """An answer the caller did not expect: the method, path, status and the server's message."""


class RealApi:
    """HTTPS requests to one real API server with the admin's client certificate."""

    def __init__(self, kube: RealKube) -> None:
        self.server = kube.server
        self.pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=8,
            cert_reqs="CERT_REQUIRED",
            ca_certs=str(kube.ca_file),
            cert_file=str(kube.cert_file),
            key_file=str(kube.key_file),
            timeout=urllib3.Timeout(connect=10, read=60),
            retries=False,
        )

    def close(self) -> None:
        self.pool.clear()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One request: the HTTP status and the decoded JSON answer (None when empty)."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        url = self.server + path + (("&" if "?" in path else "?") + urlencode(query) if query else "")
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        deadline = time.monotonic() + RETRY_429_FOR
        while True:
            answer = self.pool.request(method, url, body=data, headers=headers)
            # A resource's watch cache answers 429 with Retry-After while it initializes (e.g. just after
            # its CRD was Established); client-go waits and retries, and so does this client.
            if answer.status != 429 or time.monotonic() >= deadline:
                return answer.status, (json.loads(answer.data) if answer.data else None)
            time.sleep(min(float(answer.headers.get("Retry-After") or 1), 1.0))

    def expect(
        self, method: str, path: str, body: Any = None, *, ok: Iterable[int] = (200,), **kw: Any
    ) -> Any:
        status, answer = self.request(method, path, body, **kw)
        if status not in set(ok):
            message = answer.get("message") if isinstance(answer, dict) else answer
            raise RealApiError(f"{method} {path}: {status} {message}")
        return answer

    # --- reading -----------------------------------------------------------------------------------------

    def get(self, path: str) -> dict[str, Any] | None:
        status, answer = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            raise RealApiError(f"GET {path}: {status} {answer}")
        return dict(answer)

    def items(self, path: str, **query: str) -> list[dict[str, Any]]:
        answer = self.expect("GET", path, query=query or None)
        return list(answer.get("items") or [])

    # --- set-up --------------------------------------------------------------------------------------------

    def install_crds(self, crd_dir: Path) -> list[str]:
        """Apply every CRD of ``crd_dir/*.yaml`` server-side (forcing this manager's ownership) and wait
        until each is Established and its resource served; the CRD names."""
        names: list[str] = []
        for path in sorted(crd_dir.glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not document or document.get("kind") != "CustomResourceDefinition":
                    continue
                name = document["metadata"]["name"]
                self.expect(
                    "PATCH",
                    f"{CRD_PATH}/{name}?fieldManager={FIELD_MANAGER}&force=true",
                    document,
                    content_type=APPLY,
                    ok=(200, 201),
                )
                names.append(name)
        for name in names:
            self._wait_established(name)
        return names

    def _wait_established(self, name: str) -> None:
        deadline = time.monotonic() + ESTABLISH_TIMEOUT
        while time.monotonic() < deadline:
            crd = self.get(f"{CRD_PATH}/{name}") or {}
            conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                spec = crd["spec"]
                version = next(v["name"] for v in spec["versions"] if v.get("storage"))
                served = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}?limit=1"
                if self.request("GET", served)[0] == 200:
                    return
            time.sleep(0.1)
        raise RealApiError(f"the CRD {name} was not Established and served within {ESTABLISH_TIMEOUT:.0f}s")

    def ensure_namespace(self, name: str) -> bool:
        """Create the namespace unless it exists; whether it was created."""
        status, answer = self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        if status not in (201, 409):
            raise RealApiError(f"creating namespace {name}: {status} {answer}")
        return status == 201

    # --- clean-up ------------------------------------------------------------------------------------------

    def delete_objects(self, collection: str) -> int:
        """Delete every object of ``collection`` (a list path), their finalizers removed first so that
        nothing waits for a controller that is gone; how many there were."""
        found = self.items(collection)
        for obj in found:
            metadata = obj["metadata"]
            path = self._object_path(collection, metadata)
            if metadata.get("finalizers"):
                self.expect(
                    "PATCH", path, {"metadata": {"finalizers": None}}, content_type=MERGE, ok=(200, 404)
                )
            self.expect("DELETE", path, ok=(200, 202, 404))
        return len(found)

    def empty_namespace(self, name: str, custom_collections: Iterable[str]) -> None:
        """Remove what a test left in namespace ``name``: the custom objects of ``custom_collections``
        (list paths with ``{ns}``), then Secrets, ConfigMaps, Events, Leases, ServiceAccounts and RBAC."""
        for collection in (*custom_collections, *NAMESPACED_LEFTOVERS):
            self.delete_objects(collection.format(ns=name))

    @staticmethod
    def _object_path(collection: str, metadata: Mapping[str, Any]) -> str:
        """The path of one object listed from ``collection`` (namespaced or cluster-wide lists alike)."""
        prefix, _, plural = collection.rpartition("/")
        namespace = metadata.get("namespace")
        if namespace and "/namespaces/" not in collection:
            return f"{prefix}/namespaces/{namespace}/{plural}/{metadata['name']}"
        return f"{collection}/{metadata['name']}"
