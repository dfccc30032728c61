"""The token flow of a real cluster, end to end in the playground: examples/rbac/token-role.yaml applied to
the embedded Kubernetes API, a ServiceAccount token from the TokenRequest API, and ``POST /v1/token`` on
the running operator, which the Role's RBAC rules decide (TokenReview, then SubjectAccessReview)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from twilio_video_operator.kube import SIGNINGKEYROTATIONS, VIDEOROOMS, KubeClient
from twilio_video_playground.playground import ManifestApplier, Playground

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# The example Role names "standup" (examples/videoroom.yaml), whose tokens are signed by the key of
# examples/signingkeyrotation.yaml.
MANIFESTS = (
    EXAMPLES / "signingkeyrotation.yaml",
    EXAMPLES / "videoroom.yaml",
    EXAMPLES / "rbac" / "token-role.yaml",
)
OTHER_ROOM = {
    "apiVersion": "video.openclaw.io/v1alpha1",
    "kind": "VideoRoom",
    "metadata": {"name": "retro", "namespace": "default"},
    "spec": {"type": "group"},
}
TOKEN_REQUEST_PATH = "/api/v1/namespaces/default/serviceaccounts/video-app/token"
START_TIMEOUT = 60.0
STEP_TIMEOUT = 30.0


async def eventually(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def room_in_progress(client: KubeClient, name: str) -> bool:
    room = await client.get(VIDEOROOMS, "default", name) or {}
    return bool((room.get("status") or {}).get("roomStatus") == "in-progress")


async def service_account_token(client: KubeClient, **spec: Any) -> str:
    """A token of the example's ServiceAccount from the TokenRequest API (what ``kubectl create token``
    calls)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    answer = await client.request("POST", TOKEN_REQUEST_PATH, body=body)
    assert answer["kind"] == "TokenRequest" and answer["status"]["expirationTimestamp"]
    return str(answer["status"]["token"])


async def mint(
    operator_url: str, bearer: str, room: str, identity: str = "alice"
) -> tuple[int, dict[str, Any]]:
    body = {"namespace": "default", "room": room, "identity": identity}
    headers = {"Authorization": f"Bearer {bearer}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{operator_url}/v1/token", json=body, headers=headers) as answer,
    ):
        return answer.status, dict(await answer.json())


def grant_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return dict(claims["grants"])


async def test_the_example_role_decides_who_mints_for_which_room(tmp_path: Path) -> None:
    async with (
        asyncio.timeout(START_TIMEOUT + 3 * STEP_TIMEOUT),
        Playground(tmp_path / "state") as playground,
    ):
        client = playground.client
        assert playground.operator_url is not None
        applier = ManifestApplier(client)
        for path in MANIFESTS:
            for manifest in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                await applier.apply(manifest)
        await applier.apply(OTHER_ROOM)

        async def key_active() -> bool:
            rotation = await client.get(SIGNINGKEYROTATIONS, "default", "video-keys") or {}
            return bool((rotation.get("status") or {}).get("activeKeySid"))

        await eventually("the standup room to be in progress", lambda: room_in_progress(client, "standup"))
        await eventually("the retro room to be in progress", lambda: room_in_progress(client, "retro"))
        await eventually("an active key of the video-keys rotation", key_active)

        token = await service_account_token(client)
        # The Role names "standup": an Access Token for it...
        status, body = await mint(playground.operator_url, token, "standup")
        assert status == 200, body
        assert body["identity"] == "alice" and body["roomName"] == "default:standup"
        assert grant_of(body["token"]) == {"identity": "alice", "video": {"room": "default:standup"}}
        # ...but not for another room of the namespace, which exists and is open.
        status, body = await mint(playground.operator_url, token, "retro")
        assert (status, body["error"]) == (403, "Forbidden"), body
        assert "system:serviceaccount:default:video-app" in body["message"]

        # The operator's TokenReview names no audience: a token for another audience is not accepted, as
        # on a real cluster; neither is a made-up one.
        elsewhere = await service_account_token(client, audiences=["https://elsewhere.example.com"])
        status, body = await mint(playground.operator_url, elsewhere, "standup")
        assert (status, body["error"]) == (401, "Unauthorized"), body
        status, body = await mint(playground.operator_url, "not-a-token", "standup")
        assert (status, body["error"]) == (401, "Unauthorized"), body
