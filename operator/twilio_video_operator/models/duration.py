"""Go-style durations (``90s``, ``5m``, ``2h``, ``720h``, ``1h30m``) as used in the CRDs, and their bounds.

A duration field is bounded twice, in the schema and here. The string itself is short
(:data:`DURATION_MAX_LENGTH` characters, numbers of at most 6 digits), so no string the schema lets through
is long enough to overflow Go's or CEL's ``duration()`` (about 292 years): the longest is about 228 years.
Each field then has a maximum (:class:`DurationLimit`, at most :data:`MAX_DURATION`), which the CRD checks
with a CEL rule and :func:`parse_duration` checks in the operator, so a value sent past an older CRD is an
invalid spec rather than an overflow in datetime arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

DURATION_PATTERN = r"^([0-9]{1,6}(\.[0-9]+)?(ms|s|m|h))+$"
DURATION_MAX_LENGTH = 16
#: The longest duration any field accepts: 10 years.
MAX_DURATION = timedelta(hours=87600)
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
#: How much of a refused value an error message quotes.
_SHOWN = 24


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def parse_duration(text: str, maximum: timedelta = MAX_DURATION) -> timedelta:
    """Parse a Go-style duration of at most ``maximum``; ``ValueError`` says what is wrong otherwise."""
    value = text.strip()
    if len(value) > DURATION_MAX_LENGTH or not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(
            f"invalid duration {_shown(text)}: use numbers of up to 6 digits, each with a unit (ms, s, m, "
            f"h), at most {DURATION_MAX_LENGTH} characters in all, e.g. 90s, 5m, 2h"
        )
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(value))
    if seconds > maximum.total_seconds():
        raise ValueError(f"duration {value} is longer than the maximum of {describe_limit(maximum)}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta the way Go does for whole units (``2h0m0s`` is shortened to ``2h``)."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"


def describe_limit(limit: timedelta) -> str:
    """``24h``, or ``87600h (10 years)`` for limits of whole years (of 365 days)."""
    text = format_duration(limit)
    years, rest = divmod(limit, timedelta(days=365))
    if years and not rest:
        return f"{text} ({years} year{'s' if years > 1 else ''})"
    return text


def limit_rule(limit: timedelta) -> dict[str, str]:
    """The CEL rule that holds a duration field to ``limit`` (the schema keeps ``duration()`` in range)."""
    return {
        "rule": f"duration(self) <= duration('{format_duration(limit)}')",
        "message": f"must be at most {describe_limit(limit)}",
    }


@dataclass(frozen=True)
class DurationLimit:
    """Metadata of a duration field (``Annotated[str, DurationLimit(...)]``): its form and longest value,
    checked by :func:`parse_duration` and declared to the API server (pattern, length, CEL rule)."""

    maximum: timedelta = MAX_DURATION

    def __post_init__(self) -> None:
        if not timedelta(0) < self.maximum <= MAX_DURATION:
            raise ValueError(f"a duration limit must be positive and at most {describe_limit(MAX_DURATION)}")

    def _check(self, value: str) -> str:
        if value != value.strip():
            raise ValueError(f"invalid duration {_shown(value)}: no spaces around it")
        parse_duration(value, self.maximum)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = DURATION_PATTERN
        json_schema["maxLength"] = DURATION_MAX_LENGTH
        json_schema.setdefault("x-kubernetes-validations", []).append(limit_rule(self.maximum))
        return json_schema
