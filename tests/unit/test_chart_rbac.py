"""The chart's RBAC: exactly the permissions the operator needs, in cluster and in namespaced mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from chart_rules import CHART, FULLNAME, NAMESPACE, RELEASE, REQUIRED

helm = pytest.importorskip("helm_python")


Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]

CRS = ("videorooms", "compositions", "signingkeyrotations")

NAMESPACED_RULES: list[Rule] = [
    (("video.openclaw.io",), CRS, ("get", "list", "watch", "patch")),
    (("video.openclaw.io",), tuple(f"{plural}/status" for plural in CRS), ("patch",)),
    (("video.openclaw.io",), ("compositions",), ("create",)),
    (("",), ("events",), ("create",)),
    (("",), ("secrets",), ("get", "list", "watch")),
    (("",), ("secrets",), ("create", "patch", "delete")),
]
CLUSTER_ONLY_RULES: list[Rule] = [
    (("apiextensions.k8s.io",), ("customresourcedefinitions",), ("list", "watch")),
    (("authentication.k8s.io",), ("tokenreviews",), ("create",)),
    (("authorization.k8s.io",), ("subjectaccessreviews",), ("create",)),
]

# Watching some namespaces (a list or a selector), not the whole cluster.
NAMESPACE_READS: list[Rule] = [(("",), ("namespaces",), ("list", "watch"))]

VIEWER_RULES: list[Rule] = [(("video.openclaw.io",), CRS, ("get", "list", "watch"))]
EDITOR_RULES: list[Rule] = [
    (("video.openclaw.io",), CRS, ("create", "update", "patch", "delete", "deletecollection")),
    (("video.openclaw.io",), ("videorooms/token",), ("create",)),
]


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def objects(chart: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return [
        doc
        for path, text in rendered.items()
        if not path.endswith(".txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def rules_of(obj: dict[str, Any]) -> list[Rule]:
    """Rules in a canonical form: sorted lists, compared as a sorted list of rules."""
    canonical = [
        (tuple(sorted(rule["apiGroups"])), tuple(sorted(rule["resources"])), tuple(sorted(rule["verbs"])))
        for rule in obj["rules"]
    ]
    for rule in obj["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, f"unexpected rule fields: {rule}"
    return sorted(canonical)


def canonical(rules: list[Rule]) -> list[Rule]:
    return sorted((tuple(sorted(g)), tuple(sorted(r)), tuple(sorted(v))) for g, r, v in rules)


def named(found: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    matching = [
        obj
        for obj in found
        if obj["kind"] == kind
        and obj["metadata"]["name"] == name
        and obj["metadata"].get("namespace") == namespace
    ]
    assert len(matching) == 1, f"expected one {kind} {namespace}/{name}, got {len(matching)}"
    return matching[0]


def test_cluster_mode_cluster_role_is_exact(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    role = named(found, "ClusterRole", FULLNAME)
    assert rules_of(role) == canonical([*NAMESPACED_RULES, *CLUSTER_ONLY_RULES])
    # The only Role is the leader Lease's, in the release namespace.
    roles = [obj for obj in found if obj["kind"] in {"Role", "RoleBinding"}]
    assert {(obj["kind"], obj["metadata"]["name"]) for obj in roles} == {
        ("Role", f"{FULLNAME}-leader-election"),
        ("RoleBinding", f"{FULLNAME}-leader-election"),
    }


def test_leases_only_in_the_release_namespace(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    role = named(found, "Role", f"{FULLNAME}-leader-election", NAMESPACE)
    assert rules_of(role) == canonical(
        [(["coordination.k8s.io"], ["leases"], ["get", "watch", "create", "update"])]
    )
    binding = named(found, "RoleBinding", f"{FULLNAME}-leader-election", NAMESPACE)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    cluster_rules = [rule for obj in found if obj["kind"] == "ClusterRole" for rule in obj["rules"]]
    assert not [rule for rule in cluster_rules if "leases" in rule["resources"]]


def test_a_namespace_selector_may_list_and_watch_namespaces_and_nothing_more(chart: Any) -> None:
    found = objects(chart, {**REQUIRED, "watchNamespaceSelector": "video.openclaw.io/shard=a"})
    rules = rules_of(named(found, "ClusterRole", FULLNAME))
    assert canonical(NAMESPACE_READS)[0] in rules
    (deployment,) = [obj for obj in found if obj["kind"] == "Deployment"]
    env = {
        item["name"]: item.get("value")
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["WATCH_NAMESPACE_SELECTOR"] == "video.openclaw.io/shard=a"
    cluster_wide = rules_of(named(objects(chart, REQUIRED), "ClusterRole", FULLNAME))
    assert [rule for rule in rules if rule not in cluster_wide] == canonical(NAMESPACE_READS)


def test_cluster_mode_binds_the_service_account(chart: Any) -> None:
    binding = named(objects(chart, REQUIRED), "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": FULLNAME,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]


def test_namespaced_mode_has_a_role_per_watched_namespace(chart: Any) -> None:
    found = objects(chart, {**REQUIRED, "watchNamespaces": ["team-a", "team-b"]})
    for namespace in ("team-a", "team-b"):
        role = named(found, "Role", FULLNAME, namespace)
        assert rules_of(role) == canonical(NAMESPACED_RULES)
        binding = named(found, "RoleBinding", FULLNAME, namespace)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": FULLNAME,
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    assert len([obj for obj in found if obj["kind"] == "Role"]) == 3  # and the leader Lease's


def test_namespaced_mode_keeps_only_cluster_scoped_needs_cluster_wide(chart: Any) -> None:
    found = objects(chart, {**REQUIRED, "watchNamespaces": ["team-a", "team-b"]})
    # kopf follows the watched namespaces through list and watch on namespaces (tests/realkube proves that
    # without them it meets 403s); nothing else about namespaces is granted.
    assert rules_of(named(found, "ClusterRole", FULLNAME)) == canonical(
        [*CLUSTER_ONLY_RULES, *NAMESPACE_READS]
    )
    named(found, "ClusterRoleBinding", FULLNAME)
    every_rule = [rule for obj in found if obj["kind"] in {"Role", "ClusterRole"} for rule in obj["rules"]]
    assert [rule for rule in every_rule if "namespaces" in rule["resources"]] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}
    ]


def test_cluster_mode_grants_nothing_on_namespaces(chart: Any) -> None:
    every_rule = [
        rule for obj in objects(chart, REQUIRED) if obj["kind"] == "ClusterRole" for rule in obj["rules"]
    ]
    assert not [rule for rule in every_rule if "namespaces" in rule["resources"]]


def test_secret_writes_are_a_separate_explained_rule(chart: Any) -> None:
    text = chart.render(REQUIRED, name=RELEASE, namespace=NAMESPACE)[
        "twilio-video-operator/templates/rbac.yaml"
    ]
    lines = text.splitlines()
    verbs_line = next(i for i, line in enumerate(lines) if '"create", "patch", "delete"' in line)
    rule_start = max(i for i in range(verbs_line) if lines[i].lstrip().startswith("- apiGroups"))
    comment: list[str] = []
    for line in reversed(lines[:rule_start]):
        if not line.lstrip().startswith("#"):
            break
        comment.insert(0, line.strip("# "))
    assert "SigningKeyRotations own" in " ".join(comment), lines[rule_start - 3 : verbs_line + 1]


def test_user_facing_roles_aggregate_into_the_defaults(chart: Any) -> None:
    found = objects(chart, REQUIRED)
    viewer = named(found, "ClusterRole", "twilio-video-viewer")
    editor = named(found, "ClusterRole", "twilio-video-editor")
    assert rules_of(viewer) == canonical(VIEWER_RULES)
    assert rules_of(editor) == canonical(EDITOR_RULES)
    assert viewer["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert editor["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in editor["metadata"]["labels"]


def test_user_facing_roles_can_be_disabled(chart: Any) -> None:
    found = objects(chart, {**REQUIRED, "rbac": {"aggregateToDefaultRoles": False}})
    names = {obj["metadata"]["name"] for obj in found if obj["kind"] == "ClusterRole"}
    assert names == {FULLNAME}


def test_rbac_create_false_renders_no_operator_rbac(chart: Any) -> None:
    found = objects(chart, {**REQUIRED, "rbac": {"create": False, "aggregateToDefaultRoles": False}})
    assert not [
        obj for obj in found if obj["kind"] in {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ]
