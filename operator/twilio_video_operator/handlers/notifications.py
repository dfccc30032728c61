"""Session notifications: the consumer of message status callbacks.

:func:`register_handlers` attaches the ``message-events`` channel (``POST /twilio/message-events``) to a
:class:`~twilio_video_operator.reconcilers.notification_callbacks.MessageStatusSink` over the notifier's
Kubernetes port (:mod:`twilio_video_operator.kube.notification_objects`); the notifier itself is built by
:func:`twilio_video_operator.controllers.notifications.build_notifier`.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from twilio_video_operator.context import OperatorContext
from twilio_video_operator.kube.notification_objects import KubeNotificationPorts
from twilio_video_operator.reconcilers.notification_callbacks import MessageStatusSink, parse_message_callback
from twilio_video_operator.webhooks.channel import CallbackEvent
from twilio_video_operator.webhooks.message_events import CHANNEL

logger = logging.getLogger(__name__)


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
