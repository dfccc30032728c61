"""kopf adapters for Composition: Kubernetes reads and writes behind the reconciler's ports.

Create, update, resume and a periodic timer run the same reconcile, serialised per object: the object is
read afresh, the room and credentials are resolved, and
:class:`~twilio_video_operator.reconcilers.composition.CompositionExecutor` takes the steps. Status is
written through the status subresource at each step (never through kopf's deferred patch), so the
create-pending marker is stored before Twilio is asked for a composition.

Status callbacks arrive on the ``composition-events`` channel of the operator's webhook hub; each one is
folded into the status of the object whose composition it names, under the same per-object lock. When
the media becomes available the reconcile runs at once to deliver it.

Deleting the object deletes the Twilio composition with ``deletionPolicy: Delete`` (a 404 counts as
done) and leaves it with ``Retain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import kopf

from twilio_video_operator import API_GROUP, API_VERSION, metrics
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.delivery import DeliveryError, DeliveryReason, S3Credentials, S3Deliverer
from twilio_video_operator.gateway import (
    AuthError,
    CredentialSet,
    GatewayError,
    TwilioApi,
    TwilioGateway,
)
from twilio_video_operator.kube import COMPOSITIONS, SECRETS, VIDEOROOMS, KubeApiError, KubeClient
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.logs import register_secret
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
    EventType,
    Ports,
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
    RoomTarget,
    Timing,
    is_ours,
)
from twilio_video_operator.reconcilers.credentials import (
    Connection,
    CredentialsConnector,
    SecretData,
)
from twilio_video_operator.reconcilers.reconcile_tracking import (
    ReconcileProgress,
    ReconcileRun,
    Result,
    track_reconcile,
)
from twilio_video_operator.reconcilers.status_tally import StatusTally
from twilio_video_operator.reconcilers.tenancy import name_rule
from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.channel import CallbackEvent
from twilio_video_operator.webhooks.composition_events import CHANNEL, composition_callback_url
from twilio_video_operator.webhooks.hub import WebhookHub

logger = logging.getLogger(__name__)

PLURAL = "compositions"
KIND = "Composition"
TICK_SECONDS = 10.0
#: Values of the ``composition_status`` label (``none``: no Twilio composition yet).
COMPOSITION_STATUS_LABELS = ("enqueued", "processing", "completed", "failed", "deleted", "none")
#: The spec the Twilio composition was created from (JSON), recorded before the create call.
CREATED_SPEC_ANNOTATION = f"{API_GROUP}/created-spec"


def _export_composition_count(composition_status: str, count: int) -> None:
    metrics.COMPOSITIONS_BY_STATUS.labels(composition_status).set(count)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _kube_problem(exc: BaseException) -> str:
    if isinstance(exc, KubeApiError):
        return f"{exc.status} {exc.reason}"
    return type(exc).__name__


def _log_fields(namespace: str, name: str) -> dict[str, str]:
    return {"namespace": namespace, "object_name": name, "kind": KIND}


# ------------------------------------------------------------------------------------------ runtime


@dataclass
class CompositionRuntime:
    """What the Composition handlers share within one operator process (kept in kopf's memo)."""

    kube: KubeClient
    gateway: TwilioGateway
    settings: Settings
    deliverer: S3Deliverer
    hub: WebhookHub
    clock: Callable[[], datetime] = utc_now
    timing: Timing = field(default_factory=Timing)
    progress: ReconcileProgress | None = None
    tick_seconds: float = TICK_SECONDS
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    memories: dict[str, Memory] = field(default_factory=dict)
    by_sid: dict[str, tuple[str, str]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    backlog: dict[tuple[str, str], list[CompositionEvent]] = field(default_factory=dict)
    draining: set[tuple[str, str]] = field(default_factory=set)
    drains: set[asyncio.Task[None]] = field(default_factory=set)
    statuses: StatusTally[tuple[str, str]] = field(
        default_factory=lambda: StatusTally(COMPOSITION_STATUS_LABELS, _export_composition_count)
    )
    _connector: CredentialsConnector | None = None

    @property
    def connector(self) -> CredentialsConnector:
        if self._connector is None:
            settings = self.settings
            operator = CredentialSet(
                account_sid=settings.TWILIO_ACCOUNT_SID,
                api_key=settings.TWILIO_API_KEY,
                api_secret=settings.TWILIO_API_SECRET,
                auth_token=settings.TWILIO_AUTH_TOKEN,
            )

            async def check_token(creds: CredentialSet) -> None:
                await self.gateway.api(creds).verify_auth_token()

            def redact(creds: CredentialSet) -> None:
                for value in creds.secret_values:
                    register_secret(value)

            self._connector = CredentialsConnector(
                operator,
                self._read_secret,
                check_token,
                on_read=redact,
                on_accepted=lambda source, creds: self.hub.accounts.accept(
                    source, creds.account_sid, creds.auth_token
                ),
            )
        return self._connector

    async def _read_secret(self, namespace: str, name: str) -> SecretData | None:
        secret = await self.kube.get(SECRETS, namespace, name)
        if secret is None:
            return None
        version = str((secret.get("metadata") or {}).get("resourceVersion", ""))
        return SecretData(resource_version=version, data=decode_secret_data(secret))

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())

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

    # -- reading the world --------------------------------------------------------------------------

    async def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(COMPOSITIONS, namespace, name)
        except (KubeApiError, OSError) as exc:
            raise kopf.TemporaryError(f"cannot read the object: {_kube_problem(exc)}", delay=10) from None

    async def context(self, obj: Mapping[str, Any]) -> tuple[CompositionContext, TwilioApi | None]:
        """The reconcile context of ``obj`` and the Twilio operations to use (``None``: no credentials)."""
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        uid = str(metadata.get("uid") or "")
        raw_spec = obj.get("spec") or {}
        problems = tuple(validate_composition_spec(raw_spec))
        spec = None if problems else CompositionSpec.model_validate(raw_spec)
        status = CompositionStatus.model_validate(obj.get("status") or {})
        created_spec = _created_spec(metadata)
        base = CompositionContext(
            namespace=namespace,
            name=name,
            uid=uid,
            generation=metadata.get("generation"),
            spec=spec,
            spec_problems=problems,
            created_spec=created_spec,
            callback_url=composition_callback_url(self.settings.PUBLIC_BASE_URL, namespace, name, uid),
        )
        if spec is None:
            return base, None
        room, room_obj = await self._room(namespace, spec, status)
        connection = await self._credentials(namespace, spec, room_obj, room.sid)
        if connection.credentials is None:
            problem = connection.problem or (Reason.CREDENTIALS_NOT_FOUND, "no credentials")
            return replace(base, room=room, credentials_problem=problem), None
        api = self.gateway.api(connection.credentials)
        self.memory(uid).account_sid = connection.credentials.account_sid
        base = replace(base, room=room)
        if status.sid is None and status.create_pending_at is None and room.sid is not None:
            try:
                why = await self._room_problem(namespace, room.sid, connection, api, self.memory(uid))
            except GatewayError as exc:
                return replace(base, credentials_problem=(Reason.TWILIO_UNAVAILABLE, str(exc))), None
            base = replace(base, room_problem=why)
        return base, api

    async def _room_problem(
        self, namespace: str, room_sid: str, connection: Connection, api: TwilioApi, memory: Memory
    ) -> str | None:
        """Why ``room_sid`` may not be composed by an object of ``namespace`` (``None``: it may).

        Checked at Twilio once, before the first create: a room of the namespace's own account, or on the
        operator's shared account a room whose unique name the namespace may use. A VideoRoom's status
        alone proves nothing, since whoever may write it could name any room.
        """
        if memory.room_verified == room_sid:
            return None
        room = await api.fetch_room(room_sid)
        rule = name_rule(
            namespace, shared_account=connection.shared, extra_prefixes=self.settings.TENANT_NAME_PREFIXES
        )
        if room is None:
            where = "the operator's shared account" if connection.shared else "the namespace's own account"
            return (
                f"Twilio room {room_sid} does not exist in {where}; only rooms of this namespace can be "
                "composed."
            )
        if not rule.allows(room.unique_name):
            return (
                f"Twilio room {room_sid} ({room.unique_name!r}) is not a room of namespace {namespace}: on "
                f"the operator's shared account it may compose only rooms with {rule.describe()}."
            )
        memory.room_verified = room_sid
        return None

    async def _room(
        self, namespace: str, spec: CompositionSpec, status: CompositionStatus
    ) -> tuple[RoomTarget, dict[str, Any] | None]:
        if spec.room_ref is None:
            return RoomTarget(sid=status.room_sid or spec.room_sid), None
        ref = spec.room_ref.name
        try:
            room_obj = await self.kube.get(VIDEOROOMS, namespace, ref)
        except (KubeApiError, OSError) as exc:
            return RoomTarget(
                status.room_sid, waiting=f"Cannot read VideoRoom {ref}: {_kube_problem(exc)}"
            ), None
        room_status = (room_obj or {}).get("status") or {}
        current = room_status.get("sid")
        sid = status.room_sid or current
        ended_at = None
        if sid is not None and current == sid and room_status.get("endedAt"):
            ended_at = _parse_time(str(room_status["endedAt"]))
        if room_obj is None:
            return RoomTarget(sid, waiting=f"VideoRoom {ref} does not exist."), None
        waiting = None if sid else f"VideoRoom {ref} has no Twilio room yet."
        return RoomTarget(sid, ended_at=ended_at, waiting=waiting), room_obj

    async def _credentials(
        self,
        namespace: str,
        spec: CompositionSpec,
        room_obj: Mapping[str, Any] | None,
        room_sid: str | None,
    ) -> Connection:
        """The Twilio credentials of the composed room's account: the ``credentialsRef`` of the VideoRoom
        (``roomRef``, or for a ``roomSid`` the namespace's VideoRoom whose status names that room), else
        the operator's own."""
        if room_obj is None and room_sid is not None:
            room_obj = await self._room_naming(namespace, room_sid)
        ref = ((room_obj or {}).get("spec") or {}).get("credentialsRef") or {}
        secret_name = ref.get("name") if isinstance(ref, Mapping) else None
        try:
            return await self.connector.connect(namespace, str(secret_name) if secret_name else None)
        except (KubeApiError, OSError) as exc:
            message = f"Cannot read Secret {secret_name}: {_kube_problem(exc)}"
            return Connection(None, f"{secret_name}@unreadable", (Reason.CREDENTIALS_NOT_FOUND, message))

    async def _room_naming(self, namespace: str, room_sid: str) -> dict[str, Any] | None:
        """The VideoRoom of ``namespace`` whose status names ``room_sid`` (current or a recent session)."""
        try:
            rooms = await self.kube.list(VIDEOROOMS, namespace)
        except (KubeApiError, OSError):
            return None
        for item in rooms:
            status = item.get("status") or {}
            recent = (status.get("sessions") or {}).get("recentSids") or []
            if status.get("sid") == room_sid or room_sid in recent:
                return item
        return None

    async def s3_credentials(self, namespace: str, secret_name: str) -> S3Credentials:
        try:
            secret = await self.kube.get(SECRETS, namespace, secret_name)
        except (KubeApiError, OSError) as exc:
            raise DeliveryError(
                DeliveryReason.CREDENTIALS_NOT_FOUND,
                f"cannot read Secret {secret_name}: {_kube_problem(exc)}",
                retryable=True,
            ) from None
        if secret is None:
            raise DeliveryError(
                DeliveryReason.CREDENTIALS_NOT_FOUND, f"Secret {secret_name} does not exist", retryable=False
            )
        creds = S3Credentials.from_secret_data(decode_secret_data(secret), source=f"Secret {secret_name}")
        for value in creds.secret_values:
            register_secret(value)
        return creds

    # -- ports ----------------------------------------------------------------------------------------

    def executor(
        self,
        context: CompositionContext,
        twilio: CompositionsApi | None,
        obj: Mapping[str, Any],
        memory: Memory,
    ) -> CompositionExecutor:
        """The executor of one object's reconcile (``twilio`` None: no credentials, callbacks only)."""
        return CompositionExecutor(
            context, twilio=twilio, ports=self.ports(obj), memory=memory, clock=self.clock, timing=self.timing
        )

    def ports(self, obj: Mapping[str, Any]) -> Ports:
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])

        async def write_status(status: CompositionStatus) -> None:
            body = status.model_dump(mode="json", by_alias=True)  # None values remove fields (merge patch)
            await self.kube.patch_status(COMPOSITIONS, namespace, name, body)
            if status.sid is not None:
                self.by_sid[status.sid] = (namespace, name)

        async def record_spec(spec: Mapping[str, Any] | None) -> None:
            value = json.dumps(spec, sort_keys=True, separators=(",", ":")) if spec is not None else None
            patch = {"metadata": {"annotations": {CREATED_SPEC_ANNOTATION: value}}}
            await self.kube.patch(COMPOSITIONS, namespace, name, patch)

        async def event(kind: EventType, reason: str, message: str) -> None:
            await post_event(self.kube, obj, kind, reason, message)

        async def s3_credentials(secret_name: str) -> S3Credentials:
            return await self.s3_credentials(namespace, secret_name)

        return Ports(
            write_status=write_status,
            record_spec=record_spec,
            post_event=event,
            s3_credentials=s3_credentials,
            deliverer=self.deliverer,
        )

    # -- reconcile ------------------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring one Composition forward (serialised per object); seconds until it wants another look."""
        lock = self.lock(namespace, name)
        async with track_reconcile(KIND, namespace, name, self.progress, waits_for=(lock,)) as run:
            return await self._reconcile(run, namespace, name)

    async def _reconcile(self, run: ReconcileRun, namespace: str, name: str) -> float | None:
        obj = await self.read(namespace, name)
        metadata = (obj or {}).get("metadata") or {}
        if obj is None:
            self.index_status(namespace, name, None)
        if obj is None or metadata.get("deletionTimestamp"):
            run.skip()
            return None
        status = CompositionStatus.model_validate(obj.get("status") or {})
        self.index_status(namespace, name, status)
        if (metadata.get("annotations") or {}).get(PAUSED) == "true":
            run.finish(Result.PAUSED)
            return None
        # Before the context: resolving it (the room's ownership) already makes this process's memory.
        first_look = metadata.get("uid") not in self.memories
        context, api = await self.context(obj)
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
        except (KubeApiError, OSError) as exc:
            raise kopf.TemporaryError(f"cannot write the status: {_kube_problem(exc)}", delay=10) from None
        finally:
            self.export_stalled()
        self.index_status(namespace, name, final)
        if cond.stall_of(final) is not None:
            result = Result.STALLED
        elif executor.failure is not None:
            result = Result.ERROR
        else:
            result = Result.SUCCESS if after is None else Result.REQUEUE_AFTER
        # The tick reconciles objects that need attention; the others wait for a change.
        looked_at = {**obj, "status": final.model_dump(mode="json", by_alias=True, exclude_none=True)}
        due_in = self.tick_seconds if needs_attention(looked_at) else None
        run.finish(result, failed=executor.failure is not None, due_in=due_in)
        return after

    async def settled(self) -> None:
        """Wait until every callback handed over so far was applied (tests, orderly shutdown)."""
        while self.drains:
            await asyncio.gather(*self.drains, return_exceptions=True)

    def reconcile_soon(self, namespace: str, name: str) -> None:
        """Reconcile in the background (after a callback that makes delivery possible)."""

        async def run() -> None:
            try:
                await self.reconcile(namespace, name)
            except kopf.TemporaryError as exc:
                logger.warning(
                    "reconcile after a callback failed: %s", exc, extra=_log_fields(namespace, name)
                )

        task = asyncio.get_running_loop().create_task(run(), name=f"composition {namespace}/{name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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
        if not self.lock(*found).locked():
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
                except (KubeApiError, OSError) as exc:
                    logger.warning(
                        "could not apply composition callbacks: %s",
                        _kube_problem(exc),
                        extra=_log_fields(*key),
                    )
        finally:
            self.draining.discard(key)

    async def _apply_callbacks(self, namespace: str, name: str, events: list[CompositionEvent]) -> None:
        async with self.lock(namespace, name):
            obj = await self.kube.get(COMPOSITIONS, namespace, name)
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

    async def _account_of(self, obj: Mapping[str, Any], memory: Memory) -> str | None:
        """The Twilio account the object's composition belongs to (the one its credentials name)."""
        if memory.account_sid is None:
            with contextlib.suppress(kopf.TemporaryError):
                await self.context(obj)
        return memory.account_sid

    async def _object_of(self, sid: str, room_sid: str | None) -> tuple[str, str] | None:
        """The object whose composition is ``sid``: known SIDs first, else a search of the objects (an
        object still waiting for its create answer counts when it is the only one pending on the room)."""
        known = self.by_sid.get(sid)
        if known is not None:
            return known
        pending: list[tuple[str, str]] = []
        namespaces: list[str | None] = [*self.settings.watch_namespaces] or [None]
        for namespace in namespaces:
            try:
                items = await self.kube.list(COMPOSITIONS, namespace)
            except (KubeApiError, OSError) as exc:
                logger.warning("cannot list Compositions: %s", _kube_problem(exc))
                return None
            for item in items:
                metadata, status = item.get("metadata") or {}, item.get("status") or {}
                where = (str(metadata.get("namespace")), str(metadata.get("name")))
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

    async def on_deleted(self, body: Mapping[str, Any]) -> None:
        """Delete the Twilio composition (``deletionPolicy: Delete``); forget the object either way."""
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        uid = str(metadata.get("uid") or "")
        if self.progress is not None:  # no more reconciles, even while the deletion is retried
            self.progress.forget(KIND, namespace, name)
        async with self.lock(namespace, name):
            status = CompositionStatus.model_validate(body.get("status") or {})
            raw_spec = body.get("spec") or {}
            spec = None if validate_composition_spec(raw_spec) else CompositionSpec.model_validate(raw_spec)
            if spec is not None and spec.deletion_policy == "Delete":
                await self._delete_at_twilio(body, spec, status)
        self.forget(namespace, name, uid)

    def forget(self, namespace: str, name: str, uid: str) -> None:
        """The object is gone: drop what this process remembers of it."""
        self.memories.pop(uid, None)
        self.by_sid = {sid: where for sid, where in self.by_sid.items() if where != (namespace, name)}
        self.locks.pop((namespace, name), None)
        self.index_status(namespace, name, None)
        if self.progress is not None:
            self.progress.forget(KIND, namespace, name)
        self.export_stalled()

    async def _delete_at_twilio(
        self, body: Mapping[str, Any], spec: CompositionSpec, status: CompositionStatus
    ) -> None:
        context, api = await self.context(body)
        if api is None:
            problem = context.credentials_problem[1] if context.credentials_problem else "no credentials"
            raise kopf.TemporaryError(f"cannot delete the Twilio composition: {problem}", delay=30)
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
                return
            deleted = await api.delete_composition(sid)
        except AuthError as exc:
            await post_event(self.kube, body, "Warning", Reason.AUTH_FAILED, f"not deleted at Twilio: {exc}")
            raise kopf.PermanentError("the credentials may not delete the composition") from None
        except GatewayError as exc:
            raise kopf.TemporaryError(f"deleting the Twilio composition failed: {exc}", delay=15) from None
        message = (
            f"Deleted Twilio composition {sid}." if deleted else f"Twilio composition {sid} was already gone."
        )
        await post_event(self.kube, body, "Normal", "Deleted", message)

    async def close(self) -> None:
        """Stop this kind's work; the shared Kubernetes client and gateway are released by the caller."""
        for task in [*self.tasks, *self.drains]:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.deliverer.close()


def _created_spec(metadata: Mapping[str, Any]) -> dict[str, Any] | None:
    text = (metadata.get("annotations") or {}).get(CREATED_SPEC_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def needs_attention(body: Mapping[str, Any]) -> bool:
    """Whether a periodic tick has anything to do for ``body`` (finished objects are left alone)."""
    status = body.get("status") or {}
    metadata = body.get("metadata") or {}
    if status.get("observedGeneration") != metadata.get("generation"):
        return True
    state = status.get("compositionStatus")
    if state in ("failed", "deleted"):
        return False
    if state == "completed":
        wants_delivery = bool(((body.get("spec") or {}).get("delivery") or {}).get("s3"))
        return wants_delivery and not ((status.get("delivery") or {}).get("sha256"))
    return not any(
        c.get("type") == cond.STALLED and c.get("status") == "True" and c.get("reason") in _BLOCKING_STALLS
        for c in status.get("conditions") or []
    )


#: Stalls that only a new generation can lift (the tick leaves such objects alone).
_BLOCKING_STALLS = frozenset({Reason.INVALID_SPEC, Reason.SPEC_IMMUTABLE, Reason.REJECTED_BY_TWILIO})


# ------------------------------------------------------------------------------------------ handlers


def register_handlers(
    registry: kopf.OperatorRegistry,
    *,
    clock: Callable[[], datetime] = utc_now,
    tick_seconds: float = TICK_SECONDS,
    timing: Timing | None = None,
    deliverer_options: Mapping[str, Any] | None = None,
    on_start: Callable[[CompositionRuntime], None] | None = None,
) -> None:
    """Register the Composition handlers on ``registry``; the arguments exist for tests (``on_start``
    receives the runtime once the operator has started)."""
    resource = (API_GROUP, API_VERSION, PLURAL)

    @kopf.on.startup(registry=registry, id="composition-startup")
    async def startup(memo: Any, settings: kopf.OperatorSettings, **_: Any) -> None:
        context: OperatorContext = memo.operator
        runtime = CompositionRuntime(
            kube=context.kube,
            gateway=context.gateway,  # one concurrency cap for every kind
            settings=context.settings,
            deliverer=S3Deliverer(
                allowed_endpoints=context.settings.delivery_allowed_endpoints,
                **(deliverer_options or {}),
            ),
            hub=context.hub,
            clock=clock,
            timing=timing or Timing(),
            progress=context.progress,
            tick_seconds=tick_seconds,
        )
        memo.compositions = runtime
        runtime.hub.channel(CHANNEL).attach(runtime.on_callback)
        if on_start is not None:
            on_start(runtime)

    @kopf.on.cleanup(registry=registry, id="composition-cleanup")
    async def cleanup(memo: Any, **_: Any) -> None:
        runtime: CompositionRuntime | None = memo.get("compositions")
        if runtime is None:
            return
        await runtime.hub.channel(CHANNEL).detach()
        await runtime.close()

    @kopf.on.resume(*resource, registry=registry, id="composition-resume")
    @kopf.on.create(*resource, registry=registry, id="composition-create")
    @kopf.on.update(*resource, registry=registry, id="composition-update")
    async def changed(memo: Any, body: kopf.Body, **_: Any) -> None:
        metadata = body.get("metadata") or {}
        await memo.compositions.reconcile(str(metadata["namespace"]), str(metadata["name"]))

    @kopf.timer(*resource, registry=registry, id="composition-tick", interval=tick_seconds)
    async def tick(memo: Any, body: kopf.Body, **_: Any) -> None:
        if needs_attention(body):
            metadata = body.get("metadata") or {}
            await memo.compositions.reconcile(str(metadata["namespace"]), str(metadata["name"]))

    @kopf.on.delete(*resource, registry=registry, id="composition-delete")
    async def deleted(memo: Any, body: kopf.Body, **_: Any) -> None:
        await memo.compositions.on_deleted(dict(body))

    def vanished(type: str | None, **_: Any) -> bool:
        return type == "DELETED"

    # Normally on_deleted forgets the object; this covers one that disappears without the delete handler
    # (its finalizer removed by hand).
    @kopf.on.event(*resource, registry=registry, id="composition-gone", when=vanished)
    async def gone(memo: Any, body: kopf.Body, **_: Any) -> None:
        runtime: CompositionRuntime | None = memo.get("compositions")
        metadata = body.get("metadata") or {}
        if runtime is not None:
            runtime.forget(str(metadata["namespace"]), str(metadata["name"]), str(metadata.get("uid") or ""))
