"""Composition: what to do next (pure). The executor in :mod:`.composition` carries the steps out.

:func:`plan_step` looks at the context of one reconcile (spec, resolved room, credentials), the status,
what this process remembers about the object (:class:`Memory`) and the clock, and returns one step:

- :class:`Stall` — an error retrying cannot fix (invalid or changed spec);
- :class:`Wait` — nothing can be created yet (no room SID, no credentials);
- :class:`Recover` — a create-pending marker without a SID: look the composition up before anything else;
- :class:`Create` — ask Twilio for the composition (the marker is written first);
- :class:`Poll` — callbacks have been quiet for a while: fetch the composition (backoff between polls);
- :class:`Timeout` — Twilio has been at it longer than ``stalledAfter``;
- :class:`Deliver` — the media is ready and ``delivery`` is set but not done;
- :class:`Idle` — nothing to do now; come back after ``after`` seconds (``None``: only on news).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twilio_video_operator.gateway.records import CompositionInfo
from twilio_video_operator.models.composition import (
    CompositionSpec,
    CompositionStatus,
    composition_spec_changes,
)
from twilio_video_operator.models.conditions import Reason
from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.timestamps import shifted
from twilio_video_operator.reconcilers import composition_conditions as cond

#: A composition found by listing counts as the one an interrupted create made only if Twilio created it no
#: earlier than this before the create-pending marker was written (Twilio dates have whole seconds).
CLAIM_CLOCK_SKEW = timedelta(minutes=2)


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class RoomTarget:
    """The room to compose, as far as it is known. ``waiting`` says why there is no SID yet."""

    sid: str | None
    ended_at: datetime | None = None
    waiting: str | None = None


@dataclass(frozen=True)
class CompositionContext:
    """Everything one reconcile knows about the object besides its status."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: CompositionSpec | None
    spec_problems: tuple[str, ...] = ()
    created_spec: Mapping[str, Any] | None = None
    """The spec the Twilio composition was (or is being) created from, recorded before the create call."""
    room: RoomTarget = RoomTarget(sid=None)
    callback_url: str = ""
    credentials_problem: tuple[str, str] | None = None
    """``(reason, message)`` when the Twilio credentials cannot be used."""
    room_problem: str | None = None
    """Why the room may not be composed by this object (another tenant's): it stalls before any create."""

    @property
    def immutable_changes(self) -> list[str]:
        if self.created_spec is None or self.spec is None:
            return []
        return composition_spec_changes(self.created_spec, self.spec.to_dict())

    @property
    def recorded_spec(self) -> CompositionSpec | None:
        """The spec the existing composition was created from (the current one if none was recorded)."""
        if self.created_spec is not None:
            try:
                return CompositionSpec.model_validate(dict(self.created_spec))
            except ValueError:
                return self.spec
        return self.spec


@dataclass
class Memory:
    """What this process remembers about one object between reconciles (lost on restart, which is fine:
    every field only tunes timing)."""

    quiet_polls: int = 0
    """Polls in a row that brought no news; the poll interval grows with it."""
    room_ended_at: datetime | None = None
    room_checked: bool = False
    processing_since: datetime | None = None
    """When a callback said processing started (``composition-started``)."""
    delivery_failures: int = 0
    delivery_retry_at: datetime | None = None
    last_delivery_reason: str | None = None
    timed_out: bool = False
    resync_requested: bool = False
    """Set by a new ``reconcile-requested-at``: fetch now and retry a failed delivery without waiting."""
    reconcile_request: str | None = None
    """The last ``reconcile-requested-at`` value seen."""
    room_verified: str | None = None
    """The room SID checked at Twilio as one this object may compose."""
    account_sid: str | None = None
    """The Twilio account of the object's credentials: only its signed callbacks may change the object."""

    def request_resync(self, value: str | None) -> None:
        """Note the ``reconcile-requested-at`` annotation; a value not seen before asks for a resync."""
        if value is not None and value != self.reconcile_request:
            self.resync_requested = True
            self.delivery_retry_at = None
        self.reconcile_request = value


