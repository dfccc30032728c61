"""The composition root: one operator replica, built on kopf's public API.

:func:`run_operator` builds the operator's context once (:mod:`twilio_video_operator.context`), starts the
HTTP server (probes, metrics, ``POST /v1/token``, Twilio callbacks), which is active on every replica, and
takes part in the leader election (:mod:`twilio_video_operator.kube.leader`). While this replica leads, kopf
runs the handlers of an explicit registry (:func:`twilio_video_operator.handlers.build_registry`) on a
thread of its own (:mod:`twilio_video_operator.reconciler`), with the context in its ``memo``; while it
follows, verified callbacks are handed to the leader (:mod:`twilio_video_operator.webhooks.handoff`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import kopf

from twilio_video_operator import API_GROUP, API_VERSION, metrics
from twilio_video_operator.context import OperatorContext, build_context
from twilio_video_operator.handlers import build_registry
from twilio_video_operator.handlers.change_detection import ControllerDiffBaseStorage
from twilio_video_operator.http_server import HttpServer, RouteInstaller
from twilio_video_operator.kube import KubeApiError
from twilio_video_operator.kube.composition_objects import CREATED_SPEC_ANNOTATION
from twilio_video_operator.kube.connection import resolve_connection
from twilio_video_operator.kube.leader import Leadership, LeaseElector, LeaseTimings, default_identity
from twilio_video_operator.kube.shard import RESOLVE_INTERVAL, shard_namespaces
from twilio_video_operator.logs import install_redaction, register_secret
from twilio_video_operator.models.kinds import KINDS
from twilio_video_operator.reconciler import KopfThread, Reconciler
from twilio_video_operator.reconcilers.reconcile_tracking import Result
from twilio_video_operator.settings import Settings
from twilio_video_operator.tokens.service import token_routes
from twilio_video_operator.webhooks import composition_events, message_events, room_events
from twilio_video_operator.webhooks.handoff import Handoff

logger = logging.getLogger(__name__)

FINALIZER = f"{API_GROUP}/finalizer"
# kopf ignores annotations under its storage prefix when it diffs objects; keeping its bookkeeping under a
# sub-domain of our group leaves the user-facing annotations (paused, reconcile-requested-at, ...) visible.
KOPF_STORAGE_PREFIX = f"kopf.{API_GROUP}"
HEARTBEAT_INTERVAL = 5.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# Watch streams: ask the server to end each stream after a few minutes, and give up on the client side
# a little later; kopf reconnects either way, so a silently stalled stream cannot last.
WATCH_SERVER_TIMEOUT = 300  # whole seconds: the API server parses timeoutSeconds as an integer
WATCH_CLIENT_TIMEOUT = 330.0
WATCH_CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0
REQUEST_CONNECT_TIMEOUT = 10.0

# Every callback channel: a follower hands each of them to the leader, whose controllers consume them.
CHANNELS = (room_events.CHANNEL, composition_events.CHANNEL, message_events.CHANNEL)

ReconcilerFactory = Callable[
    [OperatorContext, kopf.OperatorRegistry, Callable[[], kopf.OperatorSettings]], Reconciler
]


def build_kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """kopf's settings for this operator (pure: no I/O, easy to inspect)."""
    kopf_settings = kopf.OperatorSettings()
    # kopf's own bookkeeping goes to annotations, so `status` holds only our fields.
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_STORAGE_PREFIX)
    # VideoRoom spec changes are detected by its controller (generation against observedGeneration): kopf
    # keeps no handled-spec annotation for it, which saves a PATCH of every create and update.
    kopf_settings.persistence.diffbase_storage = ControllerDiffBaseStorage(
        controller_kinds=[(f"{API_GROUP}/{API_VERSION}", "VideoRoom")],
        prefix=KOPF_STORAGE_PREFIX,
        key="last-handled-configuration",
        # The Composition's record of the spec it was created with is the operator's own write.
        ignored_fields=[("metadata", "annotations", CREATED_SPEC_ANNOTATION)],
    )
    # Handler logs at WARNING and above also become Kubernetes Events on the object.
    kopf_settings.posting.enabled = True
    kopf_settings.posting.loggers = True
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = "twilio-video-operator"
    kopf_settings.posting.reporting_instance = settings.POD_NAME or socket.gethostname()
    kopf_settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    kopf_settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    kopf_settings.watching.connect_timeout = WATCH_CONNECT_TIMEOUT
    kopf_settings.networking.request_timeout = REQUEST_TIMEOUT
    kopf_settings.networking.connect_timeout = REQUEST_CONNECT_TIMEOUT
    # One replica reconciles, chosen by the operator's Lease election; kopf's peering is not used.
    kopf_settings.peering.standalone = True
    return kopf_settings


class OperatorError(RuntimeError):
    """The operator cannot run; the message says why in one line."""


def lease_namespace(settings: Settings, connection: kopf.ConnectionInfo) -> str:
    """Where the leader Lease lives: the setting, else this pod's namespace, else the kubeconfig's."""
    if settings.LEADER_ELECTION_NAMESPACE:
        return settings.LEADER_ELECTION_NAMESPACE
    if settings.POD_NAMESPACE:
        return settings.POD_NAMESPACE
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    return connection.default_namespace or "default"


