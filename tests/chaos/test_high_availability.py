"""High availability: two operator processes electing a leader through a Lease, behind the playground's
balancer (the stand-in for a Service that sends traffic only to ready replicas).

- kill -9 of the leader during a burst of rooms: the follower leads within the lease duration + 2 s, every
  room becomes Ready, and Twilio saw exactly one CreateRoom per room;
- a rolling restart (SIGTERM, wait, start, one replica at a time) under a steady token load: no token
  request fails (anything but 2xx and 429 is a failure), and the lead is handed over promptly;
- callbacks that land on the follower take effect (status within 2 s), and a blocked identity that joins
  while the leader is gone is still disconnected.

``CHAOS_LEVEL=full`` uses the operator's default timings (lease 15 s, renew 10 s, retry 2 s), 1,000 rooms
and 200 token requests/s; the reduced level uses shorter timings, 40 rooms and 40 requests/s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from chaos_support import NAMESPACE, by_level, create_rooms, room_in_progress, room_names, wait_objects
from measure import metric_sum, scrape_metrics
from operator_stack import OperatorProcess, Stack, count_requests
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from twilio_video_operator.dev.balancer import Balancer
from twilio_video_operator.dev.kube import AccessRule
from twilio_video_operator.kube import VIDEOROOMS

TIMINGS = by_level(
    {
        "LEADER_ELECTION_LEASE_DURATION": "4",
        "LEADER_ELECTION_RENEW_DEADLINE": "3",
        "LEADER_ELECTION_RETRY_PERIOD": "1",
    },
    {},  # the defaults: 15 s, 10 s, 2 s
)
LEASE_DURATION = float(TIMINGS.get("LEADER_ELECTION_LEASE_DURATION", 15))
#: Callers, rooms and identities spread so that the token service's per-caller (100/s), per-room (50/s) and
#: per-identity limits leave most requests to be minted: the test is about failures, not throttling.
CALLERS = [f"system:serviceaccount:{NAMESPACE}:app-{index}" for index in range(3)]
ROOMS = [f"lobby-{index}" for index in range(5)]


@dataclass
class Pair:
    """Two replicas and the balancer in front of them."""

    stack: Stack
    replicas: list[OperatorProcess]
    balancer: Balancer
    session: aiohttp.ClientSession
    log: list[str] = field(default_factory=list)

    async def probe(self, replica: OperatorProcess, path: str = "/healthz") -> dict[str, Any] | None:
        try:
            async with self.session.get(replica.http_url + path, timeout=aiohttp.ClientTimeout(total=1)) as r:
                body: dict[str, Any] = await r.json()
                return body
        except (aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError):
            return None

    async def leader(self) -> OperatorProcess | None:
        for replica in self.replicas:
            if replica.running and ((await self.probe(replica)) or {}).get("leader") is True:
                return replica
        return None

    async def wait_leader(
        self, *, other_than: OperatorProcess | None = None, within: float
    ) -> OperatorProcess:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = await self.leader()
            if found is not None and found is not other_than:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no replica led within {within:.0f}s")


@contextlib.asynccontextmanager
async def replica_pair(stack: Stack, *, public_replica: int | None = None) -> AsyncIterator[Pair]:
    """Two operator processes (the first one leads) sharing a PUBLIC_BASE_URL: the balancer's, or the URL of
    replica ``public_replica`` (so that every callback of the emulator lands on that one)."""
    urls: list[str] = []
    balancer = Balancer(lambda: urls)
    public = await balancer.start()
    shared = {"SHUTDOWN_DRAIN_SECONDS": "1", "LOG_LEVEL": "DEBUG", **TIMINGS}
    replicas = [stack.new_operator(env=shared, name=f"replica{index}") for index in range(2)]
    urls.extend(replica.http_url for replica in replicas)
    if public_replica is not None:
        public = replicas[public_replica].http_url
    for replica in replicas:
        replica.env["REPLICA_URL"] = replica.http_url
        replica.env["PUBLIC_BASE_URL"] = public
    async with aiohttp.ClientSession() as session:
        pair = Pair(stack, replicas, balancer, session)
        try:
            await replicas[0].start()
            await pair.wait_leader(within=10)
            await replicas[1].start()
            await balancer.probe()
            yield pair
        finally:
            for replica in replicas:
                await replica.stop()
            await balancer.stop()


def create_room_count(operations: Any) -> int:
    return count_requests(operations, status_prefix="2").get("CreateRoom", 0)


async def test_killing_the_leader_during_a_burst_hands_over_without_duplicate_rooms(stack: Stack) -> None:
    names = room_names(by_level(40, 1000), prefix="burst")
    async with replica_pair(stack) as pair:
        leader = await pair.wait_leader(within=10)
        await create_rooms(stack, names)
        await wait_objects(stack, "videorooms", names[: len(names) // 5], room_in_progress, within=120)
        killed_at = time.monotonic()
        leader.kill()
        follower = await pair.wait_leader(other_than=leader, within=LEASE_DURATION + 10)
        took_over = time.monotonic() - killed_at
        laggards = await wait_objects(stack, "videorooms", names, room_in_progress, within=by_level(60, 600))
        recovered = time.monotonic() - killed_at
        operations = await stack.control.requests()
    assert follower is not leader
    assert took_over <= LEASE_DURATION + 2, took_over
    assert laggards == {}
    assert create_room_count(operations) == len(names)
    unique = Counter(room.unique_name for room in stack.emulator.state.rooms.values())
    assert [name for name, count in unique.items() if count > 1] == []
    print(
        f"\nHA burst: {len(names)} rooms, leader killed after {len(names) // 5} were Ready; "
        "follower led after "
        f"{took_over:.1f}s (lease {LEASE_DURATION:.0f}s); every room Ready {recovered:.1f}s after the kill; "
        f"CreateRoom {create_room_count(operations)}"
    )


def bearer(caller: str) -> str:
    return f"bearer-of-{caller.rsplit(':', 1)[-1]}"


def enable_callers(stack: Stack) -> None:
    for caller in CALLERS:
        stack.kube.allow_tokens[bearer(caller)] = {"username": caller, "groups": ["system:serviceaccounts"]}
    stack.kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=("video.openclaw.io",),
            resources=("videorooms/token",),
            namespaces=(NAMESPACE,),
            users=tuple(CALLERS),
        )
    )


async def steady_tokens(
    session: aiohttp.ClientSession, url: str, rate: float, stop: asyncio.Event, answers: Counter[str]
) -> None:
    """POST /v1/token ``rate`` times a second (each on its own schedule, not waiting for answers)."""
    pending: set[asyncio.Task[None]] = set()

    async def one(number: int) -> None:
        body = {"namespace": NAMESPACE, "room": ROOMS[number % len(ROOMS)], "identity": f"user-{number}"}
        headers = {"Authorization": f"Bearer {bearer(CALLERS[number % len(CALLERS)])}"}
        try:
            async with session.post(url + "/v1/token", json=body, headers=headers) as answer:
                answers[str(answer.status)] += 1
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            answers[type(exc).__name__] += 1

    started = time.monotonic()
    sent = 0
    while not stop.is_set():
        due = started + sent / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(one(sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
    await asyncio.gather(*pending)


async def test_a_rolling_restart_under_token_load_fails_no_token_request(stack: Stack) -> None:
    enable_callers(stack)
    rate = by_level(40.0, 200.0)
    async with replica_pair(stack) as pair:
        await create_rooms(stack, ROOMS)
        assert await wait_objects(stack, "videorooms", ROOMS, room_in_progress, within=30) == {}
        answers: Counter[str] = Counter()
        stop = asyncio.Event()
        load = asyncio.create_task(steady_tokens(pair.session, pair.balancer.url, rate, stop, answers))
        await asyncio.sleep(2)
        handovers: list[float] = []
        for index in (1, 0) if (await pair.leader()) is pair.replicas[0] else (0, 1):
            replica = pair.replicas[index]
            was_leader = ((await pair.probe(replica)) or {}).get("leader") is True
            terminated_at = time.monotonic()
            await replica.stop()  # SIGTERM, then waits for the exit
            if was_leader:
                await pair.wait_leader(within=LEASE_DURATION)
                handovers.append(time.monotonic() - terminated_at)
            await replica.start()
            await pair.balancer.probe()
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        stop.set()
        await load
    failed = {status: count for status, count in answers.items() if status not in ("200", "429")}
    assert answers["200"] > 0
    assert failed == {}, answers
    assert len(handovers) == 1 and handovers[0] < float(TIMINGS.get("LEADER_ELECTION_RETRY_PERIOD", 2)) + 5
    print(
        f"\nHA rolling restart at {rate:.0f} token requests/s: {dict(answers)}; the lead passed "
        f"{handovers[0]:.2f}s after SIGTERM"
    )


def join_token(stack: Stack, room: str, identity: str) -> str:
    creds = stack.credentials
    token = AccessToken(
        creds["account_sid"], creds["api_key"], creds["api_secret"], identity=identity, ttl=600
    )
    token.add_grant(VideoGrant(room=room))
    return str(token.to_jwt())


def participants(stack: Stack, room_sid: str, identity: str) -> list[str]:
    room = stack.emulator.state.rooms[room_sid]
    return [p.status for p in room.participants.values() if p.identity == identity]


async def test_callbacks_on_the_follower_take_effect_and_a_blocked_joiner_is_disconnected(
    stack: Stack,
) -> None:
    async with replica_pair(stack, public_replica=1) as pair:  # every callback lands on the follower
        leader, follower = pair.replicas
        assert await pair.wait_leader(within=5) is leader
        await create_rooms(stack, ["town"], moderation={"blockedIdentities": ["mallory"]})
        assert await wait_objects(stack, "videorooms", ["town"], room_in_progress, within=30) == {}
        obj = await stack.client.get(VIDEOROOMS, NAMESPACE, "town")
        assert obj is not None
        sid = obj["status"]["sid"]

        joined_at = time.monotonic()
        status, _ = await stack.control.join(sid, "alice", join_token(stack, sid, "alice"))
        assert status in (200, 201)

        async def counted() -> bool:
            found = await stack.client.get(VIDEOROOMS, NAMESPACE, "town")
            return ((found or {}).get("status") or {}).get("participants", {}).get("connected") == 1

        while not await counted():
            assert time.monotonic() - joined_at < 2.0, "the callback on the follower took effect too late"
            await asyncio.sleep(0.05)
        took = time.monotonic() - joined_at

        # The leader dies; mallory joins before anyone leads again: the follower keeps her callback.
        leader.kill()
        status, _ = await stack.control.join(sid, "mallory", join_token(stack, sid, "mallory"))
        assert status in (200, 201)
        assert await pair.wait_leader(within=LEASE_DURATION + 5) is follower
        deadline = time.monotonic() + 10
        while participants(stack, sid, "mallory") != ["disconnected"]:
            assert time.monotonic() < deadline, participants(stack, sid, "mallory")
            await asyncio.sleep(0.1)
    print(f"\nHA callbacks: a callback on the follower took effect in {took:.2f}s")


async def test_a_replica_without_leader_election_reports_that_it_leads(stack: Stack) -> None:
    """Without an election the one replica reconciles from start to stop, so the leader gauge says 1 and
    ``sum(twilio_video_operator_leader)`` is 1 in a healthy release either way."""
    operator = stack.new_operator("operator", env={"LEADER_ELECTION": "false"})
    await operator.start()
    samples = await scrape_metrics(operator.http_url)
    assert metric_sum(samples, "twilio_video_operator_leader") == 1.0, sorted(samples)[:5]
