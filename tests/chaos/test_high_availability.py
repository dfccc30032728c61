"""High availability: two operator processes electing a leader through a Lease, behind the playground's
balancer (the stand-in for a Service that sends traffic only to ready replicas).

- kill -9 of the leader during a burst of rooms: the follower leads within the lease duration + 2 s, every
  room becomes Ready, and Twilio saw exactly one CreateRoom per room;
- a rolling restart (SIGTERM, wait, start, one replica at a time) under a steady token load: no token
  request fails (anything but 2xx and 429 is a failure), and the lead is handed over promptly;
- callbacks that land on the follower take effect (status within 2 s), and a blocked identity that joins
  while the leader is gone is still disconnected;
- a Verify check passed on one replica lets the other mint with the answer's verificationPass, with no
  second check.

``CHAOS_LEVEL=full`` uses the operator's default timings (lease 15 s, renew 10 s, retry 2 s), 1,000 rooms
and 200 token requests/s; the reduced level uses shorter timings, 40 rooms and 40 requests/s. The scenarios
run on the embedded API and on the real kube-apiserver (``both_backends``); on the real one the token
service's callers are ServiceAccounts with a Role, whose tokens come from the TokenRequest API and are
checked by the server's own TokenReview and SubjectAccessReview.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from chaos_support import NAMESPACE, by_level, create_rooms, room_in_progress, room_names, wait_objects
from measure import metric_sum, scrape_metrics
from operator_stack import OperatorProcess, Stack, count_requests
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
from twilio.rest import Client

from kube_backends import RealBackend
from twilio_video_operator.gateway.base_url import AsyncBaseUrlHttpClient
from twilio_video_operator.kube import VIDEOROOMS
from twilio_video_playground.balancer import Balancer
from twilio_video_playground.kube import AccessRule

TIMINGS = by_level(
    {
        "LEADER_ELECTION_LEASE_DURATION": "4",
        "LEADER_ELECTION_RENEW_DEADLINE": "3",
        "LEADER_ELECTION_RETRY_PERIOD": "1",
    },
    {},  # the defaults: 15 s, 10 s, 2 s
)
LEASE_DURATION = float(TIMINGS.get("LEADER_ELECTION_LEASE_DURATION", 15))
RETRY_PERIOD = float(TIMINGS.get("LEADER_ELECTION_RETRY_PERIOD", 2))
#: Callers, rooms and identities spread so that the token service's per-caller (100/s), per-room (50/s) and
#: per-identity limits leave most requests to be minted: the test is about failures, not throttling.
CALLERS = [f"system:serviceaccount:{NAMESPACE}:app-{index}" for index in range(3)]
ROOMS = [f"lobby-{index}" for index in range(5)]
PHONE = "+15551230001"


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
async def replica_pair(
    stack: Stack, *, public_replica: int | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[Pair]:
    """Two operator processes (the first one leads) sharing a PUBLIC_BASE_URL: the balancer's, or the URL of
    replica ``public_replica`` (so that every callback of the emulator lands on that one)."""
    urls: list[str] = []
    balancer = Balancer(lambda: urls)
    public = await balancer.start()
    shared = {"SHUTDOWN_DRAIN_SECONDS": "1", "LOG_LEVEL": "DEBUG", **TIMINGS, **(env or {})}
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


@pytest.mark.both_backends
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
        f"\nHA burst [{stack.kube_backend.name}]: {len(names)} rooms, leader killed after {len(names) // 5} "
        f"were Ready; follower led after {took_over:.1f}s (lease {LEASE_DURATION:.0f}s); every room Ready "
        f"{recovered:.1f}s after the kill; CreateRoom {create_room_count(operations)}"
    )


def account_of(caller: str) -> str:
    return caller.rsplit(":", 1)[-1]


async def enable_callers(stack: Stack) -> list[str]:
    """Let the :data:`CALLERS` mint tokens for the rooms of the namespace; their bearer tokens."""
    backend = stack.kube_backend
    if isinstance(backend, RealBackend):
        return await asyncio.to_thread(real_callers, backend)
    bearers = [f"bearer-of-{account_of(caller)}" for caller in CALLERS]
    for caller, token in zip(CALLERS, bearers, strict=True):
        stack.kube.allow_tokens[token] = {"username": caller, "groups": ["system:serviceaccounts"]}
    stack.kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=("video.openclaw.io",),
            resources=("videorooms/token",),
            namespaces=(NAMESPACE,),
            users=tuple(CALLERS),
        )
    )
    return bearers


def real_callers(backend: RealBackend) -> list[str]:
    """ServiceAccounts bound to a Role allowing ``create`` on ``videorooms/token``, and a TokenRequest token
    of each: the real server's TokenReview and SubjectAccessReview decide."""
    api, base, rbac = backend.api, f"/api/v1/namespaces/{NAMESPACE}", "/apis/rbac.authorization.k8s.io/v1"
    rule = {"apiGroups": ["video.openclaw.io"], "resources": ["videorooms/token"], "verbs": ["create"]}
    api.expect(
        "POST",
        f"{rbac}/namespaces/{NAMESPACE}/roles",
        {"metadata": {"name": "minter"}, "rules": [rule]},
        ok=(201,),
    )
    accounts = [account_of(caller) for caller in CALLERS]
    binding = {
        "metadata": {"name": "minter"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "minter"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE} for name in accounts],
    }
    api.expect("POST", f"{rbac}/namespaces/{NAMESPACE}/rolebindings", binding, ok=(201,))
    bearers = []
    for name in accounts:
        api.expect("POST", f"{base}/serviceaccounts", {"metadata": {"name": name}}, ok=(201,))
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        issued = api.expect("POST", f"{base}/serviceaccounts/{name}/token", request, ok=(201,))
        bearers.append(str(issued["status"]["token"]))
    return bearers


