"""A scripted story against the playground that moves every series the Grafana dashboard shows, including
the counters a quiet install leaves empty: tokens minted and denied, participant-minutes, Twilio throttling
and retries (the emulator's fault injection), rejected callbacks, media deliveries (one into a real S3
bucket of SeaweedFS, one to an endpoint that refuses connections, whose failures are retried and counted),
the recording's notifications (sent, refused, looked up after a lost answer, reported undelivered),
room-ended confirmations and late callbacks. Built on the demo's clients
(:mod:`twilio_video_playground.demo`).

A labelled counter appears on ``/metrics`` with its first count already in it, and Prometheus's ``rate()``
and ``increase()`` only see what a series gained between two scraped samples. So each counter the
dashboard rates is made to count again once Prometheus has scraped it (:meth:`Story.counts_again`); a
single count would leave its panel at zero."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families
from s3_server import SeaweedS3

from twilio_video_operator.kube import COMPOSITIONS, SECRETS, SIGNINGKEYROTATIONS, VIDEOROOMS
from twilio_video_operator.logs import register_secret
from twilio_video_playground.demo.clients import advance_clock, ask_token, join_or_fail, leave, mint
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.joining import grant_token_access
from twilio_video_playground.playground import ManifestApplier, Playground

NAMESPACE = "default"
WAIT = 30.0
POLL = 0.2
#: Scrape intervals to wait so that Prometheus holds a sample of every series that exists now.
SCRAPES_TO_SETTLE = 2.5
RECORDED_ROOM = "board-meeting"  # examples/recording/videoroom.yaml, delivered into SeaweedFS
UNREACHABLE_ROOM = "board-meeting-unreachable"  # the same room, delivering to a closed port
S3_SECRET = "recordings-s3"
PHONE = "+15551230301"
UNDELIVERED_PHONE = "+15551230302"  # the emulator reports messages to it undelivered
STUDIO_CONTACT = "+15551230303"
NOTIFICATION_COUNTERS = (
    "twilio_video_operator_notifications_sent_total",
    "twilio_video_operator_notifications_failed_total",
    "twilio_video_operator_notification_lookups_total",
    "twilio_video_operator_notification_delivery_failures_total",
)
SIGNING_KEYS = "video-keys"  # examples/signingkeyrotation.yaml: it signs standup's tokens

#: One series of a scrape: its sample name and labels.
SeriesKey = tuple[str, frozenset[tuple[str, str]]]


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
        self,
        playground: Playground,
        http: aiohttp.ClientSession,
        examples: Path,
        state: Path,
        *,
        s3: SeaweedS3,
        scrape_interval: float,
    ) -> None:
        self.playground = playground
        self.http = http
        self.demo = Demo(playground, http, examples, state, WAIT)
        self.examples = examples
        self.s3 = s3
        self.scrape_interval = scrape_interval

    @property
    def emulator(self) -> str:
        return self.playground.credentials["url"]

    @property
    def operator(self) -> str:
        assert self.playground.operator_url is not None
        return self.playground.operator_url

    # -- reading /metrics -----------------------------------------------------------------------------

    async def series(self, name: str) -> dict[SeriesKey, float]:
        """The value of every series of the sample ``name`` (``..._total`` for a counter) on /metrics."""
        async with self.http.get(f"{self.operator}/metrics") as answer:
            text = await answer.text()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    async def metric_moved(self, name: str, **labels: str) -> bool:
        """Whether a series of ``name`` (with ``labels`` among its labels) is above zero."""
        wanted = set(labels.items())
        return any(
            wanted <= labelset and value > 0 for (_, labelset), value in (await self.series(name)).items()
        )

    async def counts_again(self, name: str, act: Callable[[], Awaitable[None]] | None = None) -> None:
        """Wait until a series of ``name`` has been scraped and then counts again: ``act`` makes it count
        once a series has been there long enough to be scraped; without ``act`` the operator counts by
        itself (while it retries). A series that appears later only counts once it was scraped too."""
        await until(f"{name} to count", lambda: self.metric_moved(name))
        settle = SCRAPES_TO_SETTLE * self.scrape_interval
        first_seen: dict[SeriesKey, float] = {}
        baseline: dict[SeriesKey, float] = {}  # the value once scraped: no sample Prometheus holds is higher
        pending = act

        async def rose() -> bool:
            nonlocal pending
            now = time.monotonic()
            for key, value in (await self.series(name)).items():
                first_seen.setdefault(key, now)
                if key in baseline:
                    if value > baseline[key]:
                        return True
                elif now - first_seen[key] >= settle:
                    baseline[key] = value
            if pending is not None and baseline:
                act_now, pending = pending, None
                await act_now()
            return False

        await until(f"{name} to count again", rose)

    # -- the story ------------------------------------------------------------------------------------

    async def room(self, name: str) -> dict[str, Any]:
        return await self.playground.client.get(VIDEOROOMS, NAMESPACE, name) or {}

    async def room_status(self, name: str) -> str | None:
        return ((await self.room(name)).get("status") or {}).get("roomStatus")

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, f"{self.emulator}/_emulator/{path}", json=body) as answer:
            assert answer.status < 400, (path, answer.status, await answer.text())
            text = await answer.text()
            return yaml.safe_load(text) if text else None

    async def tokens_participants_and_minutes(self) -> None:
        """Tokens minted and denied, twice each; two participants join, stay and leave a minute apart."""
        grant_token_access(self.demo)
        await until("standup to be in progress", lambda: self._in_progress("standup"))
        await until("the signing key of standup's tokens", self._active_signing_key)
        alice = await mint(self.demo, "standup", "alice")
        minted: list[Any] = []

        async def mint_bob() -> None:
            minted.append(await mint(self.demo, "standup", "bob"))

        await self.counts_again("twilio_video_operator_access_tokens_minted_total", mint_bob)

        async def refused() -> None:
            status, _ = await ask_token(self.demo, "no-such-room", "mallory")
            assert status >= 400

        await refused()
        await self.counts_again("twilio_video_operator_access_token_requests_denied_total", refused)

        [bob] = minted
        joined = {who.identity: await join_or_fail(self.demo, who) for who in (alice, bob)}
        await advance_clock(self.demo, 60)
        await leave(self.demo, alice.room_name, joined["alice"])

        async def bob_leaves() -> None:
            await advance_clock(self.demo, 60)
            await leave(self.demo, bob.room_name, joined["bob"])

        await self.counts_again("twilio_video_operator_participant_seconds_total", bob_leaves)

    async def rejected_callback(self) -> None:
        """Forged room callbacks (no valid X-Twilio-Signature) are refused and counted."""
        await self.forge_callback()
        await self.counts_again("twilio_video_operator_webhooks_rejected_total", self.forge_callback)

    async def forge_callback(self) -> None:
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

    async def throttled_then_created(self) -> None:
        """Twilio answers 429 to every call for a while: the create is throttled and retried, again and
        again, until Prometheus has seen both counters rise."""
        await self.control("POST", "faults", {"rate429": 1.0})
        try:
            await self._create_room("busy")
            await self.counts_again("twilio_throttled_requests_total")
            await self.counts_again("twilio_outbound_api_retries_total")
        finally:
            await self.control("POST", "faults", {})
        await until("busy to be in progress", lambda: self._in_progress("busy"), wait=60)

    async def deliveries(self) -> None:
        """The recorded example room twice: one copy delivers into a bucket of the S3 server, the other
        to an endpoint where nothing listens, which fails and is retried. The delivered object in the
        bucket has the size and checksum the Composition's status reports. The delivered recording is
        announced (:meth:`notifications`) while Twilio loses the answers of successful POSTs."""
        bucket = await asyncio.to_thread(self.s3.create_bucket, "recordings")
        await self._s3_credentials()
        rooms = {
            RECORDED_ROOM: self._recorded_room(RECORDED_ROOM, bucket, self.s3.endpoint),
            UNREACHABLE_ROOM: self._recorded_room(
                UNREACHABLE_ROOM, bucket, f"http://127.0.0.1:{closed_port()}"
            ),
        }
        rooms[RECORDED_ROOM]["spec"]["notifications"] = await self._notifications()
        applier = ManifestApplier(self.playground.client)
        for manifest in rooms.values():
            await applier.apply(manifest)
        for name in rooms:
            await until(f"{name} to be in progress", partial(self._in_progress, name))
            for identity in ("alice", "bob"):
                await join_or_fail(self.demo, await mint(self.demo, name, identity))
        await advance_clock(self.demo, 60)
        for name in rooms:
            await self.playground.client.patch(VIDEOROOMS, NAMESPACE, name, {"spec": {"state": "Completed"}})
            await until(f"{name} to complete", partial(self._status_is, name, "completed"))
            await until(
                f"{name}'s composition at Twilio", partial(self._composition_sid, f"{name}-recording")
            )

        async def composed_and_delivered() -> bool:
            await advance_clock(self.demo, 10)
            deliveries = "twilio_video_operator_deliveries_total"
            return await self.metric_moved(deliveries, outcome="Uploaded") and await self.metric_moved(
                deliveries, outcome="StorageUnavailable"
            )

        # From here on the operator's only Twilio POSTs are the notifications' (the compositions exist).
        await self.control("POST", "faults", {"rateLostResponse": 1.0, "lostResponseMode": "5xx"})
        try:
            await until("a delivery and a failed one", composed_and_delivered, wait=60)
            await until("messages sent with their answers lost", self._messages_pending)
        finally:
            await self.control("POST", "faults", {})
        await self._check_delivered_object(bucket, f"{RECORDED_ROOM}-recording")
        # The failed delivery is retried after a backoff: its outcome counts again.
        await self.counts_again("twilio_video_operator_deliveries_total")
        for counter in NOTIFICATION_COUNTERS:
            await until(counter, partial(self.metric_moved, counter))

    async def _notifications(self) -> dict[str, Any]:
        """The recording's link for two phones and a Studio contact: a Messaging Service of the account
        sends to the phones, one of which Twilio reports undelivered; the Studio Flow does not exist, so
        Twilio refuses that notification for good. Both messages are sent while their answers get lost,
        so the operator looks them up before sending again (and finds them)."""
        credentials = self.playground.credentials
        auth = aiohttp.encode_basic_auth(credentials["api_key"], credentials["api_secret"])
        url = f"{self.emulator}/v1/Services"
        async with self.http.post(
            url, data={"FriendlyName": "story"}, headers={"Authorization": auth}
        ) as answer:
            assert answer.status == 201, await answer.text()
            service = await answer.json()
        await self.control("POST", "messages/failures", {"to": UNDELIVERED_PHONE, "status": "undelivered"})
        return {
            "title": "Board meeting",
            "events": ["recordingAvailable"],
            "messaging": {"serviceSid": service["sid"]},
            "studio": {"flowSid": "FW" + "0" * 32, "from": "+15005550006"},
            "recipients": [{"phone": PHONE}, {"phone": UNDELIVERED_PHONE}, {"studio": STUDIO_CONTACT}],
        }

    async def _messages_pending(self) -> bool:
        """Both text messages recorded Pending after an attempt whose answer was lost."""
        body = await self.playground.client.get(COMPOSITIONS, NAMESPACE, f"{RECORDED_ROOM}-recording") or {}
        records = (((body.get("status") or {}).get("notifications") or {}).get("records") or {}).values()
        texts = [record for record in records if record.get("channel") == "sms"]
        return len(texts) == 2 and all(
            record.get("state") == "Pending" and (record.get("attempts") or 0) >= 1 for record in texts
        )

    async def room_ended_at_twilio(self) -> None:
        """Someone completes standup in the Twilio Console: the operator confirms the room-ended callback."""
        await self.complete_at_twilio(str(((await self.room("standup")).get("status") or {}).get("sid")))
        moved = "twilio_video_operator_room_ended_confirmations_total"
        await until("a room-ended confirmation", lambda: self.metric_moved(moved))

    async def complete_at_twilio(self, sid: str) -> None:
        credentials = self.playground.credentials
        auth = aiohttp.encode_basic_auth(credentials["api_key"], credentials["api_secret"])
        url = f"{self.emulator}/v1/Rooms/{sid}"
        async with self.http.post(
            url, data={"Status": "completed"}, headers={"Authorization": auth}
        ) as answer:
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
        await self.deliveries()

    # -- helpers --------------------------------------------------------------------------------------

    async def _create_room(self, name: str) -> None:
        body = {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "VideoRoom",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"maxParticipants": 4},
        }
        await self.playground.client.create(VIDEOROOMS, NAMESPACE, body)

    def _recorded_room(self, name: str, bucket: str, endpoint: str) -> dict[str, Any]:
        manifest: dict[str, Any] = yaml.safe_load(
            (self.examples / "recording" / "videoroom.yaml").read_text()
        )
        manifest["metadata"]["name"] = name
        target = manifest["spec"]["recording"]["compose"]["delivery"]["s3"]
        target.update(bucket=bucket, endpoint=endpoint, region=self.s3.region)
        target["credentialsRef"]["name"] = S3_SECRET
        return manifest

    async def _s3_credentials(self) -> None:
        """The S3 server's writer key (may write, not create buckets) in the Secret both rooms name."""
        writer = self.s3.writer
        register_secret(writer.secret_key)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": S3_SECRET, "namespace": NAMESPACE},
            "stringData": {
                "AWS_ACCESS_KEY_ID": writer.access_key,
                "AWS_SECRET_ACCESS_KEY": writer.secret_key,
            },
        }
        await self.playground.client.create(SECRETS, NAMESPACE, secret)

    async def _check_delivered_object(self, bucket: str, composition: str) -> None:
        async def delivery() -> dict[str, Any]:
            body = await self.playground.client.get(COMPOSITIONS, NAMESPACE, composition) or {}
            return dict((body.get("status") or {}).get("delivery") or {})

        reported = await until(f"{composition} to report its delivery", delivery)
        key = str(reported.get("url", "")).removeprefix(f"{self.s3.endpoint}/{bucket}/")
        data = await asyncio.to_thread(self.s3.read_object, bucket, key)
        assert data, f"s3://{bucket}/{key} is empty"
        stored = (len(data), hashlib.sha256(data).hexdigest())
        assert stored == (reported.get("bytes"), reported.get("sha256")), (stored, reported)

    async def _active_signing_key(self) -> bool:
        body = await self.playground.client.get(SIGNINGKEYROTATIONS, NAMESPACE, SIGNING_KEYS) or {}
        return bool((body.get("status") or {}).get("activeKeySid"))

    async def _composition_sid(self, name: str) -> bool:
        body = await self.playground.client.get(COMPOSITIONS, NAMESPACE, name) or {}
        return bool((body.get("status") or {}).get("sid"))

    async def _in_progress(self, name: str) -> bool:
        return await self._status_is(name, "in-progress")

    async def _status_is(self, name: str, status: str) -> bool:
        return await self.room_status(name) == status


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
