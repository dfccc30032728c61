"""Go-style durations (``90s``, ``5m``, ``2h``, ``720h``, ``1h30m``) as used throughout the CRDs."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration; raise ``ValueError`` naming the bad text otherwise."""
    value = text.strip()
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit (ms, s, m, h), e.g. 90s, 5m, 2h"
        )
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(value))
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a timedelta the way Go does for whole units (``2h0m0s`` is shortened to ``2h``)."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return "".join(parts) or "0s"
