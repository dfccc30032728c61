"""The Helm chart: rendering, lint, values schema, the hardened Deployment and the optional features."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_rules import CHART, FULLNAME, NAMESPACE, RELEASE, REQUIRED
from twilio_video_operator.settings import load_settings

helm = pytest.importorskip("helm_python")

NAMESPACED: dict[str, Any] = {**REQUIRED, "watchNamespaces": ["team-a", "team-b"]}
ALL_FEATURES: dict[str, Any] = {
    "credentials": {
        "existingSecret": "twilio-credentials",
        "keys": {"accountSid": "account-sid", "apiKey": "key", "apiSecret": "secret", "authToken": "token"},
    },
    "image": {"repository": "registry.example.com/tvo", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "twilio": {"baseUrl": "http://twilio-emulator.video-system:9000", "maxConcurrency": 4},
    "video": {"roomType": "group-small", "maxParticipants": 4, "tokenTtlSeconds": 600},
    "logLevel": "DEBUG",
    "resyncInterval": "1h",
    "extraEnv": [
        {"name": "EXTRA_FLAG", "value": "on"},
        {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ],
    "serviceAccount": {"create": False, "name": "video-operator"},
    "podAnnotations": {"example.com/owner": "video-team"},
    "podLabels": {"team": "video"},
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "video", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                        ]
                    }
                ]
            }
        }
    },
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
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        ],
        "kubernetesApi": {"cidrs": ["10.0.0.1/32"], "ports": [443]},
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}], "ports": [{"port": 9000}]}],
    },
}
VALUE_SETS = {"default": REQUIRED, "namespaced": NAMESPACED, "all-features": ALL_FEATURES}


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)  # type: ignore[no-any-return]


def objects(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with ``values`` (NOTES.txt excluded)."""
    found: list[dict[str, Any]] = []
    for path, text in render(chart, values).items():
        if path.endswith(".txt"):
            continue
        found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


