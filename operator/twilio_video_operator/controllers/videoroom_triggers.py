"""What the VideoRoom handlers call: the controller's answers as the one :class:`~.outcome.Outcome` of every
kind, the operator's defaults, and what the watch events ask of the controller.

The controller itself (:class:`~twilio_video_operator.controllers.videoroom.VideoRoomController`)
reports a reconcile in the executor's terms (retry, Retry-After, the error's reason) and a deletion as
:class:`~twilio_video_operator.reconcilers.videoroom_deletion.Released`; :func:`reconcile` and
:func:`finalize` give the handlers what the other kinds give them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twilio_video_operator.controllers.outcome import Outcome
from twilio_video_operator.controllers.videoroom import KIND, Trigger, VideoRoomController
from twilio_video_operator.gateway.core import TwilioGateway
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.models.annotations import PAUSED, RECONCILE_REQUESTED_AT
from twilio_video_operator.models.videoroom import VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom_conditions import is_paused
from twilio_video_operator.reconcilers.videoroom_desired import Defaults
from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.channel import CallbackChannel, CallbackEvent
from twilio_video_operator.webhooks.room_events import PATH

logger = logging.getLogger(__name__)


async def reconcile(controller: VideoRoomController, namespace: str, name: str, trigger: Trigger) -> Outcome:
    """Reconcile now; a failure that retrying may fix comes back after the controller's backoff (exponential
    with jitter, Twilio's ``Retry-After`` honoured). A resume is skipped for an object this process has
    reconciled already, successfully (a spec change reached it first; a live room it had not verified
    was fetched); kopf's retry of a failed resume runs."""
    first = trigger == Trigger.RESUME
    outcome = await controller.reconcile(namespace, name, trigger, first=first)
    if outcome is None or not outcome.retry:
        return Outcome.done()
    why = f"{outcome.error_reason}: {outcome.error}" if outcome.error else "not settled yet"
    return Outcome.retry(f"will be retried ({why})", controller.retry_delay(namespace, name, outcome))


def callback_sink(
    controller: VideoRoomController, indexed_owners: Callable[[str], Iterable[tuple[str, str]]]
) -> Callable[[CallbackEvent], Awaitable[None]]:
    """What the room-events channel hands each verified callback to.

    A room this replica has not reconciled since it took the lead (its callbacks queued while another led)
    is verified first, for every object the kopf index says names it, so that the callback is matched, not
    dropped.
    """

    async def process(event: CallbackEvent) -> None:
        sid = event.params.get("RoomSid", "")
        if sid and not controller.knows_room(sid):
            for namespace, name in indexed_owners(sid):
                await controller.reconcile(namespace, name, Trigger.RESUME)
        await controller.handle_callback(event.account_sid, event.params)

    return process


async def finalize(
    controller: VideoRoomController, namespace: str, name: str, body: Mapping[str, Any]
) -> Outcome:
    """Apply ``deletionPolicy``; the finalizer stays while the room could not be completed yet."""
    released = await controller.finalize(namespace, name, body)
    if released.retry_after is not None:
        return Outcome.retry(f"completing the room: {released.message}", released.retry_after)
    logger.info(
        "VideoRoom %s/%s released: %s",
        namespace,
        name,
        released.message,
        extra={"namespace": namespace, "object_name": name, "kind": KIND},
    )
    return Outcome.done(released.message)


@dataclass
class VideoRoomRuntime:
    """What the VideoRoom handlers share within one operator process (``memo.videorooms``)."""

    controller: VideoRoomController
    kube: KubeClient
    gateway: TwilioGateway
    channel: CallbackChannel
    sink: Callable[[CallbackEvent], Awaitable[None]]
    finalizer: str
    """kopf's finalizer: an object is reconciled on a spec change only once it carries it."""

    def take_callbacks(self) -> None:
        """Start processing room callbacks, once kopf calls a VideoRoom handler: by then its index of room
        SIDs holds every listed room (kopf fills indexes before it calls resource handlers), so callbacks
        queued while this replica did not lead are matched to their rooms."""
        if not self.channel.attached:
            self.channel.attach(self.sink)


def operator_defaults(settings: Settings) -> Defaults:
    return Defaults(
        room_type=settings.VIDEO_ROOM_TYPE,
        max_participants=settings.VIDEO_MAX_PARTICIPANTS,
        status_callback=settings.PUBLIC_BASE_URL.rstrip("/") + PATH,
    )


def room_sid_of(body: Mapping[str, Any]) -> str | None:
    """The room SID a VideoRoom's status names, if any."""
    sid = (body.get("status") or {}).get("sid")
    return sid if isinstance(sid, str) and sid else None


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


def spec_changed(body: Mapping[str, Any], finalizer: str) -> bool:
    """Whether the spec changed since status was last written (``metadata.generation`` ahead of
    ``status.observedGeneration``), for an object guarded by ``finalizer``, not being deleted nor paused.

    The controller writes ``observedGeneration`` with every status it writes, so this is how a new object
    and every later spec change reach it without kopf's own change detection."""
    metadata = body.get("metadata") or {}
    if metadata.get("deletionTimestamp") or finalizer not in (metadata.get("finalizers") or ()):
        return False
    if (metadata.get("annotations") or {}).get(PAUSED) == "true":
        return False  # resuming is a request of its own (see needs_request)
    observed = (body.get("status") or {}).get("observedGeneration")
    return metadata.get("generation") != observed


def credentials_ref_of(body: Mapping[str, Any]) -> str | None:
    """The Secret a VideoRoom's ``spec.credentialsRef`` names, if any (whatever else the spec holds)."""
    ref = (body.get("spec") or {}).get("credentialsRef")
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return name if isinstance(name, str) and name else None


def rooms_to_wake(refs: Mapping[Any, Any], namespace: str, secret: str) -> list[str]:
    """Names of the VideoRooms of ``namespace`` whose credentialsRef is ``secret`` (from the kopf index)."""
    return sorted({str(name) for name in refs.get((namespace, secret)) or ()})
