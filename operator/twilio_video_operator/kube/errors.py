"""What a Kubernetes API call may raise, and how to name it without leaking anything."""

from __future__ import annotations

import aiohttp

from twilio_video_operator.kube.client import KubeApiError

#: What a call to the Kubernetes API may raise besides a Status answer.
KUBE_ERRORS = (KubeApiError, aiohttp.ClientError, OSError, TimeoutError)


def kube_problem(exc: BaseException) -> str:
    """A short, secret-free description of a failed Kubernetes call (``404 NotFound``, ``OSError``)."""
    if isinstance(exc, KubeApiError):
        return f"{exc.status} {exc.reason}"
    return type(exc).__name__
