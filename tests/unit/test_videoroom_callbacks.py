"""Room status callbacks folded into VideoRoom status (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom_callbacks import (
    RoomCallback,
    apply_room_callback,
    parse_room_callback,
)

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
LIVE = VideoRoomStatus.model_validate(
    {"sid": "RM1", "roomStatus": "in-progress", "participants": {"connected": 1, "peak": 3}}
)
SPEC = VideoRoomSpec.model_validate({"moderation": {"blockedIdentities": ["mallory"]}})


def event(name: str, **params: str) -> RoomCallback:
    parsed = parse_room_callback(
        {"AccountSid": "AC1", "RoomSid": "RM1", "StatusCallbackEvent": name, "RoomType": "group", **params}
    )
    assert parsed is not None
    return parsed


def test_parse_reads_twilio_fields() -> None:
    parsed = event(
        "participant-disconnected",
        Timestamp="2026-03-02T11:59:58.123Z",
        ParticipantSid="PA1",
        ParticipantIdentity="alice",
        ParticipantDuration="61",
        RoomName="team:standup",
    )
    assert parsed.timestamp == datetime(2026, 3, 2, 11, 59, 58, 123000, tzinfo=UTC)
    assert (parsed.participant_sid, parsed.participant_identity, parsed.participant_duration) == (
        "PA1",
        "alice",
        61,
    )
    assert parsed.room_name == "team:standup" and parsed.metric_room_type == "group"


def test_parse_rejects_events_without_the_required_fields_and_tolerates_junk() -> None:
    assert parse_room_callback({"RoomSid": "RM1", "StatusCallbackEvent": "room-ended"}) is None
    assert parse_room_callback({"AccountSid": "AC1", "StatusCallbackEvent": "room-ended"}) is None
    assert parse_room_callback({"AccountSid": "AC1", "RoomSid": "RM1"}) is None
    junk = event("room-ended", Timestamp="yesterday", RoomDuration="long", RoomType="huge")
    assert junk.timestamp is None and junk.room_duration is None and junk.metric_room_type == "other"
    naive = event("room-ended", Timestamp="2026-03-02T11:00:00")
    assert naive.timestamp == datetime(2026, 3, 2, 11, tzinfo=UTC)


def test_connect_and_disconnect_move_the_counts() -> None:
    joined = apply_room_callback(LIVE, SPEC, event("participant-connected", ParticipantIdentity="ann"), NOW)
    assert joined.status.participants is not None
    assert (joined.status.participants.connected, joined.status.participants.peak) == (2, 3)
    assert joined.disconnect == () and not joined.reconcile

    left = apply_room_callback(LIVE, SPEC, event("participant-disconnected", ParticipantDuration="45"), NOW)
    assert left.status.participants is not None and left.status.participants.connected == 0
    assert left.participant_seconds == 45

    empty = VideoRoomStatus(sid="RM1", room_status="in-progress")
    assert (
        apply_room_callback(empty, None, event("participant-disconnected"), NOW).status.participants.connected
        == 0
    )  # type: ignore[union-attr]


def test_new_peak_is_recorded() -> None:
    crowded = LIVE.model_copy(update={"participants": LIVE.participants.model_copy(update={"connected": 3})})  # type: ignore[union-attr]
    joined = apply_room_callback(crowded, None, event("participant-connected"), NOW)
    assert joined.status.participants is not None and joined.status.participants.peak == 4


def test_blocked_identity_is_reported_for_disconnection() -> None:
    joined = apply_room_callback(
        LIVE, SPEC, event("participant-connected", ParticipantIdentity="mallory", ParticipantSid="PA9"), NOW
    )
    assert joined.disconnect == (("PA9", "mallory"),)
    without_sid = apply_room_callback(
        LIVE, SPEC, event("participant-connected", ParticipantIdentity="mallory"), NOW
    )
    assert without_sid.disconnect == (("mallory", "mallory"),)
    ended = LIVE.model_copy(update={"room_status": "completed"})
    assert (
        apply_room_callback(
            ended, SPEC, event("participant-connected", ParticipantIdentity="mallory"), NOW
        ).disconnect
        == ()
    )


def test_room_ended_records_the_end_and_asks_for_a_reconcile() -> None:
    ended = apply_room_callback(
        LIVE,
        None,
        event("room-ended", RoomStatus="completed", RoomDuration="300", Timestamp="2026-03-02T11:00:00Z"),
        NOW,
    )
    status = ended.status
    assert (status.room_status, status.duration_seconds) == ("completed", 300)
    assert status.ended_at == datetime(2026, 3, 2, 11, tzinfo=UTC)
    assert status.participants is not None and (status.participants.connected, status.participants.peak) == (
        0,
        3,
    )
    assert ended.reconcile

    failed = apply_room_callback(LIVE, None, event("room-ended", RoomStatus="failed"), NOW)
    assert failed.status.room_status == "failed" and failed.status.ended_at == NOW
    odd = apply_room_callback(LIVE, None, event("room-ended", RoomStatus="in-progress"), NOW)
    assert odd.status.room_status == "completed"


def test_room_ended_after_our_own_completion_needs_no_reconcile() -> None:
    completed = LIVE.model_copy(update={"room_status": "completed"})
    assert not apply_room_callback(completed, None, event("room-ended"), NOW).reconcile


def test_events_of_another_session_or_of_no_interest_change_nothing() -> None:
    other = parse_room_callback({"AccountSid": "AC1", "RoomSid": "RM0", "StatusCallbackEvent": "room-ended"})
    assert other is not None
    assert apply_room_callback(LIVE, None, other, NOW).status is LIVE
    for name in ("track-added", "recording-started", "room-created"):
        assert apply_room_callback(LIVE, None, event(name), NOW).status == LIVE
    fresh = VideoRoomStatus(sid="RM1")
    assert apply_room_callback(fresh, None, event("room-created"), NOW).status.room_status == "in-progress"
