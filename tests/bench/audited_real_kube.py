"""The benchmark's real Kubernetes API: a kube-apiserver and etcd of its own per scenario
(``tests/real_kube.py``), whose audit log records every request of the operator, so that its Kubernetes
traffic is counted on the real server as the embedded API counts it.

The operator authenticates as a ServiceAccount of its own (``kube-system/bench-operator``, bound to
``cluster-admin``, with a TokenRequest token), and the audit policy logs that user's requests only, at the
``Metadata`` level: the benchmark's own reads (as the admin) are neither logged nor counted, and nothing needs
subtracting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from kube_backends import RealBackend, RequestKey
from real_kube import running

OPERATOR_ACCOUNT = "bench-operator"
OPERATOR_NAMESPACE = "kube-system"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
TOKEN_SECONDS = 6 * 3600
RBAC_GROUP = "rbac.authorization.k8s.io"
# Each request once: a long-running one (a watch) when its response starts, any other when it completes.
COUNTED_STAGE = {"watch": "ResponseStarted"}


def audit_policy() -> dict[str, Any]:
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [{"level": "Metadata", "users": [OPERATOR_USER]}, {"level": "None"}],
    }


def request_key(event: dict[str, Any]) -> RequestKey:
    """The ``(verb, resource)`` key of an audit event, as the embedded API keys its request counts."""
    verb = str(event.get("verb", ""))
    ref = event.get("objectRef")
    if not ref:
        return verb, urlsplit(str(event.get("requestURI", ""))).path
    resource = str(ref.get("resource", ""))
    if ref.get("apiGroup"):
        resource += f".{ref['apiGroup']}"
    if ref.get("subresource"):
        resource += f"/{ref['subresource']}"
    return verb, resource


def count_audit_log(path: Path) -> Counter[RequestKey]:
    """The requests of the audit log at ``path``, counted once each."""
    counts: Counter[RequestKey] = Counter()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return counts
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:  # a line being written
            continue
        if event.get("stage") == COUNTED_STAGE.get(event.get("verb", ""), "ResponseComplete"):
            counts[request_key(event)] += 1
    return counts


class AuditedRealKube(RealBackend):
    """A real API server started for one test bed (its own etcd and audit log), stopped with it."""

    counts_own_requests = False

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.audit_log = workdir / "audit.log"
        self._server = contextlib.ExitStack()
        self._operator_kubeconfig: Path | None = None

    @property
    def operator_kubeconfig(self) -> Path:
        if self._operator_kubeconfig is None:
            raise RuntimeError("the server is not started")
        return self._operator_kubeconfig

    async def start(self, kubeconfig: Path, namespace: str = "default") -> None:
        await asyncio.to_thread(self._start_server)
        await super().start(kubeconfig, namespace)
        self._operator_kubeconfig = await asyncio.to_thread(self._operator_identity, namespace)

    def _start_server(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(yaml.safe_dump(audit_policy()), encoding="utf-8")
        kube = self._server.enter_context(
            running(
                self.binary,
                self.workdir / "server",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxsize=0",
            )
        )
        super().__init__(kube)

    def _operator_identity(self, namespace: str) -> Path:
        """The operator's ServiceAccount, its binding to cluster-admin and a kubeconfig with its token."""
        account_path = f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/serviceaccounts"
        self.api.expect("POST", account_path, {"metadata": {"name": OPERATOR_ACCOUNT}}, ok=(201,))
        binding = {
            "metadata": {"name": OPERATOR_ACCOUNT},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": OPERATOR_NAMESPACE}
            ],
        }
        self.api.expect("POST", f"/apis/{RBAC_GROUP}/v1/clusterrolebindings", binding, ok=(201,))
        issued = self.api.expect(
            "POST",
            f"{account_path}/{OPERATOR_ACCOUNT}/token",
            {"spec": {"expirationSeconds": TOKEN_SECONDS}},
            ok=(201,),
        )
        admin = yaml.safe_load(self.kube.kubeconfig.read_text(encoding="utf-8"))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": OPERATOR_ACCOUNT, "user": {"token": issued["status"]["token"]}}],
            "contexts": [
                {
                    "name": OPERATOR_ACCOUNT,
                    "context": {
                        "cluster": admin["clusters"][0]["name"],
                        "user": OPERATOR_ACCOUNT,
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": OPERATOR_ACCOUNT,
        }
        path = self.workdir / "operator.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path

    def served_requests(self) -> Counter[RequestKey]:
        """The operator's requests so far (the only user the audit policy logs)."""
        return count_audit_log(self.audit_log)

    async def stop(self) -> None:
        """Stop the server; its objects go with its etcd (nothing to clean up)."""
        try:
            if self._operator_kubeconfig is not None:
                self.api.close()
        finally:
            await asyncio.to_thread(self._server.close)
