"""Properties of every kind's spec check and planner: whatever a spec holds (any duration or time string,
any JSON value in any field, even a spec that is not an object), at any time of day in any year, they
answer without raising. A spec that does not validate has one outcome, the documented one: Stalled with
reason InvalidSpec and no Twilio action. Status times are any a datetime can hold, since whoever may write
the status can put them there."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twilio_video_operator.models.composition import (
    CompositionSpec,
    CompositionStatus,
    validate_composition_spec,
)
from twilio_video_operator.models.conditions import get_condition
from twilio_video_operator.models.duration import DURATION_MAX_LENGTH, DURATION_PATTERN, parse_duration
from twilio_video_operator.models.signingkeyrotation import (
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
    validate_signingkeyrotation_spec,
)
from twilio_video_operator.models.signingkeyrotation import spec_for_deletion as rotation_for_deletion
from twilio_video_operator.models.videoroom import (
    VideoRoomSpec,
    VideoRoomStatus,
    validate_videoroom_spec,
)
from twilio_video_operator.models.videoroom import spec_for_deletion as room_for_deletion
from twilio_video_operator.reconcilers import composition_plan
from twilio_video_operator.reconcilers import signingkeyrotation as rotation
from twilio_video_operator.reconcilers import signingkeyrotation_plan as rotation_plan
from twilio_video_operator.reconcilers.videoroom import CredentialsCheck, PlanInput, Working, plan
from twilio_video_operator.reconcilers.videoroom_desired import Defaults, window_of

PROPERTY = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
ROOM_SID = "RM" + "1" * 32
SK = "SK" + "a" * 32

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
DURATIONS = st.one_of(
    st.text(max_size=24),
    st.from_regex(r"\A[0-9]{1,22}(\.[0-9]{1,4})?(ms|s|m|h)\Z"),
    st.lists(st.from_regex(r"\A[0-9]{1,7}(ms|s|m|h)\Z"), min_size=1, max_size=5).map("".join),
    st.sampled_from(
        [
            "99999999999999999999h",
            "87600h",
            "87601h",
            "24h",
            "24h0.001s",
            "168h",
            "168h1ms",
            "999999h999999h9h",
            "0s",
            "-1h",
            "1e9h",
            " 2h",
            "2h\n",
            "\uff11h",  # a full-width digit
            ".5h",
        ]
    ),
)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=-1)), timezone(timedelta(hours=14)), timezone(-timedelta(hours=23))]
)
ANY_TIME = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSETS)
TIMES = st.one_of(
    ANY_TIME.map(datetime.isoformat),
    st.text(max_size=40),
    st.sampled_from(
        [
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "10000-01-01T00:00:00Z",
            "2027-01-01T10:00:00.123456789+01:00",
        ]
    ),
)
NOWS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC))
#: Status times: anything a datetime holds, with an offset.
STATUS_TIMES = st.one_of(
    st.none(),
    ANY_TIME,
    st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)]),
)


def anything(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``values``, sometimes any JSON value."""
    return st.one_of(values, values, JSON)


def specs(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({}, optional=fields), st.fixed_dictionaries({}, optional=fields), JSON
    )


