"""The notifier the VideoRoom and Composition controllers are given: a
:class:`~twilio_video_operator.reconcilers.notification_executor.Notifier` over the operator's Kubernetes
client (:mod:`twilio_video_operator.kube.notification_objects`) and gateway (Messaging and Studio with the
object's Twilio credentials, SendGrid with the key of the object's Secret)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from twilio_video_operator.gateway import TwilioGateway
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.kube.notification_objects import KubeNotificationPorts
from twilio_video_operator.logs import register_secret
from twilio_video_operator.reconcilers.notification_executor import MailApi, MessagingApi, Notifier, Target
from twilio_video_operator.reconcilers.shared_services import shared_services
from twilio_video_operator.settings import Settings
from twilio_video_operator.webhooks.hub import WebhookHub
from twilio_video_operator.webhooks.message_events import message_callback_url


def build_notifier(
    kube: KubeClient,
    gateway: TwilioGateway,
    settings: Settings,
    hub: WebhookHub,
    clock: Callable[[], datetime],
) -> Notifier:
    """A notifier over the operator's Kubernetes client and gateway."""
    public = settings.PUBLIC_BASE_URL

    def twilio_for(creds: Any) -> MessagingApi:
        return gateway.notify(creds)

    def sendgrid_for(api_key: str) -> MailApi:
        return gateway.sendgrid(api_key)

    def callback_url(target: Target, reference: str) -> str:
        return message_callback_url(public, target.kind, target.namespace, target.name, target.uid, reference)

    return Notifier(
        KubeNotificationPorts(kube),
        twilio_for,
        sendgrid_for,
        clock=clock,
        services=shared_services(settings.TWILIO_ACCOUNT_SID, settings.tenant_twilio_services),
        callback_url=callback_url,
        verifiable=hub.accounts.verifiable,
        on_secret=register_secret,
    )
