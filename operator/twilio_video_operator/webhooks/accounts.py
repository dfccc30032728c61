"""Which Auth Token verifies the callbacks of which Twilio account."""

from __future__ import annotations

from collections import OrderedDict

from pydantic import SecretStr

#: Tenant accounts remembered at most (least recently seen ones are forgotten first).
MAX_ACCOUNTS = 10_000


class AuthTokens:
    """Auth Tokens by Account SID: the operator's own, plus tenants' read from ``credentialsRef`` Secrets.

    A callback from an account not listed here cannot be verified and is refused. Tokens are held as
    ``SecretStr`` so they never show in a ``repr`` or a log line.
    """

    def __init__(self, max_accounts: int = MAX_ACCOUNTS) -> None:
        self._tokens: OrderedDict[str, SecretStr] = OrderedDict()
        self._max = max_accounts

    def remember(self, account_sid: str, token: str | SecretStr | None) -> None:
        """Record (or replace) the token of ``account_sid``; ``None`` or empty values are ignored."""
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not account_sid or not value:
            return
        self._tokens[account_sid] = SecretStr(value)
        self._tokens.move_to_end(account_sid)
        while len(self._tokens) > self._max:
            self._tokens.popitem(last=False)

    def token_for(self, account_sid: str) -> str | None:
        token = self._tokens.get(account_sid)
        return token.get_secret_value() if token is not None else None

    def __contains__(self, account_sid: object) -> bool:
        return account_sid in self._tokens

    def __len__(self) -> int:
        return len(self._tokens)
