"""What the VideoRoom handlers call (small pure parts) and the Kubernetes port of the controller."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from twilio_video_operator.controllers.credentials import operator_credentials
from twilio_video_operator.controllers.videoroom_triggers import (
    credentials_ref_of,
    needs_request,
    operator_defaults,
    rooms_to_wake,
    spec_changed,
)
from twilio_video_operator.kube import COMPOSITIONS, SECRETS, VIDEOROOMS, KubeApiError, Resource
from twilio_video_operator.kube.credential_secrets import secret_reader
from twilio_video_operator.kube.room_objects import KubeRoomObjects
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.settings import load_settings

PAUSED = "video.openclaw.io/paused"
REQUESTED = "video.openclaw.io/reconcile-requested-at"
PAUSED_STATUS = {
    "conditions": [
        {
            "type": "Synced",
            "status": "False",
            "reason": "Paused",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]
}


def body(
    annotations: dict[str, str] | None = None, status: dict[str, Any] | None = None, **meta: Any
) -> dict[str, Any]:
    return {"metadata": {"annotations": annotations or {}, **meta}, "status": status or {}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (body(), (False, False)),
        (body({PAUSED: "true"}), (True, False)),  # record the pause
        (body({PAUSED: "true"}, PAUSED_STATUS), (False, False)),  # already recorded
        (body({}, PAUSED_STATUS), (True, True)),  # unpaused: look at Twilio again
        (body({REQUESTED: "1"}), (True, True)),
        (body({REQUESTED: "1"}, {"lastHandledReconcileAt": "1"}), (False, False)),
        (body({REQUESTED: "2"}, {"lastHandledReconcileAt": "1"}), (True, True)),
        (body({REQUESTED: "1", PAUSED: "true"}, PAUSED_STATUS), (False, False)),
        (body({PAUSED: "true"}, deletionTimestamp="2026-01-01T00:00:00Z"), (False, False)),
        (body({}, {"conditions": "garbage"}), (False, False)),
    ],
)
def test_annotation_requests(obj: dict[str, Any], expected: tuple[bool, bool]) -> None:
    assert needs_request(obj) == expected


FINALIZER = "video.openclaw.io/finalizer"
GUARDED = {"finalizers": [FINALIZER], "generation": 2}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (body(status={"observedGeneration": 1}, **GUARDED), True),  # the spec changed since
        (body(status={"observedGeneration": 2}, **GUARDED), False),  # handled
        (body(**GUARDED), True),  # never handled: a new object
        (body(status={"observedGeneration": 1}, generation=2), False),  # no finalizer yet: no room
        (body(status={"observedGeneration": 1}, deletionTimestamp="2026-01-01T00:00:00Z", **GUARDED), False),
        (body({PAUSED: "true"}, {"observedGeneration": 1}, **GUARDED), False),  # until unpaused
    ],
)
def test_spec_changes_are_a_generation_status_has_not_observed(obj: dict[str, Any], expected: bool) -> None:
    assert spec_changed(obj, FINALIZER) is expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"credentialsRef": {"name": "tenant"}}, "tenant"),
        (
            {"credentialsRef": {"name": "tenant"}, "maxParticipants": 999},
            "tenant",
        ),  # invalid spec: still indexed
        ({}, None),
        ({"credentialsRef": {}}, None),
        ({"credentialsRef": "tenant"}, None),
        ({"credentialsRef": {"name": ""}}, None),
        (None, None),
    ],
)
def test_the_credentials_secret_of_a_room(spec: Any, expected: str | None) -> None:
    assert credentials_ref_of({"spec": spec}) == expected


def test_a_secret_wakes_the_rooms_of_its_namespace_that_name_it() -> None:
    index = {("team-a", "tenant"): ["b", "a", "a"], ("team-b", "tenant"): ["c"]}
    assert rooms_to_wake(index, "team-a", "tenant") == ["a", "b"]
    assert rooms_to_wake(index, "team-a", "other") == []
    assert rooms_to_wake(index, "team-c", "tenant") == []


def test_secret_data_is_decoded_and_undecodable_entries_skipped() -> None:
    secret = {
        "data": {"A": base64.b64encode(b"one").decode(), "B": "%%%", "C": base64.b64encode(b"\xff").decode()},
        "stringData": {"D": "four"},
    }
    assert decode_secret_data(secret) == {"A": "one", "D": "four"}


def test_operator_settings_become_credentials_and_defaults() -> None:
    settings = load_settings(
        TWILIO_ACCOUNT_SID="AC" + "a" * 32,
        TWILIO_AUTH_TOKEN="token",
        PUBLIC_BASE_URL="https://op.example.com/",
        VIDEO_ROOM_TYPE="group-small",
        VIDEO_MAX_PARTICIPANTS=4,
    )
    creds = operator_credentials(settings)
    assert creds.api_key is None and creds.auth_token is not None
    defaults = operator_defaults(settings)
    assert (defaults.room_type, defaults.max_participants) == ("group-small", 4)
    assert defaults.status_callback == "https://op.example.com/twilio/room-events"


class FakeKube:
    def __init__(self, conflict: bool = False) -> None:
        self.conflict = conflict
        self.calls: list[tuple[str, Resource, Any]] = []

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", resource, name))
        if resource == SECRETS:
            return {"metadata": {"resourceVersion": "42"}, "data": {"K": base64.b64encode(b"v").decode()}}
        return None

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", resource, body))
        if self.conflict and resource == COMPOSITIONS:
            raise KubeApiError(409, "AlreadyExists", "exists")
        return body

    async def patch_status(self, resource: Resource, namespace: str | None, name: str, status: Any) -> Any:
        self.calls.append(("patch_status", resource, dict(status)))


OWNER = {"metadata": {"name": "standup", "namespace": "team", "uid": "u-1"}}


async def test_composition_is_owned_by_the_room_and_409_means_done() -> None:
    kube = FakeKube()
    objects = KubeRoomObjects(kube)  # type: ignore[arg-type]
    assert await objects.create_composition(OWNER, "standup-recording", {"roomRef": {"name": "standup"}})
    _, resource, created = kube.calls[-1]
    assert resource == COMPOSITIONS and created["kind"] == "Composition"
    assert created["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "VideoRoom",
            "name": "standup",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert not await KubeRoomObjects(FakeKube(conflict=True)).create_composition(OWNER, "x", {})  # type: ignore[arg-type]


async def test_other_kubernetes_errors_propagate() -> None:
    class Broken(FakeKube):
        async def create(
            self, resource: Resource, namespace: str | None, body: dict[str, Any]
        ) -> dict[str, Any]:
            raise KubeApiError(403, "Forbidden", "no")

    with pytest.raises(KubeApiError):
        await KubeRoomObjects(Broken()).create_composition(OWNER, "x", {})  # type: ignore[arg-type]


async def test_secrets_rooms_and_status_go_through_the_client() -> None:
    kube = FakeKube()
    objects = KubeRoomObjects(kube)  # type: ignore[arg-type]
    secret = await secret_reader(kube)("team", "creds")  # type: ignore[arg-type]
    assert secret is not None and secret.resource_version == "42" and dict(secret.data) == {"K": "v"}
    assert await objects.get_room("team", "standup") is None
    await objects.patch_status("team", "standup", {"sid": "RM1"})
    assert kube.calls[-1] == ("patch_status", VIDEOROOMS, {"sid": "RM1"})
