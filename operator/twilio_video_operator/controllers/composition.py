"""The Composition controller: observe the object, plan and act with the executor, report an Outcome.

Create, update, resume and the periodic tick run the same reconcile, serialised per object: the object is
read afresh, the room and credentials are observed (:mod:`.composition_observe`), and
:class:`~twilio_video_operator.reconcilers.composition.CompositionExecutor` takes the planned steps.
Status is written through the status subresource at each step, so the create-pending marker is stored
before Twilio is asked for a composition.

Status callbacks are folded into the status of the object whose composition they name, under the same
per-object lock. When the media becomes available the reconcile runs at once to deliver it.

Deleting the object deletes the Twilio composition with ``deletionPolicy: Delete`` (a 404 counts as
done) and leaves it with ``Retain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio_video_operator import metrics
from twilio_video_operator.controllers.composition_observe import CompositionObserver
from twilio_video_operator.controllers.keyed_locks import KeyedLocks
from twilio_video_operator.controllers.outcome import Outcome, Verdict, kube_failed
from twilio_video_operator.controllers.work_queue import WorkQueue
from twilio_video_operator.delivery import S3Deliverer
from twilio_video_operator.gateway import AuthError, GatewayError, TwilioApi, TwilioGateway
from twilio_video_operator.kube.composition_objects import CompositionObjects
from twilio_video_operator.kube.errors import KUBE_ERRORS, kube_problem
from twilio_video_operator.kube.shard import matches_patterns, namespaces_to_list
from twilio_video_operator.models.annotations import PAUSED, RECONCILE_REQUESTED_AT
from twilio_video_operator.models.composition import (
    CompositionSpec,
    CompositionStatus,
    validate_composition_spec,
)
from twilio_video_operator.models.conditions import Reason
from twilio_video_operator.reconcilers import composition_conditions as cond
from twilio_video_operator.reconcilers.composition import (
    CompositionExecutor,
    CompositionsApi,
    observe_callback,
    remember_callback,
)
from twilio_video_operator.reconcilers.composition_events import (
    CompositionEvent,
    MalformedEvent,
    Observation,
    parse_event,
)
from twilio_video_operator.reconcilers.composition_plan import (
    CompositionContext,
    Memory,
    Timing,
    is_ours,
)
from twilio_video_operator.reconcilers.credentials import CredentialsConnector
from twilio_video_operator.reconcilers.notification_executor import Notifier
from twilio_video_operator.reconcilers.notification_subjects import notifications_pending, notify_composition
from twilio_video_operator.reconcilers.reconcile_tracking import (
    ReconcileProgress,
    ReconcileRun,
    Result,
    track_reconcile,
)
from twilio_video_operator.reconcilers.status_tally import StatusTally
from twilio_video_operator.webhooks.channel import CallbackEvent

logger = logging.getLogger(__name__)

KIND = "Composition"
TICK_SECONDS = 10.0
#: Seconds before a deletion without usable credentials, or after a Twilio error, tries again.
DELETE_RETRY_SECONDS = 30.0
GATEWAY_RETRY_SECONDS = 15.0
#: How often :meth:`CompositionController.settled` looks whether the callback backlogs are empty.
SETTLED_POLL_SECONDS = 0.01
#: Values of the ``composition_status`` label (``none``: no Twilio composition yet).
COMPOSITION_STATUS_LABELS = ("enqueued", "processing", "completed", "failed", "deleted", "none")
#: Stalls that only a new generation can lift (the tick leaves such objects alone).
BLOCKING_STALLS = frozenset({Reason.INVALID_SPEC, Reason.SPEC_IMMUTABLE, Reason.REJECTED_BY_TWILIO})

Key = tuple[str, str]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _export_composition_count(composition_status: str, count: int) -> None:
    metrics.COMPOSITIONS_BY_STATUS.labels(composition_status).set(count)


def _log_fields(namespace: str, name: str) -> dict[str, str]:
    return {"namespace": namespace, "object_name": name, "kind": KIND}


def needs_attention(body: Mapping[str, Any]) -> bool:
    """Whether a periodic tick has anything to do for ``body`` (finished objects are left alone)."""
    status = body.get("status") or {}
    metadata = body.get("metadata") or {}
    if status.get("observedGeneration") != metadata.get("generation") or notifications_pending(body):
        return True
    state = status.get("compositionStatus")
    if state in ("failed", "deleted"):
        return False
    if state == "completed":
        wants_delivery = bool(((body.get("spec") or {}).get("delivery") or {}).get("s3"))
        return wants_delivery and not ((status.get("delivery") or {}).get("sha256"))
    return not any(
        c.get("type") == cond.STALLED and c.get("status") == "True" and c.get("reason") in BLOCKING_STALLS
        for c in status.get("conditions") or []
    )


class CompositionController:
    """Reconciles Compositions, applies their status callbacks and finalizes them (one per process)."""

    def __init__(
        self,
        objects: CompositionObjects,
        gateway: TwilioGateway,
        credentials: CredentialsConnector,
        deliverer: S3Deliverer,
        *,
        public_base_url: str,
        name_prefixes: Mapping[str, Sequence[str]] | None = None,
        watch_namespaces: Sequence[str] = (),
        clock: Callable[[], datetime] = utc_now,
        timing: Timing | None = None,
        progress: ReconcileProgress | None = None,
        tick_seconds: float = TICK_SECONDS,
        notifier: Notifier | None = None,
    ) -> None:
        self.objects = objects
        self.notifier = notifier
        self.deliverer = deliverer
        self.watch_namespaces = tuple(watch_namespaces)
        self.clock = clock
        self.timing = timing or Timing()
        self.progress = progress
        self.tick_seconds = tick_seconds
        self.observer = CompositionObserver(
            objects,
            gateway,
            credentials,
            self.memory,
            public_base_url=public_base_url,
            name_prefixes=dict(name_prefixes or {}),
        )
        self._locks = KeyedLocks()
        # The tick of objects that need attention; its intervals are real seconds, whatever ``clock`` says.
        self.queue: WorkQueue[Key] = WorkQueue(self._ticked, name="composition")
        self.memories: dict[str, Memory] = {}
        self.by_sid: dict[str, Key] = {}
        self.backlog: dict[Key, list[CompositionEvent]] = {}
        self.draining: set[Key] = set()
        self.drains: set[asyncio.Task[None]] = set()
        self.statuses: StatusTally[Key] = StatusTally(COMPOSITION_STATUS_LABELS, _export_composition_count)

    def start(self) -> None:
        self.queue.start()

    async def _ticked(self, key: Key, observe: bool) -> None:
        outcome = await self.reconcile(*key, capped=True)
        if outcome.verdict is Verdict.RETRY and outcome.delay is not None:
            self.queue.request(key, after=outcome.delay)

    def _tick_again(self, key: Key, due_in: float | None) -> None:
        at = None if due_in is None else self.queue.now() + timedelta(seconds=due_in)
        self.queue.set_periodic(key, at)

    def memory(self, uid: str) -> Memory:
        return self.memories.setdefault(uid, Memory())

    def export_stalled(self) -> None:
        metrics.COMPOSITIONS_STALLED.set(sum(1 for memory in self.memories.values() if memory.timed_out))

    def index_status(self, namespace: str, name: str, status: CompositionStatus | None) -> None:
        """Remember the object's ``compositionStatus`` (``None``: it is gone) and export the counts."""
        key = (namespace, name)
        if status is None:
            self.statuses.discard(key)
        else:
            self.statuses.set(key, status.composition_status)

    def executor(
        self,
        context: CompositionContext,
        twilio: CompositionsApi | None,
        obj: Mapping[str, Any],
        memory: Memory,
    ) -> CompositionExecutor:
        """The executor of one object's reconcile (``twilio`` None: no credentials, callbacks only)."""
        metadata = obj.get("metadata") or {}
        where = (str(metadata["namespace"]), str(metadata["name"]))

        def written(status: CompositionStatus) -> None:
            if status.sid is not None:
                self.by_sid[status.sid] = where

        ports = self.objects.ports(obj, self.deliverer, written)
        return CompositionExecutor(
            context, twilio=twilio, ports=ports, memory=memory, clock=self.clock, timing=self.timing
        )

    # -- reconcile ------------------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str, *, capped: bool = False) -> Outcome:
        """Bring one Composition forward (serialised per object). ``capped``: take a slot of the work
        queue first (the queue's own reconciles)."""
        lock = self._locks.hold((namespace, name))
        gates = (self.queue.slots, lock) if capped else (lock,)
        async with track_reconcile(KIND, namespace, name, self.progress, waits_for=gates) as run:
            return await self._reconcile(run, namespace, name)

    async def _reconcile(self, run: ReconcileRun, namespace: str, name: str) -> Outcome:
        try:
            obj = await self.objects.get(namespace, name)
        except KUBE_ERRORS as exc:
            run.finish(Result.ERROR, failed=True, due_in=self.tick_seconds)
            return kube_failed("read the object", exc)
        metadata = (obj or {}).get("metadata") or {}
        if obj is None:
            self.index_status(namespace, name, None)
            self.queue.discard((namespace, name))
        if obj is None or metadata.get("deletionTimestamp"):
            run.skip()
            return Outcome.done()
        status = CompositionStatus.model_validate(obj.get("status") or {})
        self.index_status(namespace, name, status)
        if (metadata.get("annotations") or {}).get(PAUSED) == "true":
            self._tick_again((namespace, name), self.tick_seconds)  # notices when the annotation goes
            run.finish(Result.PAUSED)
            return Outcome.done("paused")
        # Before the context: resolving it (the room's ownership) already makes this process's memory.
        first_look = str(metadata.get("uid") or "") not in self.memories
        context, api = await self.observer.context(obj)
        memory = self.memory(context.uid)
        if first_look and status.sid is not None:
            # A composition this process did not create (a restart, a new leader): its callbacks may have
            # gone to no one, so look at Twilio now rather than at the next poll.
            memory.resync_requested = True
        memory.request_resync((metadata.get("annotations") or {}).get(RECONCILE_REQUESTED_AT))
        executor = self.executor(context, api, obj, memory)
        if status.sid is not None:
            self.by_sid[status.sid] = (namespace, name)
        try:
            final, after = await executor.reconcile(status)
        except KUBE_ERRORS as exc:
            run.finish(Result.ERROR, failed=True, due_in=self.tick_seconds)
            return kube_failed("write the status", exc)
        finally:
            self.export_stalled()
        self.index_status(namespace, name, final)
        notify_at = await self.notify(obj, final, api)
        if cond.stall_of(final) is not None:
            result = Result.STALLED
        elif executor.failure is not None:
            result = Result.ERROR
        else:
            result = Result.SUCCESS if after is None else Result.REQUEUE_AFTER
        # The tick reconciles objects that need attention; the others wait for a change.
        looked_at = {**obj, "status": final.model_dump(mode="json", by_alias=True, exclude_none=True)}
        due_in = self.tick_seconds if needs_attention(looked_at) or notify_at is not None else None
        self._tick_again((namespace, name), due_in)
        run.finish(result, failed=executor.failure is not None, due_in=due_in)
        return Outcome.done()

    async def notify(
        self, obj: Mapping[str, Any], status: CompositionStatus, api: TwilioApi | None
    ) -> datetime | None:
        """recordingAvailable / compositionFailed notifications, after the composition's own work; a failure
        here comes back at the next tick and never fails the reconcile."""
        if self.notifier is None:
            return None
        try:
            return await notify_composition(self.notifier, obj, status, api.credentials if api else None)
        except KUBE_ERRORS as exc:
            logger.warning("Composition notifications could not be recorded: %s", kube_problem(exc))
            return self.clock()

    async def settled(self) -> None:
        """Wait until every callback handed over so far was applied, including those a background task
        applies once a busy object is free (tests, orderly shutdown).

        Safe from any event loop: the controller runs on the reconciler's thread, its callers (the HTTP
        side, tests) on another, where the drain tasks cannot be awaited. ``draining`` names each object
        with callbacks not yet applied, from their hand-over to the end of the drain."""
        while self.draining:  # noqa: ASYNC110 - the drains may run on another loop
            await asyncio.sleep(SETTLED_POLL_SECONDS)

    def reconcile_soon(self, namespace: str, name: str) -> None:
        """Reconcile on the work queue now (after a callback that makes delivery possible): never beside
        another reconcile of the object, and retried like any queued one."""
        self.queue.request((namespace, name))

    # -- callbacks --------------------------------------------------------------------------------------

    async def on_callback(self, callback: CallbackEvent) -> None:
        """Fold one verified composition callback into the status of the object it is about.

        Events wait in a per-object backlog. When the object is free they are applied right away (the
        channel's consumer waits, which keeps the queue bounded); while it is busy (a delivery may take
        minutes) one background task applies them once it is free, so other objects are not held up.
        """
        try:
            event = parse_event(callback.params)
        except MalformedEvent as exc:
            metrics.COMPOSITION_CALLBACKS.labels("malformed").inc()
            logger.warning("dropped a malformed composition callback: %s", exc)
            return
        if event.ignored or event.composition_sid is None:
            return
        found = await self._object_of(event.composition_sid, event.room_sid)
        if found is None:
            metrics.COMPOSITION_CALLBACKS.labels("unknown").inc()
            logger.info(
                "composition callback for an unknown composition", extra={"sid": event.composition_sid}
            )
            return
        self.backlog.setdefault(found, []).append(event)
        if found in self.draining:
            return
        self.draining.add(found)
        if not self._locks.busy(found):
            await self._drain(*found)
            return
        task = asyncio.get_running_loop().create_task(self._drain(*found), name=f"callbacks {found}")
        self.drains.add(task)
        task.add_done_callback(self.drains.discard)

    async def _drain(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        try:
            while events := self.backlog.pop(key, None):
                try:
                    await self._apply_callbacks(namespace, name, events)
                except KUBE_ERRORS as exc:
                    logger.warning(
                        "could not apply composition callbacks: %s",
                        kube_problem(exc),
                        extra=_log_fields(*key),
                    )
        finally:
            self.draining.discard(key)

    async def _apply_callbacks(self, namespace: str, name: str, events: list[CompositionEvent]) -> None:
        async with self._locks.hold((namespace, name)):
            obj = await self.objects.get(namespace, name)
            if obj is None or (obj.get("metadata") or {}).get("deletionTimestamp"):
                metrics.COMPOSITION_CALLBACKS.labels("unknown").inc(len(events))
                return
            metadata = obj.get("metadata") or {}
            raw_spec = obj.get("spec") or {}
            spec = None if validate_composition_spec(raw_spec) else CompositionSpec.model_validate(raw_spec)
            context = CompositionContext(
                namespace=namespace,
                name=name,
                uid=str(metadata.get("uid") or ""),
                generation=metadata.get("generation"),
                spec=spec,
            )
            memory = self.memory(context.uid)
            executor = self.executor(context, None, obj, memory)
            initial = status = CompositionStatus.model_validate(obj.get("status") or {})
            entered: list[Observation] = []
            account = await self._account_of(obj, memory)
            for event in events:
                if event.account_sid != account:
                    # Signed, but by another account than the one the composition belongs to.
                    metrics.COMPOSITION_CALLBACKS.labels("unknown").inc()
                    logger.info(
                        "dropped a composition callback of another account",
                        extra={**_log_fields(namespace, name), "sid": event.composition_sid},
                    )
                    continue
                seen = observe_callback(context, status, event, self.clock())
                if seen is None:
                    metrics.COMPOSITION_CALLBACKS.labels("unknown").inc()
                    continue
                status = seen.status
                remember_callback(memory, event, seen, self.clock())
                metrics.COMPOSITION_CALLBACKS.labels("applied" if seen.changed else "stale").inc()
                if seen.entered is not None:
                    entered.append(seen)
            if status != initial:
                await executor.ports.write_status(status)
                self.index_status(namespace, name, status)
            for seen in entered:
                await executor.report(seen)
            self.export_stalled()
        completed = any(seen.entered == "completed" for seen in entered)
        if completed and spec is not None and spec.delivery is not None:
            self.reconcile_soon(namespace, name)
        elif self.notifier is not None and any(seen.entered in ("completed", "failed") for seen in entered):
            self.reconcile_soon(namespace, name)  # to notify

    async def _account_of(self, obj: Mapping[str, Any], memory: Memory) -> str | None:
        """The Twilio account the object's composition belongs to (the one its credentials name)."""
        if memory.account_sid is None:
            with contextlib.suppress(*KUBE_ERRORS):
                await self.observer.context(obj)
        return memory.account_sid

    async def _object_of(self, sid: str, room_sid: str | None) -> tuple[str, str] | None:
        """The object whose composition is ``sid``: known SIDs first, else a search of the objects (an
        object still waiting for its create answer counts when it is the only one pending on the room)."""
        known = self.by_sid.get(sid)
        if known is not None:
            return known
        pending: list[tuple[str, str]] = []
        for namespace in namespaces_to_list(self.watch_namespaces):
            try:
                items = await self.objects.all(namespace)
            except KUBE_ERRORS as exc:
                logger.warning("cannot list Compositions: %s", kube_problem(exc))
                return None
            for item in items:
                metadata, status = item.get("metadata") or {}, item.get("status") or {}
                where = (str(metadata.get("namespace")), str(metadata.get("name")))
                if not matches_patterns(where[0], self.watch_namespaces):
                    continue
                if status.get("sid") == sid:
                    self.by_sid[sid] = where
                    return where
                if (
                    not status.get("sid")
                    and status.get("createPendingAt")
                    and status.get("roomSid") == room_sid
                ):
                    pending.append(where)
        return pending[0] if len(pending) == 1 else None

    # -- deletion -------------------------------------------------------------------------------------

    async def finalize(self, body: Mapping[str, Any]) -> Outcome:
        """Delete the Twilio composition (``deletionPolicy: Delete``); forget the object once done."""
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        uid = str(metadata.get("uid") or "")
        if self.progress is not None:  # no more reconciles, even while the deletion is retried
            self.progress.forget(KIND, namespace, name)
        outcome = Outcome.done("deletionPolicy Retain: the Twilio composition is kept")
        async with self._locks.hold((namespace, name)):
            status = CompositionStatus.model_validate(body.get("status") or {})
            raw_spec = body.get("spec") or {}
            spec = None if validate_composition_spec(raw_spec) else CompositionSpec.model_validate(raw_spec)
            if spec is not None and spec.deletion_policy == "Delete":
                outcome = await self._delete_at_twilio(body, spec, status)
        if outcome.verdict is Verdict.DONE:
            self.forget(namespace, name, uid)
        return outcome

    def forget(self, namespace: str, name: str, uid: str) -> None:
        """The object is gone: drop what this process remembers of it."""
        self.memories.pop(uid, None)
        self.by_sid = {sid: where for sid, where in self.by_sid.items() if where != (namespace, name)}
        self.index_status(namespace, name, None)
        self.queue.discard((namespace, name))
        if self.progress is not None:
            self.progress.forget(KIND, namespace, name)
        self.export_stalled()

    async def _delete_at_twilio(
        self, body: Mapping[str, Any], spec: CompositionSpec, status: CompositionStatus
    ) -> Outcome:
        context, api = await self.observer.context(body)
        if api is None:
            problem = context.credentials_problem[1] if context.credentials_problem else "no credentials"
            return Outcome.retry(f"cannot delete the Twilio composition: {problem}", DELETE_RETRY_SECONDS)
        sid = status.sid
        try:
            if sid is None and status.create_pending_at is not None and status.room_sid:
                recorded = context.recorded_spec or spec
                listed = await api.list_compositions(status.room_sid)
                found = [
                    info
                    for info in listed
                    if is_ours(info, recorded, status.room_sid, context.uid, status.create_pending_at)
                ]
                sid = found[0].sid if found else None
            if sid is None:
                return Outcome.done("no Twilio composition to delete")
            deleted = await api.delete_composition(sid)
        except AuthError as exc:
            await self.objects.post_event(
                body, "Warning", Reason.AUTH_FAILED, f"not deleted at Twilio: {exc}"
            )
            return Outcome.give_up("the credentials may not delete the composition")
        except GatewayError as exc:
            return Outcome.retry(f"deleting the Twilio composition failed: {exc}", GATEWAY_RETRY_SECONDS)
        message = (
            f"Deleted Twilio composition {sid}." if deleted else f"Twilio composition {sid} was already gone."
        )
        await self.objects.post_event(body, "Normal", "Deleted", message)
        return Outcome.done(message)

    async def close(self) -> None:
        """Stop this kind's work; the shared Kubernetes client and gateway are released by the caller."""
        await self.queue.stop(also=tuple(self.drains))
        await self.deliverer.close()
