"""kopf adapters for SigningKeyRotation: the Secret, status and Events behind the reconciler's ports.

Every change (create, update, annotation), every resume and a periodic timer run the same reconcile,
serialised per object. The reconcile reads the object afresh, plans with
:func:`~twilio_video_operator.reconcilers.signingkeyrotation.plan_step` and lets the executor act. Status
is written through the status subresource at each step, never through kopf's deferred patch, so the
create-pending marker is stored before Twilio is asked for a key.

Deleting the object revokes its keys (``deletionPolicy: Revoke``) or keeps them and releases the Secret
from the object so that it survives (``Retain``). A spec that no longer validates (a field changed past an
older CRD) does not stop that: deletion reads the fields it needs on their own, and falls back to
``Retain`` when ``deletionPolicy`` or the credentials do not validate (see
:func:`~twilio_video_operator.models.signingkeyrotation.spec_for_deletion`).

The token service (``POST /v1/token``, :mod:`twilio_video_operator.tokens.service`) runs on every replica,
apart from these handlers, with the operator context's Kubernetes client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
from pydantic import SecretStr

from twilio_video_operator import API_GROUP, API_VERSION, metrics
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.gateway import AuthError, CredentialSet, GatewayError, TwilioGateway
from twilio_video_operator.kube import SECRETS, SIGNINGKEYROTATIONS, KubeApiError, KubeClient
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.logs import register_secret
from twilio_video_operator.models import ConditionType, Reason, get_condition
from twilio_video_operator.models import annotations as object_annotations
from twilio_video_operator.models.signingkeyrotation import (
    SecretKeys,
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
    spec_for_deletion,
    validate_signingkeyrotation_spec,
)
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress, Result, track_reconcile
from twilio_video_operator.reconcilers.signingkeyrotation import (
    BackoffPolicy,
    EventType,
    KeyMaterial,
    KeysApi,
    Outcome,
    RotationContext,
    RotationExecutor,
    SecretContents,
    SecretStoreError,
    Slot,
    UnavailableKeys,
    default_friendly_name_prefix,
    describe_error,
    owned_name_matcher,
    revoke_all,
)
from twilio_video_operator.settings import Settings

logger = logging.getLogger(__name__)

PLURAL = "signingkeyrotations"
KIND = "SigningKeyRotation"
#: How a credentials problem about the operator's own account starts (the condition reason follows it).
OPERATOR_ACCOUNT_PROBLEM = "not allowed:"
TICK_SECONDS = 15.0
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "twilio-video-operator"
ROTATION_LABEL = f"{API_GROUP}/signing-key-rotation"

#: What a call to the Kubernetes API may raise besides a Status answer.
KUBE_ERRORS = (KubeApiError, aiohttp.ClientError, OSError, TimeoutError)

_SLOT_KEYS: dict[Slot, tuple[str, str]] = {
    "active": (SecretKeys.API_KEY, SecretKeys.API_SECRET),
    "next": (SecretKeys.API_KEY_NEXT, SecretKeys.API_SECRET_NEXT),
    "previous": (SecretKeys.API_KEY_PREVIOUS, SecretKeys.API_SECRET_PREVIOUS),
}


def utc_now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------- Secret


def _encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


class KubeSecretStore:
    """The reconciler's :class:`~twilio_video_operator.reconcilers.signingkeyrotation.SecretStore`: one
    Secret, owned by the SigningKeyRotation (ownerReference) and labelled as managed by the operator."""

    def __init__(self, kube: KubeClient, owner: Mapping[str, Any], secret_name: str) -> None:
        metadata = owner.get("metadata") or {}
        self.kube = kube
        self.namespace = str(metadata.get("namespace"))
        self.secret_name = secret_name
        self.owner_uid = metadata.get("uid")
        self.owner_reference = {
            "apiVersion": owner.get("apiVersion", f"{API_GROUP}/{API_VERSION}"),
            "kind": owner.get("kind", KIND),
            "name": metadata.get("name"),
            "uid": self.owner_uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        self.labels = {MANAGED_BY_LABEL: MANAGED_BY, ROTATION_LABEL: str(metadata.get("name"))}
        self._exists = False

    def owns(self, secret: Mapping[str, Any]) -> bool:
        references = (secret.get("metadata") or {}).get("ownerReferences") or []
        return self.owner_uid is not None and any(ref.get("uid") == self.owner_uid for ref in references)

    async def read(self) -> SecretContents | None:
        try:
            secret = await self.kube.get(SECRETS, self.namespace, self.secret_name)
        except KUBE_ERRORS as exc:
            raise SecretStoreError(f"cannot read Secret {self.secret_name}: {_kube_problem(exc)}") from None
        self._exists = secret is not None
        if secret is None:
            return None
        if not self.owns(secret):
            return SecretContents(owned=False)
        data = decode_secret_data(secret)
        keys: dict[Slot, KeyMaterial] = {}
        for slot, (sid_key, secret_key) in _SLOT_KEYS.items():
            sid, value = data.get(sid_key), data.get(secret_key)
            if sid and value:
                register_secret(value)
                keys[slot] = KeyMaterial(sid, SecretStr(value))
        return SecretContents(owned=True, account_sid=data.get(SecretKeys.ACCOUNT_SID), keys=keys)

    async def write(self, account_sid: str, keys: Mapping[Slot, KeyMaterial]) -> None:
        data: dict[str, str | None] = {SecretKeys.ACCOUNT_SID: _encode(account_sid)}
        for slot, (sid_key, secret_key) in _SLOT_KEYS.items():
            key = keys.get(slot)
            data[sid_key] = _encode(key.sid) if key else None
            data[secret_key] = _encode(key.secret.get_secret_value()) if key else None
        try:
            if self._exists:
                patch = {"metadata": {"labels": self.labels}, "data": data}
                await self.kube.patch(SECRETS, self.namespace, self.secret_name, patch)
                return
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": self.secret_name,
                    "namespace": self.namespace,
                    "labels": self.labels,
                    "ownerReferences": [self.owner_reference],
                },
                "data": {key: value for key, value in data.items() if value is not None},
            }
            await self.kube.create(SECRETS, self.namespace, body)
            self._exists = True
        except KUBE_ERRORS as exc:
            raise SecretStoreError(f"cannot write Secret {self.secret_name}: {_kube_problem(exc)}") from None

    async def delete(self) -> bool:
        """Delete the Secret if this object owns it (its keys are revoked; garbage collection would too)."""
        secret = await self.kube.get(SECRETS, self.namespace, self.secret_name)
        if secret is None or not self.owns(secret):
            return False
        return await self.kube.delete(SECRETS, self.namespace, self.secret_name)

    async def release(self) -> bool:
        """Drop this object's ownerReference from the Secret so that it outlives the object."""
        secret = await self.kube.get(SECRETS, self.namespace, self.secret_name)
        if secret is None or not self.owns(secret):
            return False
        references = [
            ref
            for ref in (secret.get("metadata") or {}).get("ownerReferences") or []
            if ref.get("uid") != self.owner_uid
        ]
        await self.kube.patch(
            SECRETS, self.namespace, self.secret_name, {"metadata": {"ownerReferences": references}}
        )
        return True


