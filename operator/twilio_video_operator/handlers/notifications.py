"""Session notifications: the Kubernetes port of the notifier, and the consumer of message status callbacks.

:func:`build_notifier` gives the VideoRoom and Composition handlers a
:class:`~twilio_video_operator.reconcilers.notification_executor.Notifier` over the operator's Kubernetes
client and gateway (Messaging and Studio with the object's Twilio credentials, SendGrid with the key of the
object's Secret). :func:`register_handlers` attaches the ``message-events`` channel (``POST
/twilio/message-events``) to a
:class:`~twilio_video_operator.reconcilers.notification_callbacks.MessageStatusSink`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import kopf

from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.kube import COMPOSITIONS, SECRETS, VIDEOROOMS, KubeClient, Resource
from twilio_video_operator.kube.events import post_event
from twilio_video_operator.kube.secrets import decode_secret_data
from twilio_video_operator.logs import register_secret
from twilio_video_operator.reconcilers.credentials import SecretData
from twilio_video_operator.reconcilers.notification_callbacks import MessageStatusSink, parse_message_callback
from twilio_video_operator.reconcilers.notification_executor import MailApi, MessagingApi, Notifier, Target
from twilio_video_operator.webhooks.channel import CallbackEvent
from twilio_video_operator.webhooks.message_events import CHANNEL, message_callback_url

logger = logging.getLogger(__name__)

RESOURCES: dict[str, Resource] = {"VideoRoom": VIDEOROOMS, "Composition": COMPOSITIONS}


class KubeNotificationPorts:
    """The notifier's Kubernetes port."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        secret = await self.kube.get(SECRETS, namespace, name)
        if secret is None:
            return None
        version = str((secret.get("metadata") or {}).get("resourceVersion", ""))
        return SecretData(resource_version=version, data=decode_secret_data(secret))

    async def patch_notifications(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        await self.kube.patch_status(RESOURCES[kind], namespace, name, {"notifications": dict(patch)})

    async def post_event(
        self, body: Mapping[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        await post_event(self.kube, body, type, reason, message)

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        body = await self.kube.get(RESOURCES[kind], namespace, name)
        if body is not None:
            body.setdefault("apiVersion", f"{API_GROUP}/{API_VERSION}")
            body.setdefault("kind", kind)
        return body


def build_notifier(context: OperatorContext, clock: Callable[[], datetime]) -> Notifier:
    """A notifier over the operator's Kubernetes client and gateway."""
    gateway, public = context.gateway, context.settings.PUBLIC_BASE_URL

    def twilio_for(creds: Any) -> MessagingApi:
        return gateway.notify(creds)

    def sendgrid_for(api_key: str) -> MailApi:
        return gateway.sendgrid(api_key)

    def callback_url(target: Target, reference: str) -> str:
        return message_callback_url(public, target.kind, target.namespace, target.name, target.uid, reference)

    return Notifier(
        KubeNotificationPorts(context.kube),
        twilio_for,
        sendgrid_for,
        clock=clock,
        callback_url=callback_url,
        verifiable=context.hub.accounts.verifiable,
        on_secret=register_secret,
    )


def register_handlers(registry: kopf.OperatorRegistry) -> None:
    """Attach the message status callbacks to their consumer while the operator runs."""

    @kopf.on.startup(registry=registry, id="notifications-startup")
    async def startup(memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext = memo.operator
        sink = MessageStatusSink(KubeNotificationPorts(context.kube))

        async def process(event: CallbackEvent) -> None:
            callback = parse_message_callback(
                event.account_sid, event.params, event.raw.path if event.raw is not None else None
            )
            if callback is None:
                logger.info("a message status callback without a notification in its URL; dropped")
                return
            await sink.apply(callback)

        context.hub.channel(CHANNEL).attach(process)

    @kopf.on.cleanup(registry=registry, id="notifications-cleanup")
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext | None = memo.get("operator")
        if context is not None:
            await context.hub.channel(CHANNEL).detach()
