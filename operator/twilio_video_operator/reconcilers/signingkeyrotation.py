"""SigningKeyRotation: carry out the planned steps of a key rotation (a thin executor over small ports).

:func:`~twilio_video_operator.reconcilers.signingkeyrotation_plan.plan_step` picks the one next step (pure);
:class:`RotationExecutor` performs steps until the plan says wait or stall, and keeps the status and the
Secret consistent even when the process dies between any two calls:

- before asking Twilio for a key, a create-pending marker (``status.pendingKey``, with the friendly name)
  is persisted. A marker whose key reached the Secret is adopted; a marker without a stored key means the
  secret may be lost, so keys with that friendly name are revoked before creating again;
- a switch writes the Secret first; a status still showing the old arrangement is brought forward.

This module knows nothing of Kubernetes: the Secret, the status and Events are reached through the small
protocols below, which the controller implements (:mod:`twilio_video_operator.kube.rotation_secret`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from pydantic import SecretStr

from twilio_video_operator import metrics
from twilio_video_operator.gateway import (
    AuthError,
    GatewayError,
    KeyInfo,
    NewKey,
    RetryableError,
    ThrottledError,
)
from twilio_video_operator.logs import register_secret
from twilio_video_operator.models import ConditionType, Reason, get_condition, set_condition
from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.signingkeyrotation import (
    PendingKey,
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
)
from twilio_video_operator.models.timestamps import shifted
from twilio_video_operator.reconcilers.signingkeyrotation_plan import (
    AdoptPending,
    BackoffPolicy,
    CreateKey,
    CreateSlot,
    ResolvePending,
    Revoke,
    RotationFacts,
    Slot,
    Stall,
    Step,
    Switch,
    Wait,
    default_friendly_name_prefix,
    owned_name_matcher,
    plan_step,
    rotation_due_at,
)

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]

MAX_STEPS_PER_RECONCILE = 8


# --------------------------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class KeyMaterial:
    """One key as stored in the Secret: its SID and secret (never shown by ``repr``)."""

    sid: str
    secret: SecretStr


@dataclass(frozen=True)
class SecretContents:
    """What the Secret holds. ``owned`` is False for a Secret of that name that this object does not own."""

    owned: bool
    account_sid: str | None = None
    keys: Mapping[Slot, KeyMaterial] = field(default_factory=dict)

    @property
    def sids(self) -> dict[Slot, str]:
        return {slot: key.sid for slot, key in self.keys.items()}


class SecretStoreError(Exception):
    """Reading or writing the Secret failed (the message names no secret value)."""


class CredentialsError(Exception):
    """The credentials for the Keys API could not be read (e.g. the credentialsRef Secret is missing) or may
    not be used (``reason`` says which)."""

    def __init__(self, message: str, reason: str = Reason.CREDENTIALS_NOT_FOUND) -> None:
        super().__init__(message)
        self.reason = reason


class UnavailableKeys:
    """A :class:`KeysApi` for unusable credentials: every call raises :class:`CredentialsError`."""

    def __init__(self, problem: str, reason: str = Reason.CREDENTIALS_NOT_FOUND) -> None:
        self.problem = problem
        self.reason = reason

    async def create_key(self, friendly_name: str) -> NewKey:
        raise CredentialsError(self.problem, self.reason)

    async def list_keys(self) -> list[KeyInfo]:
        raise CredentialsError(self.problem, self.reason)

    async def delete_key(self, sid: str) -> bool:
        raise CredentialsError(self.problem, self.reason)


class SecretStore(Protocol):
    async def read(self) -> SecretContents | None:
        """The Secret's contents, or None when there is no Secret of that name."""

    async def write(self, account_sid: str, keys: Mapping[Slot, KeyMaterial]) -> None:
        """Make the Secret hold exactly ``keys`` (slots left out are removed); create it when missing."""


