"""A thin async Kubernetes API client for what kopf does not do for us (status patches from webhooks,
owned objects, Secrets, Events, TokenReview and SubjectAccessReview)."""

from twilio_video_operator.kube.client import KubeApiError, KubeClient
from twilio_video_operator.kube.resources import (
    COMPOSITIONS,
    EVENTS,
    SECRETS,
    SIGNINGKEYROTATIONS,
    SUBJECT_ACCESS_REVIEWS,
    TOKEN_REVIEWS,
    VIDEOROOMS,
    Resource,
)

__all__ = [
    "COMPOSITIONS",
    "EVENTS",
    "SECRETS",
    "SIGNINGKEYROTATIONS",
    "SUBJECT_ACCESS_REVIEWS",
    "TOKEN_REVIEWS",
    "VIDEOROOMS",
    "KubeApiError",
    "KubeClient",
    "Resource",
]