class _NoSecret:
    """Stands in for the Secret store while the spec is invalid (there may be no secretName to use)."""

    async def read(self) -> SecretContents | None:
        return None

    async def write(self, account_sid: str, keys: Mapping[Slot, KeyMaterial]) -> None:
        raise SecretStoreError("the spec is invalid")


def _kube_problem(exc: BaseException) -> str:
    if isinstance(exc, KubeApiError):
        return f"{exc.status} {exc.reason}"
    return type(exc).__name__


# ------------------------------------------------------------------------------------------ runtime


@dataclass
class RotationRuntime:
    """What the handlers share within one operator process (kept in kopf's memo)."""

    kube: KubeClient
    gateway: TwilioGateway
    settings: Settings
    clock: Callable[[], datetime]
    backoff: BackoffPolicy
    progress: ReconcileProgress | None = None
    tick_seconds: float = TICK_SECONDS
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    resync_requests: dict[tuple[str, str], str | None] = field(default_factory=dict)
    """The reconcile-requested-at value last seen per object (None: seen without one)."""

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def forget(self, namespace: str, name: str) -> None:
        """The object is gone: drop what this process remembers of it."""
        self.locks.pop((namespace, name), None)
        self.resync_requests.pop((namespace, name), None)
        if self.progress is not None:
            self.progress.forget(KIND, namespace, name)

    def needs_prompt_reconcile(self, body: Mapping[str, Any]) -> bool:
        """Whether the object carries a rotate or resync request not acted upon yet."""
        metadata = body.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        key = (str(metadata.get("namespace")), str(metadata.get("name")))
        rotate = annotations.get(object_annotations.ROTATE_REQUESTED_AT)
        resync = annotations.get(object_annotations.RECONCILE_REQUESTED_AT)
        # The first sight of an object (operator start) is reconciled by resume/create anyway; after that,
        # any new value asks for a reconcile, the object's first one included.
        known = key in self.resync_requests
        seen_resync = self.resync_requests.get(key)
        self.resync_requests[key] = resync
        if known and resync is not None and resync != seen_resync:
            return True
        handled = ((body.get("status") or {}).get("lastRotateRequest")) or ""
        return bool(rotate and rotate.strip() and rotate.strip() != handled)

    async def credentials(self, namespace: str, spec: SigningKeyRotationSpec) -> CredentialSet | str:
        """The credentials that manage keys for this object, or a problem description."""
        if spec.credentials_ref is None:
            settings = self.settings
            return CredentialSet(
                account_sid=settings.TWILIO_ACCOUNT_SID,
                api_key=settings.TWILIO_API_KEY,
                api_secret=settings.TWILIO_API_SECRET,
                auth_token=settings.TWILIO_AUTH_TOKEN,
            )
        name = spec.credentials_ref.name
        try:
            secret = await self.kube.get(SECRETS, namespace, name)
        except KUBE_ERRORS as exc:
            return f"cannot read credentials Secret {name}: {_kube_problem(exc)}"
        if secret is None:
            return f"credentials Secret {name} not found"
        try:
            creds = CredentialSet.from_mapping(decode_secret_data(secret))
        except ValueError as exc:
            return f"credentials Secret {name}: {exc}"
        for value in creds.secret_values:
            register_secret(value)
        if creds.account_sid == self.settings.TWILIO_ACCOUNT_SID:
            # The operator's own account is every tenant's: a namespace uses it only through the operator.
            return (
                f"{OPERATOR_ACCOUNT_PROBLEM} Secret {name} names the operator's own Twilio account "
                f"{creds.account_sid}: remove spec.credentialsRef, or name an account of your own"
            )
        return creds


