"""SigningKeyRotation end to end: the handlers under kopf, the embedded Kubernetes API, the Twilio emulator
verifying every token a client joins with, and one clock for both."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from rotation_harness import NAMESPACE, Harness, running_operator

from kube_backends import KubeBackend
from twilio_video_operator.controllers.credentials import build_connector
from twilio_video_operator.controllers.signingkeyrotation import SigningKeyRotationController
from twilio_video_operator.gateway import GatewayConfig, TwilioGateway
from twilio_video_operator.kube import SECRETS, SIGNINGKEYROTATIONS, KubeClient, Resource
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_operator.reconcilers.signingkeyrotation_plan import BackoffPolicy
from twilio_video_operator.tokens.minting import SigningKey, mint_access_token
from twilio_video_operator.webhooks.accounts import AuthTokens

pytestmark = pytest.mark.slow

PAST_CACHE = 5  # seconds: beyond what the token service may serve from its cache

APP_TOKEN = "app-service-account-token"
TICKS = 0.3  # several timer ticks of the operator (it ticks every 0.05 s in these tests)


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def condition(status: dict[str, Any], kind: str) -> tuple[str, str] | None:
    for item in status.get("conditions") or []:
        if item["type"] == kind:
            return item["status"], item["reason"]
    return None


def ready(status: dict[str, Any]) -> bool:
    return condition(status, "Ready") == ("True", "KeyActive")


class Client:
    """A workload that fetches tokens from the operator and joins the room at the emulator with them."""

    def __init__(self, harness: Harness, room: str, unique_name: str, bearer: str) -> None:
        self.harness = harness
        self.bearer = bearer
        self.room = room
        self.unique_name = unique_name
        self.tokens: list[dict[str, Any]] = []

    async def mint(self, identity: str) -> dict[str, Any]:
        status, _, body = await self.harness.request_token(
            {"namespace": NAMESPACE, "room": self.room, "identity": identity}, bearer=self.bearer
        )
        assert status == 200, body
        claims = claims_of(body["token"])
        live = await self.harness.twilio_keys()
        assert claims["iss"] in live, "a token was signed by a key that is not live at Twilio"
        record = {"jwt": body["token"], "identity": identity, **claims}
        self.tokens.append(record)
        return record

    async def join(self, token: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return await self.harness.join(self.unique_name, token["identity"], token["jwt"])


@pytest.mark.both_backends
async def test_a_full_rotation_never_breaks_a_token_before_it_expires(
    tmp_path: Path, kube_backend: KubeBackend
) -> None:
    async with running_operator(tmp_path, backend=kube_backend) as h:
        app_token = await h.service_account_token("app", ("standup",))
        await h.create_rotation("video-keys", rotationInterval="30m", stagePeriod="2m", overlap="10m")
        status = await h.wait_status("video-keys", ready)
        first = status["activeKeySid"]
        assert status["revision"] == 1 and "nextKeySid" not in status
        secret = await h.secret("video-keys")
        assert secret["TWILIO_API_KEY"] == first and "TWILIO_API_KEY_NEXT" not in secret
        assert secret["TWILIO_ACCOUNT_SID"] == h.emulator.credentials["account_sid"]

        unique_name = await h.create_room("standup", tokens={"signingKeyRotationRef": {"name": "video-keys"}})
        client = Client(h, "standup", unique_name, app_token)
        anchor = await client.mint("anchor")
        assert (await h.join(unique_name, "anchor", anchor["jwt"], stay=True))[0] == 201

        # Active key: a token is accepted until its expiry, and not after.
        early = await client.mint("alice")
        assert early["iss"] == first and early["exp"] - early["nbf"] <= 600  # capped by the overlap
        await h.clock.advance(early["exp"] - h.clock.time() - 2)
        assert (await client.join(early))[0] == 201
        await h.clock.advance(PAST_CACHE)
        code, refused = await client.join(early)
        assert (code, refused["code"]) == (401, 20104)

        # The rotation is due: a new key is staged; tokens are still signed by the active key.
        await h.clock.advance(30 * 60)
        status = await h.wait_status("video-keys", lambda s: bool(s.get("nextKeySid")))
        second = status["nextKeySid"]
        secret = await h.secret("video-keys")
        assert (secret["TWILIO_API_KEY"], secret["TWILIO_API_KEY_NEXT"]) == (first, second)
        assert condition(status, "Rotating") == ("True", "Staging")
        await h.clock.advance(PAST_CACHE)
        staged = await client.mint("bob")
        assert staged["iss"] == first
        assert (await client.join(staged))[0] == 201

        # The switch: the new key signs, the previous one still validates the tokens it signed.
        await h.clock.advance(120)
        status = await h.wait_status("video-keys", lambda s: s.get("activeKeySid") == second)
        assert status["previousKeySid"] == first and status["revision"] == 2
        secret = await h.secret("video-keys")
        assert (secret["TWILIO_API_KEY"], secret["TWILIO_API_KEY_PREVIOUS"]) == (second, first)
        assert "TWILIO_API_KEY_NEXT" not in secret
        previous_secret = secret["TWILIO_API_SECRET_PREVIOUS"]
        assert condition(status, "Rotating") == ("True", "Overlapping")
        assert (await client.join(staged))[0] == 201
        await h.clock.advance(PAST_CACHE)
        fresh = await client.mint("carol")
        assert fresh["iss"] == second
        assert (await client.join(fresh))[0] == 201

        # No token signed by the previous key outlives it; all unexpired tokens still work right up to it.
        revoke_at = datetime.fromisoformat(status["previousKeyRevokeTime"]).timestamp()
        assert all(token["exp"] <= revoke_at for token in client.tokens if token["iss"] == first)
        await h.clock.advance(revoke_at - h.clock.time() - 1)
        for token in client.tokens:
            if token["exp"] > h.clock.time() and token["identity"] != "anchor":
                assert (await client.join(token))[0] == 201, token["identity"]

        # The overlap ends: the previous key is revoked at Twilio and dropped from the Secret.
        await h.clock.advance(2)
        status = await h.wait_status("video-keys", lambda s: not s.get("previousKeySid"))
        keys = await h.twilio_keys()
        assert first not in keys and second in keys
        secret = await h.secret("video-keys")
        assert set(secret) == {"TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "TWILIO_API_SECRET"}
        assert condition(status, "Rotating") == ("False", "Idle")
        assert (await client.join(fresh))[0] == 201
        forged = mint_access_token(
            SigningKey(h.emulator.credentials["account_sid"], first, SecretStr(previous_secret)),
            "mallory",
            unique_name,
            ttl=600,
            now=h.clock.time(),
        )
        code, refused = await h.join(unique_name, "mallory", forged.jwt)
        assert (code, refused["code"]) == (401, 20103)

        await h.wait_event_reasons("video-keys", "KeyCreated", "KeyStaged", "KeyActivated", "KeyRevoked")
        published = json.dumps(await h.rotation("video-keys")) + json.dumps(await h.events("video-keys"))
        for value in (secret["TWILIO_API_SECRET"], previous_secret):
            assert value not in published


async def test_manual_rotation_follows_the_annotation(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        await h.create_rotation("keys", rotationInterval="720h", stagePeriod="2m", overlap="10m")
        status = await h.wait_status("keys", ready)
        first = status["activeKeySid"]

        await h.annotate("keys", {"video.openclaw.io/rotate-requested-at": "2026-03-01T12:00:00Z"})
        status = await h.wait_status("keys", lambda s: bool(s.get("nextKeySid")))
        assert status["lastRotateRequest"] == "2026-03-01T12:00:00Z"
        await h.clock.advance(121)
        status = await h.wait_status("keys", lambda s: s.get("previousKeySid") == first)
        second = status["activeKeySid"]
        await h.clock.advance(601)
        status = await h.wait_status("keys", lambda s: not s.get("previousKeySid"))
        assert status["revision"] == 2 and set(await h.twilio_keys()) >= {second}

        await h.clock.advance(3600)
        await h.wait_status("keys", lambda s: s.get("revision") == 2 and not s.get("nextKeySid"))
        await h.annotate("keys", {"video.openclaw.io/rotate-requested-at": "again"})
        status = await h.wait_status("keys", lambda s: bool(s.get("nextKeySid")))
        assert status["lastRotateRequest"] == "again"


async def test_a_rotate_request_is_acted_on_without_waiting_for_the_timer(tmp_path: Path) -> None:
    async with running_operator(tmp_path, tick_seconds=3600) as h:
        await h.create_rotation("keys")
        await h.wait_status("keys", ready)

        await h.annotate("keys", {"video.openclaw.io/rotate-requested-at": "now"})

        status = await h.wait_status("keys", lambda s: bool(s.get("nextKeySid")), within=5.0)
        assert status["lastRotateRequest"] == "now"


async def test_twilio_errors_back_off_exponentially_then_recover(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        await h.create_rotation("keys", rotationInterval="720h", stagePeriod="2m", overlap="10m")
        await h.wait_status("keys", ready)
        await h.faults(rate5xx=1.0)

        await h.annotate("keys", {"video.openclaw.io/rotate-requested-at": "1"})
        status = await h.wait_status("keys", lambda s: s.get("failedAttempts") == 1)
        assert condition(status, "Synced") == ("False", "ReconcileError")
        assert condition(status, "Ready") == ("True", "KeyActive")
        assert status["lastFailureTime"]
        attempts = await h.twilio_requests("CreateNewKey") + await h.twilio_requests("ListKey")

        # Within the backoff (30 s after the first failure) nothing is sent to Twilio, however many
        # times the operator looks at the object.
        await h.clock.advance(20)
        await asyncio.sleep(TICKS)
        assert (await h.rotation_status("keys"))["failedAttempts"] == 1
        assert await h.twilio_requests("CreateNewKey") + await h.twilio_requests("ListKey") == attempts
        await h.clock.advance(11)
        await h.wait_status("keys", lambda s: s.get("failedAttempts") == 2)
        # The second delay is twice as long.
        await h.clock.advance(35)
        await asyncio.sleep(TICKS)
        assert (await h.rotation_status("keys"))["failedAttempts"] == 2
        await h.clock.advance(30)
        await h.wait_status("keys", lambda s: s.get("failedAttempts") == 3)
        await h.wait_event_reasons("keys", "RotationFailed")

        await h.faults()
        await h.clock.advance(125)
        status = await h.wait_status("keys", lambda s: bool(s.get("nextKeySid")))
        assert status["failedAttempts"] == 0 and condition(status, "Synced") == ("True", "ReconcileSuccess")
        assert "pendingKey" not in status
        names = list((await h.twilio_keys()).values())
        ours = [name for name in names if name.startswith("tenant-keys-")]
        assert len(ours) == 2  # the active and the staged key: failed attempts left nothing behind


async def subaccount(h: Harness) -> dict[str, str]:
    """A tenant's own Twilio account (an emulator subaccount) with a Standard key."""
    async with h.http.post(f"{h.emulator.url}/_emulator/accounts", json={}) as response:
        made = await response.json()
    return {
        "account_sid": made["accountSid"],
        "auth_token": made["authToken"],
        "api_key": made["apiKey"],
        "api_secret": made["apiSecret"],
    }


