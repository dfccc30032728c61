"""The notifier's Kubernetes port: the objects notified about, their ``status.notifications``, Events, and
the Secrets that hold a SendGrid key, over the operator's Kubernetes client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.kube.client import KubeClient
from twilio_video_operator.kube.credential_secrets import secret_reader
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.resources import COMPOSITIONS, VIDEOROOMS, Resource
from twilio_video_operator.reconcilers.credentials import SecretData

RESOURCES: dict[str, Resource] = {"VideoRoom": VIDEOROOMS, "Composition": COMPOSITIONS}


class KubeNotificationPorts:
    """The notifier's Kubernetes port."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        return await secret_reader(self.kube)(namespace, name)

    async def patch_notifications(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        await self.kube.patch_status(RESOURCES[kind], namespace, name, {"notifications": dict(patch)})

    async def post_event(
        self, body: Mapping[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        await post_event(self.kube, body, type, reason, message)

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        body = await self.kube.get(RESOURCES[kind], namespace, name)
        if body is not None:
            body.setdefault("apiVersion", f"{API_GROUP}/{API_VERSION}")
            body.setdefault("kind", kind)
        return body