# ------------------------------------------------------------------------------------------ reconcile


async def reconcile(runtime: RotationRuntime, namespace: str, name: str) -> None:
    """Bring one SigningKeyRotation forward as far as its schedule allows (serialised per object).

    The periodic tick runs it for every object that is not paused, so each is due again one tick later.
    """
    tick = runtime.tick_seconds
    lock = runtime.lock(namespace, name)
    async with track_reconcile(
        KIND, namespace, name, runtime.progress, due_in_after_error=tick, waits_for=(lock,)
    ) as run:
        try:
            obj = await runtime.kube.get(SIGNINGKEYROTATIONS, namespace, name)
        except KUBE_ERRORS as exc:
            raise kopf.TemporaryError(f"cannot read the object: {_kube_problem(exc)}", delay=10) from None
        metadata = (obj or {}).get("metadata") or {}
        if obj is None or metadata.get("deletionTimestamp"):
            run.skip()
            return
        if (metadata.get("annotations") or {}).get(object_annotations.PAUSED) == "true":
            run.finish(Result.PAUSED)
            return
        executor = await _executor(runtime, obj)
        status = SigningKeyRotationStatus.model_validate(obj.get("status") or {})
        try:
            final, outcome = await executor.reconcile(status)
        except KUBE_ERRORS as exc:
            raise kopf.TemporaryError(f"cannot write the status: {_kube_problem(exc)}", delay=10) from None
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
        _export_metrics(runtime, namespace, name, final)


def _stall_of(status: SigningKeyRotationStatus) -> tuple[str, int | None] | None:
    condition = get_condition(status.conditions, ConditionType.STALLED)
    if condition is None or condition.status != "True":
        return None
    return condition.reason, condition.observed_generation


def _result(outcome: Outcome) -> Result:
    if outcome.stall is not None:
        return Result.STALLED
    if outcome.error is not None:
        return Result.ERROR
    return Result.REQUEUE_AFTER if outcome.wait_until is not None else Result.SUCCESS