class KeysApi(Protocol):
    async def create_key(self, friendly_name: str) -> NewKey: ...

    async def list_keys(self) -> list[KeyInfo]: ...

    async def delete_key(self, sid: str) -> bool: ...


StepError = GatewayError | SecretStoreError | CredentialsError
StatusWriter = Callable[[SigningKeyRotationStatus], Awaitable[None]]
EventPoster = Callable[[EventType, str, str], Awaitable[None]]


# ------------------------------------------------------------------------------------------ conditions


@dataclass(frozen=True)
class RotationReport:
    """How one run of the executor ended (the controller makes it the kind's Outcome)."""

    stall: Stall | None = None
    wait_until: datetime | None = None
    error: StepError | None = None
    backing_off: bool = False
    steps: tuple[str, ...] = ()


def _error_reason(error: StepError) -> str:
    if isinstance(error, ThrottledError):
        return Reason.RATE_LIMITED
    if isinstance(error, CredentialsError):
        return error.reason
    return Reason.RECONCILE_ERROR


def describe_error(error: StepError) -> str:
    """A stable, secret-free description (no request ids, so conditions do not churn)."""
    if isinstance(error, SecretStoreError):
        return f"Secret: {error}"
    if isinstance(error, CredentialsError):
        return f"credentials: {error}"
    parts = [f"Twilio {error.operation} failed ({type(error).__name__}"]
    if error.status is not None:
        parts.append(f", HTTP {error.status}")
    if error.code is not None:
        parts.append(f", code {error.code}")
    return "".join(parts) + ")"


