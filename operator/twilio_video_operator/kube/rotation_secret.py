"""The Secret of a SigningKeyRotation: the reconciler's ``SecretStore`` over the Kubernetes API.

One Secret per object, owned by it (ownerReference) and labelled as managed by the operator. It holds the
Account SID and up to three keys (active, next, previous); secret values are redacted from logs as soon as
they are read.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.kube.client import KubeClient
from twilio_video_operator.kube.errors import KUBE_ERRORS, kube_problem
from twilio_video_operator.kube.resources import SECRETS
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.logs import register_secret
from twilio_video_operator.models.signingkeyrotation import SecretKeys
from twilio_video_operator.reconcilers.signingkeyrotation import KeyMaterial, SecretContents, SecretStoreError
from twilio_video_operator.reconcilers.signingkeyrotation_plan import Slot

KIND = "SigningKeyRotation"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "twilio-video-operator"
ROTATION_LABEL = f"{API_GROUP}/signing-key-rotation"

_SLOT_KEYS: dict[Slot, tuple[str, str]] = {
    "active": (SecretKeys.API_KEY, SecretKeys.API_SECRET),
    "next": (SecretKeys.API_KEY_NEXT, SecretKeys.API_SECRET_NEXT),
    "previous": (SecretKeys.API_KEY_PREVIOUS, SecretKeys.API_SECRET_PREVIOUS),
}


def _encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


class KubeSecretStore:
    """The reconciler's :class:`~twilio_video_operator.reconcilers.signingkeyrotation.SecretStore`: one
    Secret, owned by the SigningKeyRotation (ownerReference) and labelled as managed by the operator."""

    def __init__(self, kube: KubeClient, owner: Mapping[str, Any], secret_name: str) -> None:
        metadata = owner.get("metadata") or {}
        self.kube = kube
        self.namespace = str(metadata.get("namespace"))
        self.secret_name = secret_name
        self.owner_uid = metadata.get("uid")
        self.owner_reference = {
            "apiVersion": owner.get("apiVersion", f"{API_GROUP}/{API_VERSION}"),
            "kind": owner.get("kind", KIND),
            "name": metadata.get("name"),
            "uid": self.owner_uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        self.labels = {MANAGED_BY_LABEL: MANAGED_BY, ROTATION_LABEL: str(metadata.get("name"))}
        self._exists = False

    def owns(self, secret: Mapping[str, Any]) -> bool:
        references = (secret.get("metadata") or {}).get("ownerReferences") or []
        return self.owner_uid is not None and any(ref.get("uid") == self.owner_uid for ref in references)

    async def read(self) -> SecretContents | None:
        try:
            secret = await self.kube.get(SECRETS, self.namespace, self.secret_name)
        except KUBE_ERRORS as exc:
            raise SecretStoreError(f"cannot read Secret {self.secret_name}: {kube_problem(exc)}") from None
        self._exists = secret is not None
        if secret is None:
            return None
        if not self.owns(secret):
            return SecretContents(owned=False)
        data = decode_secret_data(secret)
        keys: dict[Slot, KeyMaterial] = {}
        for slot, (sid_key, secret_key) in _SLOT_KEYS.items():
            sid, value = data.get(sid_key), data.get(secret_key)
            if sid and value:
                register_secret(value)
                keys[slot] = KeyMaterial(sid, SecretStr(value))
        return SecretContents(owned=True, account_sid=data.get(SecretKeys.ACCOUNT_SID), keys=keys)

    async def write(self, account_sid: str, keys: Mapping[Slot, KeyMaterial]) -> None:
        data: dict[str, str | None] = {SecretKeys.ACCOUNT_SID: _encode(account_sid)}
        for slot, (sid_key, secret_key) in _SLOT_KEYS.items():
            key = keys.get(slot)
            data[sid_key] = _encode(key.sid) if key else None
            data[secret_key] = _encode(key.secret.get_secret_value()) if key else None
        try:
            if self._exists:
                patch = {"metadata": {"labels": self.labels}, "data": data}
                await self.kube.patch(SECRETS, self.namespace, self.secret_name, patch)
                return
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": self.secret_name,
                    "namespace": self.namespace,
                    "labels": self.labels,
                    "ownerReferences": [self.owner_reference],
                },
                "data": {key: value for key, value in data.items() if value is not None},
            }
            await self.kube.create(SECRETS, self.namespace, body)
            self._exists = True
        except KUBE_ERRORS as exc:
            raise SecretStoreError(f"cannot write Secret {self.secret_name}: {kube_problem(exc)}") from None

    async def delete(self) -> bool:
        """Delete the Secret if this object owns it (its keys are revoked; garbage collection would too)."""
        secret = await self.kube.get(SECRETS, self.namespace, self.secret_name)
        if secret is None or not self.owns(secret):
            return False
        return await self.kube.delete(SECRETS, self.namespace, self.secret_name)

    async def release(self) -> bool:
        """Drop this object's ownerReference from the Secret so that it outlives the object."""
        secret = await self.kube.get(SECRETS, self.namespace, self.secret_name)
        if secret is None or not self.owns(secret):
            return False
        references = [
            ref
            for ref in (secret.get("metadata") or {}).get("ownerReferences") or []
            if ref.get("uid") != self.owner_uid
        ]
        await self.kube.patch(
            SECRETS, self.namespace, self.secret_name, {"metadata": {"ownerReferences": references}}
        )
        return True
