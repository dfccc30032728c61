"""kopf adapters: thin handlers that turn Kubernetes events into reconciler calls.

Nothing registers at import time. :func:`build_registry` makes a fresh ``kopf.OperatorRegistry`` and asks
each kind's module to register its handlers on it (``register_handlers(registry, ...)``); the handlers find
the operator's context (:class:`~twilio_video_operator.context.OperatorContext`) in kopf's ``memo`` as
``memo.operator``.
"""

from __future__ import annotations

from typing import Any

import kopf

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.handlers import (
    composition,
    notifications,
    object_conditions,
    signingkeyrotation,
    videoroom,
)
from twilio_video_operator.kube.connection import resolve_connection

#: The kinds the operator reconciles: ``(group, version, plural, kind)``.
KINDS = (
    (API_GROUP, API_VERSION, "videorooms", "VideoRoom"),
    (API_GROUP, API_VERSION, "compositions", "Composition"),
    (API_GROUP, API_VERSION, "signingkeyrotations", "SigningKeyRotation"),
)


def _login(*, memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's login handler: the operator's kubeconfig, or in-cluster (re-read, so rotated service account
    tokens are picked up). kopf keeps waiting for credentials after a failed login, so a failure stops
    the operator instead."""
    try:
        return resolve_connection(memo.operator.kubeconfig, settings)
    except kopf.LoginError as exc:
        memo.operator.fail(f"cannot log in to Kubernetes: {exc}")
        raise


def base_registry() -> kopf.OperatorRegistry:
    """A registry holding only the operator's login handler.

    A plain registry: kopf's "smart" default would add login handlers for the ``kubernetes``/``pykube``
    client libraries when they happen to be installed; the operator logs in on its own.
    """
    registry = kopf.OperatorRegistry()
    kopf.on.login(id="twilio-video-operator-login", registry=registry, errors=kopf.ErrorsMode.PERMANENT)(
        _login
    )
    return registry


def build_registry() -> kopf.OperatorRegistry:
    """Every handler of the operator, on a fresh registry."""
    registry = base_registry()
    videoroom.register_handlers(registry)
    composition.register_handlers(registry)
    signingkeyrotation.register_handlers(registry)
    object_conditions.register_handlers(registry)
    notifications.register_handlers(registry)
    return registry
