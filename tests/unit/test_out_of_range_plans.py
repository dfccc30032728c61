"""A spec whose duration is too long for the operator's arithmetic is an invalid spec: each kind's spec
check names the field, and its planner stalls with reason InvalidSpec (no Twilio action) instead of
raising. The spec goes through the same parsing as in the handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from twilio_video_operator.models.composition import (
    CompositionSpec,
    CompositionStatus,
    validate_composition_spec,
)
from twilio_video_operator.models.conditions import get_condition
from twilio_video_operator.models.signingkeyrotation import (
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
    validate_signingkeyrotation_spec,
)
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus, validate_videoroom_spec
from twilio_video_operator.reconcilers import composition_plan
from twilio_video_operator.reconcilers.signingkeyrotation_plan import RotationFacts, Stall, plan_step
from twilio_video_operator.reconcilers.videoroom import CredentialsCheck, PlanInput, Working, plan
from twilio_video_operator.reconcilers.videoroom_desired import Defaults

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HUGE = "99999999999999999999h"
ROOM_SID = "RM" + "1" * 32


@pytest.mark.parametrize("field", ["rotationInterval", "stagePeriod", "overlap"])
def test_signing_key_rotation(field: str) -> None:
    raw: dict[str, Any] = {"secretName": "keys", field: HUGE}
    problems = tuple(validate_signingkeyrotation_spec(raw))
    spec = None if problems else SigningKeyRotationSpec.model_validate(raw)
    facts = RotationFacts(
        namespace="ns",
        name="keys",
        uid="uid",
        generation=1,
        spec=spec,
        spec_problems=problems,
        status=SigningKeyRotationStatus(),
        rotate_request=None,
        secret_exists=False,
        secret_owned=False,
        stored_sids={},
        credentials_fingerprint=None,
        now=NOW,
    )

    step = plan_step(facts)

    assert isinstance(step, Stall) and step.reason == "InvalidSpec"
    assert f"spec.{field}" in step.message


def test_video_room_provision_ahead() -> None:
    start = (NOW + timedelta(hours=1)).isoformat()
    raw = {"schedule": {"startTime": start, "provisionAhead": HUGE}}
    problems = tuple(validate_videoroom_spec(raw))
    spec = None if problems else VideoRoomSpec.model_validate(raw)
    inp = PlanInput(
        namespace="ns",
        name="room",
        generation=1,
        spec=spec,
        spec_problems=problems,
        status=VideoRoomStatus(),
        now=NOW,
        defaults=Defaults(),
        credentials=CredentialsCheck("operator:abc"),
    )

    step = plan(inp, Working(inp.status))

    assert step.action is None and step.stalled
    stalled = get_condition(step.status.conditions, "Stalled")
    assert stalled is not None and stalled.reason == "InvalidSpec"
    assert "spec.schedule.provisionAhead" in stalled.message


def test_composition_stalled_after() -> None:
    raw = {"roomSid": ROOM_SID, "stalledAfter": HUGE}
    problems = tuple(validate_composition_spec(raw))
    spec = None if problems else CompositionSpec.model_validate(raw)
    ctx = composition_plan.CompositionContext(
        namespace="ns",
        name="c1",
        uid="uid",
        generation=1,
        spec=spec,
        spec_problems=problems,
        room=composition_plan.RoomTarget(ROOM_SID),
    )
    status = CompositionStatus(
        sid="CJ" + "2" * 32,
        room_sid=ROOM_SID,
        composition_status="processing",
        started_at=NOW - timedelta(minutes=1),
        last_synced_at=NOW,
    )

    memory = composition_plan.Memory(room_checked=True)

    step = composition_plan.plan_step(ctx, status, memory, NOW, composition_plan.Timing())

    assert isinstance(step, composition_plan.Stall) and step.reason == "InvalidSpec"
    assert "spec.stalledAfter" in step.message
