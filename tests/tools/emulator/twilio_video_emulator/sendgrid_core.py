"""SendGrid v3 on the emulator's port: its store, API keys, Bearer authentication and error shape.

SendGrid is not Twilio's REST API: requests authenticate with ``Authorization: Bearer <API key>`` (keys are
issued by the control API, each for one emulator account, whose templates and sent mail it sees) and errors
are ``{"errors": [{"message", "field", "help"}]}``. Its routes are faulted and counted like Twilio's (see
``app.VendorRoute``), without a ``Twilio-Request-Id``.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import hdrs, web

from .app import VENDOR_ROUTES_KEY, VendorRoute
from .core import STATE_KEY, EmulatorState, TwilioError

SENDGRID_KEY = "sendgrid"
DEFAULT_KEY_NAME = "emulator"
FULL_SCOPES = (
    "mail.send",
    "messages.read",
    "templates.create",
    "templates.read",
    "templates.update",
    "templates.delete",
    "templates.versions.create",
    "templates.versions.read",
)
INVALID_GRANT = "The provided authorization grant is invalid, expired, or revoked"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class SendGridKey:
    api_key_id: str
    api_key: str
    name: str
    account_sid: str
    scopes: list[str]
    created_at: datetime


@dataclass
class TemplateVersion:
    id: str
    template_id: str
    name: str
    subject: str | None
    html_content: str | None
    plain_content: str | None
    active: int
    updated_at: datetime


@dataclass
class Template:
    id: str
    account_sid: str
    name: str
    generation: str
    updated_at: datetime
    versions: list[TemplateVersion] = field(default_factory=list)

    def active_version(self) -> TemplateVersion | None:
        return next((version for version in self.versions if version.active), None)


@dataclass
class SendGridStore:
    """Keys, templates and one record per personalization sent (``sent``, oldest first)."""

    state: EmulatorState
    keys: dict[str, SendGridKey] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)

    def dump(self) -> dict[str, Any]:
        return {
            "keys": [asdict(key) for key in self.keys.values()],
            "templates": [asdict(template) for template in self.templates.values()],
            "sent": list(self.sent),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.keys = {raw["api_key_id"]: SendGridKey(**raw) for raw in data.get("keys", [])}
        self.templates = {}
        for raw in data.get("templates", []):
            versions = [TemplateVersion(**item) for item in raw.get("versions", [])]
            self.templates[raw["id"]] = Template(**{**raw, "versions": versions})
        self.sent = list(data.get("sent", []))


def sendgrid_of(state: EmulatorState) -> SendGridStore:
    store = state.extensions.get(SENDGRID_KEY)
    if not isinstance(store, SendGridStore):
        raise RuntimeError("sendgrid is not installed")
    return store


def create_key(
    state: EmulatorState, name: str, account_sid: str | None = None, scopes: list[str] | None = None
) -> SendGridKey:
    """A SendGrid API key (``SG.<id>.<secret>``) of ``account_sid`` (the main account by default)."""
    key_id = secrets.token_urlsafe(16)
    key = SendGridKey(
        api_key_id=key_id,
        api_key=f"SG.{key_id}.{secrets.token_urlsafe(32)}",
        name=name,
        account_sid=account_sid or state.account_sid,
        scopes=list(FULL_SCOPES if scopes is None else scopes),
        created_at=state.clock.now(),
    )
    sendgrid_of(state).keys[key_id] = key
    return key


def default_key(state: EmulatorState) -> SendGridKey:
    """The main account's full-access key handed out with the emulator's credentials (made on first use)."""
    for key in sendgrid_of(state).keys.values():
        if key.name == DEFAULT_KEY_NAME and key.account_sid == state.account_sid:
            return key
    return create_key(state, DEFAULT_KEY_NAME)


# -------------------------------------------------------------------------------------------- errors


class SendGridError(Exception):
    """An error answered as SendGrid's JSON: ``{"errors": [{"message", "field", "help"}]}``."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else str(status))
        self.status = status
        self.errors = errors

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response({"errors": self.errors}, status=self.status, headers=headers)


def error_item(message: str, field_name: str | None = None, help_url: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field_name, "help": help_url}


def render_injected(error: TwilioError, headers: Mapping[str, str] | None) -> web.Response:
    """An injected fault (429, 5xx) or an emulator failure, as SendGrid would answer it."""
    message = "too many requests" if error.status == 429 else error.message.lower()
    return SendGridError(error.status, [error_item(message)]).response(headers)


# ------------------------------------------------------------------------------------ authentication


def authenticate(request: web.Request, scope: str) -> SendGridKey:
    """The live key in ``Authorization: Bearer``; 401 without a valid one, 403 without ``scope``."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if not header:
        raise SendGridError(401, [error_item("authorization required")])
    scheme, _, token = header.partition(" ")
    token = token.strip()
    parts = token.split(".")
    state = request.app[STATE_KEY]
    key = None
    if scheme.lower() == "bearer" and len(parts) == 3 and parts[0] == "SG":
        key = sendgrid_of(state).keys.get(parts[1])
    if key is None or not hmac.compare_digest(key.api_key.encode(), token.encode()):
        raise SendGridError(401, [error_item(INVALID_GRANT)])
    account = state.accounts.get(key.account_sid)
    if account is None or account.status != "active":
        raise SendGridError(401, [error_item(INVALID_GRANT)])
    if scope not in key.scopes:
        raise SendGridError(403, [error_item("access forbidden")])
    return key


async def json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise SendGridError(400, [error_item("Bad Request")]) from None


# ------------------------------------------------------------------------------------------- routes


def _answering_errors(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SendGridError as error:
            return error.response()

    return wrapped


def add_sendgrid_route(
    app: web.Application, method: str, path: str, handler: Handler, operation: str
) -> None:
    """Register a SendGrid route, counted (and faulted) as ``SendGrid.<operation>``."""
    route = app.router.add_route(method, path, _answering_errors(handler))
    app[VENDOR_ROUTES_KEY][route] = VendorRoute(f"SendGrid.{operation}", render_injected)


async def unknown_route(request: web.Request) -> web.Response:
    raise SendGridError(404, [error_item("resource not found")])
