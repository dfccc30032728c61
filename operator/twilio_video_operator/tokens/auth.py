"""Who is calling, and may they mint for this room: TokenReview and SubjectAccessReview, cached briefly.

The bearer token is never stored: the cache is keyed by its SHA-256. Answers are kept for ``ttl``
seconds (refusals of a token for ``negative_ttl``), in a table of at most ``max_entries``; the oldest
entries go first. A revoked ServiceAccount token therefore keeps working for at most ``ttl`` seconds, and
an RBAC change takes effect within the same time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from twilio_video_operator import API_GROUP
from twilio_video_operator.kube import SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, KubeApiError, KubeClient
from twilio_video_operator.tokens.cache import TtlCache
from twilio_video_operator.tokens.errors import TokenRequestError, forbidden, unauthorized, unavailable

DEFAULT_TTL = 30.0
DEFAULT_NEGATIVE_TTL = 5.0
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Caller:
    """An authenticated Kubernetes user (usually ``system:serviceaccount:<namespace>:<name>``)."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_user_info(cls, user: dict[str, Any]) -> Caller:
        extra = {
            str(key): tuple(str(item) for item in values or ())
            for key, values in (user.get("extra") or {}).items()
        }
        return cls(
            username=str(user.get("username") or ""),
            uid=str(user.get("uid") or ""),
            groups=tuple(str(group) for group in user.get("groups") or ()),
            extra=extra,
        )


class KubeAuthorizer:
    """Authenticates bearer tokens (TokenReview) and authorizes minting for a room (SubjectAccessReview)."""

    def __init__(
        self,
        kube: Callable[[], Awaitable[KubeClient]],
        clock: Callable[[], float],
        *,
        ttl: float = DEFAULT_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._kube = kube
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._callers: TtlCache[Caller | None] = TtlCache(clock, max_entries)
        self._decisions: TtlCache[bool] = TtlCache(clock, max_entries)

    def known_caller(self, bearer: str) -> Caller | None:
        """The caller behind ``bearer`` if a recent TokenReview accepted it (no API call), else None."""
        found, caller = self._callers.get(hashlib.sha256(bearer.encode()).digest())
        return caller if found else None

    async def authenticate(self, bearer: str) -> Caller:
        """The caller behind ``bearer``; 401 ``Unauthorized`` when the API server does not know the token."""
        key = hashlib.sha256(bearer.encode()).digest()
        found, caller = self._callers.get(key)
        if not found:
            caller = await self._review_token(bearer)
            self._callers.put(key, caller, self.ttl if caller is not None else self.negative_ttl)
        if caller is None:
            raise unauthorized("the bearer token was not accepted")
        return caller

    async def authorize(self, caller: Caller, namespace: str, room: str) -> None:
        """403 ``Forbidden`` unless RBAC lets ``caller`` create ``videorooms/token`` on this room."""
        key = (caller.username, caller.uid, caller.groups, namespace, room)
        found, allowed = self._decisions.get(key)
        if not found:
            allowed = await self._review_access(caller, namespace, room)
            self._decisions.put(key, allowed, self.ttl)
        if not allowed:
            raise forbidden(
                "Forbidden",
                f"{caller.username} may not create videorooms/token for {room} in namespace {namespace}",
            )

    async def _review_token(self, bearer: str) -> Caller | None:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": bearer},
        }
        answer = await self._create(TOKEN_REVIEWS, body)
        status = answer.get("status") or {}
        user = status.get("user") or {}
        if not status.get("authenticated") or not user.get("username"):
            return None
        return Caller.from_user_info(user)

    async def _review_access(self, caller: Caller, namespace: str, room: str) -> bool:
        spec: dict[str, Any] = {
            "user": caller.username,
            "groups": list(caller.groups),
            "resourceAttributes": {
                "namespace": namespace,
                "verb": "create",
                "group": API_GROUP,
                "resource": "videorooms",
                "subresource": "token",
                "name": room,
            },
        }
        if caller.uid:
            spec["uid"] = caller.uid
        if caller.extra:
            spec["extra"] = {key: list(values) for key, values in caller.extra.items()}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        answer = await self._create(SUBJECT_ACCESS_REVIEWS, body)
        status = answer.get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied")

    async def _create(self, resource: Any, body: dict[str, Any]) -> dict[str, Any]:
        try:
            kube = await self._kube()
            return await kube.create(resource, None, body)
        except TokenRequestError:
            raise
        except (TimeoutError, KubeApiError, aiohttp.ClientError, OSError) as exc:
            detail = f"{exc.status} {exc.reason}" if isinstance(exc, KubeApiError) else type(exc).__name__
            raise unavailable(
                "ReviewFailed", f"the Kubernetes API could not review the request ({detail})"
            ) from None