async def _executor(runtime: RotationRuntime, obj: Mapping[str, Any]) -> RotationExecutor:
    metadata = obj.get("metadata") or {}
    namespace, name = str(metadata["namespace"]), str(metadata["name"])
    raw_spec = obj.get("spec") or {}
    problems = tuple(validate_signingkeyrotation_spec(raw_spec))
    spec = None if problems else SigningKeyRotationSpec.model_validate(raw_spec)
    keys: KeysApi
    store: Any
    fingerprint: str | None = None
    account_sid = runtime.settings.TWILIO_ACCOUNT_SID
    if spec is None:
        keys, store = UnavailableKeys("the spec is invalid"), _NoSecret()
    else:
        store = KubeSecretStore(runtime.kube, obj, spec.secret_name)
        creds = await runtime.credentials(namespace, spec)
        if isinstance(creds, str):
            not_allowed = creds.startswith(OPERATOR_ACCOUNT_PROBLEM)
            keys = UnavailableKeys(
                creds, Reason.ACCOUNT_NOT_ALLOWED if not_allowed else Reason.CREDENTIALS_NOT_FOUND
            )
        else:
            keys, fingerprint, account_sid = runtime.gateway.api(creds), creds.fingerprint, creds.account_sid
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
        await runtime.kube.patch_status(SIGNINGKEYROTATIONS, namespace, name, body)

    async def event(kind: EventType, reason: str, message: str) -> None:
        await post_event(runtime.kube, obj, kind, reason, message)

    return RotationExecutor(
        context,
        keys=keys,
        store=store,
        write_status=write_status,
        post_event=event,
        clock=runtime.clock,
        backoff=runtime.backoff,
    )


def _export_metrics(
    runtime: RotationRuntime, namespace: str, name: str, status: SigningKeyRotationStatus
) -> None:
    activated = status.last_rotation_time
    if activated is not None and status.active_key_sid:
        clock = runtime.clock
        metrics.SIGNING_KEY_AGE.labels(namespace, name).set_function(
            lambda: max(0.0, (clock() - activated).total_seconds())
        )
    if status.next_rotation_time is not None:
        metrics.SIGNING_KEY_NEXT_ROTATION.labels(namespace, name).set(status.next_rotation_time.timestamp())


def _forget_metrics(namespace: str, name: str) -> None:
    for gauge in (metrics.SIGNING_KEY_AGE, metrics.SIGNING_KEY_NEXT_ROTATION):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


async def on_deleted(runtime: RotationRuntime, body: Mapping[str, Any]) -> None:
    """Revoke every key the object created (``Revoke``), or release its Secret (``Retain``)."""
    metadata = body.get("metadata") or {}
    namespace, name = str(metadata["namespace"]), str(metadata["name"])
    _forget_metrics(namespace, name)
    if runtime.progress is not None:  # no more reconciles, even while the deletion is retried
        runtime.progress.forget(KIND, namespace, name)
    async with runtime.lock(namespace, name):
        try:
            latest = await runtime.kube.get(SIGNINGKEYROTATIONS, namespace, name)
        except KUBE_ERRORS as exc:
            raise kopf.TemporaryError(f"cannot read the object: {_kube_problem(exc)}", delay=10) from None
        obj: Mapping[str, Any] = latest if latest is not None else body  # the latest status, if still there
        spec = spec_for_deletion(obj.get("spec"))
        if spec is None:
            message = "the Secret and the keys were left as they are: spec.secretName is not valid"
            await post_event(runtime.kube, obj, "Warning", Reason.INVALID_SPEC, message)
        elif spec.deletion_policy == "Retain":
            await _release_secret(runtime, obj, spec)
        else:
            await _revoke_keys(runtime, obj, spec)
    runtime.forget(namespace, name)


async def _release_secret(
    runtime: RotationRuntime, obj: Mapping[str, Any], spec: SigningKeyRotationSpec
) -> None:
    try:
        await KubeSecretStore(runtime.kube, obj, spec.secret_name).release()
    except KUBE_ERRORS as exc:
        raise kopf.TemporaryError(f"cannot release the Secret: {_kube_problem(exc)}", delay=10) from None


