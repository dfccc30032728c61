"""kopf adapters for SigningKeyRotation: kopf's triggers in, the controller's outcomes out.

Create, update, resume and a new ``rotate-requested-at`` or ``reconcile-requested-at`` annotation reconcile
now; the controller's work queue brings each object back one tick later; deletion revokes or keeps the
keys. The controller is :mod:`twilio_video_operator.controllers.signingkeyrotation`.

The token service (``POST /v1/token``, :mod:`twilio_video_operator.tokens.service`) runs on every replica,
apart from these handlers, with the operator context's Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import kopf

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.controllers.signingkeyrotation import (
    KIND,
    TICK_SECONDS,
    SigningKeyRotationController,
    utc_now,
)
from twilio_video_operator.handlers._outcomes import settle
from twilio_video_operator.reconcilers.signingkeyrotation_plan import BackoffPolicy

PLURAL = "signingkeyrotations"


def register_handlers(
    registry: kopf.OperatorRegistry,
    *,
    clock: Callable[[], datetime] = utc_now,
    tick_seconds: float = TICK_SECONDS,
    backoff: BackoffPolicy | None = None,
) -> None:
    """Register the SigningKeyRotation handlers on ``registry``; the arguments exist for tests."""
    resource = (API_GROUP, API_VERSION, PLURAL)

    @kopf.on.startup(registry=registry, id="signingkeyrotation-startup")
    async def startup(memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext = memo.operator
        controller = SigningKeyRotationController(
            context.kube,
            context.gateway,
            context.credentials,
            clock=clock,
            backoff=backoff,
            progress=context.progress,
            tick_seconds=tick_seconds,
        )
        controller.start()
        memo.signing_keys = controller

    @kopf.on.cleanup(registry=registry, id="signingkeyrotation-cleanup")
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        controller: SigningKeyRotationController | None = memo.pop("signing_keys", None)
        if controller is not None:
            await controller.stop()

    @kopf.on.resume(*resource, registry=registry, id="signingkeyrotation-resume")
    @kopf.on.create(*resource, registry=registry, id="signingkeyrotation-create")
    @kopf.on.update(*resource, registry=registry, id="signingkeyrotation-update")
    async def changed(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        settle(await memo.signing_keys.reconcile(str(namespace), name), about=f"{KIND} {namespace}/{name}")

    def has_request(memo: Any, body: kopf.Body, type: str | None, **_: Any) -> bool:
        controller: SigningKeyRotationController | None = memo.get("signing_keys")
        return (
            controller is not None
            and type not in (None, "DELETED")
            and controller.needs_prompt_reconcile(body)
        )

    # kopf leaves annotations under the operator's own prefix out of its change detection, so a new
    # rotate-requested-at or reconcile-requested-at value is noticed on the watch stream instead.
    @kopf.on.event(*resource, registry=registry, id="signingkeyrotation-requests", when=has_request)
    async def requested(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        settle(await memo.signing_keys.reconcile(str(namespace), name), about=f"{KIND} {namespace}/{name}")

    @kopf.on.delete(*resource, registry=registry, id="signingkeyrotation-delete")
    async def deleted(memo: Any, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        settle(await memo.signing_keys.finalize(dict(body)), about=f"{KIND} {namespace}/{name}")

    def vanished(type: str | None, **_: Any) -> bool:
        return type == "DELETED"

    # Normally finalize forgets the object; this covers one that disappears without the delete handler
    # (its finalizer removed by hand).
    @kopf.on.event(*resource, registry=registry, id="signingkeyrotation-gone", when=vanished)
    async def gone(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        controller: SigningKeyRotationController | None = memo.get("signing_keys")
        if controller is not None:
            controller.forget(str(namespace), name)
