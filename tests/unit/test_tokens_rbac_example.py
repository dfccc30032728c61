"""examples/rbac/token-role.yaml grants what the token service's SubjectAccessReview asks for, no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from twilio_video_operator.dev.kube.reviews import AccessRule, review_access

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rbac" / "token-role.yaml"
APP = "system:serviceaccount:default:video-app"


def documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc}


def rules_as_bound() -> list[AccessRule]:
    """The Role's rules for the RoleBinding's subjects, as the embedded API server evaluates them."""
    docs = documents()
    role, binding = docs["Role"], docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    users = tuple(
        f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
        for subject in binding["subjects"]
        if subject["kind"] == "ServiceAccount"
    )
    return [
        AccessRule(
            verbs=tuple(rule["verbs"]),
            api_groups=tuple(rule["apiGroups"]),
            resources=tuple(rule["resources"]),
            namespaces=(role["metadata"]["namespace"],),
            names=tuple(rule.get("resourceNames") or ("*",)),
            users=users,
        )
        for rule in role["rules"]
    ]


def token_review(user: str, room: str, namespace: str = "default", verb: str = "create") -> dict[str, Any]:
    """The SubjectAccessReview the token service sends for ``room``."""
    return {
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts"],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": "video.openclaw.io",
                "resource": "videorooms",
                "subresource": "token",
                "name": room,
            },
        }
    }


def test_the_example_is_a_service_account_a_role_and_its_binding() -> None:
    assert set(documents()) == {"ServiceAccount", "Role", "RoleBinding"}
    assert documents()["ServiceAccount"]["metadata"] == {"name": "video-app", "namespace": "default"}


def test_the_service_account_may_mint_for_the_standup_room() -> None:
    assert review_access(token_review(APP, "standup"), rules_as_bound())["status"]["allowed"] is True


@pytest.mark.parametrize(
    ("user", "room", "namespace", "verb"),
    [
        (APP, "board", "default", "create"),
        (APP, "standup", "other", "create"),
        (APP, "standup", "default", "get"),
        ("system:serviceaccount:default:someone-else", "standup", "default", "create"),
    ],
)
def test_nothing_else_is_granted(user: str, room: str, namespace: str, verb: str) -> None:
    answer = review_access(token_review(user, room, namespace, verb), rules_as_bound())
    assert answer["status"]["allowed"] is False
