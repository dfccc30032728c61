"""Twilio Programmable Messaging and Studio v2: sending a session's notifications and finding them again.

A send is a create, so the gateway never repeats one that may have reached Twilio; the caller records its
intent first and, when the answer was lost, asks :meth:`NotifyOperations.find_message` or
:meth:`NotifyOperations.find_execution` before sending again. Recipient addresses are passed to the
executor as values to redact, so no error message or log record carries one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from twilio_video_operator.gateway.bound import BoundOperations, SdkClient, sdk_params
from twilio_video_operator.gateway.catalog import (
    CREATE_EXECUTION,
    CREATE_MESSAGE,
    FETCH_EXECUTION_CONTEXT,
    LIST_EXECUTION,
    LIST_MESSAGE,
    Operation,
)
from twilio_video_operator.gateway.errors import NotFoundError

T = TypeVar("T")

#: Messages to one recipient looked through when searching for one whose answer was lost (newest first).
MESSAGES_SEARCHED = 100
#: The account's messages looked through when the recipient's address is no longer known.
MESSAGES_SEARCHED_ANY = 1000
PAGE_SIZE = 100
#: Executions of a flow looked through likewise.
EXECUTIONS_SEARCHED = 50
#: Twilio's error code for an execution already active for the contact (HTTP 409).
CODE_EXECUTION_ACTIVE = 20409


@dataclass(frozen=True)
class Sent:
    """What Twilio answered to a send: the resource's SID and status."""

    sid: str
    status: str | None = None


class NotifyOperations(BoundOperations):
    """Messages and Studio executions of one Twilio account (always the REST credentials)."""

    async def _run(
        self, operation: Operation, attempt: Callable[[SdkClient], Awaitable[T]], *hidden: str
    ) -> T:
        with self._pool.lease(self._creds) as entry:
            client = entry.rest
            return await self._executor.run(
                operation,
                lambda: attempt(client),
                secrets=(*self._creds.secret_values, *hidden),
                account_sid=self._creds.account_sid,
            )

    async def send_message(
        self, *, to: str, service_sid: str, body: str, status_callback: str | None = None
    ) -> Sent:
        """CreateMessage through a Messaging Service (its senders pick the From)."""
        params = sdk_params(
            to=to, messaging_service_sid=service_sid, body=body, status_callback=status_callback
        )

        async def attempt(client: SdkClient) -> Sent:
            record = await client.messages.create_async(**params)
            return Sent(str(record.sid), str(record.status) if record.status is not None else None)

        return await self._run(CREATE_MESSAGE, attempt, to, body)

    async def find_message(self, *, to: str | None, marker: str, since: datetime) -> Sent | None:
        """The newest message to ``to`` created at or after ``since`` whose body carries ``marker``.

        Without ``to`` (an address no longer known), the account's messages are searched, newest first,
        page by page until one older than ``since`` (at most :data:`MESSAGES_SEARCHED_ANY`)."""

        async def attempt(client: SdkClient) -> Sent | None:
            if to is not None:
                records = await client.messages.list_async(to=to, limit=MESSAGES_SEARCHED)
            else:
                records = await client.messages.stream_async(limit=MESSAGES_SEARCHED_ANY, page_size=PAGE_SIZE)
            async for record in _each(records):
                created = record.date_created
                if created is not None and created < since:
                    break  # newest first: the rest are older still
                if marker in str(record.body or ""):
                    return Sent(str(record.sid), str(record.status) if record.status is not None else None)
            return None

        return await self._run(LIST_MESSAGE, attempt, *([to] if to is not None else []))

    async def start_execution(
        self, *, flow_sid: str, to: str, from_: str, parameters: dict[str, Any]
    ) -> Sent:
        """CreateExecution. Raises ``TerminalError`` with code 20409 while an execution of the flow is
        active for the contact."""

        async def attempt(client: SdkClient) -> Sent:
            executions = client.studio.v2.flows(flow_sid).executions
            record = await executions.create_async(to=to, from_=from_, parameters=parameters)
            return Sent(str(record.sid), str(record.status) if record.status is not None else None)

        return await self._run(CREATE_EXECUTION, attempt, to, from_)

    async def find_execution(
        self, *, flow_sid: str, to: str | None, marker_name: str, marker: str, since: datetime
    ) -> Sent | None:
        """The execution of ``flow_sid`` for ``to`` created since ``since`` whose parameters carry
        ``marker_name: marker`` (read from each candidate's context; every candidate's without ``to``)."""
        hidden = [to] if to is not None else []

        async def candidates(client: SdkClient) -> list[Any]:
            executions = client.studio.v2.flows(flow_sid).executions
            return list(await executions.list_async(date_created_from=since, limit=EXECUTIONS_SEARCHED))

        listed = await self._run(LIST_EXECUTION, candidates, *hidden)
        for record in listed:
            if to is not None and str(record.contact_channel_address or "") != to:
                continue

            async def context(client: SdkClient, sid: str = str(record.sid)) -> dict[str, Any]:
                executions = client.studio.v2.flows(flow_sid).executions
                fetched = await executions(sid).execution_context().fetch_async()
                return dict(fetched.context or {})

            try:
                found = await self._run(FETCH_EXECUTION_CONTEXT, context, *hidden)
            except NotFoundError:
                continue
            data = (found.get("flow") or {}).get("data") or {}
            if isinstance(data, dict) and data.get(marker_name) == marker:
                return Sent(str(record.sid), str(record.status) if record.status is not None else None)
        return None


async def _each(records: list[Any] | AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The records of a list, or of a lazily paged stream (which stops paging when the caller stops)."""
    if isinstance(records, list):
        for record in records:
            yield record
        return
    async for record in records:
        yield record
