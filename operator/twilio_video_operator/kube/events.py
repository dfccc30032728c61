"""Kubernetes Events about our objects, posted from any task (handlers, webhook processing, timers)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from twilio_video_operator.kube.client import KubeApiError, KubeClient
from twilio_video_operator.kube.resources import EVENTS

COMPONENT = "twilio-video-operator"
MAX_MESSAGE = 1024
logger = logging.getLogger(__name__)


def build_event(
    involved: Mapping[str, Any],
    event_type: Literal["Normal", "Warning"],
    reason: str,
    message: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (a full object body with apiVersion, kind and metadata)."""
    metadata = involved.get("metadata", {})
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    name = str(metadata.get("name", "object"))
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{name[:200]}.{secrets.token_hex(8)}",
            "namespace": metadata.get("namespace", "default"),
        },
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": name,
            "namespace": metadata.get("namespace"),
            "uid": metadata.get("uid"),
            "resourceVersion": metadata.get("resourceVersion"),
        },
        "type": event_type,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def post_event(
    client: KubeClient,
    involved: Mapping[str, Any],
    event_type: Literal["Normal", "Warning"],
    reason: str,
    message: str,
) -> None:
    """Post an Event; failures are logged, never raised (an Event is never worth failing a reconcile)."""
    event = build_event(involved, event_type, reason, message)
    try:
        await client.create(EVENTS, event["metadata"]["namespace"], event)
    except (KubeApiError, OSError) as exc:
        logger.warning("could not post event %s: %s", reason, exc)
