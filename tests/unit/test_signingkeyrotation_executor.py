"""The SigningKeyRotation executor against in-memory Twilio keys, Secret, status and Events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from twilio_video_operator.gateway import AuthError, KeyInfo, NewKey, RetryableError, ThrottledError
from twilio_video_operator.models import get_condition
from twilio_video_operator.models.signingkeyrotation import SigningKeyRotationSpec, SigningKeyRotationStatus
from twilio_video_operator.reconcilers.signingkeyrotation import (
    KeyMaterial,
    RotationContext,
    RotationExecutor,
    SecretContents,
    SecretStoreError,
    UnavailableKeys,
    revoke_all,
)
from twilio_video_operator.reconcilers.signingkeyrotation_plan import BackoffPolicy, Slot, owned_name_matcher

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
SPEC = SigningKeyRotationSpec(
    secret_name="video-keys", rotation_interval="1h", stage_period="2m", overlap="10m"
)


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the executor may catch it)."""


@dataclass
class FakeKeys:
    """Twilio's Keys API: live keys by SID with their friendly names and secrets."""

    live: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    errors: list[Exception] = field(default_factory=list)
    counter: int = 0

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    async def create_key(self, friendly_name: str) -> NewKey:
        self.calls.append("create")
        self._maybe_fail()
        self.counter += 1
        sid = f"SK{self.counter:032x}"
        secret = f"key-secret-value-{self.counter:04d}"
        self.live[sid], self.secrets[sid] = friendly_name, secret
        return NewKey(sid=sid, friendly_name=friendly_name, secret=SecretStr(secret), date_created=None)

    async def list_keys(self) -> list[KeyInfo]:
        self.calls.append("list")
        self._maybe_fail()
        return [KeyInfo(sid, name, None, None) for sid, name in self.live.items()]

    async def delete_key(self, sid: str) -> bool:
        self.calls.append(f"delete {sid}")
        self._maybe_fail()
        return self.live.pop(sid, None) is not None


@dataclass
class FakeStore:
    keys: dict[Slot, KeyMaterial] | None = None
    owned: bool = True
    account_sid: str | None = None
    crash_on_write: bool = False
    fail_on_write: bool = False

    async def read(self) -> SecretContents | None:
        if self.keys is None:
            return None
        return SecretContents(owned=self.owned, account_sid=self.account_sid, keys=dict(self.keys))

    async def write(self, account_sid: str, keys: Mapping[Slot, KeyMaterial]) -> None:
        if self.crash_on_write:
            raise Crash()
        if self.fail_on_write:
            raise SecretStoreError("cannot write Secret video-keys: 500 InternalError")
        self.keys, self.account_sid = dict(keys), account_sid

    def sid(self, slot: Slot) -> str | None:
        key = (self.keys or {}).get(slot)
        return key.sid if key else None


