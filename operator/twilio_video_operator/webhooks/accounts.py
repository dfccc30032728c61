"""Which Auth Tokens may verify the callbacks of which Twilio account.

The operator's own account is verified only with the operator's own Auth Token: no tenant Secret can add
or replace a token for it. Another account's callbacks are verified with the Auth Tokens of tenant Secrets
(``credentialsRef``) that Twilio accepted for that account (a request authenticated with the Account SID
and that token succeeded), so a Secret cannot make a token of its choosing speak for an account. Tokens are
kept per source Secret: a Secret that changes replaces only its own entry.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pydantic import SecretStr

#: Tenant Secrets remembered at most (least recently accepted ones are forgotten first).
MAX_SOURCES = 10_000

Source = tuple[str, str]
"""``(namespace, Secret name)`` a tenant token was read from."""


class AuthTokens:
    """Auth Tokens by Account SID: the operator's own, pinned, and tenants' that Twilio accepted.

    A callback from an account with no token here cannot be verified and is refused. Tokens are held as
    ``SecretStr`` so they never show in a ``repr`` or a log line.
    """

    def __init__(
        self,
        operator_account: str | None = None,
        operator_token: str | SecretStr | None = None,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self.operator_account = operator_account or ""
        token = _reveal(operator_token)
        self._operator_token = SecretStr(token) if token else None
        self._accepted: OrderedDict[Source, tuple[str, SecretStr]] = OrderedDict()
        self._max = max_sources
        # The reconciler accepts tokens on its own thread while the HTTP server reads them on another.
        self._lock = threading.Lock()

    def accept(self, source: Source, account_sid: str, token: str | SecretStr | None) -> bool:
        """Record the token of a tenant Secret after Twilio accepted it for ``account_sid``.

        Returns ``False`` (and records nothing) for the operator's own account, or an empty value.
        """
        value = _reveal(token)
        if not account_sid or not value or account_sid == self.operator_account:
            return False
        with self._lock:
            self._accepted[source] = (account_sid, SecretStr(value))
            self._accepted.move_to_end(source)
            while len(self._accepted) > self._max:
                self._accepted.popitem(last=False)
        return True

    def forget(self, source: Source) -> None:
        """The Secret changed or is no longer used: its token verifies nothing any more."""
        with self._lock:
            self._accepted.pop(source, None)

    def tokens_for(self, account_sid: str) -> list[str]:
        """Every token that may verify a callback of ``account_sid`` (empty: refuse it)."""
        if account_sid == self.operator_account:
            return [self._operator_token.get_secret_value()] if self._operator_token is not None else []
        with self._lock:
            entries = list(self._accepted.values())
        found = {token.get_secret_value() for account, token in entries if account == account_sid}
        return sorted(found)

    def verifiable(self, account_sid: str) -> bool:
        return bool(self.tokens_for(account_sid))

    def __contains__(self, account_sid: object) -> bool:
        return isinstance(account_sid, str) and self.verifiable(account_sid)

    def __len__(self) -> int:
        """Accounts with at least one token."""
        with self._lock:
            accounts = {account for account, _ in self._accepted.values()}
        if self._operator_token is not None and self.operator_account:
            accounts.add(self.operator_account)
        return len(accounts)


def _reveal(token: str | SecretStr | None) -> str | None:
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    return value.strip() if value and value.strip() else None
