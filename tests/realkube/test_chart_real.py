"""The Helm chart on the real kube-apiserver, and the operator under the chart's RBAC.

1. The chart, rendered with its default values and with every toggle, is applied whole (``kubectl apply
   --server-side``, strict field validation): Deployment, Service, PodDisruptionBudget, Ingress,
   NetworkPolicy, ServiceMonitor and PrometheusRule (against the Prometheus Operator's own CRDs), RBAC,
   CRDs, the dashboard ConfigMap.
2. The operator then runs out of cluster as the release's ServiceAccount (a TokenRequest token) with the
   environment of the chart's Deployment, cluster-wide and namespaced (``watchNamespaces``). The examples
   go through their lives: a VideoRoom Ready (``kubectl wait``), an app's token from ``POST /v1/token``
   (TokenReview and SubjectAccessReview by the real server), a participant, the room completed, its
   Composition created by the operator and Ready, a SigningKeyRotation Ready with its Secret, then every
   object deleted (finalizers released). The server's audit log holds every request of the
   ServiceAccount: a 403 among them is a chart bug.
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_release import (
    container_environment,
    ensure_namespace,
    install,
    install_monitoring_crds,
    only,
    render,
    service_account_token,
    token_kubeconfig,
)
from operator_process import emulator, free_port, http_json, operator

from chart_rules import REQUIRED
from real_kube import REPO_ROOT, RealKube, service_account_requests

pytest.importorskip("helm_python")

GROUP_VERSION = "video.openclaw.io/v1alpha1"
EXAMPLES = REPO_ROOT / "examples"
WAIT = 60.0
POLL = 0.25
MEETING_SECONDS = 30
PROCESSING_SECONDS = 2

# Every toggle of values.yaml away from its default, over three installs (the two modes and the rest).
ALL_FEATURES: dict[str, Any] = {
    **REQUIRED,
    "image": {"repository": "registry.example.com/tvo", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "twilio": {"baseUrl": "http://twilio-emulator.video-system:9000", "maxConcurrency": 4},
    "tenantNamePrefixes": {"team-a": ["shared-"]},
    "delivery": {"allowedEndpoints": ["https://s3.example.com"]},
    "extraEnv": [{"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    "serviceAccount": {"create": False, "name": "video-operator"},
    "automountServiceAccountToken": False,
    "podAnnotations": {"example.com/owner": "video-team"},
    "podLabels": {"team": "video"},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "video", "effect": "NoSchedule"}],
    "watchNamespaceSelector": "video.openclaw.io/shard=a",
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        "host": "video.example.com",
        "tls": {"enabled": True, "secretName": "video-tls"},
    },
    "metrics": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    },
    "grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "Video"}}},
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        ],
        "kubernetesApi": {"cidrs": ["10.0.0.1/32"], "ports": [443]},
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"port": 9000}]}],
    },
}
MINIMAL: dict[str, Any] = {
    **REQUIRED,
    "replicaCount": 1,
    "leaderElection": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "rbac": {"create": True, "aggregateToDefaultRoles": False},
    "crds": {"enabled": False},
}
# (release, namespace, values): each install has names of its own, so that they live side by side.
INSTALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "default": ("tvo-default", "video-default", REQUIRED),
    "namespaced": (
        "tvo-namespaced",
        "video-namespaced",
        {**REQUIRED, "watchNamespaces": ["team-x", "team-y"]},
    ),
    "all-features": ("tvo-all", "video-all", ALL_FEATURES),
    "minimal": ("tvo-minimal", "video-minimal", MINIMAL),
}


def served(kube: RealKube, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The object as the server holds it (found by kind, name and namespace through kubectl)."""
    args = [
        "get",
        f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}" if "/" in obj["apiVersion"] else obj["kind"],
    ]
    args += [obj["metadata"]["name"], "--output=json", "--ignore-not-found", "--show-managed-fields"]
    if "namespace" in obj["metadata"]:
        args.append(f"--namespace={obj['metadata']['namespace']}")
    text = kube.kubectl(*args).stdout
    return yaml.safe_load(text) if text.strip() else None


