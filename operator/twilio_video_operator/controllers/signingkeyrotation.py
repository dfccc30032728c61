"""The SigningKeyRotation controller: observe the object, plan and act with the rotation executor, report.

Every trigger (create, update, resume, an annotation, the periodic tick) runs the same reconcile, serialised
per object: the object is read afresh, its credentials come from the connector, and
:class:`~twilio_video_operator.reconcilers.signingkeyrotation.RotationExecutor` takes the planned steps
(:func:`~twilio_video_operator.reconcilers.signingkeyrotation_plan.plan_step`). Status is written through the
status subresource at each step, so the create-pending marker is stored before Twilio is asked for a key.

Deleting the object revokes its keys (``deletionPolicy: Revoke``) or keeps them and releases the Secret so
that it survives (``Retain``). A spec that no longer validates does not stop that: deletion reads the fields
it needs on their own, and falls back to ``Retain`` (see
:func:`~twilio_video_operator.models.signingkeyrotation.spec_for_deletion`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio_video_operator import metrics
from twilio_video_operator.controllers.keyed_locks import KeyedLocks
from twilio_video_operator.controllers.outcome import Outcome, Verdict, kube_failed
from twilio_video_operator.controllers.work_queue import WorkQueue
from twilio_video_operator.gateway import AuthError, GatewayError, TwilioGateway
from twilio_video_operator.kube import SIGNINGKEYROTATIONS, KubeClient
from twilio_video_operator.kube.errors import KUBE_ERRORS, kube_problem
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.rotation_secret import KubeSecretStore
from twilio_video_operator.models import ConditionType, Reason, get_condition
from twilio_video_operator.models import annotations as object_annotations
from twilio_video_operator.models.signingkeyrotation import (
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
    spec_for_deletion,
    validate_signingkeyrotation_spec,
)
from twilio_video_operator.reconcilers.credentials import Connection, CredentialsConnector
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress, Result, track_reconcile
from twilio_video_operator.reconcilers.signingkeyrotation import (
    EventType,
    KeyMaterial,
    KeysApi,
    RotationContext,
    RotationExecutor,
    RotationReport,
    SecretContents,
    SecretStoreError,
    UnavailableKeys,
    describe_error,
    revoke_all,
)
from twilio_video_operator.reconcilers.signingkeyrotation_plan import (
    BackoffPolicy,
    Slot,
    default_friendly_name_prefix,
    owned_name_matcher,
)

logger = logging.getLogger(__name__)

KIND = "SigningKeyRotation"
TICK_SECONDS = 15.0
#: Seconds before a deletion that lacks usable credentials or met a Twilio error tries again.
REVOKE_RETRY_SECONDS = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class _NoSecret:
    """Stands in for the Secret store while the spec is invalid (there may be no secretName to use)."""

    async def read(self) -> SecretContents | None:
        return None

    async def write(self, account_sid: str, keys: Mapping[Slot, KeyMaterial]) -> None:
        raise SecretStoreError("the spec is invalid")


class SigningKeyRotationController:
    """Reconciles and finalizes SigningKeyRotations of one operator process."""

    def __init__(
        self,
        kube: KubeClient,
        gateway: TwilioGateway,
        credentials: CredentialsConnector,
        *,
        clock: Callable[[], datetime] = utc_now,
        backoff: BackoffPolicy | None = None,
        progress: ReconcileProgress | None = None,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        self.kube = kube
        self.gateway = gateway
        self.credentials = credentials
        self.clock = clock
        self.backoff = backoff or BackoffPolicy()
        self.progress = progress
        self.tick_seconds = tick_seconds
        self._locks = KeyedLocks()
        # The periodic tick of every object; its intervals are real seconds, whatever ``clock`` says.
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue(self._ticked, name="signingkeyrotation")
        self._resync_requests: dict[tuple[str, str], str | None] = {}
        """The reconcile-requested-at value last seen per object (None: seen without one)."""

    # -- triggers ------------------------------------------------------------------------------------

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()

    async def _ticked(self, key: tuple[str, str], observe: bool) -> None:
        outcome = await self.reconcile(*key, capped=True)
        if outcome.verdict is Verdict.RETRY and outcome.delay is not None:
            self.queue.request(key, after=outcome.delay)

    def needs_prompt_reconcile(self, body: Mapping[str, Any]) -> bool:
        """Whether the object carries a rotate or resync request not acted upon yet."""
        metadata = body.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        rotate = annotations.get(object_annotations.ROTATE_REQUESTED_AT)
        resync = annotations.get(object_annotations.RECONCILE_REQUESTED_AT)
        # The first sight of an object (operator start) is reconciled by resume/create anyway; after that,
        # any new value asks for a reconcile, the object's first one included.
        known = key in self._resync_requests
        seen_resync = self._resync_requests.get(key)
        self._resync_requests[key] = resync
        if known and resync is not None and resync != seen_resync:
            return True
        handled = ((body.get("status") or {}).get("lastRotateRequest")) or ""
        return bool(rotate and rotate.strip() and rotate.strip() != handled)

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone: drop what this process remembers of it."""
        self._resync_requests.pop((namespace, name), None)
        self.queue.discard((namespace, name))
        _forget_metrics(namespace, name)
        if self.progress is not None:
            self.progress.forget(KIND, namespace, name)

    # -- reconcile -----------------------------------------------------------------------------------

    async def reconcile(self, namespace: str, name: str, *, capped: bool = False) -> Outcome:
        """Bring one object forward as far as its schedule allows; it is due again one tick later.
        ``capped``: take a slot of the work queue first (the queue's own reconciles)."""
        tick = self.tick_seconds
        lock = self._locks.hold((namespace, name))
        gates = (self.queue.slots, lock) if capped else (lock,)
        async with track_reconcile(
            KIND, namespace, name, self.progress, due_in_after_error=tick, waits_for=gates
        ) as run:
            try:
                obj = await self.kube.get(SIGNINGKEYROTATIONS, namespace, name)
            except KUBE_ERRORS as exc:
                run.finish(Result.ERROR, failed=True, due_in=tick)
                return kube_failed("read the object", exc)
            metadata = (obj or {}).get("metadata") or {}
            if obj is None or metadata.get("deletionTimestamp"):
                run.skip()
                if obj is None:
                    self.forget(namespace, name)
                return Outcome.done()
            # Due again one tick later, whatever happens now (a paused object too: the tick notices when
            # the annotation goes).
            self.queue.set_periodic((namespace, name), self.queue.now() + timedelta(seconds=tick))
            if (metadata.get("annotations") or {}).get(object_annotations.PAUSED) == "true":
                run.finish(Result.PAUSED)
                return Outcome.done("paused")
            executor = await self._executor(obj)
            status = SigningKeyRotationStatus.model_validate(obj.get("status") or {})
            try:
                final, outcome = await executor.reconcile(status)
            except KUBE_ERRORS as exc:
                run.finish(Result.ERROR, failed=True, due_in=tick)
                return kube_failed("write the status", exc)
            # An error: a failed step, or a new stall (invalid spec, refused credentials).
            failed = outcome.error is not None or (
                outcome.stall is not None and _stall_of(final) != _stall_of(status)
            )
            run.finish(_result(outcome), failed=failed, due_in=tick)
        if outcome.steps:
            logger.info(
                "signing key rotation: %s",
                "; ".join(outcome.steps),
                extra={"namespace": namespace, "object_name": name, "kind": KIND, "revision": final.revision},
            )
        self._export_metrics(namespace, name, final)
        return Outcome.done()

    async def _connect(self, namespace: str, spec: SigningKeyRotationSpec) -> Connection:
        """The credentials that manage keys for this object (an Auth Token alone will do)."""
        ref = spec.credentials_ref.name if spec.credentials_ref is not None else None
        try:
            return await self.credentials.connect(namespace, ref, require_api_key=False)
        except KUBE_ERRORS as exc:
            message = f"Cannot read Secret {ref}: {kube_problem(exc)}"
            return Connection(
                None, f"{ref}@unreadable", (Reason.CREDENTIALS_NOT_FOUND, message), transient=True
            )

    async def _executor(self, obj: Mapping[str, Any]) -> RotationExecutor:
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        raw_spec = obj.get("spec") or {}
        problems = tuple(validate_signingkeyrotation_spec(raw_spec))
        spec = None if problems else SigningKeyRotationSpec.model_validate(raw_spec)
        keys: KeysApi
        store: Any
        fingerprint: str | None = None
        account_sid = self.credentials.operator.account_sid
        if spec is None:
            keys, store = UnavailableKeys("the spec is invalid"), _NoSecret()
        else:
            store = KubeSecretStore(self.kube, obj, spec.secret_name)
            connection = await self._connect(namespace, spec)
            creds = connection.credentials
            if creds is None:
                reason, message = connection.problem or (Reason.CREDENTIALS_NOT_FOUND, "no credentials")
                keys = UnavailableKeys(message, reason)
            else:
                keys, fingerprint, account_sid = self.gateway.api(creds), creds.fingerprint, creds.account_sid
        context = RotationContext(
            namespace=namespace,
            name=name,
            uid=metadata.get("uid"),
            generation=metadata.get("generation"),
            spec=spec,
            spec_problems=problems,
            rotate_request=(metadata.get("annotations") or {}).get(object_annotations.ROTATE_REQUESTED_AT),
            account_sid=account_sid,
            credentials_fingerprint=fingerprint,
        )

        async def write_status(status: SigningKeyRotationStatus) -> None:
            body = status.model_dump(mode="json", by_alias=True)  # None values remove fields (merge patch)
            await self.kube.patch_status(SIGNINGKEYROTATIONS, namespace, name, body)

        async def event(kind: EventType, reason: str, message: str) -> None:
            await post_event(self.kube, obj, kind, reason, message)

        return RotationExecutor(
            context,
            keys=keys,
            store=store,
            write_status=write_status,
            post_event=event,
            clock=self.clock,
            backoff=self.backoff,
        )

    def _export_metrics(self, namespace: str, name: str, status: SigningKeyRotationStatus) -> None:
        activated = status.last_rotation_time
        if activated is not None and status.active_key_sid:
            clock = self.clock
            metrics.SIGNING_KEY_AGE.labels(namespace, name).set_function(
                lambda: max(0.0, (clock() - activated).total_seconds())
            )
        if status.next_rotation_time is not None:
            metrics.SIGNING_KEY_NEXT_ROTATION.labels(namespace, name).set(
                status.next_rotation_time.timestamp()
            )

    # -- deletion ------------------------------------------------------------------------------------

    async def finalize(self, body: Mapping[str, Any]) -> Outcome:
        """Revoke every key the object created (``Revoke``), or release its Secret (``Retain``)."""
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        _forget_metrics(namespace, name)
        if self.progress is not None:  # no more reconciles, even while the deletion is retried
            self.progress.forget(KIND, namespace, name)
        async with self._locks.hold((namespace, name)):
            try:
                latest = await self.kube.get(SIGNINGKEYROTATIONS, namespace, name)
            except KUBE_ERRORS as exc:
                return kube_failed("read the object", exc)
            obj: Mapping[str, Any] = latest if latest is not None else body  # the latest status, if there
            spec = spec_for_deletion(obj.get("spec"))
            if spec is None:
                message = "the Secret and the keys were left as they are: spec.secretName is not valid"
                await post_event(self.kube, obj, "Warning", Reason.INVALID_SPEC, message)
                outcome = Outcome.done(message)
            elif spec.deletion_policy == "Retain":
                outcome = await self._release_secret(obj, spec)
            else:
                outcome = await self._revoke_keys(obj, spec)
        if outcome.verdict is not Verdict.RETRY:
            self.forget(namespace, name)
        return outcome

    async def _release_secret(self, obj: Mapping[str, Any], spec: SigningKeyRotationSpec) -> Outcome:
        try:
            await KubeSecretStore(self.kube, obj, spec.secret_name).release()
        except KUBE_ERRORS as exc:
            return kube_failed("release the Secret", exc)
        return Outcome.done("the Secret was released")

    async def _revoke_keys(self, obj: Mapping[str, Any], spec: SigningKeyRotationSpec) -> Outcome:
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        connection = await self._connect(namespace, spec)
        creds = connection.credentials
        if creds is None:
            message = connection.problem[1] if connection.problem is not None else "no credentials"
            return Outcome.retry(f"cannot revoke the keys: {message}", REVOKE_RETRY_SECONDS)
        status = SigningKeyRotationStatus.model_validate(dict(obj.get("status") or {}))
        prefix = spec.friendly_name_prefix or default_friendly_name_prefix(namespace, name)
        matcher = owned_name_matcher(prefix, metadata.get("uid"))
        try:
            revoked = await revoke_all(self.gateway.api(creds), status, matcher)
        except AuthError as exc:
            message = f"keys were not revoked: {describe_error(exc)}"
            await post_event(self.kube, obj, "Warning", Reason.AUTH_FAILED, message)
            return Outcome.give_up("the credentials are not allowed to manage API keys")
        except GatewayError as exc:
            return Outcome.retry(f"revoking keys failed: {describe_error(exc)}", REVOKE_RETRY_SECONDS)
        await post_event(
            self.kube, obj, "Normal", "KeysRevoked", f"revoked {len(revoked)} key(s): {', '.join(revoked)}"
        )
        logger.info(
            "revoked %d signing key(s) on deletion",
            len(revoked),
            extra={"namespace": namespace, "object_name": name, "key_sids": revoked},
        )
        try:
            await KubeSecretStore(self.kube, obj, spec.secret_name).delete()
        except KUBE_ERRORS as exc:
            return kube_failed("delete the Secret", exc)
        return Outcome.done(f"revoked {len(revoked)} key(s)")


def _stall_of(status: SigningKeyRotationStatus) -> tuple[str, int | None] | None:
    condition = get_condition(status.conditions, ConditionType.STALLED)
    if condition is None or condition.status != "True":
        return None
    return condition.reason, condition.observed_generation


def _result(outcome: RotationReport) -> Result:
    if outcome.stall is not None:
        return Result.STALLED
    if outcome.error is not None:
        return Result.ERROR
    return Result.REQUEUE_AFTER if outcome.wait_until is not None else Result.SUCCESS


def _forget_metrics(namespace: str, name: str) -> None:
    for gauge in (metrics.SIGNING_KEY_AGE, metrics.SIGNING_KEY_NEXT_ROTATION):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)