def summarize(
    status: SigningKeyRotationStatus,
    outcome: RotationReport,
    *,
    generation: int | None,
    spec: SigningKeyRotationSpec | None,
    stored_active: bool,
    now: datetime,
) -> SigningKeyRotationStatus:
    """The status with ``observedGeneration``, ``nextRotationTime`` and the four conditions updated."""
    conditions = list(status.conditions)
    stall = outcome.stall

    def put(kind: str, state: Literal["True", "False", "Unknown"], reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(conditions, kind, state, reason, message, generation, now)

    if stall is not None:
        put(ConditionType.STALLED, "True", stall.reason, stall.message)
        put(ConditionType.SYNCED, "False", stall.reason, stall.message)
    else:
        put(ConditionType.STALLED, "False", Reason.NOT_STALLED, "")
        if outcome.error is not None:
            put(ConditionType.SYNCED, "False", _error_reason(outcome.error), describe_error(outcome.error))
        elif not outcome.backing_off:
            put(ConditionType.SYNCED, "True", Reason.RECONCILE_SUCCESS, "")

    if status.active_key_sid and stored_active:
        put(
            ConditionType.READY,
            "True",
            Reason.KEY_ACTIVE,
            f"key {status.active_key_sid} is active (revision {status.revision})",
        )
    elif stall is not None:
        put(ConditionType.READY, "False", stall.reason, stall.message)
    else:
        put(ConditionType.READY, "False", Reason.CREATING, "creating the first key")

    failing = bool(status.failed_attempts) and (outcome.error is not None or outcome.backing_off)
    if status.next_key_sid:
        put(ConditionType.ROTATING, "True", Reason.STAGING, f"key {status.next_key_sid} is staged as next")
    elif status.previous_key_sid:
        until = status.previous_key_revoke_time
        when = f" until {until.isoformat()}" if until else ""
        message = f"previous key {status.previous_key_sid} stays valid{when}"
        put(ConditionType.ROTATING, "True", Reason.OVERLAPPING, message)
    elif failing and status.active_key_sid:
        message = f"{status.failed_attempts} failed attempt(s); retrying with backoff"
        put(ConditionType.ROTATING, "True", Reason.ROTATION_FAILED, message)
    else:
        put(ConditionType.ROTATING, "False", Reason.IDLE, "")

    next_rotation = rotation_due_at(status, spec) if spec is not None else status.next_rotation_time
    return status.model_copy(
        update={
            "conditions": conditions,
            "observed_generation": generation,
            "next_rotation_time": next_rotation,
        }
    )


# ------------------------------------------------------------------------------------------ executing


@dataclass
class RotationContext:
    """The object being reconciled, as read at the start of the reconcile."""

    namespace: str
    name: str
    uid: str | None
    generation: int | None
    spec: SigningKeyRotationSpec | None
    spec_problems: tuple[str, ...]
    rotate_request: str | None
    account_sid: str
    credentials_fingerprint: str | None


class RotationExecutor:
    """Performs planned steps against Twilio (``keys``), the Secret (``store``) and the status.

    Pass :class:`UnavailableKeys` as ``keys`` when the credentials could not be read: steps that need
    Twilio then fail (and back off) with reason ``CredentialsNotFound``; the others still run.
    """

    def __init__(
        self,
        context: RotationContext,
        *,
        keys: KeysApi,
        store: SecretStore,
        write_status: StatusWriter,
        post_event: EventPoster,
        clock: Callable[[], datetime],
        backoff: BackoffPolicy | None = None,
    ) -> None:
        self.context = context
        self.keys = keys
        self.store = store
        self.write_status = write_status
        self.post_event = post_event
        self.clock = clock
        self.backoff = backoff or BackoffPolicy()
        self._latest: SigningKeyRotationStatus | None = None

    async def _owns_key(self, sid: str) -> bool:
        """Whether Twilio lists ``sid`` under a name this object gave it. A key SID in status may have been
        written by hand: the account's other keys are never revoked. ``False`` too when it is gone."""
        matcher = _key_owner_matcher(self.context)
        for key in await self.keys.list_keys():
            if key.sid == sid:
                if key.friendly_name and matcher(key.friendly_name):
                    return True
                await self.post_event(
                    "Warning",
                    "KeyNotOwned",
                    f"key {sid} in status is not one this object created ({key.friendly_name!r}): "
                    "not revoked",
                )
                return False
        return False

    async def _save(self, status: SigningKeyRotationStatus) -> SigningKeyRotationStatus:
        """Persist ``status`` now, conditions included, and remember it as the latest (a failing step
        leaves what it saved). Used between the steps of one reconcile, which keep the Secret in step.
        ``_latest`` is always what the API server holds, so an unchanged status is not written again."""
        status = summarize(
            status,
            RotationReport(),
            generation=self.context.generation,
            spec=self.context.spec,
            stored_active=status.active_key_sid is not None,
            now=self.clock(),
        )
        if status != self._latest:
            await self.write_status(status)
        self._latest = status
        return status

    def facts(self, status: SigningKeyRotationStatus, contents: SecretContents | None) -> RotationFacts:
        ctx = self.context
        return RotationFacts(
            namespace=ctx.namespace,
            name=ctx.name,
            uid=ctx.uid,
            generation=ctx.generation,
            spec=ctx.spec,
            spec_problems=ctx.spec_problems,
            status=status,
            rotate_request=ctx.rotate_request,
            secret_exists=contents is not None,
            secret_owned=contents is not None and contents.owned,
            stored_sids=contents.sids if contents is not None and contents.owned else {},
            credentials_fingerprint=ctx.credentials_fingerprint,
            now=self.clock(),
        )

    async def reconcile(
        self, status: SigningKeyRotationStatus
    ) -> tuple[SigningKeyRotationStatus, RotationReport]:
        """Run steps until the plan waits or stalls (or a step fails); write and return the final status."""
        initial = status
        self._latest = status
        done: list[str] = []
        outcome: RotationReport | None = None
        contents: SecretContents | None = None
        was_stalled = get_condition(status.conditions, ConditionType.STALLED)
        for _ in range(MAX_STEPS_PER_RECONCILE):
            try:
                contents = await self.store.read()
            except SecretStoreError as error:
                status = self._failed(status, error)
                outcome = RotationReport(error=error, steps=tuple(done))
                break
            step = plan_step(self.facts(status, contents), self.backoff)
            if isinstance(step, Stall):
                outcome = RotationReport(stall=step, steps=tuple(done))
                break
            if isinstance(step, Wait):
                outcome = RotationReport(wait_until=step.until, backing_off=step.backoff, steps=tuple(done))
                break
            self._latest = status
            try:
                status = await self._apply(step, status, contents)
            except AuthError as error:
                status = (self._latest or status).model_copy(
                    update={"refused_credentials_fingerprint": self.context.credentials_fingerprint}
                )
                message = f"the credentials are not allowed to manage API keys ({describe_error(error)})"
                outcome = RotationReport(
                    stall=Stall(Reason.AUTH_FAILED, message), error=error, steps=tuple(done)
                )
                break
            except (GatewayError, SecretStoreError, CredentialsError) as error:
                status = self._failed(self._latest or status, error)
                delay = int(self.backoff.delay(status.failed_attempts or 1).total_seconds())
                message = f"{_step_name(step)} failed: {describe_error(error)}; retrying in {delay}s"
                await self.post_event("Warning", "RotationFailed", message)
                outcome = RotationReport(error=error, steps=tuple(done))
                break
            done.append(_step_name(step))
        if outcome is None:  # the step budget ran out: come back soon
            outcome = RotationReport(wait_until=self.clock(), steps=tuple(done))
        if outcome.stall is None:
            status = status.model_copy(update={"refused_credentials_fingerprint": None})
        stored_active = bool(
            contents is not None
            and contents.owned
            and status.active_key_sid
            and contents.sids.get("active") == status.active_key_sid
        )
        status = summarize(
            status,
            outcome,
            generation=self.context.generation,
            spec=self.context.spec,
            stored_active=stored_active,
            now=self.clock(),
        )
        if status != (self._latest or initial):
            await self.write_status(status)
        if outcome.stall is not None and (
            was_stalled is None or was_stalled.status != "True" or was_stalled.reason != outcome.stall.reason
        ):
            await self.post_event("Warning", outcome.stall.reason, outcome.stall.message)
        return status, outcome

    def _failed(self, status: SigningKeyRotationStatus, error: StepError) -> SigningKeyRotationStatus:
        now = self.clock()
        metrics.SIGNING_KEY_ROTATIONS.labels("failed").inc()
        logger.warning(
            "signing key rotation step failed: %s",
            describe_error(error),
            extra={"namespace": self.context.namespace, "object_name": self.context.name},
        )
        return status.model_copy(
            update={
                "failed_attempts": (status.failed_attempts or 0) + 1,
                "last_failure_time": now,
                "last_attempt_time": now,
            }
        )

    async def _apply(
        self, step: Step, status: SigningKeyRotationStatus, contents: SecretContents | None
    ) -> SigningKeyRotationStatus:
        if isinstance(step, AdoptPending):
            return await self._adopt(step, status)
        if isinstance(step, ResolvePending):
            return await self._resolve(step, status, contents)
        if isinstance(step, CreateKey):
            return await self._create(step, status, contents)
        if isinstance(step, Switch):
            return await self._switch(step, status, contents)
        if isinstance(step, Revoke):
            return await self._revoke(step, status, contents)
        raise AssertionError(f"not an action: {step!r}")

    # --- creating -----------------------------------------------------------------------------------

    async def _create(
        self, step: CreateKey, status: SigningKeyRotationStatus, contents: SecretContents | None
    ) -> SigningKeyRotationStatus:
        now = self.clock()
        marker = PendingKey(
            friendly_name=step.friendly_name, slot=step.slot, revision=step.revision, since=now
        )
        status = status.model_copy(update={"pending_key": marker, "last_attempt_time": now})
        await self._save(status)  # the marker is persisted before Twilio is asked
        try:
            created = await self.keys.create_key(step.friendly_name)
        except RetryableError as error:
            if not error.maybe_applied:
                await self._save(status.model_copy(update={"pending_key": None}))
            raise
        except GatewayError:
            await self._save(status.model_copy(update={"pending_key": None}))
            raise
        register_secret(created.secret)
        keys = dict(contents.keys) if contents is not None and contents.owned else {}
        keys[step.slot] = KeyMaterial(created.sid, created.secret)
        if step.demote_active:
            keys.pop("previous", None)
        try:
            await self.store.write(self.context.account_sid, keys)
        except SecretStoreError:
            await self._discard(created.sid, status)
            raise
        return await self._record_created(status, step.slot, created.sid, step.revision)

    async def _discard(self, sid: str, status: SigningKeyRotationStatus) -> None:
        """Best effort after the Secret refused a new key: revoke it now rather than leave it behind."""
        try:
            await self.keys.delete_key(sid)
        except GatewayError:
            return  # the marker stays; the next reconcile revokes the key by its friendly name
        await self._save(status.model_copy(update={"pending_key": None}))

    async def _adopt(self, step: AdoptPending, status: SigningKeyRotationStatus) -> SigningKeyRotationStatus:
        assert status.pending_key is not None
        return await self._record_created(
            status, status.pending_key.slot, step.sid, status.pending_key.revision
        )

    async def _record_created(
        self, status: SigningKeyRotationStatus, slot: CreateSlot, sid: str, revision: int
    ) -> SigningKeyRotationStatus:
        now = self.clock()
        spec = self.context.spec
        assert spec is not None
        update: dict[str, object] = {
            "pending_key": None,
            "failed_attempts": 0,
            "last_rotate_request": self.context.rotate_request or status.last_rotate_request,
        }
        if slot == "next":
            update |= {"next_key_sid": sid, "next_key_staged_at": now}
            message = f"created key {sid} and staged it as next for {spec.stage_period}"
            reason = "KeyStaged"
        else:
            demoted = status.active_key_sid
            update |= {"active_key_sid": sid, "revision": revision, "last_rotation_time": now}
            if demoted:
                revoke_at = shifted(now, parse_duration(spec.overlap))
                update |= {"previous_key_sid": demoted, "previous_key_revoke_time": revoke_at}
                message = (
                    f"created key {sid} as the active key (revision {revision}) because the Secret had lost "
                    f"key {demoted}, which is revoked at {revoke_at.isoformat()}"
                )
            else:
                message = f"created key {sid} as the active key (revision {revision})"
            reason = "KeyCreated"
        status = await self._save(status.model_copy(update=update))
        if slot == "active":
            metrics.SIGNING_KEY_ROTATIONS.labels("succeeded").inc()
        await self.post_event("Normal", reason, message)
        return status

    async def _resolve(
        self, step: ResolvePending, status: SigningKeyRotationStatus, contents: SecretContents | None
    ) -> SigningKeyRotationStatus:
        keep = {sid for sid in (status.active_key_sid, status.next_key_sid, status.previous_key_sid) if sid}
        if contents is not None and contents.owned:
            keep |= set(contents.sids.values())
        for key in await self.keys.list_keys():
            if key.friendly_name == step.friendly_name and key.sid not in keep:
                await self.keys.delete_key(key.sid)
                await self.post_event(
                    "Warning",
                    "OrphanKeyRevoked",
                    f"revoked key {key.sid} ({step.friendly_name}): an interrupted create left it "
                    "without a stored secret",
                )
        return await self._save(status.model_copy(update={"pending_key": None}))

    # --- switching and revoking ----------------------------------------------------------------------

    async def _switch(
        self, step: Switch, status: SigningKeyRotationStatus, contents: SecretContents | None
    ) -> SigningKeyRotationStatus:
        spec = self.context.spec
        assert spec is not None and status.next_key_sid is not None
        if not step.record_only:
            stored = dict(contents.keys) if contents is not None and contents.owned else {}
            staged = stored.get("next")
            if staged is None or staged.sid != status.next_key_sid:
                raise SecretStoreError("the staged key is missing from the Secret")
            keys: dict[Slot, KeyMaterial] = {"active": staged}
            current = stored.get("active")
            if current is not None and current.sid == status.active_key_sid:
                keys["previous"] = current
            await self.store.write(self.context.account_sid, keys)
        now = self.clock()
        revoke_at = shifted(now, parse_duration(spec.overlap))
        previous = status.active_key_sid
        status = status.model_copy(
            update={
                "active_key_sid": status.next_key_sid,
                "next_key_sid": None,
                "next_key_staged_at": None,
                "previous_key_sid": previous,
                "previous_key_revoke_time": revoke_at if previous else None,
                "revision": (status.revision or 0) + 1,
                "last_rotation_time": now,
                "failed_attempts": 0,
                "last_rotate_request": self.context.rotate_request or status.last_rotate_request,
            }
        )
        await self._save(status)
        metrics.SIGNING_KEY_ROTATIONS.labels("succeeded").inc()
        overlap = f"; previous key {previous} stays valid until {revoke_at.isoformat()}" if previous else ""
        await self.post_event(
            "Normal",
            "KeyActivated",
            f"key {status.active_key_sid} is active (revision {status.revision}){overlap}",
        )
        return status

    async def _revoke(
        self, step: Revoke, status: SigningKeyRotationStatus, contents: SecretContents | None
    ) -> SigningKeyRotationStatus:
        deleted = False
        if await self._owns_key(step.sid):
            deleted = await self.keys.delete_key(step.sid)
        if contents is not None and contents.owned:
            stored = contents.keys.get(step.slot)
            if stored is not None and stored.sid == step.sid:
                keys = {slot: key for slot, key in contents.keys.items() if slot != step.slot}
                await self.store.write(self.context.account_sid, keys)
        now = self.clock()
        update: dict[str, object] = {"failed_attempts": 0}
        if step.slot == "next":
            update |= {"next_key_sid": None, "next_key_staged_at": None}
        else:
            update |= {"previous_key_sid": None, "previous_key_revoke_time": now}
        status = await self._save(status.model_copy(update=update))
        state = "revoked" if deleted else "was already gone at Twilio; dropped"
        await self.post_event("Normal", "KeyRevoked", f"{step.slot} key {step.sid} {state} ({step.why})")
        return status


def _key_owner_matcher(context: RotationContext) -> Callable[[str], bool]:
    spec = context.spec
    prefix = spec.friendly_name_prefix if spec is not None else None
    return owned_name_matcher(
        prefix or default_friendly_name_prefix(context.namespace, context.name), context.uid
    )


def _step_name(step: Step) -> str:
    if isinstance(step, CreateKey):
        return f"creating the {step.slot} key"
    if isinstance(step, Revoke):
        return f"revoking the {step.slot} key {step.sid}"
    if isinstance(step, Switch):
        return "switching keys"
    if isinstance(step, ResolvePending):
        return f"cleaning up after an interrupted create ({step.friendly_name})"
    if isinstance(step, AdoptPending):
        return f"recording key {step.sid}"
    return type(step).__name__


# ------------------------------------------------------------------------------------------ deletion


async def revoke_all(
    keys: KeysApi,
    status: SigningKeyRotationStatus,
    friendly_name_pattern: Callable[[str], bool],
) -> list[str]:
    """``deletionPolicy: Revoke``: delete every live key this object created. Returns the SIDs deleted.

    That is every key whose friendly name this object gave it (``friendly_name_pattern``), which covers the
    keys in the status and keys left behind by an interrupted create. A SID in the status whose key Twilio
    lists under another name is not this object's (whoever may write the status could name any key of
    the account) and is left alone.
    """
    targets: set[str] = set()
    for key in await keys.list_keys():
        if key.friendly_name and friendly_name_pattern(key.friendly_name):
            targets.add(key.sid)
    revoked = []
    for sid in sorted(targets):
        if await keys.delete_key(sid):
            revoked.append(sid)
    return revoked
