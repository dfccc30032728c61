"""HTTP Basic authentication of Twilio API requests: ``AC:authToken`` or ``SK:secret`` of a live key.

The principal's account scopes the request: a Video resource of another account is not found. Only the
credentials of an active account (or of a key it owns) authenticate; a subaccount's SID with the main
account's Auth Token does not.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import BasicAuth, hdrs, web

from .core import EmulatorState, TwilioError
from .entities import ApiKey


@dataclass(frozen=True)
class Principal:
    """Who made a request: the account itself (Auth Token) or one of its API keys."""

    account_sid: str
    key: ApiKey | None = None

    @property
    def can_manage_keys(self) -> bool:
        """Keys endpoints take the Auth Token or a Main key, as on Twilio."""
        return self.key is None or self.key.type == "main"


PRINCIPAL_KEY = web.RequestKey("emulator_principal", Principal)


def authentication_failed() -> TwilioError:
    return TwilioError(401, 20003, "Authenticate")


def authenticate(state: EmulatorState, request: web.Request) -> Principal:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if not header:
        raise authentication_failed()
    try:
        credentials = BasicAuth.decode(header)
    except ValueError:
        raise authentication_failed() from None
    username, password = credentials.login, credentials.password
    account = state.accounts.get(username)
    if account is not None:
        if account.status == "active" and hmac.compare_digest(password.encode(), account.auth_token.encode()):
            return Principal(account.sid)
        raise authentication_failed()
    key = state.keys.get(username)
    if key is not None and hmac.compare_digest(password.encode(), key.secret.encode()):
        owner = state.accounts.get(key.account_sid)
        if owner is not None and owner.status == "active":
            return Principal(key.account_sid, key)
    raise authentication_failed()


def principal_of(request: web.Request) -> Principal:
    if PRINCIPAL_KEY not in request:
        raise authentication_failed()
    return request[PRINCIPAL_KEY]


def account_of(request: web.Request) -> str:
    """The SID of the account the request acts for: every Video lookup and list is scoped to it."""
    return principal_of(request).account_sid


def acts_for(state: EmulatorState, principal: Principal, account_sid: str | None) -> bool:
    """Whether ``principal`` may address ``account_sid`` in a path: its own account, or (as on Twilio) a
    subaccount of it."""
    if account_sid is None:
        return False
    if account_sid == principal.account_sid:
        return True
    account = state.accounts.get(account_sid)
    return account is not None and account.owner_account_sid == principal.account_sid


def require_key_manager(request: web.Request) -> Principal:
    """Standard and restricted keys may not touch the Keys endpoints (401/20003)."""
    principal = principal_of(request)
    if not principal.can_manage_keys:
        raise authentication_failed()
    return principal
