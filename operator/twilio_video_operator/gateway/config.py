"""Tunables of the gateway, with defaults that keep one reconcile short."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from twilio_video_operator.gateway.circuit import CircuitSettings
from twilio_video_operator.gateway.retry import RetryPolicy

if TYPE_CHECKING:
    from twilio_video_operator.settings import Settings


@dataclass(frozen=True)
class GatewayConfig:
    base_url: str | None = None
    """``TWILIO_BASE_URL``: send every Twilio host here (an emulator). ``None`` talks to Twilio."""
    sendgrid_base_url: str = "https://api.sendgrid.com"
    """``SENDGRID_BASE_URL``: where SendGrid v3 is (an emulator in tests)."""
    max_concurrency: int = 10
    """``TWILIO_MAX_CONCURRENCY``: requests in flight at once, across all credential sets."""
    request_timeout: float = 10.0
    """Seconds one HTTP request may take, connecting included."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    circuit: CircuitSettings = field(default_factory=CircuitSettings)
    idle_client_ttl: float = 1800.0
    """Seconds after which a credential set's unused client is closed."""
    fence: Callable[[], str | None] | None = None
    """Asked right before each create, update or delete is sent: a reason when this process may not change
    anything at Twilio (it no longer leads, see :mod:`twilio_video_operator.kube.leader`), else ``None``."""

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if self.request_timeout <= 0:
            raise ValueError("request_timeout must be positive")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> GatewayConfig:
        """Build from the operator's settings (``TWILIO_BASE_URL``, ``TWILIO_MAX_CONCURRENCY``)."""
        config = cls(
            base_url=settings.TWILIO_BASE_URL,
            sendgrid_base_url=settings.SENDGRID_BASE_URL,
            max_concurrency=settings.TWILIO_MAX_CONCURRENCY,
        )
        return replace(config, **overrides) if overrides else config