@dataclass
class World:
    keys: FakeKeys = field(default_factory=FakeKeys)
    store: FakeStore = field(default_factory=FakeStore)
    status: SigningKeyRotationStatus = field(default_factory=SigningKeyRotationStatus)
    writes: list[SigningKeyRotationStatus] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    now: datetime = T0
    crash_on_status_write: int | None = None  # crash at the n-th status write (1-based)

    def context(self, **changes: Any) -> RotationContext:
        values: dict[str, Any] = {
            "namespace": "tenant",
            "name": "video-keys",
            "uid": UID,
            "generation": 1,
            "spec": SPEC,
            "spec_problems": (),
            "rotate_request": None,
            "account_sid": "AC" + "0" * 32,
            "credentials_fingerprint": "fp-1",
        }
        values.update(changes)
        return RotationContext(**values)

    async def write_status(self, status: SigningKeyRotationStatus) -> None:
        if self.crash_on_status_write is not None and len(self.writes) + 1 == self.crash_on_status_write:
            raise Crash()
        self.writes.append(status)
        self.status = status

    async def post_event(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    async def reconcile(self, **context: Any) -> SigningKeyRotationStatus:
        keys = context.pop("keys", None) or self.keys
        executor = RotationExecutor(
            self.context(**context),
            keys=keys,
            store=self.store,
            write_status=self.write_status,
            post_event=self.post_event,
            clock=lambda: self.now,
            backoff=BackoffPolicy(base=timedelta(seconds=30), cap=timedelta(minutes=10)),
        )
        status, _ = await executor.reconcile(self.status)
        return status

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def condition(self, kind: str) -> tuple[str, str]:
        found = get_condition(self.status.conditions, kind)
        assert found is not None, kind
        return found.status, found.reason

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


def assert_no_secret_leaked(world: World) -> None:
    published = json.dumps([status.to_dict() for status in world.writes]) + json.dumps(world.events)
    for secret in world.keys.secrets.values():
        assert secret not in published


async def test_first_reconcile_creates_the_active_key_with_a_marker_written_first() -> None:
    world = World()

    status = await world.reconcile()

    marker = world.writes[0].pending_key
    assert marker is not None and marker.slot == "active" and marker.revision == 1
    assert marker.friendly_name == "tenant-video-keys-0a1b2c3d-r1"
    assert world.keys.calls == ["create"]
    assert status.active_key_sid == world.store.sid("active") == "SK" + "0" * 31 + "1"
    assert status.pending_key is None and status.revision == 1
    assert status.last_rotation_time == T0 and status.next_rotation_time == T0 + timedelta(hours=1)
    assert world.store.account_sid == "AC" + "0" * 32
    assert world.condition("Ready") == ("True", "KeyActive")
    assert world.condition("Rotating") == ("False", "Idle")
    assert world.condition("Synced") == ("True", "ReconcileSuccess")
    assert world.condition("Stalled") == ("False", "NotStalled")
    assert status.observed_generation == 1
    assert world.reasons() == ["KeyCreated"]
    assert_no_secret_leaked(world)


async def test_a_full_rotation_stages_switches_and_revokes_on_schedule() -> None:
    world = World()
    await world.reconcile()
    first = world.status.active_key_sid

    world.advance(minutes=59)
    await world.reconcile()
    assert world.status.next_key_sid is None and world.keys.calls == ["create"]

    world.advance(minutes=1)
    await world.reconcile()
    second = world.status.next_key_sid
    assert second is not None and world.store.sid("next") == second and world.store.sid("active") == first
    assert world.condition("Rotating") == ("True", "Staging")
    assert world.status.pending_key is None
    assert world.keys.live[second] == "tenant-video-keys-0a1b2c3d-r2"

    world.advance(minutes=2)
    switched_at = world.now
    await world.reconcile()
    assert (world.status.active_key_sid, world.status.previous_key_sid) == (second, first)
    assert (world.store.sid("active"), world.store.sid("previous"), world.store.sid("next")) == (
        second,
        first,
        None,
    )
    assert world.status.revision == 2 and world.status.last_rotation_time == switched_at
    assert world.status.previous_key_revoke_time == switched_at + timedelta(minutes=10)
    assert world.status.next_rotation_time == switched_at + timedelta(hours=1)
    assert world.condition("Rotating") == ("True", "Overlapping")

    world.advance(minutes=9, seconds=59)
    await world.reconcile()
    assert first in world.keys.live

    world.advance(seconds=1)
    await world.reconcile()
    assert first not in world.keys.live and world.status.previous_key_sid is None
    assert world.store.sid("previous") is None and world.store.sid("active") == second
    assert world.condition("Rotating") == ("False", "Idle")
    assert world.reasons() == ["KeyCreated", "KeyStaged", "KeyActivated", "KeyRevoked"]
    assert set(world.keys.live) == {second}
    assert_no_secret_leaked(world)


async def test_an_unchanged_object_is_not_written_again() -> None:
    world = World()
    await world.reconcile()
    writes = len(world.writes)

    world.advance(seconds=30)
    await world.reconcile()

    assert len(world.writes) == writes


async def test_no_status_write_repeats_the_one_before() -> None:
    world = World()
    await world.reconcile(rotate_request="first")
    world.advance(days=2)
    await world.reconcile()
    assert len(world.writes) >= 3
    assert all(before != after for before, after in zip(world.writes, world.writes[1:], strict=False))


async def test_manual_rotation_runs_once_per_annotation_value() -> None:
    world = World()
    await world.reconcile(rotate_request="first")
    assert world.status.last_rotate_request == "first" and world.status.next_key_sid is None

    await world.reconcile(rotate_request="second")
    assert world.status.next_key_sid is not None and world.status.last_rotate_request == "second"

    world.advance(minutes=2)
    await world.reconcile(rotate_request="second")
    world.advance(minutes=10)
    await world.reconcile(rotate_request="second")
    world.advance(minutes=5)
    await world.reconcile(rotate_request="second")
    assert world.status.revision == 2 and world.status.next_key_sid is None

    await world.reconcile(rotate_request="third")
    assert world.status.next_key_sid is not None


async def test_a_request_during_the_overlap_waits_for_the_revocation() -> None:
    world = World()
    await world.reconcile()
    await world.reconcile(rotate_request="a")
    world.advance(minutes=2)
    await world.reconcile(rotate_request="a")
    assert world.status.previous_key_sid is not None

    await world.reconcile(rotate_request="b")
    assert world.status.next_key_sid is None

    world.advance(minutes=10)
    await world.reconcile(rotate_request="b")
    assert world.status.previous_key_sid is None and world.status.next_key_sid is not None


async def test_a_crash_after_the_create_call_leaves_no_orphan_key() -> None:
    world = World()
    await world.reconcile()
    world.store.crash_on_write = True
    with pytest.raises(Crash):
        await world.reconcile(rotate_request="now")
    orphan = next(sid for sid in world.keys.live if sid != world.status.active_key_sid)
    assert world.status.pending_key is not None and world.status.next_key_sid is None

    world.store.crash_on_write = False
    await world.reconcile(rotate_request="now")

    assert orphan not in world.keys.live
    assert world.status.pending_key is None and world.status.next_key_sid is not None
    assert set(world.keys.live) == {world.status.active_key_sid, world.status.next_key_sid}
    assert world.keys.calls == ["create", "create", "list", f"delete {orphan}", "create"]
    assert "OrphanKeyRevoked" in world.reasons()


async def test_a_crash_after_the_secret_write_adopts_the_stored_key() -> None:
    world = World()
    world.crash_on_status_write = 2  # 1: marker, 2: the status recording the new key
    with pytest.raises(Crash):
        await world.reconcile()
    stored = world.store.sid("active")
    assert stored is not None and world.status.active_key_sid is None and world.status.pending_key is not None

    world.crash_on_status_write = None
    await world.reconcile()

    assert world.status.active_key_sid == stored and world.status.pending_key is None
    assert world.keys.calls == ["create"]
    assert set(world.keys.live) == {stored}


async def test_a_crash_during_the_switch_is_finished_from_the_secret() -> None:
    world = World()
    await world.reconcile()
    await world.reconcile(rotate_request="x")
    first, second = world.status.active_key_sid, world.status.next_key_sid
    world.advance(minutes=2)
    world.crash_on_status_write = len(world.writes) + 1
    with pytest.raises(Crash):
        await world.reconcile(rotate_request="x")
    assert world.store.sid("active") == second and world.status.active_key_sid == first

    world.crash_on_status_write = None
    await world.reconcile(rotate_request="x")

    assert (world.status.active_key_sid, world.status.previous_key_sid) == (second, first)
    assert world.store.sid("previous") == first


async def test_a_secret_write_failure_revokes_the_new_key_at_once() -> None:
    world = World()
    world.store.fail_on_write = True

    await world.reconcile()

    assert world.keys.live == {} and world.status.pending_key is None
    assert world.status.failed_attempts == 1
    assert world.condition("Synced")[0] == "False"


async def test_failures_back_off_exponentially() -> None:
    world = World()
    world.keys.errors = [RetryableError("boom", operation="CreateNewKey", status=500)] * 3

    await world.reconcile()
    assert world.status.failed_attempts == 1 and world.status.last_failure_time == T0
    assert world.condition("Synced") == ("False", "ReconcileError")
    assert world.reasons() == ["RotationFailed"]
    assert world.status.pending_key is None  # a 500 that certainly created nothing clears the marker

    await world.reconcile()
    assert world.keys.calls == ["create"]

    world.advance(seconds=30)
    await world.reconcile()
    assert world.keys.calls == ["create"] * 2 and world.status.failed_attempts == 2

    world.advance(seconds=30)
    await world.reconcile()
    assert world.keys.calls == ["create"] * 2

    world.advance(seconds=30)
    await world.reconcile()
    assert world.keys.calls == ["create"] * 3 and world.status.failed_attempts == 3

    world.advance(seconds=120)
    await world.reconcile()
    assert world.status.failed_attempts == 0 and world.status.active_key_sid is not None
    assert world.status.last_failure_time == T0 + timedelta(seconds=90)
    assert world.condition("Synced") == ("True", "ReconcileSuccess")


async def test_throttling_is_reported_as_such() -> None:
    world = World()
    world.keys.errors = [ThrottledError("slow down", operation="CreateNewKey", status=429, code=20429)]

    await world.reconcile()

    assert world.condition("Synced") == ("False", "RateLimited")
    assert world.condition("Ready") == ("False", "Creating")


async def test_a_create_that_may_have_happened_keeps_the_marker_and_cleans_up_first() -> None:
    world = World()
    world.keys.errors = [RetryableError("lost", operation="CreateNewKey", maybe_applied=True)]
    await world.reconcile()
    marker = world.status.pending_key
    assert marker is not None
    world.keys.live["SK" + "f" * 32] = marker.friendly_name  # it did reach Twilio
    world.keys.live["SK" + "e" * 32] = "someone-else-r1"

    world.advance(seconds=30)
    await world.reconcile()

    assert "SK" + "f" * 32 not in world.keys.live and "SK" + "e" * 32 in world.keys.live
    assert world.keys.calls == ["create", "list", f"delete SK{'f' * 32}", "create"]
    assert world.status.active_key_sid is not None


async def test_refused_credentials_stall_until_they_change() -> None:
    world = World()
    world.keys.errors = [AuthError("no", operation="CreateNewKey", status=401, code=20003)]

    await world.reconcile()
    assert world.condition("Stalled") == ("True", "AuthFailed")
    assert world.condition("Synced") == ("False", "AuthFailed")
    assert world.status.refused_credentials_fingerprint == "fp-1"
    assert world.reasons() == ["AuthFailed"]

    world.advance(hours=2)
    await world.reconcile()
    assert world.keys.calls == ["create"] and world.reasons() == ["AuthFailed"]

    await world.reconcile(credentials_fingerprint="fp-2")
    assert world.keys.calls == ["create", "create"]
    assert world.condition("Stalled") == ("False", "NotStalled")
    assert world.status.refused_credentials_fingerprint is None


async def test_forbidden_also_clears_on_a_new_generation() -> None:
    world = World()
    world.keys.errors = [AuthError("no", operation="CreateNewKey", status=403)]
    await world.reconcile()

    await world.reconcile(generation=2)

    assert world.status.active_key_sid is not None


async def test_a_foreign_secret_stalls_without_calling_twilio() -> None:
    world = World(store=FakeStore(keys={}, owned=False))

    await world.reconcile()

    assert world.condition("Stalled") == ("True", "SecretNotOwned")
    assert world.condition("Ready") == ("False", "SecretNotOwned")
    assert world.keys.calls == []


async def test_an_invalid_spec_stalls() -> None:
    world = World()

    await world.reconcile(spec=None, spec_problems=("spec.overlap: bad",))

    assert world.condition("Stalled") == ("True", "InvalidSpec")
    assert get_condition(world.status.conditions, "Stalled").message == "spec.overlap: bad"  # type: ignore[union-attr]


async def test_unreadable_credentials_fail_with_their_own_reason() -> None:
    world = World()

    await world.reconcile(keys=UnavailableKeys("credentials Secret admin not found"))

    assert world.condition("Synced") == ("False", "CredentialsNotFound")
    assert world.status.failed_attempts == 1


async def test_a_lost_secret_gets_a_new_active_key_and_the_old_one_is_revoked_later() -> None:
    world = World()
    await world.reconcile()
    old = world.status.active_key_sid
    world.store.keys = None  # someone deleted the Secret

    await world.reconcile()

    new = world.status.active_key_sid
    assert new != old and world.store.sid("active") == new
    assert world.status.previous_key_sid == old and world.status.revision == 2
    assert world.condition("Ready") == ("True", "KeyActive")
    world.advance(minutes=10)
    await world.reconcile()
    assert old not in world.keys.live and world.status.previous_key_sid is None


async def test_a_lost_secret_during_staging_promotes_nothing_it_cannot_read() -> None:
    world = World()
    await world.reconcile()
    await world.reconcile(rotate_request="r")
    staged = world.status.next_key_sid
    assert staged is not None
    world.store.keys = {}

    await world.reconcile(rotate_request="r")

    assert staged not in world.keys.live
    assert world.status.active_key_sid == world.store.sid("active") and world.status.next_key_sid is None


async def test_revoke_all_deletes_our_keys_and_orphans_only() -> None:
    keys = FakeKeys()
    live = {
        "SK1": "p-0a1b2c3d-r1",
        "SK2": "p-0a1b2c3d-r7",  # an orphan of ours
        "SK3": "p-ffffffff-r1",  # same prefix, another object
        "SK4": "p-0a1b2c3d-r1x",
        "SK5": "unrelated",
    }
    keys.live = dict(live)
    status = SigningKeyRotationStatus(active_key_sid="SK1", previous_key_sid="SK9")

    revoked = await revoke_all(keys, status, owned_name_matcher("p", UID))

    assert revoked == ["SK1", "SK2"]
    assert set(keys.live) == {"SK3", "SK4", "SK5"}


async def test_revoke_all_leaves_a_key_named_in_status_by_hand_alone() -> None:
    """Whoever may write the status could name the operator's own key or another object's: Twilio's list
    decides, by the owner part of the friendly name (a changed prefix still counts)."""
    keys = FakeKeys()
    keys.live = {"SKop": "operator-main-key", "SKother": "q-ffffffff-r1", "SKmine": "old-0a1b2c3d-r3"}
    status = SigningKeyRotationStatus(
        active_key_sid="SKop", next_key_sid="SKother", previous_key_sid="SKmine"
    )

    revoked = await revoke_all(keys, status, owned_name_matcher("new", UID))

    assert revoked == ["SKmine"]
    assert set(keys.live) == {"SKop", "SKother"}


async def test_a_previous_key_named_in_status_by_hand_is_not_revoked() -> None:
    """The overlap ends by revoking status.previousKeySid: a SID written there by hand (the operator's own
    key) is dropped from status with a Warning, and the key lives on."""
    world = World()
    await world.reconcile()
    world.keys.live["SKop"] = "operator-main-key"
    world.status = world.status.model_copy(
        update={"previous_key_sid": "SKop", "previous_key_revoke_time": world.now}
    )

    await world.reconcile()

    assert "SKop" in world.keys.live and "delete SKop" not in world.keys.calls
    assert world.status.previous_key_sid is None
    assert "KeyNotOwned" in world.reasons()
