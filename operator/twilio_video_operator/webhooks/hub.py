"""What the HTTP server and the reconciler of one operator share about callbacks.

One hub per operator, built with the operator's context (:mod:`twilio_video_operator.context`): the HTTP
routes receive it when they are installed, the handlers find it in kopf's ``memo``.
"""

from __future__ import annotations

from aiohttp import web

from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.accounts import AuthTokens
from twilio_video_operator.webhooks.channel import CallbackChannel
from twilio_video_operator.webhooks.handoff import Handoff


class WebhookHub:
    """Auth Tokens by account and one :class:`CallbackChannel` per endpoint name."""

    def __init__(self, settings: Settings) -> None:
        self.accounts = AuthTokens(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
        self._channels: dict[str, CallbackChannel] = {}
        self.handoff: Handoff | None = None
        """Set on an operator that elects a leader: how a follower passes callbacks on."""

    def channel(self, name: str) -> CallbackChannel:
        """The channel of endpoint ``name`` (``room-events``, ``composition-events``...)."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = CallbackChannel(name)
        return channel

    @property
    def channels(self) -> list[CallbackChannel]:
        return list(self._channels.values())


SETTINGS_KEY = web.AppKey("settings", Settings)
"""Where the HTTP server's application keeps the operator's settings (the endpoints read them)."""
HUB_KEY = web.AppKey("webhook_hub", WebhookHub)
