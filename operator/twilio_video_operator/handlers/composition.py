"""kopf adapters for Composition: kopf's triggers in, the controller's outcomes out.

Create, update and resume reconcile now; the controller's work queue brings back each object that needs
attention one tick later; status callbacks arrive on the ``composition-events`` channel of the operator's
webhook hub; deletion applies ``deletionPolicy``. The controller is
:class:`~twilio_video_operator.controllers.composition.CompositionController`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import kopf

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.controllers.composition import (
    KIND,
    TICK_SECONDS,
    CompositionController,
    utc_now,
)
from twilio_video_operator.controllers.notifications import build_notifier
from twilio_video_operator.delivery import S3Deliverer
from twilio_video_operator.handlers._outcomes import settle
from twilio_video_operator.kube.composition_objects import CompositionObjects
from twilio_video_operator.reconcilers.composition_plan import Timing
from twilio_video_operator.webhooks.composition_events import CHANNEL

PLURAL = "compositions"


def register_handlers(
    registry: kopf.OperatorRegistry,
    *,
    clock: Callable[[], datetime] = utc_now,
    tick_seconds: float = TICK_SECONDS,
    timing: Timing | None = None,
    deliverer_options: Mapping[str, Any] | None = None,
    on_start: Callable[[CompositionController], None] | None = None,
) -> None:
    """Register the Composition handlers on ``registry``; the arguments exist for tests (``on_start``
    receives the controller once the operator has started)."""
    resource = (API_GROUP, API_VERSION, PLURAL)

    @kopf.on.startup(registry=registry, id="composition-startup")
    async def startup(memo: Any, **_: Any) -> None:
        context: OperatorContext = memo.operator
        settings = context.settings
        controller = CompositionController(
            CompositionObjects(context.kube),
            context.gateway,  # one concurrency cap for every kind
            context.credentials,
            S3Deliverer(allowed_endpoints=settings.delivery_allowed_endpoints, **(deliverer_options or {})),
            public_base_url=settings.PUBLIC_BASE_URL,
            name_prefixes=settings.TENANT_NAME_PREFIXES,
            watch_namespaces=settings.watch_namespaces,
            clock=clock,
            timing=timing,
            progress=context.progress,
            tick_seconds=tick_seconds,
            notifier=build_notifier(context.kube, context.gateway, context.settings, context.hub, clock),
        )
        controller.start()
        memo.compositions = controller
        context.hub.channel(CHANNEL).attach(controller.on_callback)
        if on_start is not None:
            on_start(controller)

    @kopf.on.cleanup(registry=registry, id="composition-cleanup")
    async def cleanup(memo: Any, **_: Any) -> None:
        controller: CompositionController | None = memo.get("compositions")
        if controller is None:
            return
        await memo.operator.hub.channel(CHANNEL).detach()
        await controller.close()

    @kopf.on.resume(*resource, registry=registry, id="composition-resume")
    @kopf.on.create(*resource, registry=registry, id="composition-create")
    @kopf.on.update(*resource, registry=registry, id="composition-update")
    async def changed(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        settle(await memo.compositions.reconcile(str(namespace), name), about=f"{KIND} {namespace}/{name}")

    @kopf.on.delete(*resource, registry=registry, id="composition-delete")
    async def deleted(memo: Any, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        settle(await memo.compositions.finalize(dict(body)), about=f"{KIND} {namespace}/{name}")

    def vanished(type: str | None, **_: Any) -> bool:
        return type == "DELETED"

    # Normally finalize forgets the object; this covers one that disappears without the delete handler
    # (its finalizer removed by hand).
    @kopf.on.event(*resource, registry=registry, id="composition-gone", when=vanished)
    async def gone(memo: Any, body: kopf.Body, **_: Any) -> None:
        controller: CompositionController | None = memo.get("compositions")
        metadata = body.get("metadata") or {}
        if controller is not None:
            uid = str(metadata.get("uid") or "")
            controller.forget(str(metadata["namespace"]), str(metadata["name"]), uid)
