"""How the embedded Kubernetes API matches RBAC rules and subjects (as Kubernetes' RBAC authorizer does)."""

from __future__ import annotations

from typing import Any

import pytest

from twilio_video_playground.kube.rbac import authorize, rule_allows, subject_matches

TOKEN = {"verb": "create", "group": "video.openclaw.io", "resource": "videorooms", "subresource": "token"}


def rule(**fields: Any) -> dict[str, Any]:
    return {
        "verbs": ["create"],
        "apiGroups": ["video.openclaw.io"],
        "resources": ["videorooms/token"],
        **fields,
    }


@pytest.mark.parametrize(
    ("the_rule", "attributes", "expected"),
    [
        (rule(), {**TOKEN, "name": "standup"}, True),
        (rule(), TOKEN, True),
        (rule(verbs=["*"]), {**TOKEN, "verb": "get"}, True),
        (rule(), {**TOKEN, "verb": "get"}, False),
        (rule(apiGroups=["*"]), {**TOKEN, "group": "other.io"}, True),
        (rule(), {**TOKEN, "group": ""}, False),
        (rule(resources=["*"]), TOKEN, True),
        (rule(resources=["*/token"]), {**TOKEN, "resource": "compositions"}, True),
        (rule(resources=["*/token"]), {**TOKEN, "subresource": ""}, False),
        (rule(resources=["videorooms"]), TOKEN, False),
        (rule(resources=["videorooms/*"]), TOKEN, False),  # not a wildcard in Kubernetes
        (rule(resourceNames=["standup"]), {**TOKEN, "name": "standup"}, True),
        (rule(resourceNames=["standup"]), {**TOKEN, "name": "board"}, False),
        (rule(resourceNames=["standup"]), TOKEN, False),
        (rule(resourceNames=["*"]), {**TOKEN, "name": "board"}, False),  # names are literal
        (rule(resourceNames=[]), {**TOKEN, "name": "board"}, True),
    ],
)
def test_resource_rules(the_rule: dict[str, Any], attributes: dict[str, Any], expected: bool) -> None:
    assert rule_allows(the_rule, attributes, resource_request=True) is expected


@pytest.mark.parametrize(
    ("urls", "path", "expected"),
    [
        (["/metrics"], "/metrics", True),
        (["/debug/*"], "/debug/pprof", True),
        (["*"], "/x", True),
        (["/m"], "/x", False),
    ],
)
def test_non_resource_rules(urls: list[str], path: str, expected: bool) -> None:
    the_rule = {"verbs": ["get"], "nonResourceURLs": urls}
    assert rule_allows(the_rule, {"verb": "get", "path": path}, resource_request=False) is expected


@pytest.mark.parametrize(
    ("subject", "user", "groups", "expected"),
    [
        ({"kind": "User", "name": "alice"}, "alice", [], True),
        ({"kind": "User", "name": "alice"}, "bob", ["alice"], False),
        ({"kind": "Group", "name": "staff"}, "bob", ["staff"], True),
        ({"kind": "Group", "name": "staff"}, "staff", [], False),
        (
            {"kind": "ServiceAccount", "name": "app", "namespace": "a"},
            "system:serviceaccount:a:app",
            [],
            True,
        ),
        (
            {"kind": "ServiceAccount", "name": "app", "namespace": "b"},
            "system:serviceaccount:a:app",
            [],
            False,
        ),
        ({"kind": "ServiceAccount", "name": "app"}, "system:serviceaccount:a:app", [], True),  # binding's ns
        ({"kind": "ServiceAccount", "name": "app"}, "app", [], False),
        ({"kind": "Robot", "name": "app"}, "app", [], False),
    ],
)
def test_subjects(subject: dict[str, Any], user: str, groups: list[str], expected: bool) -> None:
    assert subject_matches(subject, user, groups, "a") is expected


class Objects:
    """RBAC objects in memory, by plural and namespace."""

    def __init__(self, **by_plural: list[dict[str, Any]]) -> None:
        self.by_plural = by_plural

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.by_plural.get(plural, [])
            if namespace is None or obj["metadata"].get("namespace") == namespace
        ]

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = [obj for obj in self.list(plural, namespace) if obj["metadata"]["name"] == name]
        return found[0] if found else None


def test_authorize_names_the_binding_that_allows() -> None:
    objects = Objects(
        clusterroles=[{"metadata": {"name": "minter"}, "rules": [rule()]}],
        clusterrolebindings=[
            {
                "metadata": {"name": "staff-minters"},
                "roleRef": {"kind": "ClusterRole", "name": "minter"},
                "subjects": [{"kind": "Group", "name": "staff"}],
            }
        ],
    )
    attributes = {**TOKEN, "namespace": "a", "name": "standup"}
    assert authorize(objects, "bob", ["staff"], attributes, None) == (
        'RBAC: allowed by ClusterRoleBinding "staff-minters" of ClusterRole "minter" to Group "staff"'
    )
    assert authorize(objects, "bob", [], attributes, None) is None
    assert authorize(objects, "bob", ["staff"], None, {"verb": "create", "path": "/x"}) is None