async def test_the_operators_own_account_is_refused_in_a_tenant_secret(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        creds = h.emulator.credentials
        own = {"TWILIO_ACCOUNT_SID": creds["account_sid"], "TWILIO_AUTH_TOKEN": creds["auth_token"]}
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "borrowed", "namespace": NAMESPACE},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in own.items()},
        }
        await h.client.create(SECRETS, NAMESPACE, body)
        await h.create_rotation("keys", credentialsRef={"name": "borrowed"})

        status = await h.wait_status(
            "keys", lambda s: condition(s, "Synced") == ("False", "AccountNotAllowed")
        )
        assert "operator's own Twilio account" in json.dumps(status)
        assert not [name for name in (await h.twilio_keys()).values() if name.startswith("tenant-keys-")]


async def test_a_credential_that_cannot_manage_keys_stalls(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        creds = await subaccount(h)
        standard = {  # a Standard key cannot use the Keys API
            "TWILIO_ACCOUNT_SID": creds["account_sid"],
            "TWILIO_API_KEY": creds["api_key"],
            "TWILIO_API_SECRET": creds["api_secret"],
        }
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "standard", "namespace": NAMESPACE},
            "data": {key: base64.b64encode(value.encode()).decode() for key, value in standard.items()},
        }
        await h.client.create(SECRETS, NAMESPACE, body)
        await h.create_rotation("keys", credentialsRef={"name": "standard"})

        status = await h.wait_status("keys", lambda s: condition(s, "Stalled") == ("True", "AuthFailed"))
        assert condition(status, "Ready") == ("False", "AuthFailed")
        await h.wait_event_reasons("keys", "AuthFailed")  # posted just after the status write
        assert creds["api_secret"] not in json.dumps(status)


