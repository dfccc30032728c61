"""Leader election through a ``coordination.k8s.io/v1`` Lease, the way client-go's ``leaderelection`` does it.

Every replica is a candidate. Each ``retry_period`` it reads the Lease of the release namespace:

- no Lease, an empty ``holderIdentity`` (released) or a record that has not changed for its
  ``leaseDurationSeconds`` *as measured by this replica's own clock since it first saw that record* (so no
  two clocks are compared): take it over with a compare-and-swap write (``resourceVersion``; a 409 means
  another candidate was faster);
- held by this replica: renew it (``renewTime``), again with a compare-and-swap write;
- held by another, fresh: follow, remembering the leader's URL (annotation :data:`LEADER_URL_ANNOTATION`)
  so that callbacks can be handed to it.

Between attempts every candidate also **watches** the Lease, so it sees each renewal when it is written rather
than up to a retry period later, and a follower looks again right when the record it saw expires (and at once
when the Lease is released or deleted). A killed leader is therefore replaced about ``lease_duration`` after
its last renewal, not up to two jittered retry periods later as with polling alone (client-go). Without the
watch (an error, no RBAC for it) the election still works by polling, with client-go's bounds.

**Fencing.** Leadership is valid until ``renew_deadline`` after the moment the last successful write was
*sent*. :class:`Leadership` answers from that deadline and a monotonic clock alone, from any thread, so a
replica whose renewals fail (API server unreachable, a stalled loop) stops mutating when the deadline
passes even before its election loop notices. Another replica can take over only ``lease_duration`` after it
observed that same record, which is later than the write was sent; with ``renew_deadline <
lease_duration`` there is a gap (5 s with the defaults) in which nobody mutates. The Twilio gateway asks
:meth:`Leadership.fence` right before each create, update or delete it sends.

**Release.** On shutdown the leader first closes its fence, stops reconciling, then clears
``holderIdentity`` (client-go's ``ReleaseOnCancel``): a follower that watches takes over as soon as it sees
the release, else on its next retry, so a rolling update hands over in well under ``retry_period``.

Defaults are controller-runtime's: lease 15 s, renew deadline 10 s, retry 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from twilio_video_operator import API_GROUP, metrics
from twilio_video_operator.kube.client import KubeApiError, KubeClient
from twilio_video_operator.kube.resources import LEASES

logger = logging.getLogger(__name__)

#: The HTTP base URL of the holder, for callbacks that land on a follower.
LEADER_URL_ANNOTATION = f"{API_GROUP}/leader-url"
#: client-go's JitterFactor: candidates wait up to this much longer than retry_period between attempts.
JITTER = 1.2
#: How long one watch request of the Lease lasts before the server ends it and the watch starts again.
WATCH_SECONDS = 300


@dataclass(frozen=True)
class LeaseTimings:
    """Seconds: how long a Lease is valid without renewal, how long a leader keeps trying to renew before
    it stops leading, and how often candidates and the leader try."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("the lease duration must be greater than the renew deadline")
        if not self.renew_deadline > self.retry_period * JITTER:
            raise ValueError(f"the renew deadline must be greater than {JITTER} x the retry period")
        if self.retry_period <= 0:
            raise ValueError("the retry period must be positive")


def default_identity() -> str:
    """``<hostname>_<random>``, unique per process even when several run on one host."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Leadership:
    """Whether this process leads, readable from any thread."""

    def __init__(
        self, identity: str, renew_deadline: float | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.identity = identity
        self._renew_deadline = renew_deadline
        self._clock = clock
        self._lock = threading.Lock()
        self._valid_until: float | None = None
        self.leader_identity: str | None = None
        """The holder of the Lease as last seen (``None``: nobody, or not seen yet)."""
        self.leader_url: str | None = None
        """The holder's HTTP base URL as last seen."""

    @classmethod
    def always(cls) -> Leadership:
        """Leadership of a process that runs without election: it leads from the start until revoked."""
        leadership = cls("standalone", None)
        leadership.grant(0.0)
        return leadership

    def grant(self, sent_at: float) -> None:
        """A write naming this process holder was accepted; it had been sent at ``sent_at`` (monotonic)."""
        deadline = self._renew_deadline
        with self._lock:
            self._valid_until = float("inf") if deadline is None else sent_at + deadline
        self.leader_identity = self.identity

    def revoke(self) -> None:
        with self._lock:
            self._valid_until = None

    @property
    def valid_until(self) -> float | None:
        """The monotonic time at which this leadership ends unless renewed (``None``: not leading)."""
        with self._lock:
            return self._valid_until

    @property
    def leading(self) -> bool:
        valid_until = self.valid_until
        return valid_until is not None and self._clock() < valid_until

    def fence(self) -> str | None:
        """``None`` while this process may change Twilio, else why not."""
        return None if self.leading else "this replica does not lead (see the leader Lease)"


