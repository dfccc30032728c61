"""The kopf runtime: kopf settings, Kubernetes login, the HTTP server and the operator loop.

kopf-specific code lives here and in :mod:`twilio_video_operator.handlers` only. Handlers find in kopf's
``memo``: ``settings`` (the operator's :class:`~twilio_video_operator.settings.Settings`), ``kubeconfig``
(the file given to :func:`run_operator`, or None), ``http_url`` (the HTTP server's base URL),
``stop_flag`` (set it to stop the operator) and ``reconcile_progress`` (the
:class:`~twilio_video_operator.reconcilers.reconcile_tracking.ReconcileProgress` every reconcile reports to,
which ``/healthz`` checks).

The operator runs as a single replica (``standalone=True``: no kopf peering objects). Two replicas would
both reconcile every object; deploy one with the ``Recreate`` strategy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import weakref
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import kopf
from kopf._cogs.structs.references import Insights  # not re-exported by kopf; stable within 1.45.x

from twilio_video_operator import API_GROUP
from twilio_video_operator.handlers import install_handlers
from twilio_video_operator.http_server import HealthState, HttpServer, RouteInstaller
from twilio_video_operator.kube.connection import (
    resolve_connection,
)
from twilio_video_operator.logs import install_redaction, register_secret
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress
from twilio_video_operator.settings import Settings

logger = logging.getLogger(__name__)

FINALIZER = f"{API_GROUP}/finalizer"
# kopf ignores annotations under its storage prefix when it diffs objects; keeping its bookkeeping under a
# sub-domain of our group leaves the user-facing annotations (paused, reconcile-requested-at, ...) visible.
KOPF_STORAGE_PREFIX = f"kopf.{API_GROUP}"
HEARTBEAT_INTERVAL = 5.0

# Watch streams: ask the server to end each stream after a few minutes, and give up on the client side
# a little later; kopf reconnects either way, so a silently stalled stream cannot last.
WATCH_SERVER_TIMEOUT = 300  # whole seconds: the API server parses timeoutSeconds as an integer
WATCH_CLIENT_TIMEOUT = 330.0
WATCH_CONNECT_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0
REQUEST_CONNECT_TIMEOUT = 10.0


def build_kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """kopf's settings for this operator (pure: no I/O, easy to inspect)."""
    kopf_settings = kopf.OperatorSettings()
    # kopf's own bookkeeping goes to annotations, so `status` holds only our fields.
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_STORAGE_PREFIX)
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_STORAGE_PREFIX, key="last-handled-configuration"
    )
    # Handler logs at WARNING and above also become Kubernetes Events on the object.
    kopf_settings.posting.enabled = True
    kopf_settings.posting.loggers = True
    kopf_settings.posting.level = logging.WARNING
    kopf_settings.posting.reporting_component = "twilio-video-operator"
    kopf_settings.posting.reporting_instance = socket.gethostname()
    kopf_settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    kopf_settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    kopf_settings.watching.connect_timeout = WATCH_CONNECT_TIMEOUT
    kopf_settings.networking.request_timeout = REQUEST_TIMEOUT
    kopf_settings.networking.connect_timeout = REQUEST_CONNECT_TIMEOUT
    kopf_settings.peering.standalone = True
    return kopf_settings


class OperatorError(RuntimeError):
    """The operator cannot run; the message says why in one line."""