async def test_a_foreign_secret_is_never_overwritten(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        foreign = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "taken", "namespace": NAMESPACE},
        }
        await h.client.create(SECRETS, NAMESPACE, {**foreign, "data": {"x": "eQ=="}})
        await h.create_rotation("taken")

        await h.wait_status("taken", lambda s: condition(s, "Stalled") == ("True", "SecretNotOwned"))
        assert await h.secret("taken") == {"x": "y"}
        assert not [name for name in (await h.twilio_keys()).values() if name.startswith("tenant-taken-")]


@pytest.mark.both_backends
async def test_deleting_with_revoke_revokes_every_key(tmp_path: Path, kube_backend: KubeBackend) -> None:
    async with running_operator(tmp_path, backend=kube_backend) as h:
        await h.create_rotation("keys", deletionPolicy="Revoke")
        await h.wait_status("keys", ready)
        await h.annotate("keys", {"video.openclaw.io/rotate-requested-at": "now"})
        status = await h.wait_status("keys", lambda s: bool(s.get("nextKeySid")))
        assert {status["activeKeySid"], status["nextKeySid"]} <= set(await h.twilio_keys())

        await h.client.delete(SIGNINGKEYROTATIONS, NAMESPACE, "keys")

        await _wait_gone(h, "keys")
        assert not [name for name in (await h.twilio_keys()).values() if name.startswith("tenant-keys-")]
        assert await h.client.get(SECRETS, NAMESPACE, "keys") is None


