"""Twilio-side setup done directly at the emulator (not through the operator): recorded, completed rooms to
compose, and a clock that moves on by itself so that compositions finish without real waiting."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from operator_stack import Stack
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant


async def recorded_rooms(stack: Stack, count: int, *, namespace: str) -> list[str]:
    """``count`` group rooms, each with one recorded participant for 60 s of emulator time, completed.

    They are named in ``namespace``'s space (``<namespace>:source-<n>``): on the operator's shared account a
    Composition may compose only rooms of its own namespace (docs/security.md)."""
    creds = stack.credentials
    basic = base64.b64encode(f"{creds['account_sid']}:{creds['auth_token']}".encode()).decode()
    sids: list[str] = []
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {basic}"}) as session:
        for index in range(count):
            unique_name = f"{namespace}:source-{index}"
            form = {"UniqueName": unique_name, "Type": "group", "RecordParticipantsOnConnect": "true"}
            async with session.post(f"{creds['url']}/v1/Rooms", data=form) as answer:
                room = await answer.json()
                if answer.status != 201:
                    raise RuntimeError(f"cannot create room {unique_name}: {answer.status} {room}")
            token = AccessToken(
                creds["account_sid"], creds["api_key"], creds["api_secret"], identity="speaker", ttl=600
            )
            token.add_grant(VideoGrant(room=unique_name))
            status, body = await stack.control.join(room["sid"], "speaker", token.to_jwt())
            if status != 201:
                raise RuntimeError(f"the participant could not join {room['sid']}: {status} {body}")
            sids.append(str(room["sid"]))
        await stack.control.advance_clock(60)
        for sid in sids:
            async with session.post(f"{creds['url']}/v1/Rooms/{sid}", data={"Status": "completed"}) as answer:
                if answer.status >= 300:
                    raise RuntimeError(f"cannot complete {sid}: {answer.status}")
    await stack.control.advance_clock(5)
    return sids


@contextlib.asynccontextmanager
async def ticking_clock(stack: Stack, *, step: float = 30.0, every: float = 1.0) -> AsyncIterator[None]:
    """Advance the emulator clock by ``step`` seconds every ``every`` real seconds while inside."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            await stack.control.advance_clock(step)

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
