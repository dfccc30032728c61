"""Composition: carry out the planned steps against Twilio, the status and the delivery target.

Exactly one Twilio composition per object, even when the process dies at any point:

1. before CreateComposition, the spec being created is recorded (an annotation, through
   :attr:`Ports.record_spec`) and ``status.createPendingAt`` plus ``status.roomSid`` are written;
2. the answer's SID is written and the marker cleared in one status write;
3. a marker found without a SID means step 2 never happened: the room's compositions are listed and the
   one matching this object (same room and parameters, created after the marker, status callback naming
   this object's UID) is claimed; only when none matches is the composition created again.

Progress comes from status callbacks (:func:`observe_callback`, called by the webhook side under the same
per-object lock); when they stay quiet the composition is fetched, with a growing interval. The watchdog
marks the object ``Stalled`` (``ProcessingTimeout``) when Twilio takes longer than ``stalledAfter``.
Delivery to S3 runs once the media is ready, with backoff between failed attempts.

This module knows nothing of Kubernetes: status, annotations, Secrets and Events are reached through
:class:`Ports`, which the kopf handlers implement.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from twilio_video_operator import metrics
from twilio_video_operator.delivery import (
    DeliveryError,
    DeliveryReason,
    DeliveryResult,
    S3Credentials,
    S3Target,
)
from twilio_video_operator.gateway.errors import (
    AuthError,
    GatewayError,
    NotFoundError,
    TerminalError,
    ThrottledError,
    TransientError,
)
from twilio_video_operator.gateway.records import CompositionInfo, RoomInfo
from twilio_video_operator.models.composition import CompositionStatus, DeliveryStatus
from twilio_video_operator.models.conditions import Reason
from twilio_video_operator.reconcilers import composition_conditions as cond
from twilio_video_operator.reconcilers.composition_events import (
    CompositionEvent,
    Observation,
    apply_event,
    apply_fetch,
)
from twilio_video_operator.reconcilers.composition_plan import (
    CompositionContext,
    Create,
    Deliver,
    Idle,
    Memory,
    Poll,
    Recover,
    Stall,
    Step,
    Timeout,
    Timing,
    Wait,
    create_params,
    is_ours,
    plan_step,
)

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
MAX_STEPS_PER_RECONCILE = 8
MEDIA_URL_TTL_SECONDS = 3600


# --------------------------------------------------------------------------------------------- ports


class CompositionsApi(Protocol):
    """The Twilio operations a Composition needs (``TwilioApi`` provides them)."""

    async def create_composition(
        self,
        *,
        room_sid: str,
        video_layout: Mapping[str, Any] | None = None,
        audio_sources: Sequence[str] | None = None,
        audio_sources_excluded: Sequence[str] | None = None,
        resolution: str | None = None,
        format: str | None = None,
        trim: bool | None = None,
        status_callback: str | None = None,
        status_callback_method: str | None = None,
    ) -> CompositionInfo: ...

    async def fetch_composition(self, sid: str) -> CompositionInfo | None: ...

    async def list_compositions(self, room_sid: str, status: str | None = None) -> list[CompositionInfo]: ...

    async def delete_composition(self, sid: str) -> bool: ...

    async def composition_media_url(self, sid: str, ttl_seconds: int | None = None) -> str: ...

    async def fetch_room(self, sid_or_unique_name: str) -> RoomInfo | None: ...


class MediaDeliverer(Protocol):
    async def deliver(
        self,
        *,
        source_url: str,
        target: S3Target,
        credentials: S3Credentials,
        source_id: str,
        expected_size: int | None,
        known_sha256: str | None = None,
        content_type: str | None = None,
    ) -> DeliveryResult: ...


@dataclass(frozen=True)
class Ports:
    """How the executor reaches the world outside Twilio."""

    write_status: Callable[[CompositionStatus], Awaitable[None]]
    """Persist the whole status (fields set to ``None`` are removed)."""
    record_spec: Callable[[Mapping[str, Any] | None], Awaitable[None]]
    """Remember (or with ``None`` forget) the spec the Twilio composition is created from."""
    post_event: Callable[[EventType, str, str], Awaitable[None]]
    s3_credentials: Callable[[str], Awaitable[S3Credentials]]
    """Credentials from the named Secret; raises ``DeliveryError(CredentialsNotFound)``."""
    deliverer: MediaDeliverer


class _Stop(Exception):
    """A step ended the reconcile early (a failed call): ``status`` was saved; come back after ``after``."""

    def __init__(self, status: CompositionStatus, after: float | None) -> None:
        super().__init__(after)
        self.status = status
        self.after = after


# ------------------------------------------------------------------------------------------ executor


class CompositionExecutor:
    """Runs planned steps for one Composition until the plan idles, waits or stalls.

    ``twilio`` is ``None`` when the credentials could not be read (``context.credentials_problem`` then
    says why, and the plan never asks for Twilio). ``memory`` is this process's per-object memory.
    """

    def __init__(
        self,
        context: CompositionContext,
        *,
        twilio: CompositionsApi | None,
        ports: Ports,
        memory: Memory,
        clock: Callable[[], datetime],
        timing: Timing | None = None,
    ) -> None:
        self.context = context
        self.twilio = twilio
        self.ports = ports
        self.memory = memory
        self.clock = clock
        self.timing = timing or Timing()
        self.failure: str | None = None
        """Why a reconcile of this executor failed: a failed call or delivery attempt, or a new stall or
        credentials problem (the reason); ``None`` while none failed."""

    @property
    def _api(self) -> CompositionsApi:
        if self.twilio is None:  # the plan waits on credentials_problem before any Twilio step
            raise RuntimeError("no Twilio credentials for this composition")
        return self.twilio

    async def reconcile(self, status: CompositionStatus) -> tuple[CompositionStatus, float | None]:
        """Run steps; return the final status and when to come back (seconds; ``None``: only on news)."""
        for _ in range(MAX_STEPS_PER_RECONCILE):
            step = plan_step(self.context, status, self.memory, self.clock(), self.timing)
            try:
                status, done, after = await self._run(step, status)
            except _Stop as stop:
                return stop.status, stop.after
            if done:
                return status, after
        return status, 0.0

    async def _run(
        self, step: Step, status: CompositionStatus
    ) -> tuple[CompositionStatus, bool, float | None]:
        """Perform one step: ``(status, stop here, come back after)``."""
        if isinstance(step, Stall):
            return await self._stall(status, step), True, None
        if isinstance(step, Wait):
            return await self._wait(status, step), True, step.after
        if isinstance(step, Idle):
            return status, True, step.after
        if isinstance(step, Create):
            return await self._create(status, step.room_sid), False, None
        if isinstance(step, Recover):
            return await self._recover(status, step.room_sid), False, None
        if isinstance(step, Poll):
            return await self._poll(status), False, None
        if isinstance(step, Timeout):
            return await self._timeout(status, step.message), False, None
        if isinstance(step, Deliver):
            return await self._deliver(status), False, None
        raise AssertionError(f"unknown step {step!r}")

    # -- helpers ----------------------------------------------------------------------------------------

    @property
    def _generation(self) -> int | None:
        return self.context.generation

    async def _save(self, before: CompositionStatus, after: CompositionStatus) -> CompositionStatus:
        if after != before:
            await self.ports.write_status(after)
        return after

    async def _event(self, kind: EventType, reason: str, message: str) -> None:
        await self.ports.post_event(kind, reason, message)

    async def _twilio_failed(self, status: CompositionStatus, error: GatewayError, doing: str) -> _Stop:
        """Record a failed Twilio call; the returned :class:`_Stop` is for the caller to raise.

        Rejected credentials stall the object (retried slowly: the Secret may be fixed); anything else
        only marks it unsynced until the next attempt.
        """
        now, generation = self.clock(), self._generation
        message = f"Could not {doing}: {error}"
        self.failure = type(error).__name__
        if isinstance(error, AuthError):
            message = f"Twilio rejected the credentials while trying to {doing}: {error}"
            stalled = cond.stalled(status, Reason.AUTH_FAILED, message, generation=generation, now=now)
            return _Stop(await self._save(status, stalled), self.timing.credentials_retry)
        if isinstance(error, TransientError):
            reason = Reason.RATE_LIMITED if isinstance(error, ThrottledError) else Reason.TWILIO_UNAVAILABLE
            unsynced = cond.unsynced(status, reason, message, generation=generation, now=now)
            after = max(error.retry_after or 0.0, self.timing.transient_retry)
            return _Stop(await self._save(status, unsynced), after)
        unsynced = cond.unsynced(status, Reason.RECONCILE_ERROR, message, generation=generation, now=now)
        return _Stop(await self._save(status, unsynced), self.timing.transient_retry)

    # -- steps ------------------------------------------------------------------------------------------

    async def _stall(self, status: CompositionStatus, step: Stall) -> CompositionStatus:
        before = status
        was = cond.stall_of(status)
        status = cond.stalled(
            status, step.reason, step.message, generation=self._generation, now=self.clock()
        )
        if was is None or was[0] != step.reason:
            self.failure = step.reason
            await self._event("Warning", step.reason, step.message)
        return await self._save(before, status)

    async def _wait(self, status: CompositionStatus, step: Wait) -> CompositionStatus:
        before, now, generation = status, self.clock(), self._generation
        status = cond.with_condition(status, cond.READY, "False", step.reason, step.message, generation, now)
        if step.reason != Reason.WAITING_FOR_ROOM:  # a credentials problem
            if cond.condition_reason(status, cond.SYNCED) != step.reason:
                self.failure = step.reason
            status = cond.with_condition(
                status, cond.SYNCED, "False", step.reason, step.message, generation, now
            )
        status = cond.not_stalled(status, generation=generation, now=now)
        status = status.model_copy(update={"observed_generation": generation})
        return await self._save(before, status)

    async def _create(self, status: CompositionStatus, room_sid: str) -> CompositionStatus:
        ctx, spec = self.context, self.context.spec
        assert spec is not None
        await self.ports.record_spec(spec.to_dict())
        now = self.clock()
        pending = status.model_copy(update={"create_pending_at": now, "room_sid": room_sid})
        pending = cond.with_condition(
            pending, cond.READY, "False", Reason.CREATING, f"Creating the composition of room {room_sid}.",
            self._generation, now,
        )  # fmt: skip
        pending = cond.not_stalled(pending, generation=self._generation, now=now)
        status = await self._save(
            status, pending.model_copy(update={"observed_generation": self._generation})
        )
        try:
            info = await self._api.create_composition(**create_params(spec, room_sid, ctx.callback_url))
        except (TerminalError, NotFoundError) as error:  # refused: nothing was created
            await self.ports.record_spec(None)
            cleared = status.model_copy(update={"create_pending_at": None})
            message = f"Twilio refused to create the composition: {error}"
            self.failure = Reason.REJECTED_BY_TWILIO
            stalled = cond.stalled(
                cleared, Reason.REJECTED_BY_TWILIO, message, generation=self._generation, now=self.clock()
            )
            await self._event("Warning", Reason.REJECTED_BY_TWILIO, message)
            raise _Stop(await self._save(status, stalled), None) from None
        except AuthError as error:  # refused: nothing was created
            await self.ports.record_spec(None)
            cleared = status.model_copy(update={"create_pending_at": None})
            raise await self._twilio_failed(cleared, error, "create the composition") from None
        except GatewayError as error:  # maybe applied: the marker stays and the next round looks it up
            raise await self._twilio_failed(status, error, "create the composition") from None
        status = await self._adopt(status, info)
        await self._event("Normal", "Created", f"Created Twilio composition {info.sid} of room {room_sid}.")
        return status

    async def _adopt(self, status: CompositionStatus, info: CompositionInfo) -> CompositionStatus:
        """Record ``info`` as this object's composition and clear the create-pending marker."""
        before, now = status, self.clock()
        status = status.model_copy(
            update={
                "sid": info.sid,
                "room_sid": info.room_sid or status.room_sid,
                "started_at": info.date_created or now,
                "create_pending_at": None,
            }
        )
        status = apply_fetch(status, info, self.context.spec, generation=self._generation, now=now).status
        status = cond.summarize(status, self.context.spec, generation=self._generation, now=now)
        status = cond.not_stalled(status, generation=self._generation, now=now)
        return await self._save(before, status)

    async def _recover(self, status: CompositionStatus, room_sid: str) -> CompositionStatus:
        ctx, marker = self.context, status.create_pending_at
        spec = ctx.recorded_spec
        assert marker is not None and spec is not None
        try:
            listed = await self._api.list_compositions(room_sid)
        except GatewayError as error:
            raise await self._twilio_failed(status, error, "look up an interrupted create") from None
        candidates = sorted(
            (info for info in listed if is_ours(info, spec, room_sid, ctx.uid, marker)),
            key=lambda info: (info.date_created is None, info.date_created),
        )
        if not candidates:
            logger.info(
                "no composition from an interrupted create; creating it",
                extra={"namespace": ctx.namespace, "object_name": ctx.name, "room_sid": room_sid},
            )
            return await self._save(status, status.model_copy(update={"create_pending_at": None}))
        found = candidates[0]
        status = await self._adopt(status, found)
        await self._event(
            "Normal",
            "Claimed",
            f"Found Twilio composition {found.sid} from an interrupted create; not creating another.",
        )
        return status

    async def _poll(self, status: CompositionStatus) -> CompositionStatus:
        assert status.sid is not None
        before, memory = status, self.memory
        memory.resync_requested = False
        try:
            info = await self._api.fetch_composition(status.sid)
            if memory.room_ended_at is None and self.context.room.ended_at is None and status.room_sid:
                room = await self._api.fetch_room(status.room_sid)
                memory.room_ended_at = room.end_time if room is not None else None
                memory.room_checked = True
        except GatewayError as error:
            memory.quiet_polls += 1
            raise await self._twilio_failed(status, error, "fetch the composition") from None
        seen = apply_fetch(status, info, self.context.spec, generation=self._generation, now=self.clock())
        memory.quiet_polls = 0 if seen.changed else memory.quiet_polls + 1
        await self.report(seen)
        return await self._save(before, seen.status)

    async def report(self, seen: Observation) -> None:
        """Events and metrics for a state the composition just entered."""
        if seen.entered == "completed":
            await self._event(
                "Normal", "Completed", "Twilio finished the composition; the media is available."
            )
        elif seen.entered == "failed":
            ready = [c for c in seen.status.conditions if c.type == cond.READY]
            await self._event("Warning", "CompositionFailed", ready[0].message if ready else "failed")
        elif seen.entered == "deleted":
            await self._event(
                "Warning", "CompositionDeleted", "Twilio no longer has the composition's media."
            )
        if seen.entered in cond.TERMINAL_STATES:
            self.memory.timed_out = False

    async def _timeout(self, status: CompositionStatus, message: str) -> CompositionStatus:
        before, now = status, self.clock()
        status = cond.with_condition(
            status, cond.STALLED, "True", Reason.PROCESSING_TIMEOUT, message, self._generation, now
        )
        status = cond.summarize(status, self.context.spec, generation=self._generation, now=now)
        metrics.COMPOSITION_PROCESSING_TIMEOUTS.inc()
        self.memory.timed_out = True
        await self._event("Warning", Reason.PROCESSING_TIMEOUT, message)
        return await self._save(before, status)

    async def _deliver(self, status: CompositionStatus) -> CompositionStatus:
        ctx, memory = self.context, self.memory
        assert ctx.spec is not None and ctx.spec.delivery is not None and status.sid is not None
        s3 = ctx.spec.delivery.s3
        target = S3Target(
            bucket=s3.bucket,
            key=s3.object_key(
                namespace=ctx.namespace,
                name=ctx.name,
                sid=status.sid,
                media_format=ctx.spec.format,
                room_sid=status.room_sid or "",
            ),
            endpoint=s3.endpoint,
            region=s3.region,
        )
        try:
            credentials = await self.ports.s3_credentials(s3.credentials_ref.name)
            source = await self._media_url(status.sid)
            result = await self.ports.deliverer.deliver(
                source_url=source,
                target=target,
                credentials=credentials,
                source_id=status.sid,
                expected_size=status.size_bytes,
                known_sha256=status.delivery.sha256 if status.delivery else None,
                content_type="video/mp4" if ctx.spec.format == "mp4" else "video/webm",
            )
        except DeliveryError as error:
            return await self._delivery_failed(status, error)
        before, now = status, self.clock()
        status = status.model_copy(
            update={
                "delivery": DeliveryStatus(
                    url=result.url, bytes=result.bytes, sha256=result.sha256, delivered_at=now
                )
            }
        )
        status = cond.summarize(status, ctx.spec, generation=self._generation, now=now)
        memory.delivery_failures, memory.delivery_retry_at, memory.last_delivery_reason = 0, None, None
        verb = "Delivered" if result.uploaded else "Found already delivered"
        await self._event(
            "Normal", "Delivered", f"{verb} {result.bytes} bytes (sha256 {result.sha256}) to {result.url}."
        )
        return await self._save(before, status)

    async def _media_url(self, sid: str) -> str:
        try:
            return await self._api.composition_media_url(sid, ttl_seconds=MEDIA_URL_TTL_SECONDS)
        except GatewayError as error:
            raise DeliveryError(
                DeliveryReason.SOURCE_UNAVAILABLE,
                f"Twilio did not give the media URL: {error}",
                retryable=error.transient or isinstance(error, NotFoundError),
            ) from None

    async def _delivery_failed(self, status: CompositionStatus, error: DeliveryError) -> CompositionStatus:
        before, memory, now = status, self.memory, self.clock()
        self.failure = error.reason.value
        memory.delivery_failures += 1
        delay = self.timing.delivery_delay(memory.delivery_failures, error.retryable)
        memory.delivery_retry_at = now + timedelta(seconds=delay)
        message = f"{error.message} (attempt {memory.delivery_failures}; next attempt in {delay:.0f}s)"
        generation = self._generation
        status = cond.with_condition(
            status, cond.DELIVERED, "False", error.reason.value, message, generation, now
        )
        status = cond.with_condition(
            status, cond.READY, "False", Reason.DELIVERY_FAILED, message, generation, now
        )
        if memory.last_delivery_reason != error.reason.value:
            await self._event("Warning", "DeliveryFailed", message)
        memory.last_delivery_reason = error.reason.value
        logger.warning(
            "delivery failed",
            extra={
                "namespace": self.context.namespace,
                "object_name": self.context.name,
                "reason": error.reason.value,
                "error": error.message,
                "retry_in_seconds": delay,
            },
        )
        return await self._save(before, status)


