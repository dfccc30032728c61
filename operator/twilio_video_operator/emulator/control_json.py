"""Small helpers shared by the control endpoints: the control API's own and those of the messaging, Studio,
Verify and SendGrid modules."""

from __future__ import annotations

import json
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
