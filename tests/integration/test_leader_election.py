"""Leader election through a Lease against the embedded API: acquire, follow, release, and fencing when a
leader is cut off (it stops mutating before anyone else may lead); a follower that watches the Lease takes
over a dead leader's Lease when the last renewal expires, and a released one at once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import kopf
import pytest
from pydantic import SecretStr

from twilio_video_emulator.server import start_emulator
from twilio_video_operator.gateway import CredentialSet, GatewayConfig, RetryPolicy, TwilioGateway
from twilio_video_operator.gateway.errors import FencedError
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.kube.leader import LEADER_URL_ANNOTATION, Leadership, LeaseElector, LeaseTimings
from twilio_video_operator.kube.resources import LEASES
from twilio_video_playground.kube import EmbeddedKubernetes

NAMESPACE = "default"
LEASE = "operator-lease"
TIMINGS = LeaseTimings(lease_duration=1.5, renew_deadline=1.0, retry_period=0.2)
#: A retry period long next to the lease, and the largest jitter every time: polling alone would see the last
#: renewal up to 1.8 s late and the expiry up to 1.8 s late again (lease + 3.6 s).
SLOW_POLLING = LeaseTimings(lease_duration=3.0, renew_deadline=2.0, retry_period=1.5)


class LargestJitter(random.Random):
    def random(self) -> float:
        return 1.0


class PartitionableClient(KubeClient):
    """A client whose requests fail while ``cut`` is set, like a replica cut off from the API server."""

    cut = False

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self.cut:
            raise OSError("network unreachable")
        return await super().request(method, path, **kwargs)

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if self.cut:
            raise OSError("network unreachable")
        async for event in super().watch(*args, **kwargs):
            if self.cut:
                raise OSError("network unreachable")
            yield event


class Candidate:
    def __init__(
        self, kube: EmbeddedKubernetes, identity: str, timings: LeaseTimings = TIMINGS, **elector: Any
    ) -> None:
        info = kopf.ConnectionInfo(server=kube.url, scheme="Bearer", token=kube.token)
        self.client = PartitionableClient(info)
        self.leadership = Leadership(identity, timings.renew_deadline)
        self.terms: list[str] = []
        self.elector = LeaseElector(
            self.client,
            namespace=NAMESPACE,
            name=LEASE,
            leadership=self.leadership,
            timings=timings,
            url=f"http://{identity}.example:8080",
            on_started_leading=self._started,
            on_stopped_leading=self._stopped,
            **elector,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _started(self) -> None:
        self.terms.append("started")

    async def _stopped(self) -> None:
        self.terms.append("stopped")

    def run(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self.stop))

    async def halt(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        await self.client.close()


@pytest.fixture
async def candidates(kube: EmbeddedKubernetes) -> AsyncIterator[list[Candidate]]:
    made = [Candidate(kube, "alpha"), Candidate(kube, "beta")]
    yield made
    for candidate in made:
        candidate.client.cut = False
        await candidate.halt()


async def until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check()`` holds; fails after ``seconds``."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling another object's clock-based state
            await asyncio.sleep(0.01)
    return time.monotonic() - started


async def lease(client: KubeClient) -> dict[str, Any]:
    found = await client.get(LEASES, NAMESPACE, LEASE)
    assert found is not None
    return found


@contextlib.asynccontextmanager
async def never_two_leaders(candidates: list[Candidate]) -> AsyncIterator[None]:
    """Sample both replicas' fences every few milliseconds: at no moment may both let a mutation through."""
    overlaps: list[float] = []

    async def watch() -> None:
        while True:
            if sum(candidate.leadership.fence() is None for candidate in candidates) > 1:
                overlaps.append(time.monotonic())
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert overlaps == []


async def test_one_candidate_leads_and_the_other_follows_with_its_url(candidates: list[Candidate]) -> None:
    alpha, beta = candidates
    alpha.run()
    await until(lambda: alpha.leadership.leading, 2)
    beta.run()
    await until(lambda: beta.leadership.leader_url is not None, 2)
    assert not beta.leadership.leading
    assert beta.leadership.leader_identity == "alpha"
    assert beta.leadership.leader_url == "http://alpha.example:8080"
    found = await lease(alpha.client)
    assert found["spec"]["holderIdentity"] == "alpha"
    assert found["spec"]["leaseDurationSeconds"] == 2  # whole seconds, as the API stores them
    assert found["metadata"]["annotations"][LEADER_URL_ANNOTATION] == "http://alpha.example:8080"
    renewed = found["spec"]["renewTime"]
    await asyncio.sleep(3 * TIMINGS.retry_period)
    assert (await lease(alpha.client))["spec"]["renewTime"] != renewed  # renewed every retry period
    assert (alpha.terms, beta.terms) == (["started"], [])


