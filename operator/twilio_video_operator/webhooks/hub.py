"""What the HTTP server and the kopf handlers of one operator share about callbacks.

The HTTP routes are installed before kopf starts, and kopf's startup handlers cannot reach the aiohttp
application; both sides do receive the same :class:`~twilio_video_operator.settings.Settings` object, so
the hub is looked up by that object: ``WebhookHub.of(settings)``.
"""

from __future__ import annotations

import weakref
from typing import ClassVar

from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.accounts import AuthTokens
from twilio_video_operator.webhooks.channel import CallbackChannel


class WebhookHub:
    """Auth Tokens by account and one :class:`CallbackChannel` per endpoint name."""

    _hubs: ClassVar[dict[int, tuple[weakref.ref[Settings], WebhookHub]]] = {}

    def __init__(self, settings: Settings) -> None:
        self.accounts = AuthTokens(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
        self._channels: dict[str, CallbackChannel] = {}

    @classmethod
    def of(cls, settings: Settings) -> WebhookHub:
        """The hub of the operator running with ``settings`` (created on first use, dropped with them)."""
        entry = cls._hubs.get(id(settings))
        if entry is not None and entry[0]() is settings:
            return entry[1]
        hub = cls(settings)
        key = id(settings)
        cls._hubs[key] = (weakref.ref(settings, lambda _: cls._hubs.pop(key, None)), hub)
        return hub

    def channel(self, name: str) -> CallbackChannel:
        """The channel of endpoint ``name`` (``room-events``, ``composition-events``...)."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = CallbackChannel(name)
        return channel