@dataclass(frozen=True)
class Timing:
    """Intervals of polling and retries, in seconds (tests shrink them)."""

    poll_min: float = 30.0
    poll_max: float = 600.0
    poll_factor: float = 2.0
    room_wait: float = 15.0
    transient_retry: float = 15.0
    credentials_retry: float = 300.0
    delivery_retry_min: float = 5.0
    delivery_retry_max: float = 300.0
    delivery_stuck_min: float = 60.0
    """First retry after a delivery error that needs a change (bucket, permission, credentials)."""
    delivery_stuck_max: float = 900.0

    def poll_interval(self, quiet_polls: int) -> float:
        return float(min(self.poll_max, self.poll_min * self.poll_factor**quiet_polls))

    def delivery_delay(self, failures: int, retryable: bool) -> float:
        low, high = (
            (self.delivery_retry_min, self.delivery_retry_max)
            if retryable
            else (self.delivery_stuck_min, self.delivery_stuck_max)
        )
        return float(min(high, low * 2 ** max(0, failures - 1)))


# ------------------------------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Stall:
    reason: str
    message: str


@dataclass(frozen=True)
class Wait:
    reason: str
    message: str
    after: float


@dataclass(frozen=True)
class Recover:
    room_sid: str


@dataclass(frozen=True)
class Create:
    room_sid: str


@dataclass(frozen=True)
class Poll:
    pass


@dataclass(frozen=True)
class Timeout:
    message: str


@dataclass(frozen=True)
class Deliver:
    pass


@dataclass(frozen=True)
class Idle:
    after: float | None


Step = Stall | Wait | Recover | Create | Poll | Timeout | Deliver | Idle


def plan_step(
    ctx: CompositionContext, status: CompositionStatus, memory: Memory, now: datetime, timing: Timing
) -> Step:
    """The next step for one Composition (see the module docstring)."""
    if ctx.spec is None:
        return Stall(Reason.INVALID_SPEC, "; ".join(ctx.spec_problems) or "the spec is invalid")
    if status.sid is None:
        return _plan_creation(ctx, status, now, timing)
    changes = ctx.immutable_changes
    if changes:
        return Stall(Reason.SPEC_IMMUTABLE, "; ".join(changes))
    state = status.composition_status
    if state is None or state in cond.ACTIVE_STATES:
        return _plan_progress(ctx, status, memory, now, timing)
    if state == "completed" and ctx.spec.delivery is not None and not delivered(status):
        if memory.delivery_retry_at is not None and now < memory.delivery_retry_at:
            return Idle(_seconds(memory.delivery_retry_at - now))
        return Deliver()
    return Idle(None)


def _plan_creation(ctx: CompositionContext, status: CompositionStatus, now: datetime, timing: Timing) -> Step:
    if status.create_pending_at is not None:
        room_sid = status.room_sid or ctx.room.sid
        if room_sid is not None:
            if ctx.credentials_problem is not None:
                return Wait(*ctx.credentials_problem, timing.credentials_retry)
            return Recover(room_sid)
    stall = cond.stall_of(status)
    if stall is not None:
        reason, generation, since = stall
        if reason == Reason.AUTH_FAILED:
            retry_at = shifted(since, timedelta(seconds=timing.credentials_retry))
            if now < retry_at:
                return Idle(_seconds(retry_at - now))
        elif reason != Reason.SPEC_IMMUTABLE and generation == ctx.generation:
            return Idle(None)
    if ctx.credentials_problem is not None:
        return Wait(*ctx.credentials_problem, timing.credentials_retry)
    if ctx.room.sid is None:
        message = ctx.room.waiting or "Waiting for the room's Twilio SID."
        return Wait(Reason.WAITING_FOR_ROOM, message, timing.room_wait)
    if ctx.room_problem is not None:
        return Stall(Reason.ROOM_NOT_OWNED, ctx.room_problem)
    return Create(ctx.room.sid)


