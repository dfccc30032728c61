"""SigningKeyRotation beside its planner: the Secret store (kube) and the prompt-reconcile check."""

from __future__ import annotations

import base64
from typing import Any

from pydantic import SecretStr

from twilio_video_operator.controllers.signingkeyrotation import SigningKeyRotationController
from twilio_video_operator.kube import SECRETS, Resource
from twilio_video_operator.kube.rotation_secret import KubeSecretStore
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.reconcilers.signingkeyrotation import KeyMaterial

OWNER = {
    "apiVersion": "video.openclaw.io/v1alpha1",
    "kind": "SigningKeyRotation",
    "metadata": {"name": "keys", "namespace": "tenant", "uid": "uid-1"},
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeKube:
    def __init__(self, secret: dict[str, Any] | None = None) -> None:
        self.secret = secret
        self.calls: list[tuple[str, Any]] = []

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        assert (resource, namespace, name) == (SECRETS, "tenant", "keys")
        return self.secret

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", body))
        self.secret = body
        return body

    async def patch(self, resource: Resource, namespace: str | None, name: str, patch: Any) -> dict[str, Any]:
        self.calls.append(("patch", patch))
        return {}


def store(kube: FakeKube) -> KubeSecretStore:
    return KubeSecretStore(kube, OWNER, "keys")  # type: ignore[arg-type]


def owned(data: dict[str, str], uid: str = "uid-1") -> dict[str, Any]:
    return {
        "metadata": {"name": "keys", "ownerReferences": [{"uid": uid, "kind": "SigningKeyRotation"}]},
        "data": {key: b64(value) for key, value in data.items()},
    }


async def test_a_missing_secret_reads_as_none_and_is_created_owned_and_labelled() -> None:
    kube = FakeKube()
    secrets = store(kube)
    assert await secrets.read() is None

    await secrets.write("AC1", {"active": KeyMaterial("SK1", SecretStr("s1"))})

    kind, body = kube.calls[0]
    assert kind == "create"
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "SigningKeyRotation",
            "name": "keys",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "twilio-video-operator",
        "video.openclaw.io/signing-key-rotation": "keys",
    }
    assert decode_secret_data(body) == {
        "TWILIO_ACCOUNT_SID": "AC1",
        "TWILIO_API_KEY": "SK1",
        "TWILIO_API_SECRET": "s1",
    }


async def test_an_owned_secret_reads_its_slots_and_writes_remove_absent_ones() -> None:
    kube = FakeKube(
        owned(
            {
                "TWILIO_ACCOUNT_SID": "AC1",
                "TWILIO_API_KEY": "SK1",
                "TWILIO_API_SECRET": "s1",
                "TWILIO_API_KEY_NEXT": "SK2",
                "TWILIO_API_SECRET_NEXT": "s2",
                "TWILIO_API_KEY_PREVIOUS": "SK0",  # without its secret: not a usable key
            }
        )
    )
    secrets = store(kube)

    contents = await secrets.read()

    assert contents is not None and contents.owned and contents.account_sid == "AC1"
    assert contents.sids == {"active": "SK1", "next": "SK2"}
    assert contents.keys["next"].secret.get_secret_value() == "s2"

    await secrets.write("AC1", {"active": contents.keys["next"], "previous": contents.keys["active"]})

    kind, patch = kube.calls[0]
    assert kind == "patch"
    assert patch["data"]["TWILIO_API_KEY_NEXT"] is None and patch["data"]["TWILIO_API_SECRET_NEXT"] is None
    assert patch["data"]["TWILIO_API_KEY"] == b64("SK2") and patch["data"]["TWILIO_API_KEY_PREVIOUS"] == b64(
        "SK1"
    )


async def test_a_secret_owned_by_someone_else_is_reported_without_its_data() -> None:
    secrets = store(FakeKube(owned({"TWILIO_API_KEY": "SK9", "TWILIO_API_SECRET": "x"}, uid="someone-else")))

    contents = await secrets.read()

    assert contents is not None and not contents.owned and contents.keys == {}


async def test_releasing_drops_only_our_owner_reference() -> None:
    secret = owned({})
    secret["metadata"]["ownerReferences"].append({"uid": "other"})
    kube = FakeKube(secret)

    assert await store(kube).release() is True
    assert kube.calls == [("patch", {"metadata": {"ownerReferences": [{"uid": "other"}]}})]


def test_undecodable_entries_are_skipped() -> None:
    assert decode_secret_data({"data": {"a": b64("x"), "b": "%%%"}, "stringData": {"c": "y"}}) == {
        "a": "x",
        "c": "y",
    }


def runtime() -> SigningKeyRotationController:
    return SigningKeyRotationController(kube=None, gateway=None, credentials=None)  # type: ignore[arg-type]


def body(annotations: dict[str, str], status: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata = {"namespace": "tenant", "name": "keys", "annotations": annotations}
    return {"metadata": metadata, "status": status or {}}


def test_a_rotate_request_not_acted_upon_asks_for_a_prompt_reconcile() -> None:
    check = runtime().needs_prompt_reconcile
    key = "video.openclaw.io/rotate-requested-at"
    assert check(body({key: "1"})) is True
    assert check(body({key: "1"}, {"lastRotateRequest": "1"})) is False
    assert check(body({key: "2"}, {"lastRotateRequest": "1"})) is True
    assert check(body({})) is False


def test_a_new_resync_value_asks_for_a_prompt_reconcile_once() -> None:
    rt = runtime()
    key = "video.openclaw.io/reconcile-requested-at"
    assert rt.needs_prompt_reconcile(body({key: "a"})) is False  # first sight: handled by create/resume
    assert rt.needs_prompt_reconcile(body({key: "b"})) is True
    assert rt.needs_prompt_reconcile(body({key: "b"})) is False


def test_the_first_resync_request_of_a_known_object_asks_for_a_prompt_reconcile() -> None:
    rt = runtime()
    key = "video.openclaw.io/reconcile-requested-at"
    assert rt.needs_prompt_reconcile(body({})) is False  # seen without a request
    assert rt.needs_prompt_reconcile(body({key: "first"})) is True
    assert rt.needs_prompt_reconcile(body({key: "first"})) is False
