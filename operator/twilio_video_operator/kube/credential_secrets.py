"""The credentials connector's Kubernetes side: read a ``credentialsRef`` Secret with its resourceVersion."""

from __future__ import annotations

from twilio_video_operator.kube.client import KubeClient
from twilio_video_operator.kube.resources import SECRETS
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.reconcilers.credentials import SecretData, SecretReader


def secret_reader(kube: KubeClient) -> SecretReader:
    """``read(namespace, name)``: the Secret's decoded data and resourceVersion, ``None`` when absent."""

    async def read(namespace: str, name: str) -> SecretData | None:
        secret = await kube.get(SECRETS, namespace, name)
        if secret is None:
            return None
        version = str((secret.get("metadata") or {}).get("resourceVersion", ""))
        return SecretData(resource_version=version, data=decode_secret_data(secret))

    return read
