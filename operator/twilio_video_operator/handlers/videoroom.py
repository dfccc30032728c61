"""kopf adapters for VideoRoom: they hand every trigger to the one reconcile path of the controller.

- ``resume``/``create``/``update``: reconcile now; a retryable failure raises ``kopf.TemporaryError`` with a
  backoff delay (Twilio's ``Retry-After`` honoured), so kopf retries;
- ``event``: the ``paused`` and ``reconcile-requested-at`` annotations (kopf leaves annotations of its own
  prefix out of its change detection, so these are watched here) ask the controller for a reconcile;
- ``delete``: apply ``deletionPolicy`` (kopf holds the finalizer until it returns);
- an index of the ``credentialsRef`` Secrets the rooms name, and an ``event`` handler on Secrets labelled
  ``video.openclaw.io/credentials`` (filtered by the API server): a change of one asks for a reconcile of
  the rooms naming it, so a fixed Secret lifts a credentials stall at once. Only names are kept;
  Secret data never leaves the event;
- ``startup``/``cleanup``: build and stop the controller over the operator context's Twilio gateway and
  Kubernetes client (``memo.operator``), and attach room status callbacks (``POST /twilio/room-events``)
  to the controller.

The controller lives in :mod:`twilio_video_operator.reconcilers.videoroom_controller`; this module only
implements its Kubernetes port (:class:`KubeRoomObjects`) with the operator's Kubernetes client.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import kopf

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.gateway.core import TwilioGateway
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.kube import COMPOSITIONS, SECRETS, VIDEOROOMS, KubeApiError, KubeClient
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.logs import register_secret
from twilio_video_operator.models.annotations import CREDENTIALS_LABEL, PAUSED, RECONCILE_REQUESTED_AT
from twilio_video_operator.models.videoroom import VideoRoomStatus
from twilio_video_operator.reconcilers.credentials import SecretData, Source
from twilio_video_operator.reconcilers.videoroom_conditions import is_paused
from twilio_video_operator.reconcilers.videoroom_controller import Trigger, VideoRoomController, utc_now
from twilio_video_operator.reconcilers.videoroom_desired import Defaults
from twilio_video_operator.reconcilers.videoroom_executor import ObjectGone, RoomApi
from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.channel import CallbackChannel, CallbackEvent
from twilio_video_operator.webhooks.hub import WebhookHub
from twilio_video_operator.webhooks.room_events import CHANNEL, PATH

logger = logging.getLogger(__name__)

PLURAL = "videorooms"
KIND = "VideoRoom"
#: The kopf index of credentialsRef Secrets: ``(namespace, secret) -> VideoRoom names``.
CREDENTIALS_INDEX = "videoroom_credentials_refs"
#: The kopf index of the rooms VideoRooms name in status: ``room SID -> (namespace, name)``. Filled from the
#: initial listing before any reconcile, so a restarted operator never lets one object adopt another's room.
ROOM_SIDS_INDEX = "videoroom_room_sids"


# ------------------------------------------------------------------------------------ Kubernetes port


class KubeRoomObjects:
    """The controller's Kubernetes port, over the operator's :class:`KubeClient`."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def get_room(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube.get(VIDEOROOMS, namespace, name)

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        secret = await self.kube.get(SECRETS, namespace, name)
        if secret is None:
            return None
        version = str((secret.get("metadata") or {}).get("resourceVersion", ""))
        return SecretData(resource_version=version, data=decode_secret_data(secret))

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


# ------------------------------------------------------------------------------------------ runtime


@dataclass
class VideoRoomRuntime:
    """What the VideoRoom handlers share within one operator process (``memo.videorooms``)."""

    controller: VideoRoomController
    kube: KubeClient
    gateway: TwilioGateway
    channel: CallbackChannel
    sink: Callable[[CallbackEvent], Awaitable[None]]

    def take_callbacks(self) -> None:
        """Start processing room callbacks, once kopf calls a VideoRoom handler: by then its index of room
        SIDs holds every listed room (kopf fills indexes before it calls resource handlers), so callbacks
        queued while this replica did not lead are matched to their rooms."""
        if not self.channel.attached:
            self.channel.attach(self.sink)


def operator_credentials(settings: Settings) -> CredentialSet:
    return CredentialSet(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        api_key=settings.TWILIO_API_KEY,
        api_secret=settings.TWILIO_API_SECRET,
        auth_token=settings.TWILIO_AUTH_TOKEN,
    )


