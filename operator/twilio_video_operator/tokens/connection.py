"""How the HTTP side of the operator finds the Kubernetes connection the operator logged in with.

The HTTP server is built before kopf logs in, so the operator publishes its connection once it has one
(:func:`publish_kube_connection`, keyed by the operator's :class:`~twilio_video_operator.settings.Settings`
object, which the HTTP application holds too) and the token service looks it up per request.
"""

from __future__ import annotations

import threading
import weakref

import kopf

_lock = threading.Lock()
_published: list[tuple[weakref.ref[object], kopf.ConnectionInfo]] = []


def publish_kube_connection(owner: object, info: kopf.ConnectionInfo) -> None:
    """Make ``info`` the connection of the operator identified by ``owner`` (its Settings object)."""
    with _lock:
        _published[:] = [
            (ref, value) for ref, value in _published if ref() is not None and ref() is not owner
        ]
        _published.append((weakref.ref(owner), info))


def withdraw_kube_connection(owner: object) -> None:
    """Forget the connection published for ``owner`` (on operator shutdown)."""
    with _lock:
        _published[:] = [
            (ref, value) for ref, value in _published if ref() is not None and ref() is not owner
        ]


def published_kube_connection(owner: object) -> kopf.ConnectionInfo | None:
    """The connection published for ``owner``, or None while the operator has not logged in."""
    with _lock:
        for ref, info in _published:
            if ref() is owner:
                return info
    return None
