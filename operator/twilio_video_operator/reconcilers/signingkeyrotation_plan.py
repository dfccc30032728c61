"""SigningKeyRotation's plan: the one next step of a key rotation, from what is known (pure).

A key goes through: created (the secret is written to the Secret in the same step) -> staged as *next*
for ``stagePeriod`` -> switched to *active* (the old active key becomes *previous*) -> after ``overlap`` the
previous key is revoked at Twilio and dropped from the Secret. The very first key is created directly as
active. :func:`plan_step` looks at the spec, the status, which key SIDs the Secret holds and the clock, and
returns one :data:`Step`; :mod:`twilio_video_operator.reconcilers.signingkeyrotation` carries it out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from twilio_video_operator.models import ConditionType, Reason, get_condition
from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.signingkeyrotation import (
    FRIENDLY_NAME_PREFIX_MAX_LENGTH,
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
)
from twilio_video_operator.models.timestamps import shifted

Slot = Literal["active", "next", "previous"]
CreateSlot = Literal["active", "next"]


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before retrying after ``n`` consecutive failures: ``base * 2**(n-1)``, at most ``cap``."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)

    def delay(self, failed_attempts: int) -> timedelta:
        if failed_attempts <= 0:
            return timedelta(0)
        exponent = min(failed_attempts - 1, 30)
        delay: timedelta = self.base * (2**exponent)
        return min(self.cap, delay)


@dataclass(frozen=True)
class RotationFacts:
    """Everything :func:`plan_step` looks at."""

    namespace: str
    name: str
    uid: str | None
    generation: int | None
    spec: SigningKeyRotationSpec | None
    spec_problems: tuple[str, ...]
    status: SigningKeyRotationStatus
    rotate_request: str | None
    secret_exists: bool
    secret_owned: bool
    stored_sids: Mapping[Slot, str]
    credentials_fingerprint: str | None
    now: datetime


@dataclass(frozen=True)
class Stall:
    """Retrying cannot help until the spec, the Secret or the credentials change."""

    reason: str
    message: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do before ``until`` (None: until something changes). ``backoff`` after a failure."""

    until: datetime | None
    backoff: bool = False


@dataclass(frozen=True)
class AdoptPending:
    """The pending key reached the Secret but not the status: record it."""

    sid: str


@dataclass(frozen=True)
class ResolvePending:
    """A pending create left no stored key: revoke keys with its friendly name, then forget the marker."""

    friendly_name: str


@dataclass(frozen=True)
class CreateKey:
    """Create a key into ``slot``. ``demote_active``: the active key's secret was lost; it goes previous."""

    slot: CreateSlot
    friendly_name: str
    revision: int
    demote_active: bool = False


@dataclass(frozen=True)
class Switch:
    """Make the next key active and the active key previous. ``record_only``: the Secret already is."""

    record_only: bool = False


@dataclass(frozen=True)
class Revoke:
    """Delete a key at Twilio and drop it from the Secret and the status."""

    slot: Literal["next", "previous"]
    sid: str
    why: str


Step = Stall | Wait | AdoptPending | ResolvePending | CreateKey | Switch | Revoke


def default_friendly_name_prefix(namespace: str, name: str) -> str:
    """``<namespace>-<name>``, shortened with a stable hash when longer than a prefix may be."""
    full = f"{namespace}-{name}"
    if len(full) <= FRIENDLY_NAME_PREFIX_MAX_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: FRIENDLY_NAME_PREFIX_MAX_LENGTH - len(digest) - 1]}-{digest}"


def friendly_name_stem(prefix: str, uid: str | None) -> str:
    """``<prefix>-<first 8 characters of the object's uid>-r``: what every key name of one object starts with.

    The uid part keeps two objects that were given the same prefix from ever touching each other's keys.
    """
    owner = f"-{uid.replace('-', '')[:8]}" if uid else ""
    return f"{prefix}{owner}-r"


def key_friendly_name(prefix: str, uid: str | None, revision: int) -> str:
    """The FriendlyName of a key: the stem followed by the revision it has once active (at most 64 chars)."""
    return f"{friendly_name_stem(prefix, uid)}{revision}"


def friendly_name_for(facts: RotationFacts, revision: int) -> str:
    assert facts.spec is not None
    prefix = facts.spec.friendly_name_prefix or default_friendly_name_prefix(facts.namespace, facts.name)
    return key_friendly_name(prefix, facts.uid, revision)


def rotation_due_at(status: SigningKeyRotationStatus, spec: SigningKeyRotationSpec) -> datetime | None:
    """When the next rotation starts: ``rotationInterval`` after the active key became active."""
    if status.last_rotation_time is None:
        return None
    return shifted(status.last_rotation_time, parse_duration(spec.rotation_interval))


def rotation_requested(facts: RotationFacts) -> bool:
    """Whether the rotate-requested-at annotation carries a value not acted upon yet."""
    request = (facts.rotate_request or "").strip()
    return bool(request) and request != (facts.status.last_rotate_request or "")


