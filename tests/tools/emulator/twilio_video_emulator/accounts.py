"""API v2010 Accounts: the main account and its subaccounts, with or without ``.json``.

``CreateAccount`` makes a subaccount of the requesting account: its own ``AC`` SID and Auth Token, and
``owner_account_sid`` = the creator. A principal sees its own account and its subaccounts; any other SID is
404/20404. As on Twilio, Standard and Restricted keys cannot use ``/Accounts`` (401/20003), and a subaccount
cannot create subaccounts (403/20403). A suspended or closed account's credentials stop authenticating.
"""

from __future__ import annotations

import secrets
from datetime import datetime
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
    paginate_v2010,
    param_enum,
    read_params,
    rfc2822,
)
from .entities import Account

MAX_FRIENDLY_NAME = 64
ACCOUNT_STATUSES = ("active", "suspended", "closed")


def create_subaccount(
    state: EmulatorState, friendly_name: str | None, owner_sid: str | None = None
) -> Account:
    """Create and store a subaccount of ``owner_sid`` (the main account by default)."""
    now = state.clock.now()
    account = Account(
        sid=new_sid("AC"),
        auth_token=secrets.token_hex(16),
        friendly_name=friendly_name or default_friendly_name(now),
        owner_account_sid=owner_sid or state.account_sid,
        date_created=now,
        date_updated=now,
    )
    state.accounts[account.sid] = account
    return account


def default_friendly_name(now: datetime) -> str:
    """Twilio's default: ``SubAccount Created at {YYYY-MM-DD HH:MM meridian}``."""
    return f"SubAccount Created at {now:%Y-%m-%d %I:%M} {'am' if now.hour < 12 else 'pm'}"


def account_uri(sid: str) -> str:
    return f"/2010-04-01/Accounts/{sid}.json"


def render_account(account: Account) -> dict[str, Any]:
    base = f"/2010-04-01/Accounts/{account.sid}"
    return {
        "auth_token": account.auth_token,
        "date_created": rfc2822(account.date_created),
        "date_updated": rfc2822(account.date_updated),
        "friendly_name": account.friendly_name,
        "owner_account_sid": account.owner_account_sid,
        "sid": account.sid,
        "status": account.status,
        # Only the subresources the emulator serves.
        "subresource_uris": {"keys": f"{base}/Keys.json", "signing_keys": f"{base}/SigningKeys.json"},
        "type": "Full",
        "uri": account_uri(account.sid),
    }


def _not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def _friendly_name(params: MultiMapping[str]) -> str | None:
    name = params.get("FriendlyName")
    if name is not None and len(name) > MAX_FRIENDLY_NAME:
        raise bad_request(f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    return name or None


def _account_from_path(state: EmulatorState, request: web.Request) -> Account:
    principal = require_key_manager(request)
    account = state.accounts.get(request.match_info["Sid"])
    if account is None or not acts_for(state, principal, account.sid):
        raise _not_found(request)
    return account


async def create_account(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    principal = require_key_manager(request)
    owner = state.accounts[principal.account_sid]
    if owner.is_subaccount:
        raise TwilioError(403, 20403, "A subaccount cannot create subaccounts")
    params = await read_params(request)
    account = create_subaccount(state, _friendly_name(params), owner.sid)
    return web.json_response(render_account(account), status=201)


async def list_accounts(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    principal = require_key_manager(request)
    name = request.query.get("FriendlyName")
    status = param_enum(request.query, "Status", ACCOUNT_STATUSES, code=20001)
    records = [
        render_account(account)
        for account in reversed(state.accounts.values())
        if acts_for(state, principal, account.sid)
        and (name is None or account.friendly_name == name)
        and (status is None or account.status == status)
    ]
    return web.json_response(paginate_v2010(request, records, "accounts"))


async def fetch_account(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_account(_account_from_path(state, request)))


async def update_account(request: web.Request) -> web.Response:
    """FriendlyName of any visible account; Status of a subaccount (``closed`` is final, as on Twilio)."""
    state = request.app[STATE_KEY]
    account = _account_from_path(state, request)
    params = await read_params(request)
    name = _friendly_name(params)
    status = param_enum(params, "Status", ACCOUNT_STATUSES, code=20001)
    if status is not None and status != account.status:
        if not account.is_subaccount:
            raise bad_request("The main account's status cannot be changed")
        if account.status == "closed":
            raise bad_request("A closed account cannot be reopened")
        account.status = status
    if name is not None:
        account.friendly_name = name
    account.date_updated = state.clock.now()
    return web.json_response(render_account(account))


def install(app: web.Application, state: EmulatorState) -> None:
    # ".json" variants first: a bare "{Sid}" would otherwise swallow the suffix.
    for suffix in (".json", ""):
        add_route(app, "POST", "/2010-04-01/Accounts" + suffix, create_account, "CreateAccount")
        add_route(app, "GET", "/2010-04-01/Accounts" + suffix, list_accounts, "ListAccount")
        one = "/2010-04-01/Accounts/{Sid}" + suffix
        add_route(app, "GET", one, fetch_account, "FetchAccount")
        add_route(app, "POST", one, update_account, "UpdateAccount")
