"""API keys (2010 Keys API). These calls authenticate with the Auth Token, or else a Main key."""

from __future__ import annotations

from twilio_video_operator.gateway import catalog
from twilio_video_operator.gateway.bound import BoundOperations, SdkClient
from twilio_video_operator.gateway.errors import NotFoundError
from twilio_video_operator.gateway.records import KeyInfo, NewKey, key_info, new_key

_LIST_PAGE_SIZE = 200


class KeyOperations(BoundOperations):
    async def create_key(self, friendly_name: str) -> NewKey:
        """CreateNewKey (a Standard key). The secret is in the answer only: persist it before anything else.

        Never retried once the request may have been sent (``RetryableError(maybe_applied=True)``): look
        for a key with this friendly name in ``list_keys()`` before creating another one.
        """

        async def attempt(client: SdkClient) -> NewKey:
            return new_key(await client.new_keys.create_async(friendly_name=friendly_name))

        return await self._call(catalog.CREATE_NEW_KEY, attempt)

    async def list_keys(self) -> list[KeyInfo]:
        """ListKey: every API key of the account, without secrets."""

        async def attempt(client: SdkClient) -> list[KeyInfo]:
            return [key_info(record) for record in await client.keys.list_async(page_size=_LIST_PAGE_SIZE)]

        return await self._call(catalog.LIST_KEY, attempt)

    async def verify_auth_token(self) -> None:
        """One ListKey page authenticated with the Account SID and Auth Token: it succeeds only when the
        token is that account's. Raises ``AuthError`` when Twilio refuses it."""
        if self._creds.auth_token is None:
            raise ValueError("no Auth Token to verify")

        async def attempt(client: SdkClient) -> None:
            await client.keys.page_async(page_size=1)

        await self._call(catalog.LIST_KEY, attempt)

    async def fetch_key(self, sid: str) -> KeyInfo | None:
        """FetchKey; ``None`` when the key does not exist (any more)."""

        async def attempt(client: SdkClient) -> KeyInfo:
            return key_info(await client.keys(sid).fetch_async())

        try:
            return await self._call(catalog.FETCH_KEY, attempt)
        except NotFoundError:
            return None

    async def delete_key(self, sid: str) -> bool:
        """DeleteKey (revokes it). True when deleted now, False when it was already gone (404)."""

        async def attempt(client: SdkClient) -> bool:
            await client.keys(sid).delete_async()
            return True

        try:
            return await self._call(catalog.DELETE_KEY, attempt)
        except NotFoundError:
            return False