def only(found: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [obj for obj in found if obj["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, got {len(matching)}"
    return matching[0]


def container(found: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(found, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]  # type: ignore[no-any-return]


def env_of(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(found)["env"]}


# --- lint and render ------------------------------------------------------------------------------


def test_chart_metadata(chart: Any) -> None:
    meta = chart.metadata
    assert (meta["apiVersion"], meta["type"], meta["version"], meta["appVersion"]) == (
        "v2",
        "application",
        "0.1.0",
        "0.1.0",
    )
    assert chart.crds == [], "CRDs ship as templates (files/crds), never in the chart's crds/ folder"


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_lint_strict_passes(values_name: str) -> None:
    report = helm.lint(CHART, copy.deepcopy(VALUE_SETS[values_name]), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_renders_valid_objects(chart: Any, values_name: str) -> None:
    found = objects(chart, VALUE_SETS[values_name])
    for obj in found:
        assert obj.get("apiVersion") and obj.get("kind") and obj["metadata"].get("name"), obj
        labels = obj["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", obj["metadata"]["name"]
    namespaced_kinds = {
        "Deployment",
        "Service",
        "ServiceAccount",
        "Ingress",
        "ServiceMonitor",
        "PrometheusRule",
    }
    for obj in found:
        if obj["kind"] in namespaced_kinds:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


def test_default_install_renders_the_expected_objects(chart: Any) -> None:
    kinds = sorted(
        obj["kind"] for obj in objects(chart, REQUIRED) if obj["kind"] != "CustomResourceDefinition"
    )
    assert kinds == sorted(
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",  # the leader Lease, in the release namespace
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )


def test_all_features_render_every_optional_object(chart: Any) -> None:
    kinds = {obj["kind"] for obj in objects(chart, ALL_FEATURES)}
    assert {"Ingress", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"} <= kinds
    assert "ServiceAccount" not in kinds, "serviceAccount.create=false must not create one"


# --- values schema --------------------------------------------------------------------------------


def test_schema_is_draft_07_and_closed(chart: Any) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) <= set(schema["properties"]), "every value must be described in values.schema.json"


@pytest.mark.parametrize("values", list(VALUE_SETS.values()), ids=list(VALUE_SETS))
def test_schema_accepts_documented_values(chart: Any, values: dict[str, Any]) -> None:
    chart.validate_schema(copy.deepcopy(values))


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param(
            {"publicBaseUrl": "https://video.example.com"}, "existingSecret", id="no-existing-secret"
        ),
        pytest.param(
            {**REQUIRED, "credentials": {"existingSecret": ""}}, "existingSecret", id="empty-existing-secret"
        ),
        pytest.param(
            {**REQUIRED, "credentials": {"existingSecret": "s", "authToken": "0123456789abcdef"}},
            "authToken",
            id="literal-auth-token",
        ),
        pytest.param(
            {**REQUIRED, "credentials": {"existingSecret": "s", "apiSecret": "hunter2"}},
            "apiSecret",
            id="literal-api-secret",
        ),
        pytest.param({**REQUIRED, "replicas": 2}, "replicas", id="unknown-top-level-key"),
        pytest.param(
            {**REQUIRED, "image": {"repository": "x", "digest": "y"}}, "digest", id="unknown-nested-key"
        ),
        pytest.param({"credentials": {"existingSecret": "s"}}, "publicBaseUrl", id="no-public-base-url"),
        pytest.param(
            {**REQUIRED, "publicBaseUrl": "video.example.com"}, "publicBaseUrl", id="url-without-scheme"
        ),
        pytest.param({**REQUIRED, "watchNamespaces": ["Team_A"]}, "watchNamespaces", id="bad-namespace"),
        pytest.param({**REQUIRED, "video": {"roomType": "huge"}}, "roomType", id="bad-room-type"),
        pytest.param({**REQUIRED, "resyncInterval": "ten minutes"}, "resyncInterval", id="bad-duration"),
        pytest.param(
            {**REQUIRED, "serviceAccount": {"create": False}}, "serviceAccount", id="existing-sa-unnamed"
        ),
        pytest.param(
            {**REQUIRED, "ingress": {"enabled": True, "host": "v.example.com", "tls": {"enabled": True}}},
            "secretName",
            id="tls-without-secret",
        ),
    ],
)
def test_schema_rejects(chart: Any, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        chart.validate_schema(copy.deepcopy(values))
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


def test_ingress_host_stands_in_for_public_base_url(chart: Any) -> None:
    values = {k: v for k, v in ALL_FEATURES.items() if k != "publicBaseUrl"}
    assert env_of(objects(chart, values))["PUBLIC_BASE_URL"]["value"] == "https://video.example.com"
    plain = {**REQUIRED, "ingress": {"enabled": True, "host": "plain.example.com"}}
    del plain["publicBaseUrl"]
    assert env_of(objects(chart, plain))["PUBLIC_BASE_URL"]["value"] == "http://plain.example.com"


def test_explicit_public_base_url_wins_over_ingress_host(chart: Any) -> None:
    values = {**ALL_FEATURES, "publicBaseUrl": "https://callbacks.example.org/video/"}
    assert env_of(objects(chart, values))["PUBLIC_BASE_URL"]["value"] == "https://callbacks.example.org/video"


# --- the Deployment -------------------------------------------------------------------------------


def test_deployment_runs_two_replicas_rolled_one_at_a_time_and_spread(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    spec = only(found, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    selector = spec["selector"]["matchLabels"]
    (anti,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    (spread,) = pod["topologySpreadConstraints"]
    assert (
        spread["whenUnsatisfiable"] == "ScheduleAnyway" and spread["labelSelector"]["matchLabels"] == selector
    )
    budget = only(found, "PodDisruptionBudget")["spec"]
    assert budget == {"minAvailable": 1, "selector": {"matchLabels": selector}}


def test_leader_election_runs_with_a_lease_in_the_release_namespace(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    env = env_of(found)
    assert env["LEADER_ELECTION_NAMESPACE"]["value"] == NAMESPACE
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    (role,) = [obj for obj in found if obj["kind"] == "Role"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "watch", "create", "update"],
        }
    ]
    single = objects(chart, {**REQUIRED, "replicaCount": 1, "leaderElection": {"enabled": False}})
    assert env_of(single)["LEADER_ELECTION"]["value"] == "false"
    assert not [obj for obj in single if obj["kind"] == "Role"]


def test_deployment_is_hardened(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    pod = only(found, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(found)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container(found)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_deployment_probes_resources_and_ports(chart: Any) -> None:
    main = container(objects(chart, REQUIRED))
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert main["resources"]["limits"]["memory"] == "256Mi"
    assert main["image"] == "ghcr.io/openclaw/twilio-video-operator:0.1.0"
    assert main["args"] == ["run"]


def test_deployment_environment_defaults(chart: Any) -> None:
    env = env_of(objects(chart, REQUIRED))
    plain = {name: item["value"] for name, item in env.items() if "value" in item}
    assert plain == {
        "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": "8080",
        "PUBLIC_BASE_URL": "https://video.example.com",
        "SENDGRID_BASE_URL": "https://api.sendgrid.com",
        "TWILIO_MAX_CONCURRENCY": "10",
        "VIDEO_ROOM_TYPE": "group",
        "VIDEO_MAX_PARTICIPANTS": "25",
        "VIDEO_TOKEN_TTL_SECONDS": "3600",
        "LOG_LEVEL": "INFO",
        "RESYNC_INTERVAL": "10m",
        "WATCH_NAMESPACES": "",
        "LEADER_ELECTION": "true",
        "LEADER_ELECTION_NAMESPACE": NAMESPACE,
        "LEADER_ELECTION_LEASE_NAME": "tvo-twilio-video-operator",
        "LEADER_ELECTION_LEASE_DURATION": "15",
        "LEADER_ELECTION_RENEW_DEADLINE": "10",
        "LEADER_ELECTION_RETRY_PERIOD": "2",
        "SHUTDOWN_DRAIN_SECONDS": "5",
    }
    assert "TWILIO_BASE_URL" not in env


def test_credentials_come_only_from_the_existing_secret(chart: Any) -> None:
    env = env_of(objects(chart, ALL_FEATURES))
    expected_keys = {
        "TWILIO_ACCOUNT_SID": "account-sid",
        "TWILIO_API_KEY": "key",
        "TWILIO_API_SECRET": "secret",
        "TWILIO_AUTH_TOKEN": "token",
    }
    for name, key in expected_keys.items():
        assert "value" not in env[name]
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("twilio-credentials", key)
    assert "optional" not in env["TWILIO_ACCOUNT_SID"]["valueFrom"]["secretKeyRef"]


CREDENTIAL_SETTINGS = {"TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "TWILIO_API_SECRET", "TWILIO_AUTH_TOKEN"}


def named_mappings(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping nested anywhere in ``node`` whose ``name`` is a string (env entries among them)."""
    if isinstance(node, dict):
        if isinstance(node.get("name"), str):
            yield node
        for child in node.values():
            yield from named_mappings(child)
    elif isinstance(node, list):
        for child in node:
            yield from named_mappings(child)


@pytest.mark.parametrize("values_name", list(VALUE_SETS))
def test_no_secret_value_is_rendered(chart: Any, values_name: str) -> None:
    found = objects(chart, VALUE_SETS[values_name])
    assert not [obj["metadata"]["name"] for obj in found if obj["kind"] in {"Secret", "ConfigMap"}]
    credential_env = [
        mapping
        for mapping in named_mappings(found)
        if mapping.get("name") in CREDENTIAL_SETTINGS and "valueFrom" in mapping
    ]
    assert {item["name"] for item in credential_env} == CREDENTIAL_SETTINGS
    for item in credential_env:
        assert set(item) == {"name", "valueFrom"} and set(item["valueFrom"]) == {"secretKeyRef"}, item
    literal = [m for m in named_mappings(found) if m.get("name") in CREDENTIAL_SETTINGS and "value" in m]
    assert literal == []


def test_all_feature_values_reach_the_pod(chart: Any) -> None:
    found = objects(chart, ALL_FEATURES)
    deployment = only(found, "Deployment")
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    main = container(found)
    env = env_of(found)
    assert main["image"] == "registry.example.com/tvo:1.2.3"
    assert main["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["serviceAccountName"] == "video-operator"
    assert spec["automountServiceAccountToken"] is True
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == ALL_FEATURES["nodeSelector"]
    assert spec["tolerations"] == ALL_FEATURES["tolerations"]
    assert spec["affinity"] == ALL_FEATURES["affinity"]
    assert pod["metadata"]["annotations"] == ALL_FEATURES["podAnnotations"]
    assert pod["metadata"]["labels"]["team"] == "video"
    assert env["TWILIO_BASE_URL"]["value"] == "http://twilio-emulator.video-system:9000"
    assert env["VIDEO_ROOM_TYPE"]["value"] == "group-small"
    assert env["LOG_LEVEL"]["value"] == "DEBUG"
    assert env["EXTRA_FLAG"] == {"name": "EXTRA_FLAG", "value": "on"}
    assert env["FROM_FIELD"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()


def test_namespaced_mode_passes_the_namespaces(chart: Any) -> None:
    assert env_of(objects(chart, NAMESPACED))["WATCH_NAMESPACES"]["value"] == "team-a,team-b"


def test_created_service_account_does_not_automount(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    account = only(found, "ServiceAccount")
    assert account["metadata"]["name"] == FULLNAME
    assert account["automountServiceAccountToken"] is False
    assert only(found, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == FULLNAME


# --- Service, Ingress, monitoring, NetworkPolicy --------------------------------------------------


def test_service_exposes_http(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    service = only(found, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    pod_labels = only(found, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_ingress_routes_only_public_paths(chart: Any) -> None:
    ingress = only(objects(chart, ALL_FEATURES), "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["video.example.com"], "secretName": "video-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "video.example.com"
    paths = {path["path"] for path in rule["http"]["paths"]}
    assert paths == {"/twilio", "/v1/token"}
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}


def test_service_monitor_scrapes_metrics(chart: Any) -> None:
    monitor = only(objects(chart, ALL_FEATURES), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_prometheus_rule_carries_the_operator_down_alert(chart: Any) -> None:
    rule = only(objects(chart, ALL_FEATURES), "PrometheusRule")
    alerts = {alert["alert"]: alert for group in rule["spec"]["groups"] for alert in group["rules"]}
    down = alerts["TwilioVideoOperatorDown"]
    assert f'up{{job="{FULLNAME}", namespace="{NAMESPACE}"}} == 0' in down["expr"]
    assert down["annotations"]["runbook_url"].endswith("docs/runbooks.md#operator-down")
    assert down["labels"]["severity"] == "critical"
    assert "{{" not in json.dumps(rule), "no unrendered Helm template left"


def test_operator_down_alert_fires_under_promtool(chart: Any, tmp_path: Path) -> None:
    """The rules pass `promtool check rules`; the down alert fires on up == 0 and on a vanished target."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package `prometheus`)")
    rule = only(objects(chart, ALL_FEATURES), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    down = next(
        r for g in rule["spec"]["groups"] for r in g["rules"] if r["alert"] == "TwilioVideoOperatorDown"
    )
    expected = {
        "exp_labels": {"severity": "critical", "job": FULLNAME, "namespace": NAMESPACE},
        "exp_annotations": down["annotations"],
    }
    series = f'up{{job="{FULLNAME}", namespace="{NAMESPACE}", instance="10.0.0.7:8080"}}'
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "1x5 0x10"}],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "TwilioVideoOperatorDown", "exp_alerts": []},
                    {
                        "eval_time": "12m",
                        "alertname": "TwilioVideoOperatorDown",
                        "exp_alerts": [
                            {
                                **expected,
                                "exp_labels": {**expected["exp_labels"], "instance": "10.0.0.7:8080"},
                            }
                        ],
                    },
                ],
            },
            {
                "interval": "1m",
                "input_series": [],
                "alert_rule_test": [
                    {"eval_time": "6m", "alertname": "TwilioVideoOperatorDown", "exp_alerts": [expected]},
                ],
            },
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    for command in (["check", "rules", "rules.yaml"], ["test", "rules", "tests.yaml"]):
        result = subprocess.run(
            [promtool, *command], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_network_policy_allows_only_what_the_operator_needs(chart: Any) -> None:
    policy = only(objects(chart, ALL_FEATURES), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress, peers = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"] == ALL_FEATURES["networkPolicy"]["ingressFrom"]
    # The other replicas of the release hand callbacks to the leader.
    selector = only(objects(chart, ALL_FEATURES), "Deployment")["spec"]["selector"]
    assert peers == {"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"podSelector": selector}]}
    assert policy["egress"][0] == {
        "ports": [{"port": "http", "protocol": "TCP"}],
        "to": [{"podSelector": selector}],
    }
    egress_ports = [
        sorted((p.get("protocol", "TCP"), p["port"]) for p in rule["ports"]) for rule in policy["egress"][1:]
    ]
    assert egress_ports == [
        [("TCP", 53), ("UDP", 53)],
        [("TCP", 443)],
        [("TCP", 443)],
        [("TCP", 9000)],
    ]
    assert policy["egress"][2]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert policy["egress"][3]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]


def test_optional_objects_are_off_by_default(chart: Any) -> None:
    kinds = {obj["kind"] for obj in objects(chart, REQUIRED)}
    assert not kinds & {"Ingress", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"}


# --- NOTES.txt ------------------------------------------------------------------------------------


def notes(chart: Any, values: dict[str, Any]) -> str:
    (text,) = [text for path, text in render(chart, values).items() if path.endswith("NOTES.txt")]
    return text


def test_notes_explain_checking_and_uninstall_order(chart: Any) -> None:
    text = notes(chart, REQUIRED)
    delete_resources = text.index("kubectl delete videorooms,compositions,signingkeyrotations --all -A")
    uninstall = text.index(f"helm uninstall {RELEASE} -n {NAMESPACE}")
    assert delete_resources < uninstall
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}" in text
    assert "CRDs are kept on uninstall" in text


def test_notes_follow_crds_keep(chart: Any) -> None:
    text = notes(chart, {**REQUIRED, "crds": {"keep": False}})
    assert "CRDs are kept" not in text
    assert "deleted with the release" in text


def test_tenancy_and_delivery_limits_reach_the_pod(chart: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        **REQUIRED,
        "tenantNamePrefixes": {"team-a": ["shared-", "legacy:"]},
        "delivery": {"allowedEndpoints": ["https://s3.example.com", "https://*.r2.example.net"]},
    }
    env = env_of(objects(chart, values))
    for name in ("TENANT_NAME_PREFIXES", "DELIVERY_ALLOWED_ENDPOINTS"):
        monkeypatch.setenv(name, env[name]["value"])
    loaded = load_settings(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t", PUBLIC_BASE_URL="https://x"
    )
    assert loaded.TENANT_NAME_PREFIXES == {"team-a": ["shared-", "legacy:"]}
    assert loaded.delivery_allowed_endpoints == ("https://s3.example.com", "https://*.r2.example.net")


def test_shared_account_services_reach_the_pod_as_the_operators_setting(
    chart: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    granted = {
        "*": {"verifyServices": ["VA" + "1" * 32]},
        "team-a": {"messagingServices": ["MG" + "2" * 32, "*"], "studioFlows": ["FW" + "3" * 32]},
    }
    assert "TENANT_TWILIO_SERVICES" not in env_of(objects(chart, REQUIRED))  # none granted by default
    env = env_of(objects(chart, {**REQUIRED, "tenantTwilioServices": granted}))
    monkeypatch.setenv("TENANT_TWILIO_SERVICES", env["TENANT_TWILIO_SERVICES"]["value"])
    loaded = load_settings(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t", PUBLIC_BASE_URL="https://x"
    )
    assert loaded.tenant_twilio_services == {
        "*": {"messagingServices": [], "studioFlows": [], "verifyServices": ["VA" + "1" * 32]},
        "team-a": {
            "messagingServices": ["MG" + "2" * 32, "*"],
            "studioFlows": ["FW" + "3" * 32],
            "verifyServices": [],
        },
    }
    for wrong, named in (
        ({"team-a": {"messagingServices": ["VA" + "1" * 32]}}, "messagingServices"),  # a Verify Service
        ({"team-a": {"flows": []}}, "flows"),
        ({"Team_A": {}}, "Team_A"),
    ):
        with pytest.raises(Exception, match=named):
            chart.validate_schema({**REQUIRED, "tenantTwilioServices": wrong})


def test_sendgrid_base_url_reaches_the_pod_as_the_operators_setting(
    chart: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendGrid's own URL unless the value points email notifications somewhere else (an emulator)."""
    for values, expected in (
        (REQUIRED, "https://api.sendgrid.com"),
        (
            {**REQUIRED, "sendgrid": {"baseUrl": "http://sendgrid-emulator:8080/"}},
            "http://sendgrid-emulator:8080",
        ),
    ):
        env = env_of(objects(chart, values))
        monkeypatch.setenv("SENDGRID_BASE_URL", env["SENDGRID_BASE_URL"]["value"])
        loaded = load_settings(
            TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t", PUBLIC_BASE_URL="https://x"
        )
        assert expected == loaded.SENDGRID_BASE_URL
    with pytest.raises(Exception, match="baseUrl"):
        chart.validate_schema({**REQUIRED, "sendgrid": {"baseUrl": "api.sendgrid.com"}})


def test_schema_refuses_a_delivery_endpoint_with_a_path(chart: Any) -> None:
    with pytest.raises(Exception, match="allowedEndpoints"):
        chart.validate_schema(
            {**REQUIRED, "delivery": {"allowedEndpoints": ["https://s3.example.com/bucket"]}}
        )
