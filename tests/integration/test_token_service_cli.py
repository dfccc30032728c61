"""``twilio-video-operator token``: a JWT on stdout for admins, with the room's rules applied."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rotation_harness import Harness, running_operator

pytestmark = pytest.mark.slow

COMMAND = Path(sys.executable).parent / "twilio-video-operator"


async def token_command(h: Harness, *args: str) -> tuple[int, str, str]:
    creds = h.emulator.credentials
    environment = {
        **os.environ,
        "KUBECONFIG": str(h.kubeconfig),
        "TWILIO_ACCOUNT_SID": creds["account_sid"],
        "TWILIO_API_KEY": creds["api_key"],
        "TWILIO_API_SECRET": creds["api_secret"],
    }
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        "token",
        "--namespace",
        "tenant",
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def claims_of(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


async def test_the_command_prints_a_token_the_emulator_accepts(tmp_path: Path) -> None:
    async with running_operator(tmp_path) as h:
        await h.create_rotation("keys")
        rotation = await h.wait_status("keys", lambda s: bool(s.get("activeKeySid")))
        room = await h.create_room(
            "standup", tokens={"signingKeyRotationRef": {"name": "keys"}, "maxTtlSeconds": 600}
        )
        plain = await h.create_room("lobby", moderation={"blockedIdentities": ["mallory"]})

        code, out, err = await token_command(h, "--room", "standup", "--identity", "alice")
        assert (code, err) == (0, "")
        jwt = out.strip()
        assert out == jwt + "\n" and jwt.count(".") == 2
        claims = claims_of(jwt)
        assert claims["iss"] == rotation["activeKeySid"] and claims["exp"] - claims["nbf"] == 600
        assert (await h.join(room, "alice", jwt))[0] == 201

        code, out, err = await token_command(h, "--room", "lobby", "--identity", "bob", "--ttl", "90")
        assert code == 0 and claims_of(out.strip())["exp"] - claims_of(out.strip())["nbf"] == 90
        assert claims_of(out.strip())["iss"] == h.emulator.credentials["api_key"]
        assert (await h.join(plain, "bob", out.strip()))[0] == 201

        code, out, err = await token_command(h, "--room", "lobby", "--identity", "mallory")
        assert (code, out) == (1, "") and err.startswith("error: IdentityBlocked:")

        code, out, err = await token_command(h, "--room", "nowhere", "--identity", "bob")
        assert (code, out) == (1, "") and err.startswith("error: RoomNotFound:")