def refusal_still_applies(facts: RotationFacts) -> bool:
    """An AuthFailed stall holds while neither the generation nor the credentials changed."""
    stalled = get_condition(facts.status.conditions, ConditionType.STALLED)
    return (
        stalled is not None
        and stalled.status == "True"
        and stalled.reason == Reason.AUTH_FAILED
        and stalled.observed_generation == facts.generation
        and facts.status.refused_credentials_fingerprint is not None
        and facts.status.refused_credentials_fingerprint == facts.credentials_fingerprint
    )


def _gated(step: Step, facts: RotationFacts, backoff: BackoffPolicy) -> Step:
    """``step`` (which calls Twilio), unless the backoff after recent failures is still running."""
    status = facts.status
    failures = status.failed_attempts or 0
    failed_at = status.last_failure_time or status.last_attempt_time
    if failures and failed_at is not None:
        until = shifted(failed_at, backoff.delay(failures))
        if facts.now < until:
            return Wait(until=until, backoff=True)
    return step


def plan_step(facts: RotationFacts, backoff: BackoffPolicy | None = None) -> Step:
    """The one thing to do next. Pure: the same facts always give the same step."""
    policy = backoff or BackoffPolicy()
    spec = facts.spec
    if spec is None:
        return Stall(Reason.INVALID_SPEC, "; ".join(facts.spec_problems) or "the spec is invalid")
    if facts.secret_exists and not facts.secret_owned:
        return Stall(
            Reason.SECRET_NOT_OWNED,
            "a Secret with this name exists and is not owned by this SigningKeyRotation; "
            "delete it or choose another secretName",
        )
    if refusal_still_applies(facts):
        return Stall(Reason.AUTH_FAILED, "the credentials are not allowed to manage API keys")

    status, stored, now = facts.status, facts.stored_sids, facts.now
    known = {sid for sid in (status.active_key_sid, status.next_key_sid, status.previous_key_sid) if sid}

    # 1. A create that may not have finished.
    pending = status.pending_key
    if pending is not None:
        stored_sid = stored.get(pending.slot)
        if stored_sid and stored_sid not in known:
            return AdoptPending(stored_sid)
        return _gated(ResolvePending(pending.friendly_name), facts, policy)

    # 2. A switch reached the Secret but not the status.
    if status.next_key_sid and stored.get("active") == status.next_key_sid:
        return Switch(record_only=True)

    # 3. No key yet, or the Secret lost the active key.
    revision = (status.revision or 0) + 1
    if status.active_key_sid is None:
        return _gated(CreateKey("active", friendly_name_for(facts, revision), revision), facts, policy)
    if stored.get("active") != status.active_key_sid:
        if status.previous_key_sid:
            why = "the Secret lost the active key; the previous key makes way for its replacement"
            return _gated(Revoke("previous", status.previous_key_sid, why), facts, policy)
        if status.next_key_sid and stored.get("next") == status.next_key_sid:
            return Switch()
        if status.next_key_sid:
            why = "the Secret lost the staged key"
            return _gated(Revoke("next", status.next_key_sid, why), facts, policy)
        step = CreateKey("active", friendly_name_for(facts, revision), revision, demote_active=True)
        return _gated(step, facts, policy)

    # 4. The staged key was lost from the Secret.
    if status.next_key_sid and stored.get("next") != status.next_key_sid:
        return _gated(Revoke("next", status.next_key_sid, "the Secret lost the staged key"), facts, policy)

    # 5. The overlap is over.
    revoke_at = status.previous_key_revoke_time
    if status.previous_key_sid and (revoke_at is None or now >= revoke_at):
        why = "its overlap is over"
        return _gated(Revoke("previous", status.previous_key_sid, why), facts, policy)

    # 6. Staging.
    if status.next_key_sid:
        staged_at = status.next_key_staged_at or now
        switch_at = shifted(staged_at, parse_duration(spec.stage_period))
        if status.previous_key_sid:  # only after manual status edits: let the overlap finish first
            return Wait(until=revoke_at)
        return Switch() if now >= switch_at else Wait(until=switch_at)

    # 7. Time (or a request) to rotate. A rotation starts only once the previous overlap has ended.
    due_at = rotation_due_at(status, spec)
    if status.previous_key_sid:
        return Wait(until=revoke_at)
    if (due_at is not None and now >= due_at) or rotation_requested(facts):
        return _gated(CreateKey("next", friendly_name_for(facts, revision), revision), facts, policy)
    return Wait(until=due_at)


def owned_name_matcher(prefix: str, uid: str | None) -> Callable[[str], bool]:
    """Whether a friendly name is one :func:`key_friendly_name` gave for this object.

    With a uid the owner part decides, whatever the prefix was then (``friendlyNamePrefix`` may have
    changed since): ``...-<uid8>-r<revision>``. The API server assigns uids, so no other object's keys carry
    it.
    """
    if uid:
        owner = re.compile(rf".*-{re.escape(uid.replace('-', '')[:8])}-r[0-9]+")
        return lambda name: owner.fullmatch(name) is not None
    stem = friendly_name_stem(prefix, uid)

    def matches(name: str) -> bool:
        return name.startswith(stem) and name[len(stem) :].isdigit()

    return matches