@dataclass
class TokenLoad:
    """What the steady token load sent and got back, by HTTP status (or exception name)."""

    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    """The first few failed requests: when (seconds into the load), the status and the answer's start."""
    sent: int = 0
    seconds: float = 0.0

    def record(self, at: float, status: str, text: str = "") -> None:
        self.answers[status] += 1
        if status not in ("200", "429") and len(self.failures) < 10:
            self.failures.append(f"{at:.2f}s {status} {text[:80]}")

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def steady_tokens(
    session: aiohttp.ClientSession,
    url: str,
    bearers: list[str],
    rate: float,
    stop: asyncio.Event,
    load: TokenLoad,
) -> None:
    """POST /v1/token ``rate`` times a second (each on its own schedule, not waiting for answers)."""
    pending: set[asyncio.Task[None]] = set()
    started = time.monotonic()

    async def one(number: int) -> None:
        body = {"namespace": NAMESPACE, "room": ROOMS[number % len(ROOMS)], "identity": f"user-{number}"}
        headers = {"Authorization": f"Bearer {bearers[number % len(bearers)]}"}
        try:
            async with session.post(url + "/v1/token", json=body, headers=headers) as answer:
                text = "" if answer.status in (200, 429) else await answer.text()
                load.record(time.monotonic() - started, str(answer.status), text)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            load.record(time.monotonic() - started, type(exc).__name__, str(exc))

    sent = 0
    while not stop.is_set():
        due = started + sent / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(one(sent))
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += 1
        load.sent, load.seconds = sent, time.monotonic() - started
    await asyncio.gather(*pending)


async def handover_after_sigterm(pair: Pair, replica: OperatorProcess) -> float:
    """SIGTERM ``replica`` (the leader) and wait for its exit; seconds from the signal until the other replica
    said it leads, watched while the stopping one still drains."""
    terminated_at = time.monotonic()

    async def led() -> float:
        await pair.wait_leader(other_than=replica, within=LEASE_DURATION + 5)
        return time.monotonic() - terminated_at

    taken = asyncio.create_task(led())
    await replica.stop()  # SIGTERM, then waits for the exit (after SHUTDOWN_DRAIN_SECONDS)
    return await taken


