"""Reads what a token needs from Kubernetes: the VideoRoom, and the key that signs its tokens.

The room's ``tokens.signingKeyRotationRef`` names a SigningKeyRotation; its Secret's *active* key signs
(``TWILIO_ACCOUNT_SID``, ``TWILIO_API_KEY``, ``TWILIO_API_SECRET``). Without a reference, the operator's
own key signs. Objects are cached for ``cache_ttl`` seconds (a room change takes effect that much later
at most); the lifetime cap that follows from a cached key is computed from the moment it was read, so a
cached view can never produce a token that outlives its key (see :attr:`RoomTokenContext.key_valid_until`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr, ValidationError

from twilio_video_operator.kube import (
    SECRETS,
    SIGNINGKEYROTATIONS,
    VIDEOROOMS,
    KubeApiError,
    KubeClient,
    Resource,
)
from twilio_video_operator.logs import register_secret
from twilio_video_operator.models import default_unique_name
from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.signingkeyrotation import SecretKeys, SigningKeyRotationSpec
from twilio_video_operator.models.videoroom import VideoRoomSpec
from twilio_video_operator.reconcilers.tenancy import name_rule
from twilio_video_operator.tokens.cache import Read, RefreshingCache
from twilio_video_operator.tokens.errors import TokenRequestError, room_not_found, unavailable
from twilio_video_operator.tokens.minting import SigningKey

DEFAULT_CACHE_TTL = 2.0
#: A cached object older than the TTL is still served (and refreshed in the background) up to this age.
DEFAULT_MAX_STALE = 4.0
KEY_SOURCE_ROTATION = "rotation"
KEY_SOURCE_OPERATOR = "operator"


@dataclass(frozen=True)
class OperatorKey:
    """The operator's default signing key (settings ``TWILIO_API_KEY``/``TWILIO_API_SECRET``), if any."""

    account_sid: str
    key_sid: str | None
    secret: SecretStr | None

    def signing_key(self) -> SigningKey | None:
        if self.key_sid is None or self.secret is None:
            return None
        return SigningKey(self.account_sid, self.key_sid, self.secret)


@dataclass(frozen=True)
class RoomTokenContext:
    """Everything about one room that minting needs."""

    namespace: str
    name: str
    uid: str
    """The VideoRoom object's UID: a room deleted and created again under its name has another."""
    unique_name: str
    room_status: str | None
    spec: VideoRoomSpec
    key: SigningKey | None
    key_source: str
    key_problem: str | None
    overlap_seconds: int | None
    """The rotation's ``overlap``: no token may outlive the switch of its key by more."""
    key_valid_until: float | None
    """Unix time: when the key was read plus the overlap. A key that was active when read stays valid at
    least that long, so tokens must expire by then."""

    @property
    def client_profile(self) -> dict[str, Any]:
        profile = self.spec.client_profile
        return profile.to_dict() if profile is not None else {}


