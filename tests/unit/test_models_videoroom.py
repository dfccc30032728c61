"""VideoRoom spec and status models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from twilio_video_operator.models import (
    CompositionTemplate,
    VideoRoomSpec,
    VideoRoomStatus,
    default_unique_name,
    validate_videoroom_spec,
)
from twilio_video_operator.models.clientprofile import Degradation

ROOM_SID = "RM" + "0123456789abcdef" * 2


def test_defaults_leave_operator_settings_unset() -> None:
    spec = VideoRoomSpec.model_validate({})

    assert spec.type is None and spec.max_participants is None
    assert (spec.state, spec.keep_alive, spec.adopt_existing, spec.deletion_policy) == (
        "Active",
        False,
        False,
        "Complete",
    )
    assert spec.to_dict() == {
        "state": "Active",
        "keepAlive": False,
        "adoptExisting": False,
        "deletionPolicy": "Complete",
    }


def test_nested_defaults() -> None:
    spec = VideoRoomSpec.model_validate(
        {
            "schedule": {"startTime": "2027-01-01T10:00:00Z"},
            "tokens": {},
            "moderation": {},
            "recording": {"compose": {}},
            "clientProfile": {"degradation": {}},
        }
    )

    assert spec.schedule is not None and spec.schedule.provision_ahead == "5m"
    assert spec.tokens is not None and spec.tokens.max_ttl_seconds == 3600
    assert spec.moderation is not None and spec.moderation.blocked_identities == []
    assert spec.recording is not None and spec.recording.participants_on_connect is False
    compose = spec.recording.compose
    assert compose is not None and (compose.audio_sources, compose.resolution, compose.format) == (
        ["*"],
        "640x480",
        "mp4",
    )
    assert spec.client_profile is not None
    assert spec.client_profile.degradation == Degradation(
        audio_only_below_level=2, after_seconds=10, restore_at_level=3, restore_after_seconds=30
    )


def test_camel_case_round_trip_and_snake_case_population() -> None:
    manifest: dict[str, Any] = {
        "uniqueName": "team:standup",
        "type": "group",
        "maxParticipants": 12,
        "maxParticipantDuration": 3600,
        "emptyRoomTimeout": 5,
        "unusedRoomTimeout": 5,
        "mediaRegion": "ie1",
        "videoCodecs": ["VP8", "H264"],
        "audioOnly": False,
        "state": "Completed",
        "keepAlive": True,
        "recording": {"participantsOnConnect": True, "rules": [{"type": "include", "all": True}]},
        "access": {"allowedIdentities": ["guest-*"]},
        "clientProfile": {
            "bandwidthProfile": {"video": {"mode": "grid", "anything": [1, 2]}},
            "preferredVideoCodecs": [{"codec": "VP8", "simulcast": True}],
            "maxAudioBitrate": 16000,
            "networkQuality": {"local": 1, "remote": 2},
            "dominantSpeaker": True,
        },
        "tokens": {"signingKeyRotationRef": {"name": "keys"}, "maxTtlSeconds": 600},
        "adoptExisting": True,
        "deletionPolicy": "Retain",
        "credentialsRef": {"name": "tenant-twilio"},
    }

    spec = VideoRoomSpec.model_validate(manifest)

    assert spec.unique_name == "team:standup" and spec.max_participants == 12
    assert spec.client_profile is not None and spec.client_profile.bandwidth_profile == {
        "video": {"mode": "grid", "anything": [1, 2]}
    }
    assert spec.to_dict() == manifest
    assert VideoRoomSpec(max_participants=3, keep_alive=True).to_dict()["maxParticipants"] == 3


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"maxParticipants": 51}, "spec.maxParticipants: Input should be less than or equal to 50"),
        ({"maxParticipants": 0}, "spec.maxParticipants: Input should be greater than or equal to 1"),
        ({"type": "huge"}, "spec.type: Input should be 'group', 'group-small', 'peer-to-peer' or 'go'"),
        (
            {"maxParticipantDuration": 599},
            "spec.maxParticipantDuration: Input should be greater than or equal to 600",
        ),
        ({"emptyRoomTimeout": 61}, "spec.emptyRoomTimeout: Input should be less than or equal to 60"),
        ({"uniqueName": "x" * 129}, "spec.uniqueName: String should have at most 128 characters"),
        ({"videoCodecs": ["VP9"]}, "spec.videoCodecs[0]: Input should be 'VP8' or 'H264'"),
        ({"videoCodecs": ["H264", "H264"]}, "spec.videoCodecs: videoCodecs lists a codec twice"),
        ({"state": "Paused"}, "spec.state: Input should be 'Active' or 'Completed'"),
        ({"colour": "blue"}, "spec.colour: unknown field"),
        ({"credentialsRef": {}}, "spec.credentialsRef.name: required field is missing"),
        ({"credentialsRef": {"name": "Not_A_Name"}}, "spec.credentialsRef.name: String should match pattern"),
        (
            {"schedule": {"startTime": "2027-01-01T10:00:00"}},
            "spec.schedule.startTime: Input should have timezone info",
        ),
        (
            {"schedule": {"startTime": "2027-01-01T10:00:00Z", "provisionAhead": "5 minutes"}},
            "spec.schedule.provisionAhead",
        ),
        ({"recording": {"rules": []}}, "spec.recording.rules: List should have at least 1 item"),
        ({"recording": {"rules": [{"type": "include", "kind": "data"}]}}, "spec.recording.rules[0].kind"),
        (
            {"recording": {"compose": {"roomRef": {"name": "x"}}}},
            "spec.recording.compose.roomRef: unknown field",
        ),
        (
            {"tokens": {"maxTtlSeconds": 86401}},
            "spec.tokens.maxTtlSeconds: Input should be less than or equal to 86400",
        ),
        ({"clientProfile": {"maxAudioBitrate": 1000}}, "spec.clientProfile.maxAudioBitrate"),
        ({"mediaRegion": "mars"}, "spec.mediaRegion: String should match pattern"),
    ],
)
def test_field_constraints_name_the_field(spec: dict[str, Any], expected: str) -> None:
    problems = validate_videoroom_spec(spec)

    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"startTime": "2027-01-01T10:00:00Z", "endTime": "2027-01-01T10:00:00Z"}, "endTime must be after"),
        (
            {"startTime": "2027-01-01T10:00:00Z", "endTime": "2027-01-01T09:00:00+00:00"},
            "endTime must be after",
        ),
        ({"provisionAhead": "10m"}, "needs startTime, endTime or both"),
    ],
)
def test_schedule_rules(schedule: dict[str, Any], expected: str) -> None:
    problems = validate_videoroom_spec({"schedule": schedule})

    assert len(problems) == 1 and problems[0].startswith("spec.schedule: ") and expected in problems[0]


@pytest.mark.parametrize(
    "schedule",
    [
        {"startTime": "2027-01-01T10:00:00Z", "endTime": "2027-01-01T11:00:00Z"},
        {"startTime": "2027-01-01T10:00:00+02:00", "endTime": "2027-01-01T09:30:00Z"},
        {"endTime": "2027-01-01T11:00:00Z"},
        {"startTime": "2027-01-01T10:00:00Z"},
    ],
)
def test_valid_schedules(schedule: dict[str, Any]) -> None:
    assert validate_videoroom_spec({"schedule": schedule}) == []


@pytest.mark.parametrize(
    ("rule", "ok"),
    [
        ({"type": "include", "all": True}, True),
        ({"type": "exclude", "publisher": "alice", "kind": "video"}, True),
        ({"type": "include", "track": "screen"}, True),
        ({"type": "include"}, False),
        ({"type": "include", "all": False}, False),
        ({"type": "include", "all": True, "kind": "audio"}, False),
    ],
)
def test_recording_rule_shapes(rule: dict[str, Any], ok: bool) -> None:
    problems = validate_videoroom_spec({"recording": {"rules": [rule]}})

    assert (problems == []) is ok, problems
    if not ok:
        assert problems[0].startswith("spec.recording.rules[0]: ")


def test_recording_needs_a_group_room() -> None:
    problems = validate_videoroom_spec({"type": "peer-to-peer", "recording": {"participantsOnConnect": True}})

    assert problems == ["spec: recording needs a group or group-small room, not type peer-to-peer"]
    assert (
        validate_videoroom_spec({"type": "group-small", "recording": {"participantsOnConnect": True}}) == []
    )


def test_degradation_needs_hysteresis() -> None:
    problems = validate_videoroom_spec(
        {"clientProfile": {"degradation": {"audioOnlyBelowLevel": 3, "restoreAtLevel": 2}}}
    )

    assert problems == ["spec.clientProfile.degradation: restoreAtLevel must be at least audioOnlyBelowLevel"]


def test_recording_compose_is_a_composition_spec_without_the_room() -> None:
    spec = VideoRoomSpec.model_validate(
        {"recording": {"compose": {"videoLayout": {"grid": {}}, "format": "webm"}}}
    )

    assert spec.recording is not None and isinstance(spec.recording.compose, CompositionTemplate)
    assert validate_videoroom_spec({"recording": {"compose": {"audioSources": []}}}) == [
        "spec.recording.compose: set videoLayout or at least one entry in audioSources"
    ]


def test_validate_spec_accepts_none_and_reports_every_field_problem() -> None:
    assert validate_videoroom_spec(None) == []
    assert len(validate_videoroom_spec({"maxParticipants": 99, "type": "huge", "keepAlive": "maybe"})) == 3


@pytest.mark.parametrize("name", ["team/standup", "tab\there", "bell\x07", "del\x7f"])
def test_unique_name_refuses_what_twilio_refuses(name: str) -> None:
    problems = validate_videoroom_spec({"uniqueName": name})
    assert len(problems) == 1 and problems[0].startswith("spec.uniqueName") and "53102" in problems[0]


def test_unique_name_allows_unicode_and_spaces() -> None:
    assert validate_videoroom_spec({"uniqueName": "équipe: salle 🎥"}) == []


def test_default_unique_name() -> None:
    assert default_unique_name("team-a", "standup") == "team-a:standup"
    long_name = default_unique_name("ns", "r" * 200)
    assert len(long_name) == 128
    assert long_name == default_unique_name("ns", "r" * 200)
    assert long_name != default_unique_name("ns", "r" * 199 + "s")


def test_status_reads_what_the_operator_writes_and_ignores_foreign_fields() -> None:
    stored = {
        "sid": ROOM_SID,
        "uniqueName": "default:standup",
        "roomStatus": "in-progress",
        "type": "group",
        "createdAt": "2026-03-01T12:00:00Z",
        "participants": {"connected": 3, "peak": 5},
        "sessions": {"count": 2, "recentSids": [ROOM_SID]},
        "observedGeneration": 4,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "message": "",
                "lastTransitionTime": "2026-03-01T12:00:00Z",
            }
        ],
        "kopf": {"progress": {}},
    }

    status = VideoRoomStatus.model_validate(stored)

    assert status.participants is not None and status.participants.peak == 5
    stored.pop("kopf")
    assert status.to_dict() == stored
    assert VideoRoomStatus().to_dict() == {"conditions": []}


def test_status_room_status_is_an_enum() -> None:
    with pytest.raises(ValidationError):
        VideoRoomStatus.model_validate({"roomStatus": "open"})
