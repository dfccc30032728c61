"""examples/rbac/token-role.yaml grants what the token service's SubjectAccessReview asks for, no more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from twilio_video_playground.kube.rbac import authorize
from twilio_video_playground.kube.reviews import review_access

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rbac" / "token-role.yaml"
APP = "system:serviceaccount:default:video-app"


def documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(EXAMPLE.read_text()) if doc}


class AppliedExample:
    """The example's Role and RoleBinding as the embedded API server's RBAC evaluation reads them."""

    def __init__(self) -> None:
        docs = documents()
        self.objects = {"roles": [docs["Role"]], "rolebindings": [docs["RoleBinding"]]}

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return [
            obj
            for obj in self.objects.get(plural, [])
            if namespace is None or obj["metadata"]["namespace"] == namespace
        ]

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return next((obj for obj in self.list(plural, namespace) if obj["metadata"]["name"] == name), None)


def answer(review: dict[str, Any]) -> dict[str, Any]:
    """The embedded API's SubjectAccessReview answer with only the example applied."""
    return review_access(review, [], lambda *request: authorize(AppliedExample(), *request))


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


def test_the_binding_names_the_role() -> None:
    docs = documents()
    assert docs["RoleBinding"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": docs["Role"]["metadata"]["name"],
    }


def test_the_service_account_may_mint_for_the_standup_room() -> None:
    assert answer(token_review(APP, "standup"))["status"]["allowed"] is True


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
    assert answer(token_review(user, room, namespace, verb))["status"]["allowed"] is False