async def _revoke_keys(
    runtime: RotationRuntime, obj: Mapping[str, Any], spec: SigningKeyRotationSpec
) -> None:
    metadata = obj.get("metadata") or {}
    namespace, name = str(metadata["namespace"]), str(metadata["name"])
    creds = await runtime.credentials(namespace, spec)
    if isinstance(creds, str):
        raise kopf.TemporaryError(f"cannot revoke the keys: {creds}", delay=30)
    status = SigningKeyRotationStatus.model_validate(dict(obj.get("status") or {}))
    prefix = spec.friendly_name_prefix or default_friendly_name_prefix(namespace, name)
    matcher = owned_name_matcher(prefix, metadata.get("uid"))
    try:
        revoked = await revoke_all(runtime.gateway.api(creds), status, matcher)
    except AuthError as exc:
        message = f"keys were not revoked: {describe_error(exc)}"
        await post_event(runtime.kube, obj, "Warning", Reason.AUTH_FAILED, message)
        raise kopf.PermanentError("the credentials are not allowed to manage API keys") from None
    except GatewayError as exc:
        raise kopf.TemporaryError(f"revoking keys failed: {describe_error(exc)}", delay=30) from None
    await post_event(
        runtime.kube, obj, "Normal", "KeysRevoked", f"revoked {len(revoked)} key(s): {', '.join(revoked)}"
    )
    logger.info(
        "revoked %d signing key(s) on deletion",
        len(revoked),
        extra={"namespace": namespace, "object_name": name, "key_sids": revoked},
    )
    try:
        await KubeSecretStore(runtime.kube, obj, spec.secret_name).delete()
    except KUBE_ERRORS as exc:
        raise kopf.TemporaryError(f"cannot delete the Secret: {_kube_problem(exc)}", delay=10) from None


# ------------------------------------------------------------------------------------------ handlers


def register_handlers(
    registry: kopf.OperatorRegistry,
    *,
    clock: Callable[[], datetime] = utc_now,
    tick_seconds: float = TICK_SECONDS,
    backoff: BackoffPolicy | None = None,
) -> None:
    """Register the SigningKeyRotation handlers on ``registry``; the arguments exist for tests."""
    resource = (API_GROUP, API_VERSION, PLURAL)

    @kopf.on.startup(registry=registry, id="signingkeyrotation-startup")
    async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        context: OperatorContext = memo.operator
        memo.signing_keys = RotationRuntime(
            kube=context.kube,
            gateway=context.gateway,
            settings=context.settings,
            clock=clock,
            backoff=backoff or BackoffPolicy(),
            progress=context.progress,
            tick_seconds=tick_seconds,
        )

    @kopf.on.cleanup(registry=registry, id="signingkeyrotation-cleanup")
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        memo.pop("signing_keys", None)

    @kopf.on.resume(*resource, registry=registry, id="signingkeyrotation-resume")
    @kopf.on.create(*resource, registry=registry, id="signingkeyrotation-create")
    @kopf.on.update(*resource, registry=registry, id="signingkeyrotation-update")
    async def changed(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        await reconcile(memo.signing_keys, str(namespace), name)

    def has_request(memo: Any, body: kopf.Body, type: str | None, **_: Any) -> bool:
        runtime: RotationRuntime | None = memo.get("signing_keys")
        return runtime is not None and type not in (None, "DELETED") and runtime.needs_prompt_reconcile(body)

    # kopf leaves annotations under the operator's own prefix out of its change detection, so a new
    # rotate-requested-at or reconcile-requested-at value is noticed on the watch stream instead.
    @kopf.on.event(*resource, registry=registry, id="signingkeyrotation-requests", when=has_request)
    async def requested(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        await reconcile(memo.signing_keys, str(namespace), name)

    @kopf.timer(*resource, registry=registry, id="signingkeyrotation-tick", interval=tick_seconds)
    async def tick(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        await reconcile(memo.signing_keys, str(namespace), name)

    @kopf.on.delete(*resource, registry=registry, id="signingkeyrotation-delete")
    async def deleted(memo: Any, body: kopf.Body, **_: Any) -> None:
        await on_deleted(memo.signing_keys, dict(body))

    def vanished(type: str | None, **_: Any) -> bool:
        return type == "DELETED"

    # Normally on_deleted forgets the object; this covers one that disappears without the delete handler
    # (its finalizer removed by hand).
    @kopf.on.event(*resource, registry=registry, id="signingkeyrotation-gone", when=vanished)
    async def gone(memo: Any, namespace: str | None, name: str, **_: Any) -> None:
        runtime: RotationRuntime | None = memo.get("signing_keys")
        if runtime is not None:
            runtime.forget(str(namespace), name)
