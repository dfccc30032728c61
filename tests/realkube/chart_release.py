"""The Helm chart installed on the real kube-apiserver as Helm 4 installs it: rendered by Helm's own engine
(``helm-python-sdk``) and sent whole with server-side apply under the field manager ``helm``; and what an
operator pod of that release would get from the kubelet: its ServiceAccount's token (a TokenRequest) and
the environment of the Deployment's container.

The server runs no controllers, so the Deployment never gets pods: the operator runs out of cluster
(``tests/realkube/operator_process.py``) with that token and that environment, and real RBAC decides every
call it makes.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from chart_rules import CHART
from real_kube import MONITORING_CRDS, RealKube, TierUnavailable

FIELD_MANAGER = "helm"
TOKEN_SECONDS = 3600


def render(values: Mapping[str, Any], release: str, namespace: str) -> list[dict[str, Any]]:
    """Every object the chart renders for ``release`` in ``namespace`` (NOTES.txt left out)."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(copy.deepcopy(dict(values)), name=release, namespace=namespace)
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith(".txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [obj for obj in objects if obj["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, the chart rendered {len(found)}"
    return found[0]


def ensure_namespace(kube: RealKube, name: str, labels: Mapping[str, str] | None = None) -> None:
    metadata = {"name": name, **({"labels": dict(labels)} if labels else {})}
    status, body, _ = kube.request("POST", "/api/v1/namespaces", {"metadata": metadata})
    assert status in (201, 409), body


def install_monitoring_crds(kube: RealKube) -> None:
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (``make kube-apiserver`` fetches
    them), so that the chart's monitoring objects are checked against their real schemas."""
    files = sorted(MONITORING_CRDS.glob("monitoring.coreos.com_*.yaml"))
    if len(files) != 2:
        raise TierUnavailable(
            f"{MONITORING_CRDS} lacks the Prometheus Operator CRDs: run `make kube-apiserver`"
        )
    kube.kubectl(
        "apply", "--server-side", "--field-manager=realkube-tests", *(f"--filename={f}" for f in files)
    )
    names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in files]
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))


def install(kube: RealKube, objects: list[dict[str, Any]]) -> str:
    """Apply ``objects`` in one ``kubectl apply --server-side`` with kubectl's default (strict) field
    validation, creating the namespaces they name first; kubectl's output."""
    for namespace in sorted(
        {obj["metadata"]["namespace"] for obj in objects if "namespace" in obj["metadata"]}
    ):
        ensure_namespace(kube, namespace)
    applied = kube.kubectl(
        "apply",
        "--server-side",
        f"--field-manager={FIELD_MANAGER}",
        "--filename=-",
        input=yaml.safe_dump_all(objects),
    )
    return applied.stdout + applied.stderr


def service_account_token(kube: RealKube, namespace: str, name: str) -> str:
    """A token of the ServiceAccount from the TokenRequest API, as the kubelet projects into a pod."""
    status, body, _ = kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": TOKEN_SECONDS},
        },
    )
    assert status == 201, body
    return str(body["status"]["token"])


def token_kubeconfig(kube: RealKube, token: str, path: Path, namespace: str) -> Path:
    """A kubeconfig that authenticates with ``token`` (and trusts the server's CA)."""
    ca = base64.b64encode(kube.ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "real", "cluster": {"server": kube.server, "certificate-authority-data": ca}}],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [
            {"name": "real", "context": {"cluster": "real", "user": "token", "namespace": namespace}}
        ],
        "current-context": "real",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    path.chmod(0o600)
    return path


def secret_data(kube: RealKube, namespace: str, name: str) -> dict[str, str]:
    status, body, _ = kube.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
    assert status == 200, body
    return {key: base64.b64decode(value).decode() for key, value in (body.get("data") or {}).items()}


def container_environment(
    kube: RealKube, deployment: dict[str, Any], pod_name: str, pod_ip: str = "127.0.0.1"
) -> dict[str, str]:
    """The environment the kubelet would give the Deployment's container: plain values, the pod's
    fields, and the keys of Secrets read from the server (optional ones left out when absent)."""
    namespace = deployment["metadata"]["namespace"]
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace, "status.podIP": pod_ip}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    secrets: dict[str, dict[str, str]] = {}
    environment: dict[str, str] = {}
    for variable in container.get("env", []):
        name, source = variable["name"], variable.get("valueFrom")
        if source is None:
            environment[name] = str(variable.get("value", ""))
        elif "fieldRef" in source:
            environment[name] = fields[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["name"] not in secrets:
                secrets[ref["name"]] = secret_data(kube, namespace, ref["name"])
            value = secrets[ref["name"]].get(ref["key"])
            if value is None:
                assert ref.get("optional"), f"Secret {ref['name']} lacks the key {ref['key']}"
                continue
            environment[name] = value
        else:
            raise AssertionError(f"env {name}: a source this helper does not resolve: {source}")
    return environment
