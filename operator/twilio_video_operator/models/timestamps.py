"""Bounds of the points in time a spec names, and datetime arithmetic that cannot overflow.

A spec timestamp lies between :data:`EARLIEST` and :data:`LATEST` (UTC): the years RFC 3339 and Go can write
(from 1970, the Unix epoch), checked by the CRD (a pattern on the year, a length limit and CEL bounds) and
by :class:`TimestampBounds` in the models. Python's datetime stops at year 9999 too, so adding even a
bounded duration to a time near the end overflows: arithmetic on times the operator did not make itself
(spec and status values) goes through :func:`shifted`, which stops at the ends instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
#: The year of an RFC 3339 time: 1970 to 9999 (the offset can move the instant by less than a day; the CEL
#: rules and the models check the instant itself).
TIMESTAMP_PATTERN = r"^(19[7-9][0-9]|[2-9][0-9]{3})-"
#: ``2027-01-01T10:00:00.123456789+01:00`` has 35 characters.
TIMESTAMP_MAX_LENGTH = 40
TIMESTAMP_RULES = (
    {
        "rule": "self >= timestamp('1970-01-01T00:00:00Z')",
        "message": "must not be before 1970-01-01T00:00:00Z",
    },
    {
        "rule": "self <= timestamp('9999-12-31T23:59:59Z')",
        "message": "must not be after 9999-12-31T23:59:59Z",
    },
)
_FLOOR = datetime.min.replace(tzinfo=UTC)
_CEILING = datetime.max.replace(tzinfo=UTC)


def shifted(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, or the first or last time Python can hold when that is out of its range."""
    try:
        return moment + delta
    except OverflowError:
        return _CEILING if delta > timedelta(0) else _FLOOR


def check_timestamp(value: datetime) -> datetime:
    """``value`` if it lies between :data:`EARLIEST` and :data:`LATEST`; ``ValueError`` otherwise."""
    if value.tzinfo is not None and EARLIEST <= value <= LATEST:
        return value
    raise ValueError("time must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z")


def _check_length(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TIMESTAMP_MAX_LENGTH:
        raise ValueError(f"time must be an RFC 3339 time of at most {TIMESTAMP_MAX_LENGTH} characters")
    return value


@dataclass(frozen=True)
class TimestampBounds:
    """Metadata of a spec time (``Annotated[AwareDatetime, TimestampBounds()]``): between :data:`EARLIEST`
    and :data:`LATEST`, checked here and declared to the API server."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        parsed = core_schema.no_info_after_validator_function(check_timestamp, handler(source))
        return core_schema.no_info_before_validator_function(_check_length, parsed)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = TIMESTAMP_PATTERN
        json_schema["maxLength"] = TIMESTAMP_MAX_LENGTH
        json_schema.setdefault("x-kubernetes-validations", []).extend(dict(rule) for rule in TIMESTAMP_RULES)
        return json_schema