@pytest.mark.both_backends
async def test_a_rolling_restart_under_token_load_fails_no_token_request(stack: Stack) -> None:
    bearers = await enable_callers(stack)
    rate = by_level(40.0, 200.0)
    async with replica_pair(stack) as pair:
        await create_rooms(stack, ROOMS)
        assert await wait_objects(stack, "videorooms", ROOMS, room_in_progress, within=30) == {}
        load = TokenLoad()
        stop = asyncio.Event()
        sender = asyncio.create_task(
            steady_tokens(pair.session, pair.balancer.url, bearers, rate, stop, load)
        )
        await asyncio.sleep(2)
        handovers: list[float] = []
        for index in (1, 0) if (await pair.leader()) is pair.replicas[0] else (0, 1):
            replica = pair.replicas[index]
            if ((await pair.probe(replica)) or {}).get("leader") is True:
                handovers.append(await handover_after_sigterm(pair, replica))
            else:
                await replica.stop()
            await replica.start()
            await pair.balancer.probe()
            await asyncio.sleep(1)
        await asyncio.sleep(2)
        stop.set()
        await sender
    answers = load.answers
    failed = {status: count for status, count in answers.items() if status not in ("200", "429")}
    assert answers["200"] > 0
    assert failed == {}, (answers, load.failures)
    assert load.rate >= 0.9 * rate, f"the load reached {load.rate:.0f} requests/s, not {rate:.0f}"
    assert len(handovers) == 1 and handovers[0] < RETRY_PERIOD + 1, handovers
    print(
        f"\nHA rolling restart [{stack.kube_backend.name}] at {rate:.0f} token requests/s: {load.sent} sent "
        f"in {load.seconds:.1f}s ({load.rate:.0f}/s), answers {dict(answers)}, "
        f"{sum(failed.values())} failed; the lead passed {handovers[0]:.2f}s after SIGTERM"
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


@pytest.mark.both_backends
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
            return bool(((found or {}).get("status") or {}).get("participants", {}).get("connected") == 1)

        while not await counted():
            assert time.monotonic() - joined_at < 2.0, "the callback on the follower took effect too late"
            await asyncio.sleep(0.05)
        took = time.monotonic() - joined_at

        # The leader dies; mallory joins before anyone leads again: the follower keeps her callback.
        killed_at = time.monotonic()
        leader.kill()
        status, _ = await stack.control.join(sid, "mallory", join_token(stack, sid, "mallory"))
        assert status in (200, 201)
        assert await pair.wait_leader(within=LEASE_DURATION + 5) is follower
        deadline = time.monotonic() + 10
        while participants(stack, sid, "mallory") != ["disconnected"]:
            assert time.monotonic() < deadline, participants(stack, sid, "mallory")
            await asyncio.sleep(0.1)
        removed = time.monotonic() - killed_at
    print(
        f"\nHA callbacks [{stack.kube_backend.name}]: a callback on the follower took effect in {took:.2f}s; "
        f"mallory, who joined while nobody led, was disconnected {removed:.1f}s after the leader was killed"
    )


@pytest.mark.both_backends
async def test_a_verified_join_on_one_replica_is_honoured_by_the_other(stack: Stack) -> None:
    """A Verify code checked by one replica cannot be checked again, so the other replica takes the
    verificationPass of the first one's answer instead: no code, no second VerificationCheck."""
    bearer = (await enable_callers(stack))[0]
    creds = stack.credentials
    http = AsyncBaseUrlHttpClient(creds["url"])
    twilio = Client(creds["api_key"], creds["api_secret"], creds["account_sid"], http_client=http)
    try:
        service = (await twilio.verify.v2.services.create_async(friendly_name="Paid webinar")).sid
        started = await twilio.verify.v2.services(service).verifications.create_async(to=PHONE, channel="sms")
    finally:
        await http.close()
    _, sent = await stack.control.call("GET", f"verify/codes?verificationSid={started.sid}")
    code = sent["codes"][0]["code"]
    grant = json.dumps({NAMESPACE: {"verifyServices": [service]}})
    async with replica_pair(stack, env={"TENANT_TWILIO_SERVICES": grant}) as pair:
        await create_rooms(stack, ["paid"], access={"verification": {"serviceSid": service, "ttl": "10m"}})
        assert await wait_objects(stack, "videorooms", ["paid"], room_in_progress, within=30) == {}

        async def ask(replica: OperatorProcess, **more: str) -> tuple[int, dict[str, Any]]:
            body = {"namespace": NAMESPACE, "room": "paid", "identity": PHONE, **more}
            headers = {"Authorization": f"Bearer {bearer}"}
            async with pair.session.post(f"{replica.http_url}/v1/token", json=body, headers=headers) as r:
                answer: dict[str, Any] = await r.json()
                return r.status, answer

        first, second = pair.replicas
        status, answer = await ask(first, verificationCode=code)
        assert status == 200, answer
        verification_pass = answer["verificationPass"]
        status, refused = await ask(second)
        assert (status, refused["error"]) == (403, "VerificationRequired")
        status, refused = await ask(second, verificationCode=code)  # a code is good once, at Verify
        assert (status, refused["error"]) == (403, "VerificationNotFound")
        status, taken = await ask(second, verificationPass=verification_pass)
        assert status == 200 and taken["identity"] == PHONE, taken
        assert taken["verificationPassExpiresAt"] == answer["verificationPassExpiresAt"]
    checks = count_requests(await stack.control.requests()).get("CreateVerificationCheck", 0)
    assert checks == 2  # the first replica's, and the refused second code; none for the pass


async def test_a_replica_without_leader_election_reports_that_it_leads(stack: Stack) -> None:
    """Without an election the one replica reconciles from start to stop, so the leader gauge says 1 and
    ``sum(twilio_video_operator_leader)`` is 1 in a healthy release either way."""
    operator = stack.new_operator("operator", env={"LEADER_ELECTION": "false"})
    await operator.start()
    samples = await scrape_metrics(operator.http_url)
    assert metric_sum(samples, "twilio_video_operator_leader") == 1.0, sorted(samples)[:5]


async def test_a_started_replica_shows_its_fixed_counters_at_zero_before_the_first_count(
    stack: Stack,
) -> None:
    """A counter series born with the value 1 hides that count from rate() and increase(), so the first
    reconcile error or refused callback after a restart would escape the alerts. A fresh process exposes
    them at 0 before anything happened, and the first refused callback then reads 1."""
    operator = stack.new_operator("operator", env={"LEADER_ELECTION": "false"})
    await operator.start()
    samples = await scrape_metrics(operator.http_url)
    rejected = 'twilio_video_operator_webhooks_rejected_total{endpoint="room-events",reason="signature"}'
    expected = [
        rejected,
        'twilio_video_operator_webhooks_received_total{endpoint="composition-events"}',
        'twilio_video_operator_webhooks_rejected_total{endpoint="message-events",reason="unknown_account"}',
        'twilio_video_operator_signing_key_rotations_total{result="failed"}',
        'twilio_video_operator_leader_transitions_total{transition="lost"}',
        'twilio_video_operator_composition_callbacks_total{outcome="malformed"}',
        'twilio_video_operator_token_verifications_total{result="refused"}',
        *(
            f'twilio_video_operator_{name}{{kind="{kind}"}}'
            for kind in ("VideoRoom", "Composition", "SigningKeyRotation")
            for name in ("reconcile_errors_total", "workqueue_adds_total")
        ),
        *(
            f'twilio_video_operator_reconcile_total{{kind="SigningKeyRotation",result="{result}"}}'
            for result in ("success", "requeue_after", "error", "stalled", "paused")
        ),
    ]
    # Nothing was created and no callback came: the reconcile counters may only have counted resyncs.
    absent = [name for name in expected if name not in samples]
    assert not absent, absent
    assert samples[rejected] == 0.0
    assert samples['twilio_video_operator_reconcile_errors_total{kind="Composition"}'] == 0.0

    account = stack.credentials["account_sid"]
    form = {"AccountSid": account, "RoomSid": "RM" + "0" * 32, "StatusCallbackEvent": "room-created"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{operator.http_url}/twilio/room-events", data=form, headers={"X-Twilio-Signature": "forged"}
        ) as answer,
    ):
        assert answer.status == 403, await answer.text()
    assert (await scrape_metrics(operator.http_url))[rejected] == 1.0