def operator_defaults(settings: Settings) -> Defaults:
    return Defaults(
        room_type=settings.VIDEO_ROOM_TYPE,
        max_participants=settings.VIDEO_MAX_PARTICIPANTS,
        status_callback=settings.PUBLIC_BASE_URL.rstrip("/") + PATH,
    )


def _redact_credentials(creds: CredentialSet) -> None:
    """A tenant's credentials were read: keep their secrets out of logs."""
    for secret in creds.secret_values:
        register_secret(secret)


def _accept_token(hub: WebhookHub, source: Source, creds: CredentialSet) -> None:
    """Twilio accepted a tenant Secret's Auth Token for its account: verify that account's callbacks."""
    hub.accounts.accept(source, creds.account_sid, creds.auth_token)


def room_sid_of(body: Mapping[str, Any]) -> str | None:
    """The room SID a VideoRoom's status names, if any."""
    sid = (body.get("status") or {}).get("sid")
    return sid if isinstance(sid, str) and sid else None


async def _reconcile(memo: Any, namespace: str | None, name: str, trigger: Trigger) -> None:
    runtime: VideoRoomRuntime = memo.videorooms
    runtime.take_callbacks()
    controller = runtime.controller
    outcome = await controller.reconcile(str(namespace), name, trigger)
    if outcome is not None and outcome.retry:
        delay = controller.retry_delay(str(namespace), name, outcome)
        why = f"{outcome.error_reason}: {outcome.error}" if outcome.error else "not settled yet"
        raise kopf.TemporaryError(f"VideoRoom {namespace}/{name} will be retried ({why})", delay=delay)


def needs_request(body: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether the annotations ask for a reconcile the status does not reflect yet: ``(request, observe)``."""
    metadata = body.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return False, False
    annotations = metadata.get("annotations") or {}
    status = body.get("status") or {}
    paused = annotations.get(PAUSED) == "true"
    try:
        parsed = VideoRoomStatus.model_validate(status)
    except ValueError:
        parsed = VideoRoomStatus()
    if paused != is_paused(parsed):
        return True, not paused
    token = annotations.get(RECONCILE_REQUESTED_AT)
    if not paused and token and token != parsed.last_handled_reconcile_at:
        return True, True
    return False, False


def credentials_ref_of(body: Mapping[str, Any]) -> str | None:
    """The Secret a VideoRoom's ``spec.credentialsRef`` names, if any (whatever else the spec holds)."""
    ref = (body.get("spec") or {}).get("credentialsRef")
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) and name else None


def rooms_to_wake(refs: Mapping[Any, Any], namespace: str, secret: str) -> list[str]:
    """Names of the VideoRooms of ``namespace`` whose credentialsRef is ``secret`` (from the kopf index)."""
    return sorted({str(name) for name in refs.get((namespace, secret)) or ()})


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
            operator_credentials=operator_credentials(operator_settings),
            defaults=operator_defaults(operator_settings),
            resync_interval=resync_interval or operator_settings.RESYNC_INTERVAL,
            clock=clock,
            rng=rng,
            on_credentials=_redact_credentials,
            on_token_accepted=lambda source, creds: _accept_token(hub, source, creds),
            progress=context.progress,
            name_prefixes=operator_settings.TENANT_NAME_PREFIXES,
            indexed_owners=indexed_owners,
        )
        controller.start()
        channel = hub.channel(CHANNEL)

        async def process(event: CallbackEvent) -> None:
            sid = event.params.get("RoomSid", "")
            if sid and not controller.knows_room(sid):
                # A room this replica has not reconciled since it took the lead (its callbacks queued while
                # another led): verify it first, so that the callback is matched, not dropped.
                for namespace, name in indexed_owners(sid):
                    await controller.reconcile(namespace, name, Trigger.RESUME)
            await controller.handle_callback(event.account_sid, event.params)

        memo.videorooms = VideoRoomRuntime(controller, kube, gateway, channel, process)
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

    @kopf.on.create(*resource, registry=registry, id="videoroom-create")
    @kopf.on.update(*resource, registry=registry, id="videoroom-update")
    async def changed(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        await _reconcile(memo, namespace, name, Trigger.CHANGE)

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
        released = await runtime.controller.finalize(str(namespace), name, dict(body))
        if released.retry_after is not None:
            raise kopf.TemporaryError(f"completing the room: {released.message}", delay=released.retry_after)
        logger.info(
            "VideoRoom %s/%s released: %s",
            namespace,
            name,
            released.message,
            extra={"namespace": namespace, "object_name": name, "kind": KIND},
        )
