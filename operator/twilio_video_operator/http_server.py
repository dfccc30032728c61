"""The operator's one HTTP server: health, readiness, metrics, and the routes other modules plug in.

``GET /healthz`` (liveness) answers 200 while the replica's loop runs, its heartbeat is fresh and every
added check (e.g. that reconciles still finish, on the leader) passes, else 503 with a JSON reason.
``GET /readyz`` answers 200 once the replica serves its stateless parts (it can mint tokens and verify
callbacks), else 503. Both say in ``leader`` whether this replica leads (reconciles). ``GET /metrics``
serves the default Prometheus registry. Modules that serve more (Twilio status callbacks, the token
endpoint) contribute a route installer: a callable taking the ``aiohttp`` application, passed to
:class:`HttpServer` by the composition root (:mod:`twilio_video_operator.runner`). Installers find the
operator's settings, health state and webhook hub under :data:`SETTINGS_KEY`, :data:`HEALTH_KEY` and
:data:`HUB_KEY`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.hub import HUB_KEY, SETTINGS_KEY, WebhookHub

RouteInstaller = Callable[[web.Application], None]

DEFAULT_HEARTBEAT_MAX_AGE = 60.0


HealthCheck = Callable[[], "str | None"]
"""A further condition of health: returns what is wrong, or ``None``."""


@dataclass
class HealthState:
    """What ``/healthz`` reports: whether the operator loop is running, when it last proved it, and the
    problems of the added checks."""

    heartbeat_max_age: float = DEFAULT_HEARTBEAT_MAX_AGE
    clock: Callable[[], float] = time.monotonic
    _running: bool = field(default=False, init=False)
    _stopped_reason: str | None = field(default=None, init=False)
    _last_beat: float | None = field(default=None, init=False)
    _checks: list[HealthCheck] = field(default_factory=list, init=False)
    _ready: bool = field(default=False, init=False)
    leader: Callable[[], bool] = field(default=lambda: False)
    """Whether this replica leads right now (reported by ``/healthz`` and ``/readyz``)."""

    def add_check(self, check: HealthCheck) -> None:
        """Fail ``/healthz`` with ``check()``'s answer whenever it is not ``None`` (while the loop runs)."""
        self._checks.append(check)

    def mark_running(self) -> None:
        self._running = True
        self._stopped_reason = None
        self.beat()

    def mark_stopped(self, reason: str) -> None:
        self._running = False
        self._stopped_reason = reason

    def beat(self) -> None:
        self._last_beat = self.clock()

    def mark_ready(self, ready: bool = True) -> None:
        """The replica can (or, while stopping, no longer) mint tokens and verify callbacks."""
        self._ready = ready

    def readiness(self) -> tuple[bool, str]:
        """``(ready, reason)`` for ``/readyz``."""
        if not self._ready:
            return False, self._stopped_reason or "the replica is starting"
        healthy, reason = self.check()
        return healthy, reason

    def check(self) -> tuple[bool, str]:
        """``(healthy, reason)``; the reason says what is wrong, or ``ok``."""
        if not self._running:
            return False, self._stopped_reason or "operator loop has not started"
        if self._last_beat is None:
            return False, "no heartbeat yet"
        age = self.clock() - self._last_beat
        if age > self.heartbeat_max_age:
            return False, f"heartbeat is stale ({age:.0f}s old, limit {self.heartbeat_max_age:.0f}s)"
        for check in self._checks:
            problem = check()
            if problem is not None:
                return False, problem
        return True, "ok"


HEALTH_KEY = web.AppKey("health", HealthState)


def build_app(
    settings: Settings,
    health: HealthState,
    *,
    installers: Iterable[RouteInstaller] = (),
    metrics_registry: CollectorRegistry = REGISTRY,
    hub: WebhookHub | None = None,
) -> web.Application:
    """The aiohttp application with the built-in routes, then every installer's routes."""
    app = web.Application()
    app[SETTINGS_KEY] = settings
    app[HEALTH_KEY] = health
    app[HUB_KEY] = hub if hub is not None else WebhookHub(settings)

    async def healthz(_: web.Request) -> web.Response:
        healthy, reason = health.check()
        body = {"status": "ok" if healthy else "unhealthy", "reason": reason, "leader": health.leader()}
        return web.json_response(body, status=200 if healthy else 503)

    async def readyz(_: web.Request) -> web.Response:
        ready, reason = health.readiness()
        body = {"status": "ready" if ready else "unready", "reason": reason, "leader": health.leader()}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics_registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    for install in installers:
        install(app)
    return app


class HttpServer:
    """Serves :func:`build_app` on ``HTTP_HOST:HTTP_PORT`` (or on a socket bound beforehand)."""

    def __init__(
        self,
        settings: Settings,
        health: HealthState,
        *,
        installers: Iterable[RouteInstaller] = (),
        sock: socket.socket | None = None,
        hub: WebhookHub | None = None,
    ) -> None:
        self.app = build_app(settings, health, installers=installers, hub=hub)
        self._settings = settings
        self._sock = sock
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The base URL the server actually listens on, e.g. ``http://127.0.0.1:43121``."""
        if self._url is None:
            raise RuntimeError("the HTTP server is not started")
        return self._url

    async def start(self) -> str:
        runner = web.AppRunner(self.app, handle_signals=False)
        await runner.setup()
        site: web.BaseSite
        if self._sock is not None:
            site = web.SockSite(runner, self._sock)
        else:
            site = web.TCPSite(runner, self._settings.HTTP_HOST, self._settings.HTTP_PORT)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._url = _url_of(runner)
        return self._url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _url_of(runner: web.AppRunner) -> str:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            host, port = str(address[0]), int(address[1])
            # A wildcard bind is reachable locally on the loopback address of its family.
            host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - describing, not binding
            return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    raise RuntimeError("the HTTP server has no listening address")