Callback = Callable[[], Awaitable[None]]


class LeaseElector:
    """The election loop of one candidate; run :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        leadership: Leadership,
        timings: LeaseTimings,
        url: str,
        on_started_leading: Callback,
        on_stopped_leading: Callback,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.leadership = leadership
        self.timings = timings
        self.url = url
        self._started = on_started_leading
        self._stopped = on_stopped_leading
        self._clock = clock
        self._rng = rng or random.Random()
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._observed_duration = timings.lease_duration
        self._leading = False
        self._wake = asyncio.Event()
        """Set by the watch when the Lease was released or deleted: a follower attempts at once."""
        self.observed_once = asyncio.Event()
        """Set once the Lease was read (or written) successfully: this replica knows who leads."""

    # ------------------------------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        watcher = asyncio.create_task(self._watch(stop), name="leader Lease watch")
        try:
            while not stop.is_set():
                self._wake.clear()
                await self._attempt()
                if self._leading and not self.leadership.leading:
                    await self._lose("the Lease could not be renewed within the renew deadline")
                elif not self._leading and self.leadership.leading:
                    await self._gain()
                wait = self.timings.retry_period
                if not self._leading:
                    wait *= 1 + self._rng.random() * (JITTER - 1)
                await self._pause(stop, self._until_deadline(wait))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if self._leading:
                await self._release()

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Sleep ``seconds``, or less when asked to stop or woken by the watch."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _until_deadline(self, wait: float) -> float:
        """``wait``, shortened so that the loop looks again right when the renew deadline passes (leader) or
        when the record it last saw expires (follower)."""
        if not self._leading:
            expires_at = self._observed_at + self._observed_duration
            if self._observed is None or not self._observed[0] or expires_at <= self._clock():
                return wait  # nobody holds it, or the last attempt already found it expired
            return max(0.0, min(wait, expires_at - self._clock() + 0.01))
        valid_until = self.leadership.valid_until
        if valid_until is None:
            return 0.0
        return max(0.0, min(wait, valid_until - self._clock() + 0.01))

    async def _watch(self, stop: asyncio.Event) -> None:
        """Observe every write of the Lease as it happens; start again after the server ends a watch or an
        error (a retry period later)."""
        version: str | None = None
        while not stop.is_set():
            try:
                async for kind, lease in self.kube.watch(
                    LEASES,
                    self.namespace,
                    field_selector=f"metadata.name={self.name}",
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                ):
                    if kind == "ERROR":  # e.g. 410 Gone: start afresh from the current state
                        version = None
                        break
                    version = (lease.get("metadata") or {}).get("resourceVersion") or version
                    self._seen_by_watch(kind, lease)
                else:
                    continue  # the server ended the watch: resume from the last version seen
            except (KubeApiError, OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                version = None
                logger.debug("cannot watch the leader Lease %s/%s: %s", self.namespace, self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.timings.retry_period)

    def _seen_by_watch(self, kind: str, lease: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._wake.set()
            return
        if kind not in ("ADDED", "MODIFIED"):
            return
        self._observe(lease, self._clock())
        self._note_holder(lease)
        if not (lease.get("spec") or {}).get("holderIdentity"):
            self._wake.set()  # released: a follower takes it now instead of at its next retry

    async def _attempt(self) -> None:
        budget = self.timings.renew_deadline if self._leading else self.timings.retry_period * 2
        try:
            async with asyncio.timeout(budget):
                await self._try_acquire_or_renew()
        except (KubeApiError, OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            level = logging.WARNING if self._leading else logging.DEBUG
            logger.log(
                level, "cannot read or write the leader Lease %s/%s: %s", self.namespace, self.name, exc
            )

    async def _gain(self) -> None:
        self._leading = True
        metrics.LEADER.set(1)
        metrics.LEADER_TRANSITIONS.labels("acquired").inc()
        logger.info("this replica leads now", extra={"lease": f"{self.namespace}/{self.name}"})
        try:
            await self._started()
        except Exception:
            logger.exception("starting to reconcile failed; giving up the lead")
            self.leadership.revoke()
            await self._lose("the reconciler did not start")
            await self._write_release()

    async def _lose(self, why: str) -> None:
        self.leadership.revoke()
        self._leading = False
        metrics.LEADER.set(0)
        metrics.LEADER_TRANSITIONS.labels("lost").inc()
        logger.warning(
            "this replica no longer leads: %s", why, extra={"lease": f"{self.namespace}/{self.name}"}
        )
        await self._stopped()

    async def _release(self) -> None:
        """Stop leading on purpose: fence first, stop reconciling, then free the Lease for a follower."""
        self.leadership.revoke()
        self._leading = False
        metrics.LEADER.set(0)
        metrics.LEADER_TRANSITIONS.labels("released").inc()
        try:
            await self._stopped()
        finally:
            await self._write_release()
            logger.info("released the leader Lease", extra={"lease": f"{self.namespace}/{self.name}"})

    async def _write_release(self) -> None:
        with contextlib.suppress(KubeApiError, OSError, aiohttp.ClientError, TimeoutError):
            async with asyncio.timeout(self.timings.retry_period * 2):
                lease = await self.kube.get(LEASES, self.namespace, self.name)
                if (
                    lease is None
                    or (lease.get("spec") or {}).get("holderIdentity") != self.leadership.identity
                ):
                    return
                now = _micro_time(datetime.now(UTC))
                spec = dict(lease.get("spec") or {})
                spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=now, acquireTime=now)
                spec = {key: value for key, value in spec.items() if value is not None}
                metadata = dict(lease["metadata"])
                annotations = dict(metadata.get("annotations") or {})
                annotations.pop(LEADER_URL_ANNOTATION, None)
                metadata["annotations"] = annotations
                await self.kube.replace(
                    LEASES, self.namespace, self.name, {**lease, "metadata": metadata, "spec": spec}
                )

    # ------------------------------------------------------------------------------ one attempt

    async def _try_acquire_or_renew(self) -> None:
        identity = self.leadership.identity
        sent_at = self._clock()
        now = _micro_time(datetime.now(UTC))
        lease = await self.kube.get(LEASES, self.namespace, self.name)
        if lease is None:
            body = self._body({}, {"acquireTime": now, "renewTime": now, "leaseTransitions": 0})
            try:
                await self.kube.create(LEASES, self.namespace, body)
            except KubeApiError as exc:
                if exc.conflict:
                    return  # another candidate created it first
                raise
            self._observe(body, self._clock())
            self.leadership.grant(sent_at)
            return
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        self._observe(lease, self._clock())
        self._note_holder(lease)
        expired = self._clock() >= self._observed_at + self._observed_duration
        if holder is not None and holder != identity and not expired:
            return  # held by another, not expired
        ours = holder == identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        changes = {
            "renewTime": now,
            "acquireTime": spec.get("acquireTime") if ours and spec.get("acquireTime") else now,
            "leaseTransitions": transitions,
        }
        body = self._body(lease, changes)
        try:
            written = await self.kube.replace(LEASES, self.namespace, self.name, body)
        except KubeApiError as exc:
            if exc.conflict:
                return  # someone else wrote first; look again next time
            raise
        self._observe(written, self._clock())
        self.leadership.grant(sent_at)
        self._note_holder(written)

    def _body(self, lease: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
        metadata = dict(lease.get("metadata") or {"name": self.name, "namespace": self.namespace})
        annotations = dict(metadata.get("annotations") or {})
        annotations[LEADER_URL_ANNOTATION] = self.url
        metadata["annotations"] = annotations
        spec = dict(lease.get("spec") or {})
        spec.update(
            holderIdentity=self.leadership.identity,
            leaseDurationSeconds=round(self.timings.lease_duration),
            **changes,
        )
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _observe(self, lease: dict[str, Any], at: float) -> None:
        spec = lease.get("spec") or {}
        record = (
            spec.get("holderIdentity"),
            spec.get("renewTime"),
            spec.get("acquireTime"),
            spec.get("leaseTransitions"),
        )
        if record != self._observed:
            self._observed, self._observed_at = record, at
            self._observed_duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
        self.observed_once.set()

    def _note_holder(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        annotations = (lease.get("metadata") or {}).get("annotations") or {}
        self.leadership.leader_identity = spec.get("holderIdentity") or None
        self.leadership.leader_url = (
            annotations.get(LEADER_URL_ANNOTATION) if spec.get("holderIdentity") else None
        )


def _micro_time(moment: datetime) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 with microseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