def _plan_progress(
    ctx: CompositionContext, status: CompositionStatus, memory: Memory, now: datetime, timing: Timing
) -> Step:
    assert ctx.spec is not None
    state = status.composition_status
    room_end = room_ended_at(ctx, memory, now)
    started = memory.processing_since
    if memory.resync_requested:
        return Poll()
    if room_end is None and started is None and not memory.room_checked and state == "processing":
        return Poll()  # learn when the room ended before judging how long processing takes
    timed_out = cond.condition_reason(status, cond.STALLED) == Reason.PROCESSING_TIMEOUT
    watchdog_at = None
    since = processing_since(state, room_end, started or status.started_at)
    if since is not None and not timed_out:
        watchdog_at = shifted(since, parse_duration(ctx.spec.stalled_after))
        if now >= watchdog_at:
            limit = ctx.spec.stalled_after
            what = "processing" if state == "processing" else "enqueued after the room completed"
            return Timeout(f"The composition is still {what} after {limit}; Twilio may be stuck.")
    poll_at = shifted(last_heard(status, now), timedelta(seconds=timing.poll_interval(memory.quiet_polls)))
    if now >= poll_at:
        return Poll()
    wake = min(at for at in (poll_at, watchdog_at) if at is not None)
    return Idle(_seconds(wake - now))


def room_ended_at(ctx: CompositionContext, memory: Memory, now: datetime) -> datetime | None:
    """When the composed room completed, if known (never later than ``now``: clocks may differ)."""
    ended = memory.room_ended_at or ctx.room.ended_at
    return min(ended, now) if ended is not None else None


def processing_since(
    state: str | None, room_end: datetime | None, started_at: datetime | None
) -> datetime | None:
    """Since when Twilio could have been working on the composition (``None``: not yet)."""
    if state == "processing":
        candidates = [at for at in (room_end, started_at) if at is not None]
        return max(candidates) if candidates else None
    if state == "enqueued" and room_end is not None:
        return max(at for at in (room_end, started_at) if at is not None)
    return None


def last_heard(status: CompositionStatus, now: datetime) -> datetime:
    return status.last_synced_at or status.started_at or status.create_pending_at or now


def delivered(status: CompositionStatus) -> bool:
    return status.delivery is not None and status.delivery.sha256 is not None


def _seconds(delta: timedelta) -> float:
    return max(0.0, delta.total_seconds())


# ------------------------------------------------------------------------------------ Twilio parameters


def create_params(spec: CompositionSpec, room_sid: str, callback_url: str) -> dict[str, Any]:
    """CreateComposition parameters for ``spec`` (the gateway's keyword arguments)."""
    return {
        "room_sid": room_sid,
        "video_layout": spec.video_layout,
        "audio_sources": list(spec.audio_sources),
        "audio_sources_excluded": list(spec.audio_sources_excluded) or None,
        "resolution": spec.resolution,
        "format": spec.format,
        "trim": spec.trim,
        "status_callback": callback_url or None,
        "status_callback_method": "POST" if callback_url else None,
    }


def is_ours(info: CompositionInfo, spec: CompositionSpec, room_sid: str, uid: str, marker: datetime) -> bool:
    """Whether a listed composition is the one an interrupted create of this object made.

    Same room and parameters, created no earlier than the marker (minus clock skew), and, when it has a
    status callback, one that names this object's UID.
    """
    if info.room_sid != room_sid or info.status == "deleted":
        return False
    if info.date_created is not None and info.date_created < shifted(marker, -CLAIM_CLOCK_SKEW):
        return False
    if info.status_callback and parse_qs(urlsplit(info.status_callback).query).get("uid") != [uid]:
        return False
    if sorted(info.audio_sources) != sorted(spec.audio_sources):
        return False
    if sorted(info.audio_sources_excluded) != sorted(spec.audio_sources_excluded):
        return False
    if dict(info.video_layout or {}) != dict(spec.video_layout or {}):
        return False
    return (info.resolution, info.format, info.trim) == (spec.resolution, spec.format, spec.trim)