async def test_a_released_lease_is_taken_over_within_the_retry_period(candidates: list[Candidate]) -> None:
    alpha, beta = candidates
    alpha.run()
    await until(lambda: alpha.leadership.leading, 2)
    beta.run()
    await until(lambda: beta.leadership.leader_identity == "alpha", 2)
    async with never_two_leaders(candidates):
        released_at = time.monotonic()
        await alpha.halt()  # SIGTERM: fence, stop reconciling, release
        assert alpha.terms == ["started", "stopped"]
        handover = await until(lambda: beta.leadership.leading, 2)
    assert handover <= TIMINGS.retry_period * 1.2 + 0.3, handover
    assert time.monotonic() - released_at < TIMINGS.lease_duration
    assert (await lease(beta.client))["spec"]["leaseTransitions"] == 1


async def test_a_cut_off_leader_stops_mutating_before_another_may_lead(candidates: list[Candidate]) -> None:
    alpha, beta = candidates
    alpha.run()
    await until(lambda: alpha.leadership.leading, 2)
    beta.run()
    await until(lambda: beta.leadership.leader_identity == "alpha", 2)
    async with never_two_leaders(candidates):
        cut_at = time.monotonic()
        alpha.client.cut = True
        fenced = await until(lambda: alpha.leadership.fence() is not None, 3)
        assert fenced <= TIMINGS.renew_deadline + 0.1
        took_over = await until(lambda: beta.leadership.leading, 5)
    # The follower waited out the whole lease it last saw renewed, measured on its own clock.
    assert time.monotonic() - cut_at >= TIMINGS.lease_duration - TIMINGS.retry_period
    assert took_over > 0
    await until(lambda: alpha.terms == ["started", "stopped"], 2)
    alpha.client.cut = False
    await asyncio.sleep(3 * TIMINGS.retry_period)
    assert not alpha.leadership.leading and alpha.leadership.leader_identity == "beta"


@pytest.fixture
async def slow_pollers(kube: EmbeddedKubernetes) -> AsyncIterator[list[Candidate]]:
    made = [Candidate(kube, name, SLOW_POLLING, rng=LargestJitter()) for name in ("alpha", "beta")]
    yield made
    for candidate in made:
        candidate.client.cut = False
        await candidate.halt()


async def renewed(candidate: Candidate) -> None:
    """Until the candidate's next renewal was accepted (its leadership extended)."""
    before = candidate.leadership.valid_until
    await until(lambda: candidate.leadership.valid_until != before, SLOW_POLLING.retry_period * 2)


async def test_a_dead_leader_is_replaced_when_its_last_renewal_expires(slow_pollers: list[Candidate]) -> None:
    """The follower sees each renewal through its watch, not a retry period later, and looks again right when
    the record it saw expires, not at its next retry: a follower leads about one lease duration after the
    leader's last renewal, where polling alone would take up to ``lease + 2 x retry x jitter``."""
    alpha, beta = slow_pollers
    alpha.run()
    await until(lambda: alpha.leadership.leading, 3)
    beta.run()
    await until(lambda: beta.leadership.leader_identity == "alpha", 3)
    async with never_two_leaders(slow_pollers):
        await renewed(alpha)
        renewed_at = time.monotonic()
        alpha.client.cut = True  # no more renewals, as if killed right after this one
        took_over = await until(lambda: beta.leadership.leading, SLOW_POLLING.lease_duration * 3)
    since_renewal = time.monotonic() - renewed_at
    assert SLOW_POLLING.lease_duration - 0.1 <= since_renewal <= SLOW_POLLING.lease_duration + 0.4, (
        since_renewal,
        took_over,
    )


async def test_a_watching_follower_takes_a_released_lease_at_once(slow_pollers: list[Candidate]) -> None:
    alpha, beta = slow_pollers
    alpha.run()
    await until(lambda: alpha.leadership.leading, 3)
    beta.run()
    await until(lambda: beta.leadership.leader_identity == "alpha", 3)
    await asyncio.sleep(0.5)  # beta is between two polls, 1.8 s apart
    async with never_two_leaders(slow_pollers):
        await alpha.halt()  # releases the Lease
        handover = await until(lambda: beta.leadership.leading, SLOW_POLLING.lease_duration)
    assert handover <= 0.4, handover


async def test_the_gateway_sends_no_mutation_once_fenced() -> None:
    emulator = await start_emulator(host="127.0.0.1", port=0)
    creds = emulator.credentials
    fence: list[str | None] = [None]
    config = GatewayConfig(base_url=creds["url"], retry=RetryPolicy(max_attempts=1), fence=lambda: fence[0])
    gateway = TwilioGateway(config)
    key = SecretStr(creds["api_secret"])
    api = gateway.api(
        CredentialSet(account_sid=creds["account_sid"], api_key=creds["api_key"], api_secret=key)
    )
    try:
        created = await api.create_room(unique_name="ns:fenced-a")
        fence[0] = "this replica does not lead"
        with pytest.raises(FencedError, match="does not lead"):
            await api.create_room(unique_name="ns:fenced-b")
        fetched = await api.fetch_room(created.sid)  # reads still go through
        assert fetched is not None and fetched.unique_name == "ns:fenced-a"
        names = {room.unique_name for room in emulator.state.rooms.values()}
        assert names == {"ns:fenced-a"}
    finally:
        await gateway.close()
        await emulator.stop()