class RoomDirectory:
    """Looks rooms and keys up through ``kube`` (a coroutine returning the client), with a short cache."""

    def __init__(
        self,
        kube: Callable[[], Awaitable[KubeClient]],
        operator_key: OperatorKey,
        clock: Callable[[], float],
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        max_stale: float | None = None,
        max_entries: int = 10_000,
        name_prefixes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._kube = kube
        self.operator_key = operator_key
        self.name_prefixes = dict(name_prefixes or {})
        self.clock = clock
        stale = max(cache_ttl, DEFAULT_MAX_STALE if max_stale is None else max_stale)
        self._cache: RefreshingCache[dict[str, Any] | None] = RefreshingCache(
            clock, ttl=cache_ttl, max_stale=stale if cache_ttl > 0 else 0.0, max_entries=max_entries
        )

    async def close(self) -> None:
        await self._cache.close()

    async def _get(self, resource: Resource, namespace: str, name: str) -> Read[dict[str, Any] | None]:
        async def load() -> dict[str, Any] | None:
            try:
                kube = await self._kube()
                return await kube.get(resource, namespace, name)
            except TokenRequestError:
                raise
            except (TimeoutError, KubeApiError, aiohttp.ClientError, OSError) as exc:
                detail = f"{exc.status} {exc.reason}" if isinstance(exc, KubeApiError) else type(exc).__name__
                raise unavailable(
                    "KubernetesUnavailable", f"cannot read {resource.plural} ({detail})"
                ) from None

        return await self._cache.get((resource.plural, namespace, name), load)

    async def context(self, namespace: str, name: str) -> RoomTokenContext:
        """The room and its signing key; 404 ``RoomNotFound`` when there is no such VideoRoom."""
        room = (await self._get(VIDEOROOMS, namespace, name)).value
        if room is None:
            raise room_not_found(namespace, name)
        try:
            spec = VideoRoomSpec.model_validate(room.get("spec") or {})
        except ValidationError:
            raise TokenRequestError(409, "RoomNotInProgress", "the room's spec is invalid") from None
        status = room.get("status") or {}
        reference = spec.tokens.signing_key_rotation_ref if spec.tokens is not None else None
        overlap: int | None = None
        valid_until: float | None = None
        if reference is None:
            source = KEY_SOURCE_OPERATOR
            key = self.operator_key.signing_key()
            problem = None if key is not None else "the operator has no API key to sign tokens with"
        else:
            source = KEY_SOURCE_ROTATION
            key, problem, overlap, valid_until = await self._rotation_key(namespace, reference.name)
        room_status = status.get("roomStatus")
        unique_name = self._unique_name(namespace, name, spec, status, key)
        return RoomTokenContext(
            namespace=namespace,
            name=name,
            uid=str((room.get("metadata") or {}).get("uid") or ""),
            unique_name=unique_name,
            room_status=str(room_status) if room_status is not None else None,
            spec=spec,
            key=key,
            key_source=source,
            key_problem=problem,
            overlap_seconds=overlap,
            key_valid_until=valid_until,
        )

    def _unique_name(
        self,
        namespace: str,
        name: str,
        spec: VideoRoomSpec,
        status: Mapping[str, Any],
        key: SigningKey | None,
    ) -> str:
        """The room name the token grants: the live session's (status) or the spec's.

        A token signed by a key of the operator's shared account joins any room of that account with the
        name it carries, so the name must be one this namespace owns (docs/security.md): status is
        writable by whoever may write it, and a name outside the namespace's space is never granted.
        """
        shared = key is None or key.account_sid == self.operator_key.account_sid
        rule = name_rule(namespace, shared_account=shared, extra_prefixes=self.name_prefixes)
        live = status.get("uniqueName")
        if isinstance(live, str) and live and rule.allows(live):
            return live
        wanted = spec.unique_name or default_unique_name(namespace, name)
        if not rule.allows(wanted):
            raise TokenRequestError(
                403,
                "NameNotAllowed",
                f"the room's uniqueName is not a name namespace {namespace} may use on the operator's "
                "shared Twilio account",
            )
        return wanted

    async def _rotation_key(
        self, namespace: str, rotation_name: str
    ) -> tuple[SigningKey | None, str | None, int | None, float | None]:
        rotation = (await self._get(SIGNINGKEYROTATIONS, namespace, rotation_name)).value
        if rotation is None:
            return None, f"SigningKeyRotation {rotation_name} not found", None, None
        try:
            spec = SigningKeyRotationSpec.model_validate(rotation.get("spec") or {})
        except ValidationError:
            return None, f"SigningKeyRotation {rotation_name} has an invalid spec", None, None
        overlap = int(parse_duration(spec.overlap).total_seconds())
        read = await self._get(SECRETS, namespace, spec.secret_name)
        secret = read.value
        if secret is None or not _owned_by(secret, rotation):
            return None, f"SigningKeyRotation {rotation_name} has no active key yet", overlap, None
        data = _decode(secret.get("data") or {})
        account_sid, key_sid = data.get(SecretKeys.ACCOUNT_SID), data.get(SecretKeys.API_KEY)
        key_secret = data.get(SecretKeys.API_SECRET)
        if not (account_sid and key_sid and key_secret):
            return None, f"SigningKeyRotation {rotation_name} has no active key yet", overlap, None
        register_secret(key_secret)
        key = SigningKey(account_sid, key_sid, SecretStr(key_secret))
        return key, None, overlap, read.read_at + overlap


def _owned_by(secret: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = (owner.get("metadata") or {}).get("uid")
    references = (secret.get("metadata") or {}).get("ownerReferences") or []
    return uid is not None and any(ref.get("uid") == uid for ref in references)


def _decode(data: Mapping[str, Any]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for key in (SecretKeys.ACCOUNT_SID, SecretKeys.API_KEY, SecretKeys.API_SECRET):
        value = data.get(key)
        if value is None:
            continue
        try:
            decoded[key] = base64.b64decode(str(value), validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return decoded