# ------------------------------------------------------------------------------------ callbacks


def observe_callback(
    ctx: CompositionContext, status: CompositionStatus, event: CompositionEvent, now: datetime
) -> Observation | None:
    """Fold a callback for this object into ``status``; ``None`` when it is about another composition.

    A callback can arrive before the create answer was stored (the callback URL names the object, so it
    is this object's composition): its SID is then recorded and the create-pending marker cleared.
    """
    if event.composition_sid is None:
        return None
    if status.sid is not None and status.sid != event.composition_sid:
        return None
    if status.sid is None and status.create_pending_at is None:
        return None  # this object is not creating a composition: the callback is not about it
    if status.sid is None:
        status = status.model_copy(
            update={
                "sid": event.composition_sid,
                "room_sid": status.room_sid or event.room_sid,
                "started_at": status.started_at or event.timestamp or now,
                "create_pending_at": None,
            }
        )
        seen = apply_event(status, event, ctx.spec, generation=ctx.generation, now=now)
        return Observation(seen.status, changed=True, entered=seen.entered)
    return apply_event(status, event, ctx.spec, generation=ctx.generation, now=now)


def remember_callback(memory: Memory, event: CompositionEvent, seen: Observation, now: datetime) -> None:
    """What a callback teaches about timing: news resets the poll backoff, a start dates the processing."""
    if seen.changed:
        memory.quiet_polls = 0
    if event.event == "composition-started" and memory.processing_since is None:
        memory.processing_since = min(event.timestamp or now, now)
