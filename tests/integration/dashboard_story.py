"""A scripted story against the playground that moves every series the Grafana dashboard shows, including
the counters a quiet install leaves empty: tokens minted and denied, participant-minutes, Twilio throttling
and retries (the emulator's fault injection), rejected callbacks, media deliveries (to an endpoint that
refuses connections, so the delivery fails and counts its outcome), room-ended confirmations and late
callbacks. Built on the demo's clients (:mod:`twilio_video_operator.dev.demo`)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from twilio_video_operator.dev.demo.clients import advance_clock, ask_token, join_or_fail, leave, mint
from twilio_video_operator.dev.demo.context import Demo
from twilio_video_operator.dev.demo.joining import grant_token_access
from twilio_video_operator.dev.playground import ManifestApplier, Playground
from twilio_video_operator.kube import SECRETS, VIDEOROOMS

NAMESPACE = "default"
WAIT = 30.0
POLL = 0.2


async def until(what: str, check: Callable[[], Awaitable[Any]], wait: float = WAIT) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    try:
        async with asyncio.timeout(wait):
            while True:
                found = await check()
                if found:
                    return found
                await asyncio.sleep(POLL)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class Story:
    def __init__(
        self, playground: Playground, http: aiohttp.ClientSession, examples: Path, state: Path
    ) -> None:
        self.playground = playground
        self.http = http
        self.demo = Demo(playground, http, examples, state, WAIT)
        self.examples = examples

    @property
    def emulator(self) -> str:
        return self.playground.credentials["url"]

    @property
    def operator(self) -> str:
        assert self.playground.operator_url is not None
        return self.playground.operator_url

    async def metric_moved(self, name: str) -> bool:
        async with self.http.get(f"{self.operator}/metrics") as answer:
            text = await answer.text()
        prefixes = (name + "{", name + " ")
        return any(line.startswith(prefixes) and not line.endswith(" 0.0") for line in text.splitlines())

    async def room(self, name: str) -> dict[str, Any]:
        return await self.playground.client.get(VIDEOROOMS, NAMESPACE, name) or {}

    async def room_status(self, name: str) -> str | None:
        return ((await self.room(name)).get("status") or {}).get("roomStatus")

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.emulator}/_emulator/{path}", json=body) as answer:
            assert answer.status < 400, (path, answer.status, await answer.text())
            text = await answer.text()
            return yaml.safe_load(text) if text else None

    # -- the story ------------------------------------------------------------------------------------

    async def tokens_participants_and_minutes(self) -> None:
        """A token minted and one denied; a participant joins, stays a minute and leaves."""
        grant_token_access(self.demo)
        await until("standup to be in progress", lambda: self._in_progress("standup"))
        minted = await mint(self.demo, "standup", "alice")
        status, _ = await ask_token(self.demo, "no-such-room", "mallory")
        assert status >= 400
        participant = await join_or_fail(self.demo, minted)
        await advance_clock(self.demo, 60)
        await leave(self.demo, minted.room_name, participant)
        moved = "twilio_video_operator_participant_seconds_total"
        await until("participant seconds", lambda: self.metric_moved(moved))

    async def rejected_callback(self) -> None:
        """A forged room callback (no valid X-Twilio-Signature) is refused and counted."""
        form = {
            "AccountSid": self.playground.credentials["account_sid"],
            "RoomSid": "RM" + "0" * 32,
            "RoomName": "default:standup",
            "RoomStatus": "completed",
            "StatusCallbackEvent": "room-ended",
            "Timestamp": "2026-01-01T00:00:00Z",
            "SequenceNumber": "1",
        }
        headers = {"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"}
        url = f"{self.operator}/twilio/room-events"
        async with self.http.post(url, data=form, headers=headers) as answer:
            assert answer.status in (400, 403), answer.status  # malformed or forged: refused either way
        moved = "twilio_video_operator_webhooks_rejected_total"
        await until("a rejected callback", lambda: self.metric_moved(moved))

    async def throttled_then_created(self) -> None:
        """Twilio answers 429 to every call for a while: the create is throttled and retried."""
        await self.control("POST", "faults", {"rate429": 1.0})
        try:
            await self._create_room("busy")
            await until("a throttled request", lambda: self.metric_moved("twilio_throttled_requests_total"))
            await until("a retry", lambda: self.metric_moved("twilio_outbound_api_retries_total"))
        finally:
            await self.control("POST", "faults", {})
        await until("busy to be in progress", lambda: self._in_progress("busy"), wait=60)

    async def delivery_fails(self) -> None:
        """The recorded example room, delivering to an S3 endpoint where nothing listens."""
        manifest = yaml.safe_load((self.examples / "recording" / "videoroom.yaml").read_text())
        manifest["spec"]["recording"]["compose"]["delivery"]["s3"]["endpoint"] = (
            f"http://127.0.0.1:{closed_port()}"
        )
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "recordings-s3", "namespace": NAMESPACE},
            "stringData": {"AWS_ACCESS_KEY_ID": "story-key", "AWS_SECRET_ACCESS_KEY": "story-secret-value"},
        }
        await self.playground.client.create(SECRETS, NAMESPACE, secret)
        applier = ManifestApplier(self.playground.client)
        await applier.apply(manifest)
        name = manifest["metadata"]["name"]
        await until(f"{name} to be in progress", lambda: self._in_progress(name))
        for identity in ("alice", "bob"):
            await join_or_fail(self.demo, await mint(self.demo, name, identity))
        await advance_clock(self.demo, 60)
        await self.playground.client.patch(VIDEOROOMS, NAMESPACE, name, {"spec": {"state": "Completed"}})
        await until(f"{name} to complete", lambda: self._status_is(name, "completed"))

        async def composed_and_tried() -> bool:
            await advance_clock(self.demo, 10)
            return await self.metric_moved("twilio_video_operator_deliveries_total")

        await until("a delivery attempt", composed_and_tried, wait=60)

    async def room_ended_at_twilio(self) -> None:
        """Someone completes standup in the Twilio Console: the operator confirms the room-ended callback."""
        await self.complete_at_twilio(str(((await self.room("standup")).get("status") or {}).get("sid")))
        moved = "twilio_video_operator_room_ended_confirmations_total"
        await until("a room-ended confirmation", lambda: self.metric_moved(moved))

    async def complete_at_twilio(self, sid: str) -> None:
        credentials = self.playground.credentials
        auth = aiohttp.BasicAuth(credentials["api_key"], credentials["api_secret"])
        url = f"{self.emulator}/v1/Rooms/{sid}"
        async with self.http.post(url, data={"Status": "completed"}, auth=auth) as answer:
            assert answer.status < 300, await answer.text()

    async def callback_after_deletion(self) -> None:
        """busy keeps its Twilio room when deleted (deletionPolicy Retain); once the object is gone, the
        room is completed in the Console and Twilio's room-ended callback finds no object: a late one."""
        await self.playground.client.patch(
            VIDEOROOMS, NAMESPACE, "busy", {"spec": {"deletionPolicy": "Retain"}}
        )
        sid = ((await self.room("busy")).get("status") or {}).get("sid")
        await self.playground.client.delete(VIDEOROOMS, NAMESPACE, "busy")

        async def gone() -> bool:
            return not await self.room("busy")

        await until("busy to be gone", gone)
        await self.complete_at_twilio(str(sid))
        moved = "twilio_video_operator_webhooks_late_total"
        await until("a late callback", lambda: self.metric_moved(moved))

    async def tell(self) -> None:
        # Rooms nobody is in end by themselves once the clock moves (Twilio's unused and empty room
        # timeouts), so the steps that end rooms at Twilio come before the steps that advance the clock far.
        await self.tokens_participants_and_minutes()
        await self.rejected_callback()
        await self.room_ended_at_twilio()
        await self.throttled_then_created()
        await self.callback_after_deletion()
        await self.delivery_fails()

    # -- helpers --------------------------------------------------------------------------------------

    async def _create_room(self, name: str) -> None:
        body = {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "VideoRoom",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"maxParticipants": 4},
        }
        await self.playground.client.create(VIDEOROOMS, NAMESPACE, body)

    async def _in_progress(self, name: str) -> bool:
        return await self._status_is(name, "in-progress")

    async def _status_is(self, name: str, status: str) -> bool:
        return await self.room_status(name) == status


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
