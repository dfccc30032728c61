"""SigningKeyRotation spec and status models."""

from __future__ import annotations

from typing import Any

import pytest

from twilio_video_operator.models import (
    SecretKeys,
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
    validate_signingkeyrotation_spec,
)


def test_defaults_from_the_contract() -> None:
    spec = SigningKeyRotationSpec.model_validate({"secretName": "video-keys"})

    assert spec.to_dict() == {
        "secretName": "video-keys",
        "rotationInterval": "720h",
        "stagePeriod": "2m",
        "overlap": "2h",
        "deletionPolicy": "Retain",
    }
    assert spec.friendly_name_prefix is None and spec.credentials_ref is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ["spec.secretName: required field is missing"]),
        ({"secretName": "Video_Keys"}, ["spec.secretName: String should match pattern"]),
        (
            {"secretName": "k", "rotationInterval": "30 days"},
            ["spec.rotationInterval: invalid duration '30 days'"],
        ),
        (
            {"secretName": "k", "deletionPolicy": "Delete"},
            ["spec.deletionPolicy: Input should be 'Retain' or 'Revoke'"],
        ),
        (
            {"secretName": "k", "friendlyNamePrefix": "x" * 49},
            ["spec.friendlyNamePrefix: String should have at most 48"],
        ),
        (
            {"secretName": "k", "rotationInterval": "2h2m"},
            ["spec: rotationInterval must be longer than stagePeriod + overlap"],
        ),
    ],
)
def test_problems_name_the_field(spec: dict[str, Any], expected: list[str]) -> None:
    problems = validate_signingkeyrotation_spec(spec)

    assert len(problems) == len(expected)
    assert all(problem.startswith(prefix) for problem, prefix in zip(problems, expected, strict=True)), (
        problems
    )


def test_interval_just_longer_than_the_cycle_is_fine() -> None:
    assert validate_signingkeyrotation_spec({"secretName": "k", "rotationInterval": "2h2m1s"}) == []
    assert (
        validate_signingkeyrotation_spec(
            {"secretName": "k", "rotationInterval": "1h", "overlap": "30m", "stagePeriod": "90s"}
        )
        == []
    )


def test_status_round_trip_carries_sids_only() -> None:
    stored = {
        "activeKeySid": "SK" + "1" * 32,
        "nextKeySid": "SK" + "2" * 32,
        "revision": 3,
        "nextKeyStagedAt": "2026-03-01T12:00:00Z",
        "nextRotationTime": "2026-03-31T12:00:00Z",
        "failedAttempts": 0,
        "conditions": [],
    }

    status = SigningKeyRotationStatus.model_validate(stored)

    assert status.to_dict() == stored
    assert not any("secret" in field.lower() for field in SigningKeyRotationStatus.model_fields)


def test_secret_key_names_match_the_contract() -> None:
    assert (SecretKeys.API_KEY, SecretKeys.API_SECRET_NEXT, SecretKeys.API_KEY_PREVIOUS) == (
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET_NEXT",
        "TWILIO_API_KEY_PREVIOUS",
    )
