"""The pure planning function of SigningKeyRotation: which step follows from which facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twilio_video_operator.models import Condition
from twilio_video_operator.models.signingkeyrotation import (
    PendingKey,
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
)
from twilio_video_operator.reconcilers.signingkeyrotation_plan import (
    AdoptPending,
    BackoffPolicy,
    CreateKey,
    ResolvePending,
    Revoke,
    RotationFacts,
    Stall,
    Switch,
    Wait,
    default_friendly_name_prefix,
    key_friendly_name,
    owned_name_matcher,
    plan_step,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = SigningKeyRotationSpec(secret_name="keys", rotation_interval="1h", stage_period="2m", overlap="10m")
A, B, C = "SK" + "a" * 32, "SK" + "b" * 32, "SK" + "c" * 32


def facts(
    status: dict[str, Any] | None = None, stored: dict[str, str] | None = None, **changes: Any
) -> RotationFacts:
    values: dict[str, Any] = {
        "namespace": "ns",
        "name": "keys",
        "uid": "12345678-aaaa",
        "generation": 3,
        "spec": SPEC,
        "spec_problems": (),
        "status": SigningKeyRotationStatus.model_validate(status or {}),
        "rotate_request": None,
        "secret_exists": stored is not None,
        "secret_owned": True,
        "stored_sids": stored or {},
        "credentials_fingerprint": "fp",
        "now": NOW,
    }
    values.update(changes)
    return RotationFacts(**values)


def active(since: datetime = NOW, **more: Any) -> dict[str, Any]:
    return {"activeKeySid": A, "revision": 1, "lastRotationTime": since.isoformat(), **more}


def test_no_key_yet_creates_the_active_key() -> None:
    assert plan_step(facts()) == CreateKey("active", "ns-keys-12345678-r1", 1)


def test_an_idle_rotation_waits_for_its_due_time() -> None:
    assert plan_step(facts(active(), {"active": A})) == Wait(until=NOW + timedelta(hours=1))


def test_a_due_rotation_stages_the_next_revision() -> None:
    step = plan_step(facts(active(NOW - timedelta(hours=1), revision=4), {"active": A}))
    assert step == CreateKey("next", "ns-keys-12345678-r5", 5)


def test_a_new_annotation_value_starts_a_rotation_now() -> None:
    status = active(lastRotateRequest="old")
    assert isinstance(plan_step(facts(status, {"active": A}, rotate_request="new")), CreateKey)
    assert isinstance(plan_step(facts(status, {"active": A}, rotate_request="old")), Wait)
    assert isinstance(plan_step(facts(status, {"active": A}, rotate_request="  ")), Wait)


def test_staging_switches_after_the_stage_period() -> None:
    staged = active(nextKeySid=B, nextKeyStagedAt=(NOW - timedelta(seconds=119)).isoformat())
    assert plan_step(facts(staged, {"active": A, "next": B})) == Wait(until=NOW + timedelta(seconds=1))
    staged["nextKeyStagedAt"] = (NOW - timedelta(minutes=2)).isoformat()
    assert plan_step(facts(staged, {"active": A, "next": B})) == Switch()


def test_the_overlap_ends_with_a_revocation() -> None:
    overlapping = active(previousKeySid=B, previousKeyRevokeTime=(NOW + timedelta(seconds=5)).isoformat())
    assert plan_step(facts(overlapping, {"active": A, "previous": B})) == Wait(
        until=NOW + timedelta(seconds=5)
    )
    step = plan_step(facts(overlapping, {"active": A, "previous": B}, now=NOW + timedelta(seconds=5)))
    assert step == Revoke("previous", B, "its overlap is over")


def test_no_rotation_starts_during_the_overlap_even_when_requested() -> None:
    overlapping = active(
        NOW - timedelta(hours=2),
        previousKeySid=B,
        previousKeyRevokeTime=(NOW + timedelta(minutes=1)).isoformat(),
    )
    assert plan_step(facts(overlapping, {"active": A}, rotate_request="now")) == Wait(
        NOW + timedelta(minutes=1)
    )


def test_a_pending_key_found_in_the_secret_is_adopted() -> None:
    marker = {"friendlyName": "x-r2", "slot": "next", "revision": 2, "since": NOW.isoformat()}
    assert plan_step(facts(active(pendingKey=marker), {"active": A, "next": B})) == AdoptPending(B)


def test_a_pending_key_missing_from_the_secret_is_cleaned_up() -> None:
    marker = {"friendlyName": "x-r2", "slot": "next", "revision": 2, "since": NOW.isoformat()}
    assert plan_step(facts(active(pendingKey=marker), {"active": A})) == ResolvePending("x-r2")


def test_a_switch_seen_only_in_the_secret_is_recorded() -> None:
    staged = active(nextKeySid=B, nextKeyStagedAt=NOW.isoformat())
    assert plan_step(facts(staged, {"active": B, "previous": A})) == Switch(record_only=True)


def test_losing_the_active_key_replaces_it() -> None:
    step = plan_step(facts(active(), {}))
    assert step == CreateKey("active", "ns-keys-12345678-r2", 2, demote_active=True)
    staged = active(nextKeySid=B, nextKeyStagedAt=NOW.isoformat())
    assert plan_step(facts(staged, {"next": B})) == Switch()
    overlapping = active(previousKeySid=C, previousKeyRevokeTime=(NOW + timedelta(hours=1)).isoformat())
    assert isinstance(plan_step(facts(overlapping, {})), Revoke)


def test_losing_the_staged_key_revokes_it() -> None:
    staged = active(nextKeySid=B, nextKeyStagedAt=NOW.isoformat())
    assert plan_step(facts(staged, {"active": A})) == Revoke("next", B, "the Secret lost the staged key")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"spec": None, "spec_problems": ("spec.overlap: bad",)}, "InvalidSpec"),
        ({"secret_exists": True, "secret_owned": False}, "SecretNotOwned"),
    ],
)
def test_stalls(changes: dict[str, Any], reason: str) -> None:
    step = plan_step(facts(**changes))
    assert isinstance(step, Stall) and step.reason == reason


def test_auth_stall_holds_only_for_the_same_generation_and_credentials() -> None:
    stalled = Condition(
        type="Stalled", status="True", reason="AuthFailed", last_transition_time=NOW, observed_generation=3
    )
    status = {"conditions": [stalled.to_dict()], "refusedCredentialsFingerprint": "fp"}
    assert isinstance(plan_step(facts(status)), Stall)
    assert isinstance(plan_step(facts(status, credentials_fingerprint="other")), CreateKey)
    assert isinstance(plan_step(facts(status, generation=4)), CreateKey)


def test_backoff_holds_twilio_steps_only() -> None:
    failing = {"failedAttempts": 3, "lastFailureTime": NOW.isoformat()}
    policy = BackoffPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=1))
    assert plan_step(facts(failing), policy) == Wait(until=NOW + timedelta(seconds=40), backoff=True)
    assert isinstance(plan_step(facts(failing, now=NOW + timedelta(seconds=40)), policy), CreateKey)
    staged = active(nextKeySid=B, nextKeyStagedAt=(NOW - timedelta(hours=1)).isoformat(), **failing)
    assert plan_step(facts(staged, {"active": A, "next": B}), policy) == Switch()


def test_backoff_grows_and_is_capped() -> None:
    policy = BackoffPolicy(base=timedelta(seconds=30), cap=timedelta(hours=1))
    assert [policy.delay(n).total_seconds() for n in range(0, 5)] == [0, 30, 60, 120, 240]
    assert policy.delay(50) == timedelta(hours=1)


def test_friendly_names_fit_twilio_and_identify_the_object() -> None:
    long_prefix = default_friendly_name_prefix("n" * 63, "k" * 253)
    assert len(long_prefix) == 48
    assert long_prefix == default_friendly_name_prefix("n" * 63, "k" * 253)
    assert len(key_friendly_name(long_prefix, "abcdef12-3456", 99999)) <= 64
    assert key_friendly_name("p", "abcdef12-3456", 3) == "p-abcdef12-r3"
    assert key_friendly_name("p", None, 3) == "p-r3"
    matches = owned_name_matcher("p", "abcdef12-3456")
    assert matches("p-abcdef12-r12") and not matches("p-abcdef12-r") and not matches("p-abcdef13-r1")


def test_the_plan_is_pure() -> None:
    given = facts(active(NOW - timedelta(hours=2)), {"active": A})
    assert plan_step(given) == plan_step(given)
    assert given.status.active_key_sid == A


def test_a_pending_marker_round_trips_without_secrets() -> None:
    marker = PendingKey(friendly_name="p-r1", slot="active", revision=1, since=NOW)
    assert marker.to_dict() == {
        "friendlyName": "p-r1",
        "slot": "active",
        "revision": 1,
        "since": "2026-03-01T12:00:00Z",
    }
