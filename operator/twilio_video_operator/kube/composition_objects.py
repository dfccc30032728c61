"""The Composition controller's Kubernetes side: its objects, the VideoRooms they compose, S3 Secrets, and
the executor's ports (status, the created-spec annotation, Events)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from twilio_video_operator import API_GROUP
from twilio_video_operator.delivery import DeliveryError, DeliveryReason, S3Credentials
from twilio_video_operator.kube.client import KubeClient
from twilio_video_operator.kube.errors import KUBE_ERRORS, kube_problem
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.resources import COMPOSITIONS, SECRETS, VIDEOROOMS
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.logs import register_secret
from twilio_video_operator.models.composition import CompositionStatus
from twilio_video_operator.reconcilers.composition import EventType, MediaDeliverer, Ports

#: The spec the Twilio composition was created from (JSON), recorded before the create call.
CREATED_SPEC_ANNOTATION = f"{API_GROUP}/created-spec"


class CompositionObjects:
    """Reads and writes of the Composition controller, over the operator's :class:`KubeClient`."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube.get(COMPOSITIONS, namespace, name)

    async def all(self, namespace: str | None) -> list[dict[str, Any]]:
        return await self.kube.list(COMPOSITIONS, namespace)

    async def room(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube.get(VIDEOROOMS, namespace, name)

    async def rooms(self, namespace: str) -> list[dict[str, Any]]:
        return await self.kube.list(VIDEOROOMS, namespace)

    async def post_event(self, body: Mapping[str, Any], kind: EventType, reason: str, message: str) -> None:
        await post_event(self.kube, body, kind, reason, message)

    async def s3_credentials(self, namespace: str, secret_name: str) -> S3Credentials:
        """The S3 credentials of a delivery Secret, their secret values redacted from logs."""
        try:
            secret = await self.kube.get(SECRETS, namespace, secret_name)
        except KUBE_ERRORS as exc:
            raise DeliveryError(
                DeliveryReason.CREDENTIALS_NOT_FOUND,
                f"cannot read Secret {secret_name}: {kube_problem(exc)}",
                retryable=True,
            ) from None
        if secret is None:
            raise DeliveryError(
                DeliveryReason.CREDENTIALS_NOT_FOUND, f"Secret {secret_name} does not exist", retryable=False
            )
        creds = S3Credentials.from_secret_data(decode_secret_data(secret), source=f"Secret {secret_name}")
        for value in creds.secret_values:
            register_secret(value)
        return creds

    def ports(
        self,
        obj: Mapping[str, Any],
        deliverer: MediaDeliverer,
        on_written: Callable[[CompositionStatus], None],
    ) -> Ports:
        """The executor's ports for one object; ``on_written`` sees every status stored."""
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])

        async def write_status(status: CompositionStatus) -> None:
            body = status.model_dump(mode="json", by_alias=True)  # None values remove fields (merge patch)
            await self.kube.patch_status(COMPOSITIONS, namespace, name, body)
            on_written(status)

        async def record_spec(spec: Mapping[str, Any] | None) -> None:
            value = json.dumps(spec, sort_keys=True, separators=(",", ":")) if spec is not None else None
            patch = {"metadata": {"annotations": {CREATED_SPEC_ANNOTATION: value}}}
            await self.kube.patch(COMPOSITIONS, namespace, name, patch)

        async def event(kind: EventType, reason: str, message: str) -> None:
            await self.post_event(obj, kind, reason, message)

        async def s3_credentials(secret_name: str) -> S3Credentials:
            return await self.s3_credentials(namespace, secret_name)

        return Ports(
            write_status=write_status,
            record_spec=record_spec,
            post_event=event,
            s3_credentials=s3_credentials,
            deliverer=deliverer,
        )


def created_spec(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec recorded in :data:`CREATED_SPEC_ANNOTATION`, if it parses."""
    text = (metadata.get("annotations") or {}).get(CREATED_SPEC_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