async def test_deleting_with_retain_keeps_the_keys_and_the_secret(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        await h.create_rotation("keys")
        status = await h.wait_status("keys", ready)

        await h.client.delete(SIGNINGKEYROTATIONS, NAMESPACE, "keys")

        await _wait_gone(h, "keys")
        assert status["activeKeySid"] in await h.twilio_keys()
        secret = await h.client.get(SECRETS, NAMESPACE, "keys")
        assert secret is not None and not secret["metadata"].get("ownerReferences")


async def _wait_gone(h: Harness, name: str) -> None:
    async with asyncio.timeout(10):
        while True:
            if await h.client.get(SIGNINGKEYROTATIONS, NAMESPACE, name) is None:
                return
            await asyncio.sleep(0.05)


class SimulatedCrash(BaseException):
    """The operator process dies (nothing in the operator catches a BaseException of this kind)."""


class CrashingKube(KubeClient):
    """The operator's Kubernetes client, dying when it is about to store a key in the Secret."""

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if resource == SECRETS:
            raise SimulatedCrash()
        return await super().create(resource, namespace, body)

    async def patch(self, resource: Resource, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if resource == SECRETS:
            raise SimulatedCrash()
        return await super().patch(resource, *args, **kwargs)


@pytest.mark.both_backends
async def test_a_crash_right_after_the_key_was_created_leaves_no_orphan(
    tmp_path: Path, kube_backend: KubeBackend
) -> None:
    async with running_operator(tmp_path, start=False, backend=kube_backend) as h:
        await h.create_rotation("keys")
        kube = CrashingKube(connection_from_kubeconfig(h.kubeconfig))
        gateway = TwilioGateway(GatewayConfig.from_settings(h.settings))
        doomed = SigningKeyRotationController(
            kube,
            gateway,
            build_connector(h.settings, kube, gateway, AuthTokens()),
            clock=h.clock.now,
            backoff=BackoffPolicy(),
        )
        try:
            with pytest.raises(SimulatedCrash):
                await doomed.reconcile(NAMESPACE, "keys")
        finally:
            await doomed.gateway.close()
            await doomed.kube.close()
        status = await h.rotation_status("keys")
        marker = status["pendingKey"]
        orphans = [sid for sid, name in (await h.twilio_keys()).items() if name == marker["friendlyName"]]
        assert len(orphans) == 1 and "activeKeySid" not in status  # Twilio made a key; its secret is lost

        await h.start_operator()

        status = await h.wait_status("keys", ready)
        assert "pendingKey" not in status
        keys = await h.twilio_keys()
        assert orphans[0] not in keys
        ours = [sid for sid, name in keys.items() if name.startswith("tenant-keys-")]
        assert ours == [status["activeKeySid"]]
        await h.wait_event_reasons("keys", "OrphanKeyRevoked")