ROOM_SPECS = specs(
    {
        "schedule": anything(
            st.fixed_dictionaries(
                {},
                optional={
                    "startTime": anything(TIMES),
                    "endTime": anything(TIMES),
                    "provisionAhead": anything(DURATIONS),
                },
            )
        ),
        "state": st.sampled_from(["Active", "Completed"]),
        "keepAlive": st.booleans(),
        "recording": anything(
            st.fixed_dictionaries(
                {"compose": st.fixed_dictionaries({}, optional={"stalledAfter": anything(DURATIONS)})}
            )
        ),
        "deletionPolicy": anything(st.sampled_from(["Complete", "Retain"])),
        "credentialsRef": anything(st.fixed_dictionaries({"name": st.sampled_from(["creds", "Bad_Name"])})),
        "maxParticipants": anything(st.integers(0, 60)),
    }
)
ROTATION_SPECS = specs(
    {
        "secretName": anything(st.sampled_from(["keys", "Bad_Name"])),
        "rotationInterval": anything(DURATIONS),
        "stagePeriod": anything(DURATIONS),
        "overlap": anything(DURATIONS),
        "deletionPolicy": anything(st.sampled_from(["Retain", "Revoke"])),
        "credentialsRef": anything(st.fixed_dictionaries({"name": st.just("creds")})),
    }
)
COMPOSITION_SPECS = specs(
    {
        "roomSid": anything(st.just(ROOM_SID)),
        "roomRef": anything(st.fixed_dictionaries({"name": st.just("room")})),
        "stalledAfter": anything(DURATIONS),
        "deletionPolicy": anything(st.sampled_from(["Retain", "Delete"])),
    }
)


def stall_reason(status: Any) -> str | None:
    condition = get_condition(status.conditions, "Stalled")
    return condition.reason if condition is not None and condition.status == "True" else None


# ------------------------------------------------------------------------------------------- durations


#: Go's (and so CEL's) longest duration, 2**63 - 1 nanoseconds.
GO_MAX_DURATION = timedelta(microseconds=(2**63 - 1) // 1000)


@PROPERTY
@given(text=DURATIONS)
def test_parse_duration_refuses_with_value_error_only(text: str) -> None:
    try:
        parsed = parse_duration(text)
    except ValueError:
        return
    assert timedelta(0) <= parsed <= timedelta(hours=87600)


@PROPERTY
@given(text=DURATIONS)
def test_no_duration_the_schema_accepts_overflows_cel(text: str) -> None:
    if len(text) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN, text):
        return
    assert parse_duration(text, maximum=timedelta.max) < GO_MAX_DURATION


# ------------------------------------------------------------------------------------------- VideoRoom


ROOM_STATUSES = st.builds(
    lambda sid, room_status, requested_at, ended_at: VideoRoomStatus.model_validate(
        {
            "sid": sid,
            "roomStatus": room_status,
            "createPending": {"uniqueName": "ns:room", "requestedAt": requested_at.isoformat()}
            if requested_at is not None
            else None,
            "endedAt": ended_at.isoformat() if ended_at is not None else None,
        }
    ),
    st.sampled_from([None, ROOM_SID]),
    st.sampled_from([None, "Scheduled", "in-progress", "completed", "failed"]),
    STATUS_TIMES,
    STATUS_TIMES,
)


@PROPERTY
@given(spec=ROOM_SPECS, status=ROOM_STATUSES, now=NOWS)
def test_video_room(spec: Any, status: VideoRoomStatus, now: datetime) -> None:
    raw = spec or {}  # as the handlers read it
    problems = tuple(validate_videoroom_spec(raw))
    parsed = None if problems else VideoRoomSpec.model_validate(raw)
    inp = PlanInput(
        namespace="ns",
        name="room",
        generation=1,
        spec=parsed,
        spec_problems=problems,
        status=status,
        now=now,
        defaults=Defaults(),
        credentials=CredentialsCheck("operator:abc"),
    )

    step = plan(inp, Working(status))

    room_for_deletion(spec)
    if parsed is None:
        assert step.stalled and step.action is None and stall_reason(step.status) == "InvalidSpec"
    else:
        window_of(parsed)


# ---------------------------------------------------------------------------------- SigningKeyRotation


ROTATION_STATUSES = st.builds(
    lambda active, staged, previous, rotated, staged_at, revoke_at, failed_at: SigningKeyRotationStatus(
        active_key_sid=active,
        next_key_sid=staged,
        previous_key_sid=previous,
        revision=1 if active else None,
        last_rotation_time=rotated,
        next_key_staged_at=staged_at,
        previous_key_revoke_time=revoke_at,
        failed_attempts=3 if failed_at is not None else None,
        last_failure_time=failed_at,
    ),
    st.sampled_from([None, SK]),
    st.sampled_from([None, "SK" + "b" * 32]),
    st.sampled_from([None, "SK" + "c" * 32]),
    STATUS_TIMES,
    STATUS_TIMES,
    STATUS_TIMES,
    STATUS_TIMES,
)


