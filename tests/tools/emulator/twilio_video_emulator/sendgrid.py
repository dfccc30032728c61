"""SendGrid v3 on the emulator's port (Mail Send, Email Activity, Transactional Templates) and its control
endpoints: API keys, and the mail that was sent."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .control_json import account_filter, json_object, matching, query_filters
from .core import STATE_KEY, EmulatorState, TwilioError
from .owned_records import install_store
from .sendgrid_core import (
    SENDGRID_KEY,
    SendGridKey,
    SendGridStore,
    add_sendgrid_route,
    create_key,
    sendgrid_of,
    unknown_route,
)
from .sendgrid_mail import install_routes as install_mail
from .sendgrid_templates import install_routes as install_templates

MAX_KEY_NAME = 100


def _render_key(key: SendGridKey, *, with_secret: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiKeyId": key.api_key_id,
        "name": key.name,
        "accountSid": key.account_sid,
        "scopes": list(key.scopes),
    }
    if with_secret:
        body["apiKey"] = key.api_key
    return body


async def control_create_key(request: web.Request) -> web.Response:
    """``{"name"?, "accountSid"?, "scopes"?}``: a SendGrid API key, returned once with its secret."""
    state = request.app[STATE_KEY]
    body = await json_object(request)
    name = body.get("name", "emulator key")
    scopes = body.get("scopes")
    if not isinstance(name, str) or not name or len(name) > MAX_KEY_NAME:
        raise TwilioError(400, 20001, f"name must be a string of 1 to {MAX_KEY_NAME} characters")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes)):
        raise TwilioError(400, 20001, "scopes must be a list of strings")
    account_sid = account_filter(state, body.get("accountSid"))
    key = create_key(state, name, account_sid, scopes)
    return web.json_response(_render_key(key, with_secret=True), status=201)


async def control_list_keys(request: web.Request) -> web.Response:
    store = sendgrid_of(request.app[STATE_KEY])
    return web.json_response({"keys": [_render_key(key, with_secret=False) for key in store.keys.values()]})


async def control_delete_key(request: web.Request) -> web.Response:
    store = sendgrid_of(request.app[STATE_KEY])
    if store.keys.pop(request.match_info["key_id"], None) is None:
        raise TwilioError(404, 20404, f"No SendGrid key {request.match_info['key_id']}")
    return web.Response(status=204)


async def control_mail(request: web.Request) -> web.Response:
    """What was sent, oldest first, one record per personalization; ``?accountSid=``, ``?to=`` (any of
    to, cc, bcc) and ``?templateId=`` filter."""
    state = request.app[STATE_KEY]
    filters = query_filters(state, request.query, ("accountSid", "templateId"))
    to = request.query.get("to")
    mail = [
        record
        for record in matching(sendgrid_of(state).sent, filters)
        if to is None or to in record["to"] + record["cc"] + record["bcc"]
    ]
    return web.json_response({"mail": mail})


async def control_clear_mail(request: web.Request) -> web.Response:
    sendgrid_of(request.app[STATE_KEY]).sent.clear()
    return web.Response(status=204)


def install(app: web.Application, state: EmulatorState) -> None:
    install_store(state, SENDGRID_KEY, SendGridStore(state))
    install_mail(app)
    install_templates(app)
    # Last: any other /v3/ path answers SendGrid's 404 rather than Twilio's.
    add_sendgrid_route(app, "*", "/v3/{tail:.*}", unknown_route, "Unknown")
    app.router.add_post("/_emulator/sendgrid/keys", control_create_key)
    app.router.add_get("/_emulator/sendgrid/keys", control_list_keys)
    app.router.add_delete("/_emulator/sendgrid/keys/{key_id}", control_delete_key)
    app.router.add_get("/_emulator/sendgrid/mail", control_mail)
    app.router.add_delete("/_emulator/sendgrid/mail", control_clear_mail)
