"""The VideoRoom controller: one reconcile path for every trigger, serialized per object.

Triggers: kopf's resume handler, the controller's own timers on the controllers' one work queue (drift
resync every ``resync_interval`` with ±10% jitter, schedule start/end, retries), requests on that queue (a
spec change: ``metadata.generation`` ahead of ``status.observedGeneration``; the ``reconcile-requested-at``
and ``paused`` annotations) and room status callbacks. Each reconcile and each callback runs under the
object's lock, reads the object fresh, and writes status as a merge patch: webhook processing and handlers
never race.

The controller knows nothing of kopf or of the Kubernetes client: it reaches the cluster through
:class:`RoomObjects` and Twilio through ``api_for(credentials)``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from twilio_video_operator import metrics
from twilio_video_operator.controllers.keyed_locks import KeyedLocks
from twilio_video_operator.controllers.work_queue import WorkQueue
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import GatewayError
from twilio_video_operator.models.annotations import PAUSED as PAUSED_ANNOTATION
from twilio_video_operator.models.common import validation_problems
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus, spec_for_deletion
from twilio_video_operator.reconcilers.credentials import (
    Connection,
    CredentialsConnector,
)
from twilio_video_operator.reconcilers.notification_executor import Notifier
from twilio_video_operator.reconcilers.notification_subjects import notify_room
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress, Result, track_reconcile
from twilio_video_operator.reconcilers.status_tally import StatusTally
from twilio_video_operator.reconcilers.tenancy import NameRule, name_rule
from twilio_video_operator.reconcilers.videoroom import CredentialsCheck, PlanInput
from twilio_video_operator.reconcilers.videoroom_callbacks import (
    ROOM_ENDED,
    RoomCallback,
    apply_room_callback,
    parse_room_callback,
)
from twilio_video_operator.reconcilers.videoroom_conditions import stall_of
from twilio_video_operator.reconcilers.videoroom_deletion import Ownership, Released, release_room
from twilio_video_operator.reconcilers.videoroom_desired import Defaults
from twilio_video_operator.reconcilers.videoroom_executor import (
    ObjectGone,
    ReconcileRun,
    RoomApi,
    RoomWriter,
    RunReport,
    merge_patch,
)
from twilio_video_operator.reconcilers.videoroom_mutes import mute_rules, parse_managed_fields
from twilio_video_operator.reconcilers.videoroom_ownership import name_in_doubt

logger = logging.getLogger(__name__)

KIND = "VideoRoom"
Key = tuple[str, str]
"""``(namespace, name)``."""

#: Resyncs are spread over ±this fraction of the interval so that objects do not resync in lockstep.
RESYNC_JITTER = 0.1
#: Backoff of failed reconciles: base * 2**(failures-1), capped, with jitter; Retry-After wins if longer.
BACKOFF_BASE = 1.0
BACKOFF_MAX = 300.0
ROOM_STATUS_LABELS = ("Scheduled", "in-progress", "completed", "failed", "none")
#: Room SIDs of deleted objects remembered, to tell their late callbacks from unknown ones.
GONE_ROOMS_REMEMBERED = 10_000
#: The ``endpoint`` label of the room status callbacks.
CALLBACK_ENDPOINT = "room-events"


class Trigger(StrEnum):
    RESUME = "resume"
    """The operator (re)started and found the object."""
    RESYNC = "resync"
    """The drift resync timer."""
    TIMER = "timer"
    """From the work queue without observing the room: a spec change, schedule start or end, a retry."""
    REQUEST = "request"
    """An annotation asked for it (reconcile-requested-at, paused removed)."""


OBSERVING_TRIGGERS = frozenset({Trigger.RESUME, Trigger.RESYNC, Trigger.REQUEST})


class RoomObjects(RoomWriter, Protocol):
    """Everything the controller needs from Kubernetes."""

    async def get_room(self, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class _RoomEntry:
    key: Key
    account_sid: str


_NO_ENTRY = _RoomEntry(("", ""), "")


def _export_room_count(room_status: str, count: int) -> None:
    metrics.VIDEOROOMS_BY_STATUS.labels(room_status).set(count)


def utc_now() -> datetime:
    return datetime.now(UTC)


class VideoRoomController:
    """Reconciles VideoRooms and processes their room status callbacks."""

    def __init__(
        self,
        objects: RoomObjects,
        api_for: Callable[[CredentialSet], RoomApi],
        *,
        credentials: CredentialsConnector,
        defaults: Defaults,
        resync_interval: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        progress: ReconcileProgress | None = None,
        name_prefixes: Mapping[str, Sequence[str]] | None = None,
        indexed_owners: Callable[[str], Iterable[Key]] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self._objects = objects
        self._notifier = notifier
        self._api_for = api_for
        self._credentials = credentials
        self._name_prefixes = dict(name_prefixes or {})
        self._indexed_owners = indexed_owners
        # (room SID, room status) as this process last wrote them for an object whose room it verified:
        # a status that differs was written by someone else and is checked at Twilio before it counts.
        self._verified: dict[Key, tuple[str, str | None]] = {}
        # Rooms of objects deleted lately: their last callbacks are expected, not unknown.
        self._gone: OrderedDict[str, Key] = OrderedDict()
        self._defaults = defaults
        self._resync_interval = resync_interval
        self._clock = clock
        self._rng = rng or random.Random()
        self._locks = KeyedLocks()
        # Resyncs, schedule start and end, retries and requests: the controllers' one work queue, on the
        # controller's clock (tests move it and call wake()).
        self.queue: WorkQueue[Key] = WorkQueue(self._timed, name="videoroom", clock=clock)
        self._rooms: dict[str, _RoomEntry] = {}
        self._sid_of: dict[Key, str] = {}
        self._room_status: StatusTally[Key] = StatusTally(ROOM_STATUS_LABELS, _export_room_count)
        self._failures: dict[Key, int] = {}
        # Objects this process knows no CreateRoom of is unanswered (see PlanInput.create_in_doubt), and the
        # UniqueName of a CreateRoom it sent whose answer is missing.
        self._no_doubt: set[Key] = set()
        self._reconciled: set[Key] = set()  # objects reconciled since this process started
        self._doubt_names: dict[Key, str] = {}
        self._active: set[asyncio.Task[Any]] = set()
        self._progress = progress

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the work queue (inside the running event loop)."""
        self.queue.start()

    async def stop(self) -> None:
        """Stop the timers and cancel every reconcile in flight (kopf's included), as a process exit would."""
        await self.queue.stop(also=tuple(self._active))

    def now(self) -> datetime:
        return self._clock()

    def wake(self) -> None:
        """Look at the timers now (after the clock was moved, in tests)."""
        self.queue.wake()

    def request(self, namespace: str, name: str, *, observe: bool = False) -> None:
        """Reconcile this object soon, on the work queue (``observe``: verify the room at Twilio)."""
        self.queue.request((namespace, name), observe=observe)

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone: drop its timers, index entries and cached credentials."""
        key = (namespace, name)
        self.queue.discard(key)
        self._verified.pop(key, None)
        sid = self._sid_of.pop(key, None)
        if sid is not None:
            self._rooms.pop(sid, None)
            self._gone[sid] = key
            while len(self._gone) > GONE_ROOMS_REMEMBERED:
                self._gone.popitem(last=False)
        self._room_status.discard(key)
        self._failures.pop(key, None)
        self._no_doubt.discard(key)
        self._doubt_names.pop(key, None)
        self._reconciled.discard(key)
        if self._progress is not None:
            self._progress.forget(KIND, namespace, name)

    def knows_room(self, room_sid: str) -> bool:
        return room_sid in self._rooms

    def reconciled(self, namespace: str, name: str) -> bool:
        """Whether this process has reconciled the object since it started."""
        return (namespace, name) in self._reconciled

    # ------------------------------------------------------------------------------------- reconcile

    async def reconcile(
        self, namespace: str, name: str, trigger: Trigger, *, capped: bool = False, first: bool = False
    ) -> RunReport | None:
        """Reconcile one object now. ``None`` when the object is gone or being deleted (or, with ``first``,
        was reconciled since this process started, and successfully). ``capped``: wait for a slot of the work
        queue first (the queue's own reconciles)."""
        key = (namespace, name)
        task = asyncio.current_task()
        if task is not None:
            self._active.add(task)
        try:
            return await self._reconcile_locked(key, trigger, capped, first)
        finally:
            if task is not None:
                self._active.discard(task)

    async def _reconcile_locked(
        self, key: Key, trigger: Trigger, capped: bool, first: bool
    ) -> RunReport | None:
        namespace, name = key
        lock = self._locks.hold(key)
        gates = (self.queue.slots, lock) if capped else (lock,)
        async with track_reconcile(KIND, namespace, name, self._progress, waits_for=gates) as run:
            if first and key in self._reconciled and key not in self._failures:
                # A spec change reached it first and succeeded (a live room it did not verify was fetched);
                # after a failure, the resume is kopf's retry and runs.
                run.skip()
                return None
            body = await self._objects.get_room(namespace, name)
            if body is None or body.get("metadata", {}).get("deletionTimestamp"):
                run.skip()
                return None
            try:
                outcome = await self._reconcile_body(key, body, trigger)
            except Exception:
                self._failures[key] = self._failures.get(key, 0) + 1
                raise
            self._record(key, outcome)
            # An error: a failed call, or a new stall (invalid spec, unusable credentials).
            failed = outcome.error is not None or (
                outcome.stalled and stall_of(outcome.status) != stall_of(_parse_status(body.get("status")))
            )
            run.finish(_result(outcome), failed=failed, due_in=self._due_in(key))
        return outcome

    async def connect(self, namespace: str, spec: VideoRoomSpec | None) -> Connection:
        """The credentials of a VideoRoom (its ``credentialsRef``, else the operator's)."""
        ref = spec.credentials_ref.name if spec is not None and spec.credentials_ref is not None else None
        return await self._credentials.connect(namespace, ref)

    def names_of(self, namespace: str, connection: Connection) -> NameRule:
        return name_rule(namespace, shared_account=connection.shared, extra_prefixes=self._name_prefixes)

    def claimed_by(self, key: Key) -> Callable[[str], str | None]:
        """Who else holds a room SID: an object this process verified it for, or one whose status names it."""

        def other(sid: str) -> str | None:
            entry = self._rooms.get(sid)
            if entry is not None and entry.key != key:
                return "/".join(entry.key)
            if entry is None and self._indexed_owners is not None:
                for owner in self._indexed_owners(sid):
                    if owner != key:
                        return "/".join(owner)
            return None

        return other

    def _claim(self, key: Key, account_sid: str) -> Callable[[str], None]:
        def claim(sid: str) -> None:
            old = self._sid_of.get(key)
            if old is not None and old != sid and self._rooms.get(old, _NO_ENTRY).key == key:
                del self._rooms[old]
            self._rooms[sid] = _RoomEntry(key, account_sid)
            self._sid_of[key] = sid

        return claim

    def _creating(self, key: Key) -> Callable[[str], None]:
        """Called as a CreateRoom is sent: until its answer is stored, the create is in doubt."""

        def sent(unique_name: str) -> None:
            self._no_doubt.discard(key)
            self._doubt_names[key] = unique_name

        return sent

    def _settle_doubt(self, key: Key, outcome: RunReport) -> None:
        if not outcome.create_in_doubt:
            self._no_doubt.add(key)
            self._doubt_names.pop(key, None)
        elif outcome.doubt_name is not None:
            self._doubt_names[key] = outcome.doubt_name

    def verified_sid(self, key: Key, status: VideoRoomStatus) -> str | None:
        """``status.sid`` when status names the room and room status this process verified and wrote."""
        if status.sid is not None and self._verified.get(key) == (status.sid, status.room_status):
            return status.sid
        return None

    async def _reconcile_body(self, key: Key, body: Mapping[str, Any], trigger: Trigger) -> RunReport:
        namespace, name = key
        metadata = body.get("metadata") or {}
        spec, problems = _parse_spec(body.get("spec"))
        connection = await self.connect(namespace, spec)
        creds = connection.credentials
        check = CredentialsCheck(connection.revision, connection.problem, connection.transient)
        inp = PlanInput(
            namespace=namespace,
            name=name,
            generation=metadata.get("generation"),
            spec=spec,
            spec_problems=tuple(problems),
            status=_parse_status(body.get("status")),
            annotations=dict(metadata.get("annotations") or {}),
            now=self._clock(),
            defaults=self._defaults
            if connection.callbacks_verifiable
            else replace(self._defaults, status_callback=None),
            credentials=check,
            observe=trigger in OBSERVING_TRIGGERS,
            names=self.names_of(namespace, connection),
            verified_sid=self.verified_sid(key, _parse_status(body.get("status"))),
            claimed_by=self.claimed_by(key),
            managed_fields=parse_managed_fields(metadata.get("managedFields")),
            uid=str(metadata.get("uid") or ""),
            create_in_doubt=key not in self._no_doubt,
            doubt_name=self._doubt_names.get(key),
        )
        api = self._api_for(creds) if creds is not None else None
        claim = self._claim(key, creds.account_sid) if creds is not None else None
        run = ReconcileRun(inp, body, api, self._objects, claim, on_create=self._creating(key))
        outcome = await run.execute()
        self._settle_doubt(key, outcome)
        if self._notifier is not None and not outcome.paused:
            outcome = await self._notify(body, spec, creds, outcome)
        if outcome.verified_sid is not None and outcome.verified_sid == outcome.status.sid:
            self._verified[key] = (outcome.verified_sid, outcome.status.room_status)
        else:
            self._verified.pop(key, None)
        self._index(key, outcome.status, creds)
        if outcome.error:
            logger.warning(
                "VideoRoom %s/%s: reconcile failed (%s): %s",
                namespace,
                name,
                outcome.error_reason,
                outcome.error,
                extra={"namespace": namespace, "object_name": name, "kind": KIND, "trigger": str(trigger)},
            )
        return outcome

    async def _notify(
        self,
        body: Mapping[str, Any],
        spec: VideoRoomSpec | None,
        creds: CredentialSet | None,
        outcome: RunReport,
    ) -> RunReport:
        """Session notifications (the reminder), after the room's own work; their next time joins the
        object's timers. A failure here is retried on its own and never fails the room's reconcile."""
        assert self._notifier is not None
        try:
            wake = await notify_room(self._notifier, body, spec, creds)
        except Exception as exc:  # a Kubernetes error writing the notifications' status
            logger.warning("VideoRoom notifications could not be recorded: %s", exc)
            wake = self._clock() + timedelta(seconds=BACKOFF_MAX / 10)
        if wake is None or (outcome.requeue_at is not None and outcome.requeue_at <= wake):
            return outcome
        return replace(outcome, requeue_at=wake)

    def _record(self, key: Key, outcome: RunReport) -> None:
        """Backoff bookkeeping and the next timed wake-up after a reconcile."""
        self._reconciled.add(key)
        now = self._clock()
        if outcome.retry:
            self._failures[key] = self._failures.get(key, 0) + 1
        else:
            self._failures.pop(key, None)
        self.queue.clear_wake(key)
        if outcome.requeue_at is not None:
            self.queue.wake_at(key, outcome.requeue_at)
        if outcome.paused:
            self.queue.set_periodic(key, None)
        elif outcome.observed or self.queue.periodic_at(key) is None:
            self.queue.set_periodic(key, now + self._jittered(self._resync_interval))

    def _due_in(self, key: Key) -> float | None:
        """Seconds until the object's resync (``None`` while paused: nothing is due until it resumes)."""
        resync = self.queue.periodic_at(key)
        return None if resync is None else (resync - self._clock()).total_seconds()

    def retry_delay(self, namespace: str, name: str, outcome: RunReport) -> float:
        """Seconds to wait before retrying after ``outcome``: exponential backoff, Retry-After honoured."""
        failures = max(1, self._failures.get((namespace, name), 1))
        backoff = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** (failures - 1)) * self._rng.uniform(0.5, 1.0)
        hint = outcome.retry_after or 0.0
        return max(backoff, hint)

    def _jittered(self, interval: timedelta) -> timedelta:
        return interval * self._rng.uniform(1 - RESYNC_JITTER, 1 + RESYNC_JITTER)

    def _index(self, key: Key, status: VideoRoomStatus, creds: CredentialSet | None) -> None:
        """Route callbacks of the object's room to it: only a room verified for it (see ``_claim``)."""
        old = self._sid_of.get(key)
        if old is not None and old != status.sid:
            if self._rooms.get(old, _NO_ENTRY).key == key:
                del self._rooms[old]
            del self._sid_of[key]
        verified = self.verified_sid(key, status)
        if verified is not None and creds is not None:
            self._rooms[verified] = _RoomEntry(key, creds.account_sid)
            self._sid_of[key] = verified
        self._room_status.set(key, status.room_status)

    # ------------------------------------------------------------------------------------- timers

    async def _timed(self, key: Key, observe: bool) -> None:
        """The work queue's work: a resync (``observe``) or a timed return (schedule, retry, request).
        A crash comes back after the queue's crash delay."""
        trigger = Trigger.RESYNC if observe else Trigger.TIMER
        outcome = await self.reconcile(key[0], key[1], trigger, capped=True)
        if outcome is None:
            self.forget(*key)
        elif outcome.retry:
            self.queue.request(key, after=self.retry_delay(key[0], key[1], outcome))

    # ------------------------------------------------------------------------------------- deletion

    async def finalize(self, namespace: str, name: str, body: Mapping[str, Any]) -> Released:
        """Apply ``deletionPolicy`` to the Twilio room; never hangs on a room that is already gone.

        A spec that no longer validates (a field changed past an older CRD) is read for ``deletionPolicy``
        and ``credentialsRef`` alone, so the room is still completed with its own credentials.
        """
        key = (namespace, name)
        async with self._locks.hold(key):
            current = await self._objects.get_room(namespace, name) or dict(body)
            spec = spec_for_deletion(current.get("spec"))
            status = _parse_status(current.get("status"))
            connection = await self.connect(namespace, spec)
            released = await release_room(
                current,
                spec,
                status,
                Ownership(
                    connection=connection,
                    names=self.names_of(namespace, connection),
                    verified_sid=self.verified_sid(key, status),
                    claimed_by=self.claimed_by(key),
                    remembered=self._verified.get(key),
                    uid=str((current.get("metadata") or {}).get("uid") or ""),
                    doubt_name=self._doubt_on_deletion(key, current, spec, status, connection),
                ),
                self._api_for,
                self._objects,
            )
        if released.retry_after is None:
            self.forget(namespace, name)
        return released

    def _doubt_on_deletion(
        self,
        key: Key,
        body: Mapping[str, Any],
        spec: VideoRoomSpec | None,
        status: VideoRoomStatus,
        connection: Connection,
    ) -> str | None:
        """The UniqueName to look up on deletion for a create that may be unanswered (``None``: none can be,
        or the object's rooms carry no StatusCallback and the create-pending marker covers them)."""
        named = connection.callbacks_verifiable and self._defaults.status_callback is not None
        if key in self._no_doubt or not named:
            return None
        generation = (body.get("metadata") or {}).get("generation")
        sent = self._doubt_names.get(key)
        return name_in_doubt(spec, status, generation, self._clock(), key[0], key[1], sent)

    # ------------------------------------------------------------------------------------- callbacks

    async def handle_callback(self, account_sid: str, params: Mapping[str, str]) -> None:
        """Process one verified room status callback (deduplicated upstream).

        Only a room this process verified for an object is routed to it, and only a callback signed for
        that room's account. Events that arrive after the object was deleted are expected (Twilio reports a
        room's end after the deletion completed it): counted and logged at INFO.
        """
        event = parse_room_callback(params)
        if event is None:
            return
        entry = self._rooms.get(event.room_sid)
        if entry is None and event.room_sid in self._gone:
            self._late(self._gone[event.room_sid], event.event)
            return
        if entry is None or entry.account_sid != account_sid:
            logger.debug("ignoring %s for room %s: not a room of this operator", event.event, event.room_sid)
            return
        try:
            await self._handle_callback(entry.key, event)
        except ObjectGone:
            self._late(entry.key, event.event)

    def _late(self, key: Key, event: str) -> None:
        metrics.WEBHOOKS_LATE.labels(CALLBACK_ENDPOINT).inc()
        logger.info(
            "%s for VideoRoom %s/%s arrived after the object was deleted; dropped",
            event,
            *key,
            extra={"namespace": key[0], "object_name": key[1], "kind": KIND},
        )

    async def _handle_callback(self, key: Key, event: RoomCallback) -> None:
        reconcile = False
        async with self._locks.hold(key):
            body = await self._objects.get_room(*key)
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                if body is None:
                    self.forget(*key)
                self._late(key, event.event)
                return
            metadata = body.get("metadata") or {}
            if (metadata.get("annotations") or {}).get(PAUSED_ANNOTATION) == "true":
                logger.debug("ignoring %s for paused VideoRoom %s/%s", event.event, *key)
                return
            status = _parse_status(body.get("status"))
            spec, _ = _parse_spec(body.get("spec"))
            if (
                event.event == ROOM_ENDED
                and status.room_status == "in-progress"
                and status.sid == event.room_sid
            ):
                # Status says it ended only once Twilio confirms it: a resync fetches the room now. A signed
                # callback is only as trustworthy as every holder of the account's Auth Token.
                metrics.ROOM_ENDED_CONFIRMATIONS.inc()
                self.request(*key, observe=True)
                return
            effects = apply_room_callback(status, spec, event, self._clock())
            if effects.participant_seconds:
                metrics.PARTICIPANT_SECONDS.labels(event.metric_room_type).inc(effects.participant_seconds)
            new_status = effects.status
            if effects.disconnect:
                new_status = await self._moderate(key, body, spec, new_status, effects.disconnect)
            if effects.subscribe:
                new_status = await self._apply_mutes(key, spec, new_status, effects.subscribe)
            if new_status != status:
                patch = merge_patch(status.to_dict(), new_status.to_dict())
                if patch:
                    await self._objects.patch_status(key[0], key[1], patch)
                self._room_status.set(key, new_status.room_status)
                if self.verified_sid(key, status) is not None and new_status.sid is not None:
                    self._verified[key] = (new_status.sid, new_status.room_status)
            reconcile = effects.reconcile
        if reconcile:
            self.request(*key)

    async def _moderate(
        self,
        key: Key,
        body: Mapping[str, Any],
        spec: VideoRoomSpec | None,
        status: VideoRoomStatus,
        targets: tuple[tuple[str, str], ...],
    ) -> VideoRoomStatus:
        """Disconnect blocked participants who just joined; on failure a reconcile lists and retries."""
        creds = (await self.connect(key[0], spec)).credentials
        sid = status.sid
        if creds is None or sid is None:
            return status
        api = self._api_for(creds)
        for target, identity in targets:
            try:
                removed = await api.disconnect_participant(sid, target)
            except GatewayError as error:
                logger.warning("could not disconnect blocked participant of %s: %s", sid, error)
                self.request(*key)
                return status.model_copy(update={"moderation_digest": None})
            if removed is not None:
                await self._objects.post_event(
                    body,
                    "Normal",
                    "ParticipantRemoved",
                    f"Disconnected participant {identity!r} from room {sid}: the identity is in "
                    "spec.moderation.blockedIdentities.",
                )
        return status

    async def _apply_mutes(
        self,
        key: Key,
        spec: VideoRoomSpec | None,
        status: VideoRoomStatus,
        participants: tuple[str, ...],
    ) -> VideoRoomStatus:
        """Give participants who just joined the mutes' subscribe rules; on failure a reconcile sets them
        for everyone (the digest is dropped)."""
        creds = (await self.connect(key[0], spec)).credentials
        sid, rules = status.sid, mute_rules(spec)
        if creds is None or sid is None or not rules:
            return status
        api = self._api_for(creds)
        for participant in participants:
            try:
                updated = await api.update_subscribe_rules(sid, participant, rules)
            except GatewayError as error:
                logger.warning("could not set the subscribe rules of a participant of %s: %s", sid, error)
                self.request(*key)
                return status.model_copy(update={"mute_digest": None})
            if updated is not None:
                metrics.SUBSCRIBE_RULES_SET.labels("participant-connected").inc()
        return status


def _result(outcome: RunReport) -> Result:
    if outcome.paused:
        return Result.PAUSED
    if outcome.stalled:
        return Result.STALLED
    if outcome.retry:
        return Result.ERROR
    return Result.REQUEUE_AFTER if outcome.requeue_at is not None else Result.SUCCESS


def _parse_spec(raw: Any) -> tuple[VideoRoomSpec | None, list[str]]:
    try:
        return VideoRoomSpec.model_validate(dict(raw or {})), []
    except ValidationError as error:
        return None, validation_problems(error)
    except (TypeError, ValueError) as error:
        return None, [f"spec: {error}"]


def _parse_status(raw: Any) -> VideoRoomStatus:
    try:
        return VideoRoomStatus.model_validate(dict(raw or {}))
    except (ValidationError, TypeError, ValueError):
        logger.warning("ignoring a status that does not parse")
        return VideoRoomStatus()