@PROPERTY
@given(spec=ROTATION_SPECS, status=ROTATION_STATUSES, now=NOWS, stored=st.booleans())
def test_signing_key_rotation(
    spec: Any, status: SigningKeyRotationStatus, now: datetime, stored: bool
) -> None:
    raw = spec or {}  # as the handlers read it
    problems = tuple(validate_signingkeyrotation_spec(raw))
    parsed = None if problems else SigningKeyRotationSpec.model_validate(raw)
    sids = {"active": status.active_key_sid} if stored and status.active_key_sid else {}
    facts = rotation_plan.RotationFacts(
        namespace="ns",
        name="keys",
        uid="uid",
        generation=1,
        spec=parsed,
        spec_problems=problems,
        status=status,
        rotate_request=None,
        secret_exists=stored,
        secret_owned=True,
        stored_sids=sids,
        credentials_fingerprint=None,
        now=now,
    )

    step = rotation_plan.plan_step(facts)
    outcome = rotation.RotationReport(stall=step if isinstance(step, rotation_plan.Stall) else None)
    summary = rotation.summarize(status, outcome, generation=1, spec=parsed, stored_active=stored, now=now)

    rotation_for_deletion(spec)
    if parsed is None:
        assert step == rotation_plan.Stall("InvalidSpec", "; ".join(problems))
        assert stall_reason(summary) == "InvalidSpec"


# ----------------------------------------------------------------------------------------- Composition


COMPOSITION_STATUSES = st.builds(
    lambda state, started, synced, pending: CompositionStatus(
        sid="CJ" + "2" * 32 if state is not None else None,
        room_sid=ROOM_SID,
        composition_status=state,
        started_at=started,
        last_synced_at=synced,
        create_pending_at=pending,
    ),
    st.sampled_from([None, "enqueued", "processing", "completed"]),
    STATUS_TIMES,
    STATUS_TIMES,
    STATUS_TIMES,
)
MEMORIES = st.builds(
    lambda checked, ended, since, retry_at: composition_plan.Memory(
        room_checked=checked, room_ended_at=ended, processing_since=since, delivery_retry_at=retry_at
    ),
    st.booleans(),
    STATUS_TIMES,
    STATUS_TIMES,
    STATUS_TIMES,
)


#: The created-spec annotation (JSON of the spec a composition was created from): anyone who may annotate
#: the object can write it.
CREATED_SPECS = st.one_of(st.none(), COMPOSITION_SPECS.filter(lambda value: isinstance(value, dict)))


@PROPERTY
@given(spec=COMPOSITION_SPECS, created=CREATED_SPECS, status=COMPOSITION_STATUSES, memory=MEMORIES, now=NOWS)
def test_composition(
    spec: Any,
    created: dict[str, Any] | None,
    status: CompositionStatus,
    memory: composition_plan.Memory,
    now: datetime,
) -> None:
    raw = spec or {}  # as the handlers read it
    problems = tuple(validate_composition_spec(raw))
    parsed = None if problems else CompositionSpec.model_validate(raw)
    ctx = composition_plan.CompositionContext(
        namespace="ns",
        name="c1",
        uid="uid",
        generation=1,
        spec=parsed,
        spec_problems=problems,
        created_spec=created,
        room=composition_plan.RoomTarget(ROOM_SID),
    )

    step = composition_plan.plan_step(ctx, status, memory, now, composition_plan.Timing())

    if parsed is None:
        assert step == composition_plan.Stall("InvalidSpec", "; ".join(problems))
