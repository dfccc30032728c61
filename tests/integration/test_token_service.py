"""``POST /v1/token`` on the running operator: TokenReview, SubjectAccessReview, the room's rules, rate
limits, and tokens the emulator accepts when a participant joins."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from rotation_harness import NAMESPACE, Harness, running_operator

from twilio_video_operator.kube import VIDEOROOMS
from twilio_video_operator.tokens.ratelimit import Limit, RateLimits

pytestmark = pytest.mark.slow

PAST_CACHE = 5  # seconds: beyond what the token service may serve from its cache

APP = "token-of-the-app-service-account"
OTHER = "token-of-another-service-account"
LIMITS = RateLimits(
    per_caller=Limit(rate=1000, burst=1000),
    per_identity=Limit(rate=0.1, burst=3),
    per_room=Limit(rate=1000, burst=1000),
    per_source=Limit(rate=1000, burst=1000),
)


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def denied(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "twilio_video_operator_access_token_requests_denied_total", {"reason": reason}
    )
    return value or 0.0


async def ask(
    h: Harness, room: str, identity: Any = "alice", bearer: str | None = APP, **more: Any
) -> tuple[int, dict[str, str], dict[str, Any]]:
    return await h.request_token(
        {"namespace": NAMESPACE, "room": room, "identity": identity, **more}, bearer=bearer
    )


async def test_every_request_gets_its_documented_answer(tmp_path: Path) -> None:
    async with running_operator(tmp_path, limits=LIMITS) as h:
        h.allow_service_account(APP, "app", ("standup", "closed", "vip", "ghost"))
        h.allow_service_account(OTHER, "other", ("elsewhere",))
        standup = await h.create_room(
            "standup",
            moderation={"blockedIdentities": ["mallory"]},
            tokens={"maxTtlSeconds": 900},
            clientProfile={
                "bandwidthProfile": {"video": {"mode": "grid"}},
                "preferredVideoCodecs": [{"codec": "H264"}],
            },
        )
        await h.create_room("vip", access={"allowedIdentities": ["staff-*", "ceo"]})
        await h.create_room("closed", open_at_twilio=False, room_status="completed")

        # Success: the answer, the token's claims, and a join the emulator accepts.
        before = h.clock.time()
        status, headers, body = await ask(h, "standup")
        assert status == 200, body
        assert set(body) == {"token", "identity", "roomName", "expiresAt", "connectOptions"}
        assert (body["identity"], body["roomName"]) == ("alice", standup)
        claims = claims_of(body["token"])
        assert claims["iss"] == h.emulator.credentials["api_key"]  # no rotation: the operator's key
        assert claims["grants"] == {"video": {"room": standup}, "identity": "alice"}
        assert claims["exp"] - claims["nbf"] == 900
        assert datetime.fromisoformat(body["expiresAt"]).timestamp() == claims["exp"] >= before + 899
        assert body["connectOptions"] == {
            "bandwidthProfile": {"video": {"mode": "grid", "maxSubscriptionBitrate": 2500000}},
            "networkQuality": {"local": 1, "remote": 1},
            "dominantSpeaker": True,
            "preferredVideoCodecs": [{"codec": "H264"}],
        }
        assert headers["Cache-Control"] == "no-store"
        assert (await h.join(standup, "alice", body["token"]))[0] == 201

        # A longer lifetime than the room allows is shortened; one Twilio would refuse is an error.
        status, _, body = await ask(h, "standup", identity="long", ttlSeconds=7200)
        assert status == 200 and claims_of(body["token"])["exp"] - claims_of(body["token"])["nbf"] == 900
        status, _, body = await ask(h, "standup", identity="long", ttlSeconds=86401)
        assert (status, body["error"]) == (422, "InvalidTtl")
        status, _, body = await ask(h, "standup", identity="short", ttlSeconds=60)
        assert status == 200 and claims_of(body["token"])["exp"] - claims_of(body["token"])["nbf"] == 60

        # Authentication and authorization.
        status, _, body = await ask(h, "standup", bearer=None)
        assert (status, body["error"]) == (401, "Unauthorized")
        status, _, body = await ask(h, "standup", bearer="not-a-known-token")
        assert (status, body["error"]) == (401, "Unauthorized")
        status, _, body = await ask(h, "standup", bearer=OTHER)
        assert (status, body["error"]) == (403, "Forbidden")
        assert "system:serviceaccount:tenant:other" in body["message"]

        # The room's rules.
        status, _, body = await ask(h, "standup", identity="mallory")
        assert (status, body["error"]) == (403, "IdentityBlocked")
        status, _, body = await ask(h, "vip", identity="intern")
        assert (status, body["error"]) == (403, "IdentityNotAllowed")
        status, _, body = await ask(h, "vip", identity="staff-42")
        assert status == 200, body
        status, _, body = await ask(h, "closed")
        assert (status, body["error"]) == (409, "RoomNotInProgress")
        status, _, body = await ask(h, "ghost")
        assert (status, body["error"]) == (404, "RoomNotFound")

        # Malformed requests.
        for identity in ("", "x" * 129, "bell\x07"):
            status, _, body = await ask(h, "standup", identity=identity)
            assert (status, body["error"]) == (422, "InvalidIdentity")
        status, _, body = await h.request_token(None, bearer=APP, raw=b"{not json")
        assert (status, body["error"]) == (400, "BadRequest")
        status, _, body = await h.request_token({"namespace": NAMESPACE, "identity": "a"}, bearer=APP)
        assert (status, body["error"]) == (400, "BadRequest")
        status, _, body = await h.request_token(None, bearer=APP, raw=b"[" + b"1," * 10_000 + b"1]")
        assert (status, body["error"]) == (413, "PayloadTooLarge")
        status, _, body = await h.request_token(None, bearer=APP, method="GET")
        assert (status, body["error"]) == (405, "MethodNotAllowed")

        # Rate limits: three tokens per identity at once, then 429 with Retry-After.
        for _ in range(3):
            assert (await ask(h, "standup", identity="bob"))[0] == 200
        status, headers, body = await ask(h, "standup", identity="bob")
        assert (status, body["error"]) == (429, "RateLimited")
        assert int(headers["Retry-After"]) == 10
        assert (await ask(h, "standup", identity="carol"))[0] == 200
        await h.clock.advance(10)
        assert (await ask(h, "standup", identity="bob"))[0] == 200

        assert denied("IdentityBlocked") >= 1 and denied("RateLimited") >= 1


async def test_rooms_with_a_rotation_are_signed_by_its_active_key(tmp_path: Path) -> None:
    async with running_operator(tmp_path, limits=LIMITS) as h:
        h.allow_service_account(APP, "app")
        room = await h.create_room("standup", tokens={"signingKeyRotationRef": {"name": "keys"}})

        status, headers, body = await ask(h, "standup")
        assert (status, body["error"]) == (503, "SigningKeyUnavailable")
        assert "Retry-After" in headers

        await h.create_rotation("keys", overlap="5m", stagePeriod="1m", rotationInterval="1h")
        rotation = await h.wait_status("keys", lambda s: bool(s.get("activeKeySid")))
        await h.clock.advance(PAST_CACHE)  # past the service's short cache of the (missing) Secret

        status, _, body = await ask(h, "standup")
        assert status == 200, body
        claims = claims_of(body["token"])
        assert claims["iss"] == rotation["activeKeySid"]
        assert claims["exp"] - claims["nbf"] <= 300  # the overlap caps the lifetime
        assert (await h.join(room, "alice", body["token"]))[0] == 201


async def test_a_scheduled_room_gets_tokens_before_it_opens(tmp_path: Path) -> None:
    async with running_operator(tmp_path, limits=LIMITS) as h:
        h.allow_service_account(APP, "app")
        await h.create_room("later", open_at_twilio=False, room_status="Scheduled")

        status, _, body = await ask(h, "later")

        assert status == 200 and body["roomName"] == "tenant:later"


async def test_the_source_address_limits_unknown_bearer_tokens_only(tmp_path: Path) -> None:
    limits = RateLimits(per_source=Limit(rate=0.01, burst=2))
    async with running_operator(tmp_path, limits=limits) as h:
        h.allow_service_account(APP, "app")
        await h.create_room("standup")
        assert (await ask(h, "standup"))[0] == 200  # the caller is now known (TokenReview answer cached)

        codes = [(await ask(h, "standup", bearer=bearer))[0] for bearer in ("forged-1", "forged-2", None)]
        assert codes == [401, 429, 429]

        # Known callers behind the same address (a proxy, say) are not held back by its bucket.
        identities = [f"user-{index}" for index in range(5)]
        assert [(await ask(h, "standup", identity=who))[0] for who in identities] == [200] * 5


async def test_a_caller_over_its_limit_is_refused_while_another_is_served(tmp_path: Path) -> None:
    plenty = Limit(rate=1000, burst=1000)
    limits = RateLimits(
        per_caller=Limit(rate=0.5, burst=2), per_identity=plenty, per_room=plenty, per_source=plenty
    )
    async with running_operator(tmp_path, limits=limits) as h:
        h.allow_service_account(APP, "app", ("standup",))
        h.allow_service_account(OTHER, "other", ("standup",))
        app_again = "second-token-of-the-app-service-account"
        h.allow_service_account(app_again, "app", ("standup",))
        await h.create_room("standup")
        before = denied("RateLimited")

        assert [(await ask(h, "standup", identity=f"app-user-{n}"))[0] for n in range(2)] == [200, 200]
        status, headers, body = await ask(h, "standup", identity="app-user-2")
        assert (status, body["error"]) == (429, "RateLimited")
        assert "caller" in body["message"]
        assert int(headers["Retry-After"]) == 2  # one request back every 2 s
        # The caller is the ServiceAccount, not the bearer token; and its limit is checked before RBAC.
        assert (await ask(h, "standup", identity="app-user-3", bearer=app_again))[0] == 429
        assert (await ask(h, "elsewhere", identity="app-user-4"))[0] == 429

        # Another ServiceAccount has its own bucket.
        for n in range(2):
            status, _, body = await ask(h, "standup", identity=f"other-user-{n}", bearer=OTHER)
            assert status == 200 and body["identity"] == f"other-user-{n}"
        assert denied("RateLimited") == before + 3

        # Refused requests did not use up the bucket: after Retry-After exactly one more request fits.
        await h.clock.advance(2)
        assert (await ask(h, "standup", identity="app-user-5"))[0] == 200
        assert (await ask(h, "standup", identity="app-user-6"))[0] == 429


async def test_a_room_name_written_into_status_by_hand_is_never_granted(tmp_path: Path) -> None:
    """Finding 2, at the token service: status is writable, so a VideoRoom pointed at another namespace's
    room by hand must not make the operator's key grant that room."""
    async with running_operator(tmp_path, limits=LIMITS) as h:
        h.allow_service_account(APP, "app", ("mine", "named"))
        await h.create_room("mine")
        await h.client.patch_status(VIDEOROOMS, NAMESPACE, "mine", {"uniqueName": "other-team:standup"})
        await h.clock.advance(PAST_CACHE)

        status, _, body = await ask(h, "mine")
        assert status == 200, body
        assert body["roomName"] == f"{NAMESPACE}:mine"
        assert claims_of(body["token"])["grants"]["video"]["room"] == f"{NAMESPACE}:mine"

        await h.create_room("named", uniqueName="other-team:standup", open_at_twilio=False)
        await h.client.patch_status(VIDEOROOMS, NAMESPACE, "named", {"uniqueName": None})
        status, _, body = await ask(h, "named")
        assert (status, body["error"]) == (403, "NameNotAllowed")
