"""One pair of async ``twilio.rest.Client`` objects per credential set, sharing one HTTP session.

A slot is keyed by the non-secret identity of a credential set (account SID + API key SID). When a caller
passes the same identity with different values (a Secret was edited), the slot's client is replaced and
the old one is closed as soon as no call is using it. Slots unused for ``idle_ttl`` seconds are closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from twilio.rest import Client

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.io_loop import IoLoop
from twilio_video_operator.gateway.limiter import AdaptiveLimit
from twilio_video_operator.gateway.transport import InstrumentedHttpClient

logger = logging.getLogger("twilio_video_operator.gateway")

# A non-empty environment keeps the SDK from reading TWILIO_EDGE / TWILIO_REGION / credentials from
# os.environ: an edge or region would rewrite hosts behind the gateway's back.
_ISOLATED_ENVIRONMENT = {"TWILIO_VIDEO_OPERATOR_GATEWAY": "1"}


@dataclass(eq=False)
class ClientEntry:
    """The clients of one credential set. ``rest`` authenticates REST calls, ``keys`` the Keys API."""

    creds: CredentialSet
    http_client: InstrumentedHttpClient
    rest: Client
    keys: Client
    last_used: float
    active: int = 0
    retired: bool = False
    _closed: bool = field(default=False, repr=False)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self.http_client.close()


class ClientPool:
    def __init__(
        self,
        *,
        base_url: str | None,
        limit: AdaptiveLimit,
        io: IoLoop,
        request_timeout: float,
        idle_ttl: float,
        clock: Callable[[], float] = time.monotonic,
        fence: Callable[[], str | None] | None = None,
    ) -> None:
        self._base_url = base_url
        self._fence = fence
        self._limit = limit
        self._io = io
        self._request_timeout = request_timeout
        self._idle_ttl = idle_ttl
        self._clock = clock
        self._entries: dict[tuple[str, str | None], ClientEntry] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._retired_in_use: set[ClientEntry] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, creds: CredentialSet) -> ClientEntry:
        """The current clients for ``creds``, created or replaced as needed (inside a running loop: a
        replaced client is closed by a task of it)."""
        if self._closed:
            raise RuntimeError("the Twilio gateway is closed")
        asyncio.get_running_loop()
        now = self._clock()
        self._evict_idle(now)
        key = creds.identity
        current = self._entries.get(key)
        if current is not None and current.creds.fingerprint == creds.fingerprint:
            current.last_used = now
            return current
        if current is not None:
            logger.info(
                "Twilio credentials for %s changed (fingerprint %s -> %s); replacing the client",
                creds.account_sid,
                current.creds.fingerprint,
                creds.fingerprint,
            )
            self._retire(current)
        fresh = self._create(creds, now)
        self._entries[key] = fresh
        return fresh

    @contextmanager
    def lease(self, creds: CredentialSet) -> Iterator[ClientEntry]:
        """Use the clients of ``creds`` for one call; a replaced client is closed after its last lease."""
        entry = self.entry(creds)
        entry.active += 1
        try:
            yield entry
        finally:
            entry.active -= 1
            entry.last_used = self._clock()
            if entry.retired and entry.active == 0:
                self._retired_in_use.discard(entry)
                self._schedule_close(entry)

    async def close(self) -> None:
        """Close every client and wait for pending closes."""
        self._closed = True
        entries = [*self._entries.values(), *self._retired_in_use]
        self._entries.clear()
        self._retired_in_use.clear()
        for entry in entries:
            await entry.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _create(self, creds: CredentialSet, now: float) -> ClientEntry:
        http_client = InstrumentedHttpClient(
            self._base_url,
            limit=self._limit,
            request_timeout=self._request_timeout,
            io=self._io,
            fence=self._fence,
        )
        rest_user, rest_password = creds.rest_auth()
        keys_user, keys_password = creds.keys_api_auth()
        rest = Client(
            rest_user,
            rest_password,
            account_sid=creds.account_sid,
            http_client=http_client,
            environment=_ISOLATED_ENVIRONMENT,
        )
        keys = Client(
            keys_user,
            keys_password,
            account_sid=creds.account_sid,
            http_client=http_client,
            environment=_ISOLATED_ENVIRONMENT,
        )
        return ClientEntry(creds=creds, http_client=http_client, rest=rest, keys=keys, last_used=now)

    def _evict_idle(self, now: float) -> None:
        for key, entry in list(self._entries.items()):
            if entry.active == 0 and now - entry.last_used > self._idle_ttl:
                del self._entries[key]
                self._retire(entry)

    def _retire(self, entry: ClientEntry) -> None:
        entry.retired = True
        if entry.active == 0:
            self._schedule_close(entry)
        else:
            self._retired_in_use.add(entry)

    def _schedule_close(self, entry: ClientEntry) -> None:
        task = asyncio.get_running_loop().create_task(entry.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
