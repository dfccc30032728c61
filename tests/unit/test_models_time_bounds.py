"""Every duration and time field is bounded in the CRD (a pattern and a length the structural schema checks,
CEL rules for the maximum and the instant) and in the models, and both agree on where the bounds are."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_models_cel_rules import composition, room, rotation, rule_failures

from crd_validation import manifest_problems
from twilio_video_operator.crdgen import build_crds
from twilio_video_operator.models import kind_info
from twilio_video_operator.models.duration import MAX_DURATION, DurationLimit, parse_duration
from twilio_video_operator.models.timestamps import shifted

CRDS = build_crds()
ROOM_SID = "RM" + "0123456789abcdef" * 2
START = "2027-01-01T10:00:00Z"
HUGE = "99999999999999999999h"

Build = Callable[[str], dict[str, Any]]
#: Each duration field: where it is, an object with a value in it, and its maximum.
DURATION_FIELDS: list[tuple[str, Build, str]] = [
    ("spec.rotationInterval", lambda v: rotation(secretName="k", rotationInterval=v), "87600h"),
    ("spec.stagePeriod", lambda v: rotation(secretName="k", stagePeriod=v), "87600h"),
    ("spec.overlap", lambda v: rotation(secretName="k", overlap=v), "87600h"),
    (
        "spec.schedule.provisionAhead",
        lambda v: room(schedule={"startTime": START, "provisionAhead": v}),
        "24h",
    ),
    ("spec.stalledAfter", lambda v: composition(roomSid=ROOM_SID, stalledAfter=v), "168h"),
    (
        "spec.recording.compose.stalledAfter",
        lambda v: room(recording={"compose": {"stalledAfter": v}}),
        "168h",
    ),
]
IDS = [path for path, _, _ in DURATION_FIELDS]


def model_problems(obj: dict[str, Any]) -> list[str]:
    return kind_info(obj["kind"]).validate_spec(obj["spec"])


def about(path: str, problems: list[str]) -> list[str]:
    return [problem for problem in problems if problem.startswith(f"{path}:")]


@pytest.mark.parametrize(("path", "build", "maximum"), DURATION_FIELDS, ids=IDS)
def test_an_overflowing_duration_is_refused_by_the_schema_and_the_model(
    path: str, build: Build, maximum: str
) -> None:
    obj = build(HUGE)

    assert about(path, manifest_problems(obj, CRDS)), "the structural schema lets it through"
    assert about(path, model_problems(obj)) == [
        f"{path}: invalid duration '{HUGE}': use numbers of up to 6 digits, each with a unit (ms, s, m, h), "
        "at most 16 characters in all, e.g. 90s, 5m, 2h"
    ]


@pytest.mark.parametrize(("path", "build", "maximum"), DURATION_FIELDS, ids=IDS)
def test_the_maximum_is_accepted_and_a_millisecond_more_refused(
    path: str, build: Build, maximum: str
) -> None:
    longest, longer = build(maximum), build(f"{maximum}1ms")

    assert (
        about(path, manifest_problems(longest, CRDS) + rule_failures(longest) + model_problems(longest)) == []
    )
    assert about(path, manifest_problems(longer, CRDS)) == []  # a bound only CEL and the model know
    [rule] = about(path, rule_failures(longer))
    [problem] = about(path, model_problems(longer))
    assert rule.startswith(f"{path}: must be at most {maximum}")
    assert problem.startswith(f"{path}: duration {maximum}1ms is longer than the maximum of {maximum}")


@pytest.mark.parametrize(
    ("value", "by_schema"),
    [
        ("0001-01-01T00:00:00Z", True),
        ("1969-12-31T23:59:59Z", True),
        ("10000-01-01T00:00:00Z", True),
        ("2027-01-01T10:00:00.000000000000000000000000000000+01:00", True),
        ("1970-01-01T00:30:00+01:00", False),  # 1969 in UTC: the CEL rule and the model see the instant
        ("9999-12-31T23:59:59-01:00", False),
    ],
)
@pytest.mark.parametrize("field", ["startTime", "endTime"])
def test_a_time_out_of_range_is_refused(field: str, value: str, by_schema: bool) -> None:
    obj = room(schedule={field: value})
    path = f"spec.schedule.{field}"

    assert bool(about(path, manifest_problems(obj, CRDS))) == by_schema
    assert by_schema or about(path, rule_failures(obj))
    assert about(path, model_problems(obj))


@pytest.mark.parametrize(
    "value", ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2027-01-01T10:00:00.5+14:00"]
)
def test_times_in_range_are_accepted(value: str) -> None:
    obj = room(schedule={"endTime": value})

    assert manifest_problems(obj, CRDS) == [] and rule_failures(obj) == [] and model_problems(obj) == []


def test_parse_duration_takes_a_maximum() -> None:
    assert parse_duration("87600h") == MAX_DURATION
    assert parse_duration("1h30m", timedelta(hours=2)) == timedelta(minutes=90)
    with pytest.raises(ValueError, match="longer than the maximum of 2h"):
        parse_duration("2h1s", timedelta(hours=2))
    with pytest.raises(ValueError, match="invalid duration '99999999999999999999h'"):
        parse_duration(HUGE)
    with pytest.raises(ValueError, match=r"invalid duration '9{24}\.\.\.'"):
        parse_duration("9" * 5000 + "h")  # a refused value is quoted only in part


def test_a_limit_is_positive_and_at_most_ten_years() -> None:
    with pytest.raises(ValueError, match="at most 87600h"):
        DurationLimit(MAX_DURATION + timedelta(seconds=1))
    with pytest.raises(ValueError, match="positive"):
        DurationLimit(timedelta(0))


def test_shifted_stops_at_the_ends_of_time() -> None:
    late = datetime(9999, 12, 31, tzinfo=UTC)
    early = datetime(1, 1, 1, 12, tzinfo=UTC)

    assert shifted(late, MAX_DURATION) == datetime.max.replace(tzinfo=UTC)
    assert shifted(early, -MAX_DURATION) == datetime.min.replace(tzinfo=UTC)
    assert shifted(early, timedelta(hours=1)) == early + timedelta(hours=1)
