"""API keys: API v2010 ``Keys`` and ``SigningKeys`` (with or without ``.json``) and IAM ``/v1/Keys``.

The secret is returned once, by the create call. Only the Auth Token or a Main key may use these endpoints;
Standard and Restricted keys get 401/20003. Every key belongs to an account: a path (or IAM ``AccountSid``)
names the principal's own account or, as on Twilio, one of its subaccounts; any other account gets 404/20404.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .auth import acts_for, require_key_manager
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    bad_request,
    new_sid,
    paginate_v1,
    paginate_v2010,
    param_enum,
    param_json,
    read_params,
    rfc2822,
)
from .entities import ApiKey

MAX_FRIENDLY_NAME = 64
# The Standard key handed out with an account's credentials (``Emulator.credentials``, control API).
DEFAULT_KEY_NAME = "emulator default key"
KIND_KEY = "key"
KIND_SIGNING_KEY = "signing_key"


SECRET_ALPHABET = string.ascii_letters + string.digits


def new_secret() -> str:
    """A 32-character alphanumeric key secret, like Twilio's."""
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(32))


def create_key(
    state: EmulatorState,
    friendly_name: str,
    *,
    key_type: str = "standard",
    kind: str = KIND_KEY,
    policy: Any = None,
    account_sid: str | None = None,
) -> ApiKey:
    """Create and store a key of ``account_sid`` (the main account by default); used by the REST handlers
    and the control API."""
    now = state.clock.now()
    key = ApiKey(
        sid=new_sid("SK"),
        account_sid=account_sid or state.account_sid,
        friendly_name=friendly_name,
        secret=new_secret(),
        date_created=now,
        date_updated=now,
        type=key_type,
        kind=kind,
        policy=policy,
    )
    state.keys[key.sid] = key
    return key


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def _friendly_name(params: MultiMapping[str]) -> str | None:
    name = params.get("FriendlyName")
    if name is not None and len(name) > MAX_FRIENDLY_NAME:
        raise bad_request(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    return name


def _check_account(state: EmulatorState, request: web.Request, account_sid: str | None) -> str:
    """The account whose keys the request manages; 404 unless the principal may act for it."""
    principal = require_key_manager(request)
    if account_sid is None or not acts_for(state, principal, account_sid):
        raise _not_found(request)
    return account_sid


def _render_v2010(key: ApiKey, *, with_secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sid": key.sid,
        "friendly_name": key.friendly_name,
        "date_created": rfc2822(key.date_created),
        "date_updated": rfc2822(key.date_updated),
    }
    if with_secret:
        body["secret"] = key.secret
    return body


def _keys_of_kind(state: EmulatorState, kind: str, account_sid: str) -> list[ApiKey]:
    return [
        key for key in reversed(state.keys.values()) if key.kind == kind and key.account_sid == account_sid
    ]


def _key_from_path(state: EmulatorState, request: web.Request, kind: str) -> ApiKey:
    account_sid = _check_account(state, request, request.match_info["AccountSid"])
    key = state.keys.get(request.match_info["Sid"])
    if key is None or key.kind != kind or key.account_sid != account_sid:
        raise _not_found(request)
    return key


# ------------------------------------------------------------------------------------------- API v2010


def _v2010_handlers(kind: str, list_key: str) -> dict[str, Any]:
    async def create(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        account_sid = _check_account(state, request, request.match_info["AccountSid"])
        params = await read_params(request)
        key = create_key(state, _friendly_name(params) or "", kind=kind, account_sid=account_sid)
        return web.json_response(_render_v2010(key, with_secret=True), status=201)

    async def list_(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        account_sid = _check_account(state, request, request.match_info["AccountSid"])
        records = [_render_v2010(key) for key in _keys_of_kind(state, kind, account_sid)]
        return web.json_response(paginate_v2010(request, records, list_key))

    async def fetch(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        return web.json_response(_render_v2010(_key_from_path(state, request, kind)))

    async def update(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        key = _key_from_path(state, request, kind)
        params = await read_params(request)
        name = _friendly_name(params)
        if name is not None:
            key.friendly_name = name
            key.date_updated = state.clock.now()
        return web.json_response(_render_v2010(key))

    async def delete(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        key = _key_from_path(state, request, kind)
        del state.keys[key.sid]
        return web.Response(status=204)

    return {"create": create, "list": list_, "fetch": fetch, "update": update, "delete": delete}


def _install_v2010(
    app: web.Application, resource: str, kind: str, list_key: str, names: dict[str, str]
) -> None:
    handlers = _v2010_handlers(kind, list_key)
    base = f"/2010-04-01/Accounts/{{AccountSid}}/{resource}"
    # ".json" variants first: a bare "{Sid}" would otherwise swallow the suffix.
    for suffix in (".json", ""):
        add_route(app, "POST", base + suffix, handlers["create"], names["create"])
        add_route(app, "GET", base + suffix, handlers["list"], names["list"])
        one = base + "/{Sid}" + suffix
        add_route(app, "GET", one, handlers["fetch"], names["fetch"])
        add_route(app, "POST", one, handlers["update"], names["update"])
        add_route(app, "DELETE", one, handlers["delete"], names["delete"])


# ----------------------------------------------------------------------------------------------- IAM v1


def _render_iam(key: ApiKey, *, with_secret: bool = False) -> dict[str, Any]:
    body = _render_v2010(key, with_secret=with_secret)
    body["policy"] = key.policy
    return body


def _iam_key(state: EmulatorState, request: web.Request) -> ApiKey:
    principal = require_key_manager(request)
    key = state.keys.get(request.match_info["Sid"])
    if key is None or key.kind != KIND_KEY or not acts_for(state, principal, key.account_sid):
        raise _not_found(request)
    return key


def _policy(params: MultiMapping[str]) -> Any:
    policy = param_json(params, "Policy", 20001)
    if policy is not None and not isinstance(policy, dict):
        raise bad_request("Policy must be a JSON object")
    return policy


async def iam_create(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    params = await read_params(request)
    account_sid = params.get("AccountSid")
    if not account_sid:
        raise bad_request("AccountSid is required")
    _check_account(state, request, account_sid)
    key_type = param_enum(params, "KeyType", ("restricted",), code=20001, default="standard")
    policy = _policy(params)
    if key_type == "restricted" and policy is None:
        raise bad_request("A restricted key needs a Policy")
    name = _friendly_name(params) or ""
    key = create_key(state, name, key_type=key_type, policy=policy, account_sid=account_sid)
    return web.json_response(_render_iam(key, with_secret=True), status=201)


async def iam_list(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    account_sid = request.query.get("AccountSid")
    if not account_sid:
        raise bad_request("AccountSid is required")
    _check_account(state, request, account_sid)
    records = []
    for key in _keys_of_kind(state, KIND_KEY, account_sid):
        body = _render_v2010(key)
        body["flags"] = ["rest_api", "signing"] if key.type != "restricted" else ["rest_api"]
        records.append(body)
    return web.json_response(paginate_v1(request, records, "keys"))


async def iam_fetch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(_render_iam(_iam_key(state, request)))


async def iam_update(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    key = _iam_key(state, request)
    params = await read_params(request)
    name = _friendly_name(params)
    policy = _policy(params)
    if name is not None:
        key.friendly_name = name
    if policy is not None:
        key.policy = policy
    key.date_updated = state.clock.now()
    return web.json_response(_render_iam(key))


async def iam_delete(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    key = _iam_key(state, request)
    del state.keys[key.sid]
    return web.Response(status=204)


def install(app: web.Application, state: EmulatorState) -> None:
    _install_v2010(
        app,
        "Keys",
        KIND_KEY,
        "keys",
        {
            "create": "CreateNewKey",
            "list": "ListKey",
            "fetch": "FetchKey",
            "update": "UpdateKey",
            "delete": "DeleteKey",
        },
    )
    _install_v2010(
        app,
        "SigningKeys",
        KIND_SIGNING_KEY,
        "signing_keys",
        {
            "create": "CreateNewSigningKey",
            "list": "ListSigningKey",
            "fetch": "FetchSigningKey",
            "update": "UpdateSigningKey",
            "delete": "DeleteSigningKey",
        },
    )
    add_route(app, "POST", "/v1/Keys", iam_create, "CreateNewKey")
    add_route(app, "GET", "/v1/Keys", iam_list, "ListGetKeys")
    add_route(app, "GET", "/v1/Keys/{Sid}", iam_fetch, "FetchKey")
    add_route(app, "POST", "/v1/Keys/{Sid}", iam_update, "UpdateKey")
    add_route(app, "DELETE", "/v1/Keys/{Sid}", iam_delete, "DeleteKey")
