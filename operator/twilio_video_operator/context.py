"""The operator's context: what one operator process builds once and every part of it shares.

:func:`~twilio_video_operator.runner.run_operator` builds it before anything starts. The HTTP routes get it
when they are installed; kopf's handlers find it in kopf's ``memo`` as ``memo.operator``. Nothing is looked
up through globals, so several operators can run in one process (tests, the playground).

The Kubernetes client is safe on several event loops (one session per loop): the HTTP side runs on the
process's loop, the reconciler on a thread of its own (:mod:`twilio_video_operator.reconciler`). The Twilio
gateway runs its exchanges on its own I/O loop and asks :attr:`OperatorContext.leadership` before each
mutation (the fence of :mod:`twilio_video_operator.kube.leader`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import REGISTRY, CollectorRegistry

from twilio_video_operator.controllers.credentials import build_connector
from twilio_video_operator.gateway import GatewayConfig, TwilioGateway
from twilio_video_operator.http_server import HealthState
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.kube.leader import Leadership
from twilio_video_operator.reconcilers.credentials import CredentialsConnector
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress
from twilio_video_operator.settings import Settings
from twilio_video_operator.tokens.service import TokenService
from twilio_video_operator.webhooks.hub import WebhookHub


@dataclass
class OperatorContext:
    """Settings, clients and shared state of one operator process."""

    settings: Settings
    connection: kopf.ConnectionInfo
    """How this process logged in to Kubernetes (the reconciler's login handler re-resolves it)."""
    kubeconfig: Path | None
    kube: KubeClient
    gateway: TwilioGateway
    hub: WebhookHub
    credentials: CredentialsConnector
    """The one credentials connector every kind asks for an object's Twilio credentials."""
    tokens: TokenService
    progress: ReconcileProgress
    health: HealthState
    leadership: Leadership
    metrics: CollectorRegistry = REGISTRY
    _fatal: list[str] = field(default_factory=list, init=False, repr=False)
    _fatal_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _on_fatal: Callable[[], None] | None = field(default=None, init=False, repr=False)

    def fail(self, reason: str) -> None:
        """Something the operator cannot run without is missing (e.g. the reconciler cannot log in): stop
        the process with ``reason``. Safe from any thread."""
        with self._fatal_lock:
            self._fatal.append(reason)
            on_fatal = self._on_fatal
        if on_fatal is not None:
            on_fatal()

    def on_fatal(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (thread-safe, e.g. ``loop.call_soon_threadsafe(stop.set)``) on :meth:`fail`."""
        with self._fatal_lock:
            self._on_fatal = callback

    @property
    def fatal(self) -> str | None:
        """The first reason given to :meth:`fail`, if any."""
        with self._fatal_lock:
            return self._fatal[0] if self._fatal else None

    async def close(self) -> None:
        """Close what the context owns (on the process's loop, after the reconciler has stopped)."""
        await self.tokens.close()
        await self.kube.close()
        await self.gateway.close()


def build_context(
    settings: Settings,
    connection: kopf.ConnectionInfo,
    *,
    kubeconfig: Path | None = None,
    leadership: Leadership | None = None,
    progress: ReconcileProgress | None = None,
    gateway_overrides: Mapping[str, Any] | None = None,
    token_options: Mapping[str, Any] | None = None,
) -> OperatorContext:
    """Build the context (no I/O: clients connect on first use). ``gateway_overrides`` and
    ``token_options`` exist for tests (short backoffs, an injected clock, rate limits)."""
    leadership = leadership if leadership is not None else Leadership.always()
    config = GatewayConfig.from_settings(settings, **dict(gateway_overrides or {}))
    gateway = TwilioGateway(dataclasses.replace(config, fence=leadership.fence))
    kube = KubeClient(connection)
    hub = WebhookHub(settings)
    progress = progress if progress is not None else ReconcileProgress()
    progress.publish_work_queue()
    health = HealthState()
    health.add_check(lambda: progress.problem() if leadership.leading else None)
    return OperatorContext(
        settings=settings,
        connection=connection,
        kubeconfig=kubeconfig,
        kube=kube,
        gateway=gateway,
        hub=hub,
        credentials=build_connector(settings, kube, gateway, hub.accounts),
        tokens=TokenService(settings, kube, **dict(token_options or {})),
        progress=progress,
        health=health,
        leadership=leadership,
    )
