"""The VideoRoom controller's Kubernetes port: its objects, their status and Events, the recording's
Composition, over the operator's Kubernetes client (its credentials come from the connector)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.kube.client import KubeApiError, KubeClient
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.resources import COMPOSITIONS, VIDEOROOMS
from twilio_video_operator.reconcilers.videoroom_executor import ObjectGone

KIND = "VideoRoom"


class KubeRoomObjects:
    """The controller's Kubernetes port, over the operator's :class:`KubeClient`."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def get_room(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube.get(VIDEOROOMS, namespace, name)

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        try:
            await self.kube.patch_status(VIDEOROOMS, namespace, name, patch)
        except KubeApiError as exc:
            if exc.not_found:
                raise ObjectGone(f"VideoRoom {namespace}/{name}") from None
            raise

    async def post_event(
        self, body: Mapping[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        involved = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, **dict(body)}
        await post_event(self.kube, involved, type, reason, message)

    async def create_composition(self, owner: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> bool:
        metadata = owner.get("metadata") or {}
        namespace = str(metadata.get("namespace"))
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "Composition",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": f"{API_GROUP}/{API_VERSION}",
                        "kind": KIND,
                        "name": metadata.get("name"),
                        "uid": metadata.get("uid"),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": dict(spec),
        }
        try:
            await self.kube.create(COMPOSITIONS, namespace, body)
        except KubeApiError as exc:
            if exc.conflict:
                return False  # AlreadyExists: created by an earlier attempt
            raise
        return True
