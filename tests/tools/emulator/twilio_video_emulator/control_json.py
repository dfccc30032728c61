"""Small helpers shared by the control endpoints: the control API's own and those of the messaging, Studio,
Verify and SendGrid modules."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from .core import EmulatorState, TwilioError


async def json_object(request: web.Request) -> dict[str, Any]:
    """The JSON object body of a control request (``{}`` when there is none); anything else is 400/20001."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TwilioError(400, 20001, "The body must be a JSON object") from None
    if not isinstance(body, dict):
        raise TwilioError(400, 20001, "The body must be a JSON object")
    return body


def account_filter(state: EmulatorState, value: Any) -> str | None:
    """An optional ``accountSid`` of a control request; an unknown account is 404/20404."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in state.accounts:
        raise TwilioError(404, 20404, f"No account {value}")
    return value


def query_filters(state: EmulatorState, query: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The ``?name=`` filters of a control listing that are given, by name; an unknown ``accountSid`` is
    404/20404."""
    filters = {name: query[name] for name in names if name in query}
    account_filter(state, filters.get("accountSid"))
    return filters


def matching(records: Iterable[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records whose field of each filter's name equals the filter."""
    return [record for record in records if all(record.get(name) == value for name, value in filters.items())]
