"""What all kinds share within one operator process: one Kubernetes client and one Twilio gateway.

One gateway per process is what makes ``TWILIO_MAX_CONCURRENCY`` a process-wide cap and keeps one client per
credential set. Each kind's startup handler acquires the shared objects from kopf's global memo and its
cleanup handler releases them; the last release closes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from twilio_video_operator.gateway import GatewayConfig, TwilioGateway
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.kube.connection import resolve_connection
from twilio_video_operator.settings import Settings

_GATEWAY = "shared_twilio_gateway"
_KUBE = "shared_kube_client"
_USERS = "shared_users"


def _acquire(memo: kopf.Memo) -> None:
    memo[_USERS] = int(memo.get(_USERS, 0)) + 1


def shared_kube(memo: kopf.Memo, settings: kopf.OperatorSettings) -> KubeClient:
    """The process's Kubernetes client, logged in like kopf (the operator's kubeconfig, or in-cluster)."""
    client = memo.get(_KUBE)
    if client is None:
        client = KubeClient(resolve_connection(memo.get("kubeconfig"), settings))
        memo[_KUBE] = client
    _acquire(memo)
    return client


def shared_gateway(memo: kopf.Memo, overrides: Mapping[str, Any] | None = None) -> TwilioGateway:
    """The process's Twilio gateway. ``overrides`` (tests only) apply when it is first built."""
    gateway = memo.get(_GATEWAY)
    if gateway is None:
        operator_settings: Settings = memo.settings
        gateway = TwilioGateway(GatewayConfig.from_settings(operator_settings, **dict(overrides or {})))
        memo[_GATEWAY] = gateway
    _acquire(memo)
    return gateway


async def release_shared(memo: kopf.Memo, count: int) -> None:
    """Give back ``count`` acquisitions; the last one closes the client and the gateway."""
    remaining = int(memo.get(_USERS, 0)) - count
    memo[_USERS] = max(remaining, 0)
    if remaining > 0:
        return
    gateway: TwilioGateway | None = memo.pop(_GATEWAY, None)
    kube: KubeClient | None = memo.pop(_KUBE, None)
    if gateway is not None:
        await gateway.close()
    if kube is not None:
        await kube.close()
