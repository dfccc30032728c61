"""``POST /v1/token`` on the operator's HTTP server: Access Tokens for Kubernetes workloads.

Request: JSON ``{namespace, room, identity, ttlSeconds?, verificationCode?, verificationSid?}`` with
``Authorization: Bearer <ServiceAccount token>``. The checks, in order (the first failing one answers):

====  ======================  =====================================================================
code  error                   when
====  ======================  =====================================================================
405   MethodNotAllowed        not a POST
429   RateLimited             too many requests from this source address whose bearer token is not
                              known to be valid yet (``Retry-After`` is set)
413   PayloadTooLarge         a body over :data:`MAX_BODY_BYTES`
401   Unauthorized            no bearer token, or TokenReview does not accept it
400   BadRequest              not a JSON object; namespace/room/identity missing or not strings
422   InvalidIdentity         empty, over 128 characters, or with control characters
422   InvalidTtl              ttlSeconds not a whole number from 1 to 86400
429   RateLimited             too many requests from this caller
403   Forbidden               RBAC: the caller may not ``create`` ``videorooms/token`` on this room
404   RoomNotFound            no such VideoRoom
409   RoomNotInProgress       the room is neither in progress nor scheduled
403   IdentityBlocked         the identity is in ``moderation.blockedIdentities``
403   IdentityNotAllowed      the identity matches no ``access.allowedIdentities`` pattern
429   RateLimited             too many requests for this room, or for this identity in this room
403   VerifyServiceNotAllowed ``access.verification.serviceSid`` is not a Verify Service of the
                              operator's account the namespace may use (``TENANT_TWILIO_SERVICES``)
403   Verification...         ``access.verification``: no valid Twilio Verify check (see
                              :mod:`.verification`); 503 VerificationUnavailable when Verify cannot be
                              asked
503   SigningKeyUnavailable   the room's SigningKeyRotation has no active key (yet)
====  ======================  =====================================================================

Answer (200): ``{token, identity, roomName, expiresAt, connectOptions}``; errors are
``{error: <reason>, message}``. The lifetime is the smallest of the requested ``ttlSeconds``, the room's
``tokens.maxTtlSeconds``, its SigningKeyRotation's ``overlap`` and ``VIDEO_TOKEN_TTL_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from twilio_video_operator import metrics
from twilio_video_operator.http_server import RouteInstaller
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.reconcilers.shared_services import shared_services
from twilio_video_operator.settings import Settings
from twilio_video_operator.tokens.auth import KubeAuthorizer
from twilio_video_operator.tokens.connect_options import connect_options
from twilio_video_operator.tokens.errors import (
    TokenRequestError,
    bad_request,
    forbidden,
    unauthorized,
    unavailable,
)
from twilio_video_operator.tokens.minting import AccessToken, mint_access_token
from twilio_video_operator.tokens.policy import (
    check_identity_access,
    check_room_state,
    effective_ttl,
    validate_identity,
    validate_ttl,
)
from twilio_video_operator.tokens.ratelimit import KeyedLimiter, RateLimits, retry_after_seconds
from twilio_video_operator.tokens.rooms import OperatorKey, RoomDirectory, RoomTokenContext
from twilio_video_operator.tokens.verification import (
    VerificationChecker,
    VerificationGate,
    VerifiedJoin,
    parse_pass,
    parse_verification,
)
from twilio_video_operator.tokens.verification_pass import PassSigner, PassSubject, pass_secret
from twilio_video_operator.tokens.verify_client import OperatorVerify

logger = logging.getLogger(__name__)

PATH = "/v1/token"
MAX_BODY_BYTES = 8 * 1024


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenIssuer:
    """Mints a token for a room once the caller is known to be allowed: the room's rules, then signing.

    Shared by the HTTP endpoint and the ``token`` command (which skips the caller checks).
    """

    def __init__(self, rooms: RoomDirectory, settings_ttl: int, clock: Callable[[], float]) -> None:
        self.rooms = rooms
        self.settings_ttl = settings_ttl
        self.clock = clock

    async def issue(
        self,
        namespace: str,
        room: str,
        identity: str,
        requested_ttl: int | None,
        *,
        before_signing: Callable[[RoomTokenContext], None] | None = None,
        verify: Callable[[RoomTokenContext], Awaitable[None]] | None = None,
    ) -> tuple[AccessToken, RoomTokenContext]:
        """``verify`` checks ``access.verification`` (after ``before_signing``); without it such a room
        is refused, so no path mints for a verified room without a check."""
        context = await self.rooms.context(namespace, room)
        check_room_state(context.room_status)
        spec = context.spec
        blocked = spec.moderation.blocked_identities if spec.moderation is not None else []
        allowed = spec.access.allowed_identities if spec.access is not None else None
        check_identity_access(identity, blocked, allowed)
        if before_signing is not None:
            before_signing(context)
        if spec.access is not None and spec.access.verification is not None:
            if verify is None:
                raise forbidden("VerificationRequired", "this room needs a Twilio Verify check")
            await verify(context)
        if context.key is None:
            raise unavailable("SigningKeyUnavailable", context.key_problem or "no signing key")
        now = self.clock()
        max_ttl = spec.tokens.max_ttl_seconds if spec.tokens is not None else None
        caps = [max_ttl, context.overlap_seconds, self.settings_ttl]
        if context.key_valid_until is not None:
            caps.append(int(context.key_valid_until - now))
        ttl = effective_ttl(requested_ttl, caps)
        if ttl < 1:
            raise unavailable("SigningKeyUnavailable", "the signing key is about to change; try again")
        token = mint_access_token(context.key, identity, context.unique_name, ttl=ttl, now=now)
        return token, context


class TokenService:
    """The endpoint's state: caches, limiters and the issuer. One per HTTP application."""

    def __init__(
        self,
        settings: Settings,
        kube: KubeClient,
        *,
        clock: Callable[[], float] = time.time,
        limits: RateLimits | None = None,
        auth_cache_ttl: float = 30.0,
        room_cache_ttl: float = 2.0,
        verification_check: VerificationChecker | None = None,
    ) -> None:
        self.settings = settings
        self._verify = OperatorVerify(settings)  # connects on first use only
        self.verification = VerificationGate(
            verification_check or self._verify, clock, PassSigner(pass_secret(settings))
        )
        self._kube = kube
        self.clock = clock
        self.limits = limits or RateLimits()
        self.authorizer = KubeAuthorizer(self.kube, clock, ttl=auth_cache_ttl)
        operator_key = OperatorKey(
            settings.TWILIO_ACCOUNT_SID, settings.TWILIO_API_KEY, settings.TWILIO_API_SECRET
        )
        self.rooms = RoomDirectory(
            self.kube,
            operator_key,
            clock,
            cache_ttl=room_cache_ttl,
            name_prefixes=settings.TENANT_NAME_PREFIXES,
        )
        self.issuer = TokenIssuer(self.rooms, settings.VIDEO_TOKEN_TTL_SECONDS, clock)
        self.services = shared_services(settings.TWILIO_ACCOUNT_SID, settings.tenant_twilio_services)
        """Verify Services each namespace may use: Verify is always asked with the operator's account."""
        limits = self.limits
        self.by_source = KeyedLimiter(limits.per_source, clock, limits.max_keys)
        self.by_caller = KeyedLimiter(limits.per_caller, clock, limits.max_keys)
        self.by_room = KeyedLimiter(limits.per_room, clock, limits.max_keys)
        self.by_identity = KeyedLimiter(limits.per_identity, clock, limits.max_keys)

    async def kube(self) -> KubeClient:
        """The operator's Kubernetes client."""
        return self._kube

    async def close(self, _: web.Application | None = None) -> None:
        """Stop the background refreshes (the client belongs to the operator's context)."""
        await self.rooms.close()
        await self._verify.close()

    async def handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            answer = await self._answer(request)
        except TokenRequestError as error:
            answer = _error_response(error)
            metrics.ACCESS_TOKEN_REQUESTS_DENIED.labels(error.reason).inc()
            level = logging.DEBUG if error.status in (429, 503) else logging.INFO
            logger.log(level, "token request refused: %s %s", error.status, error.reason)
        metrics.ACCESS_TOKEN_REQUEST_DURATION.observe(time.perf_counter() - started)
        return answer

    def _limit(self, limiter: KeyedLimiter, key: Any, what: str) -> None:
        wait = limiter.acquire(key)
        if wait > 0:
            raise TokenRequestError(
                429, "RateLimited", f"too many token requests {what}", retry_after=retry_after_seconds(wait)
            )

    async def _answer(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise TokenRequestError(405, "MethodNotAllowed", "use POST")
        bearer = _bearer(request)
        caller = self.authorizer.known_caller(bearer) if bearer else None
        if caller is None:  # only requests that may cost a TokenReview count against their source
            self._limit(self.by_source, request.remote or "", "from this address")
        raw = await _read_body(request)
        if caller is None:
            if not bearer:
                raise unauthorized("send a Kubernetes ServiceAccount token as Authorization: Bearer <token>")
            caller = await self.authorizer.authenticate(bearer)
        namespace, room, identity, requested_ttl, code, verification_sid, presented_pass = _parse(raw)
        self._limit(self.by_caller, caller.username, "from this caller")
        await self.authorizer.authorize(caller, namespace, room)

        def limit_room(_: RoomTokenContext) -> None:
            self._limit(self.by_room, (namespace, room), "for this room")
            self._limit(self.by_identity, (namespace, room, identity), "for this identity")

        verified: list[VerifiedJoin] = []

        async def verify(context: RoomTokenContext) -> None:
            access = context.spec.access
            assert access is not None and access.verification is not None
            service, services = access.verification.service_sid, self.services
            if not services.allows(namespace, "verify", service, self.settings.TWILIO_ACCOUNT_SID):
                raise forbidden("VerifyServiceNotAllowed", services.refusal(namespace, "verify", service))
            subject = PassSubject(namespace, room, context.uid, identity, service)
            verified.append(
                await self.verification.require(
                    access.verification, subject, code, verification_sid, presented_pass
                )
            )

        token, context = await self.issuer.issue(
            namespace, room, identity, requested_ttl, before_signing=limit_room, verify=verify
        )
        metrics.ACCESS_TOKENS_MINTED.labels("http", context.key_source).inc()
        logger.debug(
            "minted an access token",
            extra={
                "namespace": namespace,
                "object_name": room,
                "caller": caller.username,
                "key_sid": token.key_sid,
            },
        )
        body = {
            "token": token.jwt,
            "identity": token.identity,
            "roomName": token.room_name,
            "expiresAt": rfc3339(token.expires_at),
            "connectOptions": connect_options(context.client_profile),
        }
        for join in verified:
            body["verificationPass"] = join.pass_token
            body["verificationPassExpiresAt"] = rfc3339(join.expires_at)
        return web.json_response(body, headers={"Cache-Control": "no-store"})


TOKEN_SERVICE_KEY = web.AppKey("token_service", TokenService)


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise TokenRequestError(413, "PayloadTooLarge", f"the body must be at most {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise TokenRequestError(413, "PayloadTooLarge", f"the body must be at most {MAX_BODY_BYTES} bytes")
    return raw


def _bearer(request: web.Request) -> str:
    """The credential of an ``Authorization: Bearer`` header; empty when there is none."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def _parse(raw: bytes) -> tuple[str, str, str, int | None, str | None, str | None, str | None]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    for field in ("namespace", "room"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise bad_request(f"{field} is required and must be a string")
    if "identity" not in body:
        raise bad_request("identity is required")
    identity = validate_identity(body["identity"])
    ttl = validate_ttl(body.get("ttlSeconds"))
    code, sid = parse_verification(body.get("verificationCode"), body.get("verificationSid"))
    presented_pass = parse_pass(body.get("verificationPass"))
    return body["namespace"], body["room"], identity, ttl, code, sid, presented_pass


def _error_response(error: TokenRequestError) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.json_response(
        {"error": error.reason, "message": error.message}, status=error.status, headers=headers
    )


def token_routes(service: TokenService) -> RouteInstaller:
    """A route installer for the HTTP server adding ``/v1/token``, answered by ``service``."""

    def install(app: web.Application) -> None:
        app[TOKEN_SERVICE_KEY] = service
        app.router.add_route("*", PATH, service.handle)

    return install


__all__ = ["MAX_BODY_BYTES", "PATH", "TOKEN_SERVICE_KEY", "TokenIssuer", "TokenService", "token_routes"]
