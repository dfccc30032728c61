"""The HTTP calls the demo makes as an application would: the operator's token service and ``/metrics``,
and the emulator's control API (a participant's client joining and leaving, the clock)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.objects import NAMESPACE
from twilio_video_playground.demo.waiting import StepFailed


@dataclass(frozen=True)
class Minted:
    """An Access Token from ``POST /v1/token``. Only its length and its public claims are ever shown."""

    token: str = field(repr=False)
    room_name: str
    identity: str
    claims: dict[str, Any]

    @property
    def key_sid(self) -> str:
        return str(self.claims.get("iss", "?"))

    def describe(self) -> str:
        lifetime = int(self.claims.get("exp", 0)) - int(self.claims.get("nbf", 0))
        return (
            f"JWT of {len(self.token)} characters, signed by {self.key_sid}, "
            f"grant {self.identity}@{self.room_name}, valid {lifetime}s"
        )


def public_claims(jwt: str) -> dict[str, Any]:
    """The payload of a JWT (claims only; the signature is not checked here)."""
    payload = jwt.split(".")[1] if jwt.count(".") == 2 else ""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError:
        return {}
    return dict(decoded) if isinstance(decoded, dict) else {}


async def ask_token(demo: Demo, room: str, identity: str) -> tuple[int, dict[str, Any]]:
    """``POST /v1/token`` with the app's ServiceAccount token: the status and the JSON answer."""
    body = {"namespace": NAMESPACE, "room": room, "identity": identity}
    headers = {"Authorization": f"Bearer {demo.bearer}"}
    async with demo.http.post(f"{demo.operator_url}/v1/token", json=body, headers=headers) as answer:
        data = await answer.json(content_type=None)
        return answer.status, dict(data) if isinstance(data, dict) else {}


async def mint(demo: Demo, room: str, identity: str) -> Minted:
    """A token for ``identity`` in the VideoRoom ``room``, or :class:`StepFailed` with the refusal."""
    status, answer = await ask_token(demo, room, identity)
    if status != 200:
        error = f"{answer.get('error')}: {answer.get('message')}"
        raise StepFailed(f"POST /v1/token for {identity} in {NAMESPACE}/{room} answered {status} {error}")
    token = str(answer["token"])
    return Minted(token, str(answer["roomName"]), str(answer["identity"]), public_claims(token))


def _participants_url(demo: Demo, room: str) -> str:
    return f"{demo.emulator_url}/_emulator/rooms/{quote(room, safe='')}/participants"


async def join(demo: Demo, minted: Minted) -> tuple[int, dict[str, Any]]:
    """A participant's client connects with the token; the emulator verifies it as Twilio would."""
    body = {"identity": minted.identity, "token": minted.token}
    async with demo.http.post(_participants_url(demo, minted.room_name), json=body) as answer:
        return answer.status, dict(await answer.json(content_type=None) or {})


async def join_or_fail(demo: Demo, minted: Minted) -> str:
    """Join; the participant SID, or :class:`StepFailed` with the emulator's refusal."""
    status, answer = await join(demo, minted)
    if status != 201:
        refusal = f"{answer.get('code')} {answer.get('message')}"
        raise StepFailed(f"{minted.identity} could not join {minted.room_name}: {status} {refusal}")
    return str(answer["sid"])


async def leave(demo: Demo, room_name: str, participant: str) -> None:
    url = f"{_participants_url(demo, room_name)}/{quote(participant, safe='')}"
    async with demo.http.delete(url) as answer:
        if answer.status != 204:
            raise StepFailed(f"participant {participant} could not leave {room_name}: {answer.status}")


async def advance_clock(demo: Demo, seconds: float) -> None:
    """Move the emulator's clock forward (Twilio's time passes; timers due by then run)."""
    url = f"{demo.emulator_url}/_emulator/clock/advance"
    async with demo.http.post(url, json={"seconds": seconds}) as answer:
        if answer.status != 200:
            raise StepFailed(f"the emulator did not advance its clock: {answer.status}")


async def participant_status(demo: Demo, room_sid: str, participant_sid: str) -> str:
    """The participant's status as Twilio's REST API reports it (``connected`` or ``disconnected``)."""
    credentials = demo.playground.credentials
    headers = {"Authorization": aiohttp.encode_basic_auth(credentials["api_key"], credentials["api_secret"])}
    url = f"{demo.emulator_url}/v1/Rooms/{room_sid}/Participants/{participant_sid}"
    async with demo.http.get(url, headers=headers) as answer:
        return str((await answer.json(content_type=None) or {}).get("status", answer.status))


async def scrape_metrics(demo: Demo) -> str:
    async with demo.http.get(f"{demo.operator_url}/metrics") as answer:
        if answer.status != 200:
            raise StepFailed(f"GET /metrics answered {answer.status}")
        return await answer.text()
