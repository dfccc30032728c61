"""Abuse of ``POST /v1/token``: no credentials, a credential of another audience or none at all, callers
without RBAC, wrong methods, oversized bodies, and floods. Each gets the documented answer, and the rate
limits hold: no more tokens are minted than the limits allow, and every 429 says when to retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from chaos_support import (
    NAMESPACE,
    by_level,
    create_rooms,
    observe_stack,
    require_handler,
    room_in_progress,
    start_operator,
    wait_objects,
)
from operator_stack import OperatorProcess, Stack
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from secret_scan import SecretScanner
from twilio_video_playground.kube import AccessRule

pytestmark = pytest.mark.asyncio(loop_scope="module")

PATH = "/v1/token"
CALLER = "system:serviceaccount:chaos:app"
STRANGER = "system:serviceaccount:chaos:stranger"
CALLER_TOKEN = "caller-sa-token-0123456789"
STRANGER_TOKEN = "stranger-sa-token-0123456789"
# The limits of tokens/ratelimit.py (tokens per second, burst)
PER_IDENTITY = (1.0, 5)
PER_ROOM = (50.0, 100)
PER_SOURCE = (200.0, 400)
ROOMS = ["lobby", "hall", "atrium"]


@dataclass
class Answer:
    status: int
    body: Any
    retry_after: str | None


@dataclass
class Endpoint:
    stack: Stack
    operator: OperatorProcess
    session: aiohttp.ClientSession

    async def post(self, body: Any, *, bearer: str | None = None, raw: bytes | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.post(f"{self.operator.http_url}{PATH}", headers=headers, **kwargs) as answer:
            payload = await answer.json(content_type=None) if answer.content_length != 0 else None
            return Answer(answer.status, payload, answer.headers.get("Retry-After"))


def enable_callers(stack: Stack) -> None:
    stack.kube.allow_tokens[CALLER_TOKEN] = {"username": CALLER, "groups": ["system:serviceaccounts"]}
    stack.kube.allow_tokens[STRANGER_TOKEN] = {"username": STRANGER, "groups": ["system:serviceaccounts"]}
    stack.kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=("video.openclaw.io",),
            resources=("videorooms/token",),
            namespaces=(NAMESPACE,),
            users=(CALLER,),
        )
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def endpoint(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Endpoint]:
    require_handler("videoroom")
    async with Stack(tmp_path_factory.mktemp("tokens"), namespaces=(NAMESPACE,)) as stack:
        enable_callers(stack)
        operator = await start_operator(stack)
        await create_rooms(stack, ROOMS)
        assert not await wait_objects(stack, "videorooms", ROOMS, room_in_progress, within=60)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            yield Endpoint(stack, operator, session)


def request_for(room: str, identity: str) -> dict[str, Any]:
    return {"namespace": NAMESPACE, "room": room, "identity": identity}


async def test_without_credentials_is_unauthorized(endpoint: Endpoint) -> None:
    answer = await endpoint.post(request_for("lobby", "alice"))
    assert (answer.status, answer.body["error"]) == (401, "Unauthorized")


async def test_unknown_bearer_token_is_unauthorized(endpoint: Endpoint) -> None:
    answer = await endpoint.post(request_for("lobby", "alice"), bearer="not-a-service-account-token")
    assert (answer.status, answer.body["error"]) == (401, "Unauthorized")


async def test_token_of_another_audience_is_unauthorized(
    endpoint: Endpoint, secret_scanner: SecretScanner
) -> None:
    """A Twilio Access Token (meant for Twilio, not for the Kubernetes API) presented as the bearer."""
    creds = endpoint.stack.credentials
    foreign = AccessToken(creds["account_sid"], creds["api_key"], creds["api_secret"], identity="alice")
    foreign.add_grant(VideoGrant(room=f"{NAMESPACE}:lobby"))
    jwt = foreign.to_jwt()
    secret_scanner.add_secret(jwt, "a Twilio Access Token used as a bearer token")
    answer = await endpoint.post(request_for("lobby", "alice"), bearer=jwt)
    assert (answer.status, answer.body["error"]) == (401, "Unauthorized")
    observe_stack(secret_scanner, endpoint.stack)


async def test_caller_without_rbac_is_forbidden(endpoint: Endpoint) -> None:
    answer = await endpoint.post(request_for("lobby", "alice"), bearer=STRANGER_TOKEN)
    assert (answer.status, answer.body["error"]) == (403, "Forbidden")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_other_methods_are_not_allowed(endpoint: Endpoint, method: str) -> None:
    url = f"{endpoint.operator.http_url}{PATH}"
    async with endpoint.session.request(
        method, url, headers={"Authorization": f"Bearer {CALLER_TOKEN}"}
    ) as answer:
        assert answer.status == 405


async def test_oversized_body_is_refused(endpoint: Endpoint) -> None:
    answer = await endpoint.post(None, bearer=CALLER_TOKEN, raw=b"{" + b" " * (64 * 1024) + b"}")
    assert answer.status == 413


@pytest.mark.parametrize(
    "body", [[], "room", {"namespace": NAMESPACE}, {"namespace": 1, "room": [], "identity": {}}]
)
async def test_malformed_requests_are_bad_requests(endpoint: Endpoint, body: Any) -> None:
    answer = await endpoint.post(body, bearer=CALLER_TOKEN)
    assert (answer.status, answer.body["error"]) == (400, "BadRequest")


@pytest.mark.parametrize("identity", ["", "x" * 129, "eve\u0000", "bob\r\nX-Injected: 1"])
async def test_hostile_identities_are_refused(endpoint: Endpoint, identity: str) -> None:
    answer = await endpoint.post(request_for("lobby", identity), bearer=CALLER_TOKEN)
    assert (answer.status, answer.body["error"]) == (422, "InvalidIdentity")


def assert_limited(answers: Sequence[Answer], *, rate: float, burst: int, seconds: float, what: str) -> None:
    """At most ``burst + rate * seconds`` requests got through; every refusal is a 429 with Retry-After."""
    passed = [answer for answer in answers if answer.status != 429]
    limited = [answer for answer in answers if answer.status == 429]
    allowed = burst + rate * seconds + 1
    assert len(passed) <= allowed, (
        f"{what}: {len(passed)} got through in {seconds:.2f}s; the limit allows {allowed:.0f}"
    )
    if len(answers) > allowed:
        assert limited, f"{what}: nothing was refused"
    for answer in limited:
        assert answer.body["error"] == "RateLimited"
        assert answer.retry_after is not None and int(answer.retry_after) >= 1


async def test_identity_flood_is_limited(endpoint: Endpoint, secret_scanner: SecretScanner) -> None:
    started = time.monotonic()
    answers = [
        await endpoint.post(request_for("lobby", "alice"), bearer=CALLER_TOKEN)
        for _ in range(by_level(15, 40))
    ]
    seconds = time.monotonic() - started
    minted = [answer for answer in answers if answer.status == 200]
    assert minted, f"no token was minted: {[a.status for a in answers][:5]} {answers[0].body}"
    for answer in minted:
        assert set(answer.body) >= {"token", "identity", "roomName", "expiresAt", "connectOptions"}
        secret_scanner.add_secret(answer.body["token"], "an Access Token minted by the operator")
    assert {answer.status for answer in answers} <= {200, 429}
    assert_limited(answers, rate=PER_IDENTITY[0], burst=PER_IDENTITY[1], seconds=seconds, what="one identity")
    observe_stack(secret_scanner, endpoint.stack)


async def test_room_flood_is_limited(endpoint: Endpoint) -> None:
    count = by_level(160, 400)
    gate = asyncio.Semaphore(16)

    async def ask(index: int) -> Answer:
        async with gate:
            return await endpoint.post(request_for("hall", f"guest-{index}"), bearer=CALLER_TOKEN)

    started = time.monotonic()
    answers = await asyncio.gather(*(ask(index) for index in range(count)))
    seconds = time.monotonic() - started
    assert {answer.status for answer in answers} <= {200, 429}
    # The caller's own limit (100/s, burst 200) is at least as wide as the room's here.
    assert_limited(answers, rate=PER_ROOM[0], burst=PER_ROOM[1], seconds=seconds, what="one room")


async def test_unauthenticated_flood_from_one_address_is_limited(endpoint: Endpoint) -> None:
    """Requests whose bearer token is unknown cost a TokenReview each: they are limited per source address.
    (The last test of the module: it leaves the address's budget spent.)"""
    count = by_level(900, 1500)
    gate = asyncio.Semaphore(32)

    async def ask(index: int) -> Answer:
        async with gate:
            return await endpoint.post(request_for("atrium", "mallory"), bearer=f"forged-{index}")

    started = time.monotonic()
    answers = await asyncio.gather(*(ask(index) for index in range(count)))
    seconds = time.monotonic() - started
    assert {answer.status for answer in answers} <= {401, 429}
    assert_limited(answers, rate=PER_SOURCE[0], burst=PER_SOURCE[1], seconds=seconds, what="one address")
    assert await endpoint.operator.healthy()
