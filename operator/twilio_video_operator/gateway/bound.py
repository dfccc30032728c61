"""The base of the operation groups: a credential set bound to the gateway's pool and executor."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twilio_video_operator.gateway.base_url import rewrite_twilio_url
from twilio_video_operator.gateway.catalog import Operation
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.executor import Executor
from twilio_video_operator.gateway.pool import ClientPool

T = TypeVar("T")

SdkClient = Any
"""``twilio.rest.Client`` (the SDK ships no type information)."""


class BoundOperations:
    """Operations on Twilio for one credential set. Build through ``TwilioGateway.api(creds)``."""

    def __init__(
        self, pool: ClientPool, executor: Executor, creds: CredentialSet, base_url: str | None
    ) -> None:
        self._pool = pool
        self._executor = executor
        self._creds = creds
        self._base_url = base_url

    @property
    def credentials(self) -> CredentialSet:
        return self._creds

    @property
    def account_sid(self) -> str:
        return self._creds.account_sid

    async def _call(self, operation: Operation, attempt: Callable[[SdkClient], Awaitable[T]]) -> T:
        """Run one attempt function under the retry policy, with the client the operation needs.

        Operations on the ``api`` service (the Keys API) use the Keys-API client, which authenticates with
        the Auth Token (or a Main key); all others use the REST client.
        """
        with self._pool.lease(self._creds) as entry:
            client = entry.keys if operation.service == "api" else entry.rest
            return await self._executor.run(
                operation,
                lambda: attempt(client),
                secrets=self._creds.secret_values,
                account_sid=self._creds.account_sid,
            )

    def _reachable_url(self, url: str) -> str:
        """A Twilio URL as this process must fetch it (rewritten to the base URL when one is set)."""
        return url if self._base_url is None else rewrite_twilio_url(url, self._base_url)


def sdk_params(**params: Any) -> dict[str, Any]:
    """Keyword arguments for an SDK call: parameters left at ``None`` are not sent at all."""
    return {name: value for name, value in params.items() if value is not None}
