"""Composition spec and status models."""

from __future__ import annotations

from typing import Any

import pytest

from twilio_video_operator.models import (
    CompositionSpec,
    CompositionStatus,
    S3Delivery,
    composition_spec_changes,
    validate_composition_spec,
)

ROOM_SID = "RM" + "0123456789abcdef" * 2


def test_defaults_from_the_contract() -> None:
    spec = CompositionSpec.model_validate({"roomRef": {"name": "standup"}})

    assert spec.to_dict() == {
        "roomRef": {"name": "standup"},
        "audioSources": ["*"],
        "audioSourcesExcluded": [],
        "resolution": "640x480",
        "format": "mp4",
        "trim": True,
        "stalledAfter": "2h",
        "deletionPolicy": "Retain",
    }


def test_default_lists_are_not_shared_between_instances() -> None:
    first = CompositionSpec(room_sid=ROOM_SID)
    first.audio_sources.append("alice")

    assert CompositionSpec(room_sid=ROOM_SID).audio_sources == ["*"]


@pytest.mark.parametrize(
    "spec",
    [{}, {"roomRef": {"name": "standup"}, "roomSid": ROOM_SID}],
)
def test_exactly_one_room(spec: dict[str, Any]) -> None:
    assert validate_composition_spec(spec) == ["spec: set exactly one of roomRef and roomSid"]


def test_room_sid_pattern() -> None:
    problems = validate_composition_spec({"roomSid": "RM123"})

    assert problems[0].startswith("spec.roomSid: String should match pattern '^RM[0-9a-f]{32}$'")


@pytest.mark.parametrize(
    ("resolution", "problem"),
    [
        ("1280x720", None),
        ("16x16", None),
        ("1280x720p", "String should match pattern"),
        ("1281x100", "each be 16..1280"),
        ("15x100", "each be 16..1280"),
        ("1280x800", "at most 921600 pixels"),
    ],
)
def test_resolution(resolution: str, problem: str | None) -> None:
    problems = validate_composition_spec({"roomSid": ROOM_SID, "resolution": resolution})

    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith("spec.resolution: ") and problem in problems[0]


def test_needs_a_layout_or_audio() -> None:
    assert validate_composition_spec({"roomSid": ROOM_SID, "audioSources": []}) == [
        "spec: set videoLayout or at least one entry in audioSources"
    ]
    assert (
        validate_composition_spec({"roomSid": ROOM_SID, "audioSources": [], "videoLayout": {"grid": {}}})
        == []
    )


def test_enums_and_durations() -> None:
    problems = validate_composition_spec(
        {"roomSid": ROOM_SID, "format": "mkv", "deletionPolicy": "Orphan", "stalledAfter": "2 hours"}
    )

    assert [p.split(":")[0] for p in problems] == ["spec.format", "spec.stalledAfter", "spec.deletionPolicy"]


def test_s3_delivery_defaults_and_key_template() -> None:
    spec = CompositionSpec.model_validate(
        {"roomSid": ROOM_SID, "delivery": {"s3": {"bucket": "recordings", "credentialsRef": {"name": "s3"}}}}
    )

    assert spec.delivery is not None
    s3 = spec.delivery.s3
    assert s3.key == "{namespace}/{name}/{sid}.{format}"
    assert s3.object_key(
        namespace="team", name="daily", sid="CJ1", media_format="mp4", room_sid=ROOM_SID
    ) == ("team/daily/CJ1.mp4")
    custom = S3Delivery.model_validate(
        {"bucket": "rec", "key": "{roomSid}/{sid}", "credentialsRef": {"name": "s"}}
    )
    assert (
        custom.object_key(namespace="n", name="c", sid="CJ1", media_format="webm", room_sid="RM9")
        == "RM9/CJ1"
    )


@pytest.mark.parametrize(
    ("s3", "problem"),
    [
        (
            {"bucket": "rec", "key": "{tenant}/{sid}", "credentialsRef": {"name": "s"}},
            "unknown placeholder {tenant}",
        ),
        ({"bucket": "rec", "key": "{}/{sid}", "credentialsRef": {"name": "s"}}, "unknown placeholder {}"),
        ({"bucket": "rec", "key": "{sid", "credentialsRef": {"name": "s"}}, "not a valid template"),
        ({"bucket": "Bad_Bucket", "credentialsRef": {"name": "s"}}, "String should match pattern"),
        ({"bucket": "rec"}, "required field is missing"),
        (
            {"bucket": "rec", "credentialsRef": {"name": "s"}, "endpoint": "ftp://x"},
            "String should match pattern",
        ),
    ],
)
def test_s3_delivery_problems(s3: dict[str, Any], problem: str) -> None:
    problems = validate_composition_spec({"roomSid": ROOM_SID, "delivery": {"s3": s3}})

    assert len(problems) == 1 and problems[0].startswith("spec.delivery.s3.") and problem in problems[0], (
        problems
    )


def test_changes_ignore_spelled_out_defaults_and_name_changed_fields() -> None:
    old = {"roomRef": {"name": "standup"}}

    assert (
        composition_spec_changes(old, {"roomRef": {"name": "standup"}, "format": "mp4", "trim": True}) == []
    )
    assert composition_spec_changes(
        old, {"roomRef": {"name": "standup"}, "format": "webm", "resolution": "320x240"}
    ) == [
        "spec.format: the spec is immutable after creation; create a new Composition",
        "spec.resolution: the spec is immutable after creation; create a new Composition",
    ]
    assert composition_spec_changes(old, {"roomSid": ROOM_SID}) == [
        "spec.roomRef: the spec is immutable after creation; create a new Composition",
        "spec.roomSid: the spec is immutable after creation; create a new Composition",
    ]


def test_status_round_trip() -> None:
    stored = {
        "sid": "CJ" + "a" * 32,
        "roomSid": ROOM_SID,
        "compositionStatus": "processing",
        "progressPercent": 40,
        "secondsRemaining": 30,
        "delivery": {
            "url": "s3://rec/default/x/CJ.mp4",
            "bytes": 10,
            "sha256": "ab",
            "deliveredAt": "2026-03-01T12:00:00Z",
        },
        "createPendingAt": "2026-03-01T11:59:00Z",
        "observedGeneration": 1,
        "conditions": [],
    }

    assert CompositionStatus.model_validate(stored).to_dict() == stored