def _login(*, memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's login handler. kopf keeps waiting for credentials after a failed login, so a failure
    stops the operator instead; :func:`run_operator` then raises :class:`OperatorError`."""
    try:
        return resolve_connection(memo.get("kubeconfig"), settings)
    except kopf.LoginError as exc:
        memo.login_failures.append(str(exc))
        memo.stop_flag.set()
        raise


_prepared_registries: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()


def _prepare_registry(registry: kopf.OperatorRegistry) -> None:
    """Add the runtime's own activity handlers to ``registry``, once."""
    if registry in _prepared_registries:
        return
    kopf.on.login(id="twilio-video-operator-login", registry=registry, errors=kopf.ErrorsMode.PERMANENT)(
        _login
    )
    _prepared_registries.add(registry)


def handles_resource(
    registry: kopf.OperatorRegistry, group: str, version: str, plural: str, kind: str
) -> bool:
    """Whether any resource handler (change, event, daemon, timer, index) in ``registry`` selects the kind."""
    resource = kopf.Resource(group=group, version=version, plural=plural, kind=kind, namespaced=True)
    collections = (registry._changing, registry._watching, registry._spawning, registry._indexing)
    return any(
        handler.selector is not None and handler.selector.check(resource)
        for collection in collections
        for handler in collection.get_all_handlers()
    )


_KOPF_DIR = Path(kopf.__file__).resolve().parent


class _TasksNotOfKopf(Collection["asyncio.Task[Any]"]):
    """The tasks kopf must leave alone when it stops: every task whose coroutine is not kopf's own.

    ``kopf.operator()`` takes every task created after its start for one of its own and cancels it on
    exit, which would also hit servers and callers sharing the event loop (the playground, tests).
    """

    def __contains__(self, task: object) -> bool:
        coroutine = task.get_coro() if isinstance(task, asyncio.Task) else None
        code = getattr(coroutine, "cr_code", None)
        return code is None or not Path(code.co_filename).resolve().is_relative_to(_KOPF_DIR)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _stop_on_signals(stop_flag: asyncio.Event) -> None:
    """Turn SIGINT/SIGTERM into ``stop_flag``, replacing the handlers kopf has just installed.

    kopf's own handlers stop it too, but leave its stop-flag waiter running, which then holds up the
    exit for kopf's 5-second grace period for stray tasks.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def received(signum: signal.Signals) -> None:
        logger.info("signal %s received; the operator is stopping", signum.name)
        stop_flag.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, received, signum)


async def _operate(*, stop_flag: asyncio.Event, **options: Any) -> None:
    """``kopf.operator()``, except that only kopf's own tasks are cancelled when it stops, and signals
    go through ``stop_flag``."""
    tasks = await kopf.spawn_tasks(stop_flag=stop_flag, **options)
    _stop_on_signals(stop_flag)
    await kopf.run_tasks(tasks, ignored=_TasksNotOfKopf())


async def _heartbeat(
    health: HealthState,
    operator_task: asyncio.Task[None],
    started: list[asyncio.Event],
    ready_flag: asyncio.Event | None,
) -> None:
    """Mark the operator running once kopf has started and made its first discovery of resources and
    namespaces, then beat while its task is alive."""
    for event in started:
        await event.wait()
    health.mark_running()
    if ready_flag is not None:
        ready_flag.set()
    while not operator_task.done():
        health.beat()
        await asyncio.sleep(HEARTBEAT_INTERVAL)


async def run_operator(
    settings: Settings,
    *,
    kubeconfig: Path | None = None,
    stop_flag: asyncio.Event | None = None,
    ready_flag: asyncio.Event | None = None,
    registry: kopf.OperatorRegistry | None = None,
    http_socket: socket.socket | None = None,
    route_installers: list[RouteInstaller] | None = None,
) -> None:
    """Run the operator until ``stop_flag`` is set; in the main thread, SIGINT and SIGTERM set it.

    Starts the HTTP server first (on ``http_socket`` if given, else ``HTTP_HOST:HTTP_PORT``), then kopf
    with the handlers of ``registry`` (default: every module in :mod:`twilio_video_operator.handlers`).
    ``ready_flag`` is set once the HTTP server listens, kopf has run its startup handlers, logged in, and
    discovered the resources and namespaces to watch.
    """
    install_redaction()
    for secret in (settings.TWILIO_API_SECRET, settings.TWILIO_AUTH_TOKEN):
        register_secret(secret)
    kopf_settings = build_kopf_settings(settings)
    health = HealthState()
    progress = ReconcileProgress()
    health.add_check(progress.problem)
    try:
        try:  # fail now, with one line, rather than in kopf's background login
            resolve_connection(kubeconfig, kopf_settings)
        except kopf.LoginError as exc:
            raise OperatorError(f"cannot log in to Kubernetes: {exc}") from None
        registry = registry if registry is not None else install_handlers()
        _prepare_registry(registry)
        server = HttpServer(settings, health, installers=route_installers, sock=http_socket)
        url = await server.start()
    except BaseException:
        if http_socket is not None:
            http_socket.close()  # it was handed over to the server that now never runs
        raise
    namespaces = settings.watch_namespaces
    logger.info(
        "operator HTTP server is listening",
        extra={"url": url, "watch_namespaces": namespaces or "all"},
    )
    kopf_ready = asyncio.Event()
    insights = Insights()
    stop_flag = stop_flag if stop_flag is not None else asyncio.Event()
    login_failures: list[str] = []
    memo = kopf.Memo(
        settings=settings,
        kubeconfig=kubeconfig,
        http_url=url,
        stop_flag=stop_flag,
        login_failures=login_failures,
        reconcile_progress=progress,
    )
    operator_task = asyncio.create_task(
        _operate(
            registry=registry,
            settings=kopf_settings,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            stop_flag=stop_flag,
            ready_flag=kopf_ready,
            insights=insights,
            memo=memo,
        ),
        name="kopf operator",
    )
    heartbeat = asyncio.create_task(
        _heartbeat(
            health,
            operator_task,
            [kopf_ready, insights.ready_resources, insights.ready_namespaces],
            ready_flag,
        ),
        name="heartbeat",
    )
    try:
        await operator_task
    except Exception:
        if login_failures:
            raise OperatorError(f"cannot log in to Kubernetes: {login_failures[-1]}") from None
        raise
    finally:
        health.mark_stopped("operator loop has exited")
        heartbeat.cancel()
        if not operator_task.done():
            operator_task.cancel()
        for task in (heartbeat, operator_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await server.stop()
        logger.info("operator stopped")
    if login_failures:
        raise OperatorError(f"cannot log in to Kubernetes: {login_failures[-1]}")
