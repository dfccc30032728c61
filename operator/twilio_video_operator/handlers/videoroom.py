"""kopf adapters for VideoRoom: they hand every trigger to the one reconcile path of the controller.

- ``resume``: reconcile now; a retryable failure comes back after the controller's backoff (Twilio's
  ``Retry-After`` honoured), answered through ``handlers._outcomes.settle``;
- ``event``: a spec change (``metadata.generation`` ahead of ``status.observedGeneration``, once kopf's
  finalizer is on the object) and the ``paused`` and ``reconcile-requested-at`` annotations ask the
  controller for a reconcile on its work queue. kopf keeps no handled-spec annotation for VideoRooms
  (:mod:`.change_detection`), so it has no create or update handler here;
- ``delete``: apply ``deletionPolicy`` (kopf holds the finalizer until it returns);
- an index of the ``credentialsRef`` Secrets the rooms name, and an ``event`` handler on Secrets labelled
  ``video.openclaw.io/credentials`` (filtered by the API server): a change of one asks for a reconcile of
  the rooms naming it, so a fixed Secret lifts a credentials stall at once. Only names are kept;
  Secret data never leaves the event;
- ``startup``/``cleanup``: build and stop the controller over the operator context's Twilio gateway and
  Kubernetes client (``memo.operator``), and attach room status callbacks (``POST /twilio/room-events``)
  to the controller.

The controller lives in :mod:`twilio_video_operator.controllers.videoroom` (its answers as one
Outcome in :mod:`twilio_video_operator.controllers.videoroom_triggers`), its Kubernetes port in
:mod:`twilio_video_operator.kube.room_objects`; this module holds kopf decorators and calls only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import kopf

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.controllers import videoroom_triggers as rooms
from twilio_video_operator.controllers.notifications import build_notifier
from twilio_video_operator.controllers.videoroom import Trigger, VideoRoomController, utc_now
from twilio_video_operator.controllers.videoroom_triggers import (
    VideoRoomRuntime,
    credentials_ref_of,
    needs_request,
    operator_defaults,
    room_sid_of,
    rooms_to_wake,
    spec_changed,
)
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.handlers._outcomes import settle
from twilio_video_operator.kube.room_objects import KubeRoomObjects
from twilio_video_operator.models.annotations import CREDENTIALS_LABEL
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi
from twilio_video_operator.webhooks.room_events import CHANNEL

logger = logging.getLogger(__name__)

PLURAL = "videorooms"
KIND = "VideoRoom"
#: The kopf index of credentialsRef Secrets: ``(namespace, secret) -> VideoRoom names``.
CREDENTIALS_INDEX = "videoroom_credentials_refs"
#: The kopf index of the rooms VideoRooms name in status: ``room SID -> (namespace, name)``. Filled from the
#: initial listing before any reconcile, so a restarted operator never lets one object adopt another's room.
ROOM_SIDS_INDEX = "videoroom_room_sids"


async def _reconcile(memo: Any, namespace: str | None, name: str, trigger: Trigger) -> None:
    runtime: VideoRoomRuntime = memo.videorooms
    runtime.take_callbacks()
    outcome = await rooms.reconcile(runtime.controller, str(namespace), name, trigger)
    settle(outcome, about=f"{KIND} {namespace}/{name}")


def register_handlers(
    registry: kopf.OperatorRegistry,
    *,
    clock: Callable[[], datetime] = utc_now,
    resync_interval: timedelta | None = None,
    rng: random.Random | None = None,
    on_start: Callable[[VideoRoomController], None] | None = None,
    api_hook: Callable[[RoomApi], RoomApi] | None = None,
) -> None:
    """Register the VideoRoom handlers on ``registry``. The keyword arguments exist for tests: an injected
    clock (e.g. the Twilio emulator's), a resync interval other than ``RESYNC_INTERVAL``, ``on_start``
    receiving the controller once it runs, and ``api_hook`` wrapping the Twilio operations (to stop a test
    operator at an exact point)."""
    resource = (API_GROUP, API_VERSION, PLURAL)

    @kopf.on.startup(registry=registry, id="videoroom-startup")
    async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        context: OperatorContext = memo.operator
        operator_settings = context.settings
        # Only credential Secrets are watched (filtered by the API server, for every Secret watch of this
        # process): the others never reach the operator.
        settings.watching.label_selectors["v1", "secrets"] = CREDENTIALS_LABEL
        kube, gateway, hub = context.kube, context.gateway, context.hub

        def api_for(creds: CredentialSet) -> RoomApi:
            api = cast(RoomApi, gateway.api(creds))
            return api_hook(api) if api_hook is not None else api

        room_sids: Mapping[Any, Any] = kwargs[ROOM_SIDS_INDEX]

        def indexed_owners(sid: str) -> list[tuple[str, str]]:
            return sorted({(str(ns), str(name)) for ns, name in room_sids.get(sid) or ()})

        controller = VideoRoomController(
            KubeRoomObjects(kube),
            api_for,
            credentials=context.credentials,  # the connector every kind uses
            defaults=operator_defaults(operator_settings),
            resync_interval=resync_interval or operator_settings.RESYNC_INTERVAL,
            clock=clock,
            rng=rng,
            progress=context.progress,
            name_prefixes=operator_settings.TENANT_NAME_PREFIXES,
            indexed_owners=indexed_owners,
            notifier=build_notifier(context.kube, context.gateway, context.settings, context.hub, clock),
        )
        controller.start()
        channel = hub.channel(CHANNEL)

        sink = rooms.callback_sink(controller, indexed_owners)
        finalizer = settings.persistence.finalizer
        memo.videorooms = VideoRoomRuntime(controller, kube, gateway, channel, sink, finalizer)
        if on_start is not None:
            on_start(controller)

    @kopf.on.cleanup(registry=registry, id="videoroom-cleanup")
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        runtime: VideoRoomRuntime | None = memo.get("videorooms")
        if runtime is None:
            return
        await runtime.channel.detach()
        await runtime.controller.stop()

    @kopf.on.resume(*resource, registry=registry, id="videoroom-resume")
    async def resumed(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        await _reconcile(memo, namespace, name, Trigger.RESUME)

    @kopf.on.event(*resource, registry=registry, id="videoroom-requests")
    async def requested(
        memo: Any, type: str | None, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        # async on purpose: kopf runs plain functions in threads, and the controller belongs to the loop.
        runtime: VideoRoomRuntime | None = memo.get("videorooms")
        if runtime is None or type == "DELETED":
            return
        runtime.take_callbacks()
        request, observe = needs_request(dict(body))
        if request:
            runtime.controller.request(str(namespace), name, observe=observe)
        elif type is not None and spec_changed(dict(body), runtime.finalizer):
            # A listed object (type None) is resumed by kopf. A spec change is a generation status has not
            # observed, acted on once kopf's finalizer guards the object (so that no room outlives it).
            runtime.controller.request(str(namespace), name)

    @kopf.index(*resource, registry=registry, id=CREDENTIALS_INDEX)
    async def credentials_refs(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
        secret = credentials_ref_of(body)
        return {(namespace, secret): name} if secret is not None else None

    @kopf.index(*resource, registry=registry, id=ROOM_SIDS_INDEX)
    async def room_sids(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
        sid = room_sid_of(body)
        return {sid: (namespace, name)} if sid is not None else None

    @kopf.on.event("v1", "secrets", registry=registry, id="videoroom-credentials")
    async def credentials_changed(
        memo: Any, type: str | None, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        runtime: VideoRoomRuntime | None = memo.get("videorooms")
        if runtime is None or type is None:  # type None: listed at startup, which resumes every room
            return
        for room in rooms_to_wake(kwargs[CREDENTIALS_INDEX], str(namespace), name):
            logger.info(
                "Secret %s/%s changed: reconciling VideoRoom %s",
                namespace,
                name,
                room,
                extra={"namespace": namespace, "object_name": room, "kind": KIND},
            )
            runtime.controller.request(str(namespace), room)

    @kopf.on.delete(*resource, registry=registry, id="videoroom-delete")
    async def deleted(memo: Any, namespace: str | None, name: str, body: kopf.Body, **_: Any) -> None:
        runtime: VideoRoomRuntime = memo.videorooms
        outcome = await rooms.finalize(runtime.controller, str(namespace), name, dict(body))
        settle(outcome, about=f"{KIND} {namespace}/{name}")