def replica_url(settings: Settings, listening: str) -> str:
    """The base URL other replicas use to reach this one (for callbacks handed to the leader)."""
    if settings.REPLICA_URL:
        return settings.REPLICA_URL.rstrip("/")
    if settings.POD_IP:
        host = f"[{settings.POD_IP}]" if ":" in settings.POD_IP else settings.POD_IP
        return f"http://{host}:{settings.HTTP_PORT}"
    return listening


class Replica:
    """One operator replica's moving parts between :meth:`start` and :meth:`stop`."""

    def __init__(self, context: OperatorContext, reconciler: Reconciler) -> None:
        self.context = context
        self.reconciler = reconciler
        self.term_started = asyncio.Event()
        self.namespaces: list[str] | None = None
        self.handoff: Handoff | None = None
        self._term_lock = asyncio.Lock()

    async def watched_namespaces(self) -> list[str] | None:
        """The namespaces to reconcile (empty: all); ``None`` when a selector matches none."""
        settings = self.context.settings
        if not settings.WATCH_NAMESPACE_SELECTOR:
            return settings.watch_namespaces
        found = await shard_namespaces(
            self.context.kube, settings.WATCH_NAMESPACE_SELECTOR, settings.watch_namespaces
        )
        return found or None

    async def start_leading(self) -> None:
        async with self._term_lock:
            for name in CHANNELS:  # the controllers take the callbacks from here on
                await self.context.hub.channel(name).detach()
            self.namespaces = await self.watched_namespaces()
            if self.namespaces is None:
                logger.warning("no namespace matches WATCH_NAMESPACE_SELECTOR: nothing to reconcile yet")
            else:
                await self.reconciler.start(self.namespaces)
            self.term_started.set()

    async def stop_leading(self) -> None:
        async with self._term_lock:
            self.term_started.clear()
            await self.reconciler.stop()
            self.context.progress.reset()
            self.follow()

    def follow(self) -> None:
        """Hand verified callbacks to the leader (on a replica that elects)."""
        if self.handoff is None:
            return
        for name in CHANNELS:
            self.context.hub.channel(name).attach(self.handoff.sink(name))

    async def watch_shard(self, stop: asyncio.Event) -> None:
        """Restart the reconciler when the namespaces of the shard change."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RESOLVE_INTERVAL)
            if stop.is_set() or not self.term_started.is_set():
                continue
            try:
                namespaces = await self.watched_namespaces()
            except (KubeApiError, OSError) as exc:
                logger.warning("cannot list the namespaces of the shard: %s", exc)
                continue
            if namespaces != self.namespaces and self.context.leadership.leading:
                logger.info("the shard's namespaces changed: %s", namespaces or "none")
                await self.stop_leading()
                await self.start_leading()


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop_flag: asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop_flag`` (in the main thread; elsewhere the caller stops the operator)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop_flag.set)


async def _heartbeat(context: OperatorContext) -> None:
    context.health.mark_running()
    while True:
        context.health.beat()
        await asyncio.sleep(HEARTBEAT_INTERVAL)


async def run_operator(
    settings: Settings,
    *,
    kubeconfig: Path | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    registry: kopf.OperatorRegistry | None = None,
    http_socket: socket.socket | None = None,
    reconciler: ReconcilerFactory | None = None,
    context_options: Mapping[str, Any] | None = None,
    on_context: Callable[[OperatorContext], None] | None = None,
    extra_routes: list[RouteInstaller] | None = None,
) -> None:
    """Run one replica until ``stop_flag`` is set (the command line sets it on SIGINT and SIGTERM).

    ``registry`` defaults to :func:`~twilio_video_operator.handlers.build_registry`; ``reconciler`` to
    :class:`~twilio_video_operator.reconciler.KopfThread`. ``ready_flag`` is set once the HTTP server
    listens and the replica knows who leads, and, when it leads itself, kopf has run its startup handlers.
    ``context_options`` go to :func:`~twilio_video_operator.context.build_context` and ``on_context``
    receives the context (tests).
    """
    install_redaction()
    for secret in (settings.TWILIO_API_SECRET, settings.TWILIO_AUTH_TOKEN):
        register_secret(secret)
    try:  # fail now, with one line, rather than in kopf's background login
        connection = resolve_connection(kubeconfig, build_kopf_settings(settings))
    except kopf.LoginError as exc:
        if http_socket is not None:
            http_socket.close()
        raise OperatorError(f"cannot log in to Kubernetes: {exc}") from None
    electing = settings.LEADER_ELECTION
    timings = LeaseTimings(
        settings.LEADER_ELECTION_LEASE_DURATION,
        settings.LEADER_ELECTION_RENEW_DEADLINE,
        settings.LEADER_ELECTION_RETRY_PERIOD,
    )
    identity = settings.POD_NAME or default_identity()
    leadership = Leadership(identity, timings.renew_deadline) if electing else Leadership.always()
    context = build_context(
        settings, connection, kubeconfig=kubeconfig, leadership=leadership, **dict(context_options or {})
    )
    context.health.leader = lambda: leadership.leading
    metrics.create_fixed_series(
        kinds=(info.kind for info in KINDS), results=(result.value for result in Result), endpoints=CHANNELS
    )
    if on_context is not None:
        on_context(context)
    loop = asyncio.get_running_loop()
    if stop_flag is None:
        stop_flag = asyncio.Event()
        _stop_on_signals(loop, stop_flag)

    def stop_soon() -> None:
        loop.call_soon_threadsafe(stop_flag.set)

    context.on_fatal(stop_soon)
    routes: list[RouteInstaller] = [
        room_events.install_room_events,
        composition_events.install_composition_events,
        message_events.install_message_events,
        token_routes(context.tokens),
        *(extra_routes or []),
    ]
    server = HttpServer(settings, context.health, installers=routes, sock=http_socket, hub=context.hub)
    try:
        url = await server.start()
    except BaseException:
        if http_socket is not None:
            http_socket.close()  # it was handed over to the server that now never runs
        await context.close()
        raise
    kopf_registry = registry if registry is not None else build_registry()
    factory = reconciler if reconciler is not None else KopfThread
    replica = Replica(context, factory(context, kopf_registry, lambda: build_kopf_settings(settings)))
    logger.info(
        "operator HTTP server is listening",
        extra={"url": url, "watch_namespaces": settings.watch_namespaces or "all", "identity": identity},
    )
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(_heartbeat(context), name="heartbeat")]
    elector: LeaseElector | None = None
    stop_elector = asyncio.Event()
    try:
        if electing:
            handoff = Handoff(lambda: leadership.leader_url, lambda: leadership.leading)
            replica.handoff = context.hub.handoff = handoff
            replica.follow()
            elector = LeaseElector(
                context.kube,
                namespace=lease_namespace(settings, connection),
                name=settings.LEADER_ELECTION_LEASE_NAME,
                leadership=leadership,
                timings=timings,
                url=replica_url(settings, url),
                on_started_leading=replica.start_leading,
                on_stopped_leading=replica.stop_leading,
            )
            tasks.append(asyncio.create_task(elector.run(stop_elector), name="leader election"))
            await _wait_known_leader(elector, leadership, replica, stop_flag)
        else:
            metrics.LEADER.set(1)  # the only replica reconciles: it leads, as dashboards and alerts expect
            await replica.start_leading()
        if settings.WATCH_NAMESPACE_SELECTOR:
            tasks.append(asyncio.create_task(replica.watch_shard(stop_elector), name="shard"))
        context.health.mark_ready()
        if ready_flag is not None:
            ready_flag.set()
        await _wait_until_stopped(stop_flag, replica, context)
    finally:
        await _shut_down(context, replica, server, tasks, stop_elector, elector)
    if context.fatal is not None:
        raise OperatorError(context.fatal)


async def _wait_known_leader(
    elector: LeaseElector, leadership: Leadership, replica: Replica, stop_flag: asyncio.Event
) -> None:
    """Until the Lease was read once, and, if this replica leads, its reconciler has started."""
    stopper = asyncio.create_task(stop_flag.wait())
    try:
        observed = asyncio.create_task(elector.observed_once.wait())
        await asyncio.wait({observed, stopper}, return_when=asyncio.FIRST_COMPLETED)
        observed.cancel()
        if leadership.leader_identity == leadership.identity and not stopper.done():
            started = asyncio.create_task(replica.term_started.wait())
            await asyncio.wait({started, stopper}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
    finally:
        stopper.cancel()


async def _wait_until_stopped(stop_flag: asyncio.Event, replica: Replica, context: OperatorContext) -> None:
    """Until asked to stop, or until kopf ends by itself (then the process stops: it cannot reconcile)."""
    while not stop_flag.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_flag.wait(), 0.5)
        if replica.reconciler.exited and context.fatal is None:
            context.fail("the reconciler stopped unexpectedly")


async def _shut_down(
    context: OperatorContext,
    replica: Replica,
    server: HttpServer,
    tasks: list[asyncio.Task[Any]],
    stop_elector: asyncio.Event,
    elector: LeaseElector | None,
) -> None:
    """Unready first; hand the lead over (fence, stop kopf, release the Lease); drain; stop serving."""
    context.health.mark_ready(False)
    context.health.mark_stopped("the operator is stopping")
    stop_elector.set()
    drain = asyncio.create_task(asyncio.sleep(context.settings.SHUTDOWN_DRAIN_SECONDS))
    if elector is None:
        context.leadership.revoke()
        await replica.reconciler.stop()
        metrics.LEADER.set(0)
    for task in tasks:
        if task.get_name() == "leader election":
            with contextlib.suppress(Exception):
                await task  # releases the Lease after stopping kopf
        else:
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await drain
    for name in CHANNELS:
        await context.hub.channel(name).detach()
    await server.stop()
    if replica.handoff is not None:
        await replica.handoff.close()
    await context.close()
    logger.info("operator stopped")