@pytest.fixture(scope="module")
def monitoring_crds(real_kube: RealKube) -> None:
    install_monitoring_crds(real_kube)


@pytest.mark.parametrize("install_name", list(INSTALLS))
def test_chart_is_applied_whole(real_kube: RealKube, monitoring_crds: None, install_name: str) -> None:
    release, namespace, values = INSTALLS[install_name]
    objects = render(values, release, namespace)
    if install_name == "all-features":
        # serviceAccount.create=false names a ServiceAccount that must exist already.
        ensure_namespace(real_kube, namespace)
        real_kube.kubectl("create", "serviceaccount", "video-operator", f"--namespace={namespace}")

    output = install(real_kube, objects)

    assert "Warning" not in output, output
    kinds = Counter(obj["kind"] for obj in objects)
    for obj in objects:
        stored = served(real_kube, obj)
        assert stored is not None, f"{obj['kind']} {obj['metadata']['name']} was not stored:\n{output}"
        managers = {entry["manager"] for entry in stored["metadata"].get("managedFields", [])}
        assert "helm" in managers, (obj["kind"], managers)
    wanted = {
        "default": {
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ServiceAccount",
            "CustomResourceDefinition",
        },
        "namespaced": {"Role", "RoleBinding", "Deployment"},
        "all-features": {"Ingress", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ConfigMap"},
        "minimal": {"Deployment", "ClusterRole"},
    }[install_name]
    assert wanted <= set(kinds), kinds


# --- the operator as the chart's ServiceAccount ---------------------------------------------------------


def example(path: str, namespace: str) -> list[dict[str, Any]]:
    """The objects of ``examples/<path>``, moved to ``namespace`` (RoleBinding subjects included)."""
    docs = [doc for doc in yaml.safe_load_all((EXAMPLES / path).read_text(encoding="utf-8")) if doc]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
    return docs


def custom_path(plural: str, namespace: str, name: str = "") -> str:
    return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return dict(entry)
    return {}


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll ``check()`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)


@dataclass
class Release:
    """A release installed for the operator, its ServiceAccount and the running operator."""

    kube: RealKube
    namespace: str
    user: str
    operator_url: str
    twilio: dict[str, str]
    log: Path

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        status, body, _ = self.kube.request("GET", custom_path(plural, namespace, name))
        return body if status == 200 else None

    def ready(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.get(plural, namespace, name)
        return obj if obj is not None and condition(obj, "Ready").get("status") == "True" else None

    def requests(self) -> list[dict[str, Any]]:
        return service_account_requests(self.kube, self.user)


@contextlib.contextmanager
def operator_release(
    kube: RealKube, workdir: Path, release: str, namespace: str, values: dict[str, Any]
) -> Iterator[Release]:
    """The chart installed with the emulator as Twilio, and the operator running as its ServiceAccount with
    the Deployment's environment; only the listen address, the port and the kubeconfig differ from a pod."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with emulator(workdir / "emulator.log") as twilio:
        values = {
            **values,
            "publicBaseUrl": f"http://127.0.0.1:{port}",
            "twilio": {"baseUrl": twilio["url"]},
            "replicaCount": 1,
        }
        objects = render(values, release, namespace)
        ensure_namespace(kube, namespace)
        secret = {
            "TWILIO_ACCOUNT_SID": twilio["account_sid"],
            "TWILIO_API_KEY": twilio["api_key"],
            "TWILIO_API_SECRET": twilio["api_secret"],
            "TWILIO_AUTH_TOKEN": twilio["auth_token"],
        }
        name = values["credentials"]["existingSecret"]
        kube.kubectl(
            "create", "secret", "generic", name, f"--namespace={namespace}",
            *(f"--from-literal={key}={value}" for key, value in secret.items()),
        )  # fmt: skip
        install(kube, objects)
        deployment = only(objects, "Deployment")
        account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        token = service_account_token(kube, namespace, account)
        environment = container_environment(kube, deployment, pod_name=f"{release}-0")
        environment.update(
            HTTP_HOST="127.0.0.1",  # every test server binds 127.0.0.1 (a pod listens on 0.0.0.0)
            HTTP_PORT=str(port),
            KUBECONFIG=str(token_kubeconfig(kube, token, workdir / "kubeconfig", namespace)),
            SHUTDOWN_DRAIN_SECONDS="0",
        )
        log = workdir / "operator.log"
        with operator(environment, log):
            yield Release(
                kube=kube,
                namespace=namespace,
                user=f"system:serviceaccount:{namespace}:{account}",
                operator_url=f"http://127.0.0.1:{port}",
                twilio=twilio,
                log=log,
            )


def apply_examples(kube: RealKube, namespace: str) -> None:
    """The token Role of the app, the signing keys and the room, with ``kubectl apply`` and its default
    (strict) validation."""
    docs = [
        *example("rbac/token-role.yaml", namespace),
        *example("signingkeyrotation.yaml", namespace),
        *example("videoroom.yaml", namespace),
    ]
    kube.kubectl("apply", "--filename=-", input=yaml.safe_dump_all(docs))


def mint(release: Release, namespace: str, bearer: str, room: str = "standup") -> tuple[int, Any]:
    body = {"namespace": namespace, "room": room, "identity": "alice"}
    headers = {"Authorization": f"Bearer {bearer}"}
    return http_json("POST", release.operator_url + "/v1/token", body, headers)


def emulator_control(release: Release, path: str, body: Any) -> Any:
    status, answer = http_json("POST", f"{release.twilio['url']}/_emulator/{path}", body)
    assert status in (200, 201), (path, status, answer)
    return answer


def run_scenario(release: Release, tenant: str) -> None:
    """The examples through their lives in ``tenant``, as an app and its users would drive them."""
    kube = release.kube
    ensure_namespace(kube, tenant)
    apply_examples(kube, tenant)

    kube.kubectl(
        "wait", "--for=condition=Ready", "--timeout=60s", f"--namespace={tenant}", "videoroom/standup"
    )
    wait_for(
        "the signing keys to be Ready", lambda: release.ready("signingkeyrotations", tenant, "video-keys")
    )
    keys = kube.request("GET", f"/api/v1/namespaces/{tenant}/secrets/video-keys")
    assert keys[0] == 200, keys[1]

    # The token service asks the real server: TokenReview for who calls, SubjectAccessReview for the room.
    app_token = service_account_token(kube, tenant, "video-app")
    status, minted = mint(release, tenant, app_token)
    assert status == 200, minted
    # The app's Role names the room "standup" (resourceNames): the review refuses any other.
    other_room = mint(release, tenant, app_token, room="other")
    assert other_room[0] == 403, other_room
    kube.kubectl("create", "serviceaccount", "no-role", f"--namespace={tenant}")
    refused = mint(release, tenant, service_account_token(kube, tenant, "no-role"))
    assert refused[0] == 403, refused
    unknown = mint(release, tenant, "not-a-kubernetes-token")
    assert unknown[0] == 401, unknown

    joined = emulator_control(
        release,
        f"rooms/{urllib.parse.quote(minted['roomName'], safe='')}/participants",
        {"identity": "alice", "token": minted["token"]},
    )
    assert joined["sid"].startswith("PA"), joined
    emulator_control(release, "clock/advance", {"seconds": MEETING_SECONDS})
    patched = kube.request(
        "PATCH", custom_path("videorooms", tenant, "standup"), {"spec": {"state": "Completed"}}
    )
    assert patched[0] == 200, patched[1]

    def composed() -> dict[str, Any] | None:
        obj = release.get("compositions", tenant, "standup-recording")
        return obj if obj is not None and (obj.get("status") or {}).get("sid") else None

    wait_for("the operator to create the room's Composition", composed)
    emulator_control(release, "clock/advance", {"seconds": PROCESSING_SECONDS})
    done = wait_for(
        "the Composition to be Ready", lambda: release.ready("compositions", tenant, "standup-recording")
    )
    assert condition(done, "Ready")["reason"] == "Completed", done["status"]

    for plural, name in (
        ("compositions", "standup-recording"),
        ("videorooms", "standup"),
        ("signingkeyrotations", "video-keys"),
    ):
        deleted = kube.request("DELETE", custom_path(plural, tenant, name))
        assert deleted[0] == 200, deleted[1]
        wait_for(
            f"{plural}/{name} to be gone (the operator releases it)", absent(release, plural, tenant, name)
        )


def absent(release: Release, plural: str, namespace: str, name: str) -> Callable[[], bool]:
    return lambda: release.get(plural, namespace, name) is None


def calls(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(verb, resource[/subresource]) of each audited request."""
    found = set()
    for event in events:
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", event["requestURI"]) + (
            f"/{ref['subresource']}" if ref.get("subresource") else ""
        )
        found.add((event["verb"], resource))
    return found


def assert_no_forbidden(release: Release) -> None:
    events = release.requests()
    forbidden = [
        f"{e['verb']} {e['requestURI']}: {e['responseStatus'].get('message', '')}"
        for e in events
        if e.get("responseStatus", {}).get("code") == 403
    ]
    assert forbidden == [], "the chart's RBAC refused the operator:\n" + "\n".join(forbidden)
    made = calls(events)
    # The audit log holds the operator's work: the scenario is not vacuous.
    expected = {
        ("watch", "videorooms"),
        ("patch", "videorooms/status"),
        ("create", "compositions"),
        ("patch", "compositions/status"),
        ("create", "secrets"),
        ("create", "tokenreviews"),
        ("create", "subjectaccessreviews"),
        ("create", "events"),
    }
    assert expected <= made, sorted(made)


@dataclass(frozen=True)
class Mode:
    """How a release picks its namespaces, where the scenario runs, and a namespace it must leave alone."""

    release: str
    values: dict[str, Any]
    tenant: str
    outside: str
    tenant_labels: dict[str, str] | None = None


SHARD = "video.openclaw.io/shard"
MODES = {
    "cluster-wide": Mode("tvo", REQUIRED, "tenant-cluster", ""),
    "namespaced": Mode("tvo-ns", {**REQUIRED, "watchNamespaces": ["team-a", "team-b"]}, "team-a", "team-c"),
    "shard": Mode(
        "tvo-shard", {**REQUIRED, "watchNamespaceSelector": f"{SHARD}=a"}, "shard-a", "shard-b", {SHARD: "a"}
    ),
}


@pytest.mark.parametrize("mode_name", list(MODES))
def test_operator_as_the_charts_service_account(real_kube: RealKube, tmp_path: Path, mode_name: str) -> None:
    mode = MODES[mode_name]
    ensure_namespace(real_kube, mode.tenant, mode.tenant_labels)
    with operator_release(
        real_kube, tmp_path, mode.release, f"{mode.release}-system", mode.values
    ) as release:
        if mode.outside:
            # A room outside the release's namespaces, which it must leave alone.
            ensure_namespace(real_kube, mode.outside)
            room = yaml.safe_dump_all(example("videoroom.yaml", mode.outside))
            real_kube.kubectl("apply", "--filename=-", input=room)
        run_scenario(release, mode.tenant)
        if mode.outside:
            outside = release.get("videorooms", mode.outside, "standup")
            assert outside is not None and not outside.get("status"), outside
            assert not outside["metadata"].get("finalizers"), outside["metadata"]
            real_kube.request("DELETE", custom_path("videorooms", mode.outside, "standup"))
    assert_no_forbidden(release)
    if mode.outside:
        touched = {(e.get("objectRef") or {}).get("namespace") for e in release.requests()}
        assert mode.outside not in touched, f"the release touched {mode.outside}, which it does not reconcile"
