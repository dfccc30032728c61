"""``POST /twilio/room-events`` on the operator's HTTP server: every refusal, and fast acceptance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from twilio.request_validator import RequestValidator

from twilio_video_operator.http_server import HealthState, build_app
from twilio_video_operator.settings import Settings, load_settings
from twilio_video_operator.webhooks.channel import CallbackEvent
from twilio_video_operator.webhooks.hub import WebhookHub
from twilio_video_operator.webhooks.room_events import PATH, install_room_events, room_event_key

ACCOUNT = "AC" + "a" * 32
TOKEN = "operator-auth-token-0123456789ab"
PUBLIC = "https://operator.example.com"
EVENT = {
    "AccountSid": ACCOUNT,
    "RoomSid": "RM" + "1" * 32,
    "RoomName": "team:standup",
    "StatusCallbackEvent": "participant-connected",
    "ParticipantSid": "PA" + "2" * 32,
    "ParticipantIdentity": "alice",
    "SequenceNumber": "3",
    "Timestamp": "2026-03-02T12:00:00.000Z",
}


def sign(params: dict[str, str], token: str = TOKEN, url: str = PUBLIC + PATH) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        TWILIO_ACCOUNT_SID=ACCOUNT,
        TWILIO_API_KEY="SK" + "b" * 32,
        TWILIO_API_SECRET="api-secret",
        TWILIO_AUTH_TOKEN=TOKEN,
        PUBLIC_BASE_URL=PUBLIC,
    )


@pytest.fixture
def hub(settings: Settings) -> WebhookHub:
    return WebhookHub(settings)


@pytest.fixture
async def client(settings: Settings, hub: WebhookHub) -> AsyncIterator[TestClient[object, object]]:
    app = build_app(settings, HealthState(), installers=[install_room_events], hub=hub)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def post(
    client: TestClient[object, object],
    params: dict[str, str],
    signature: str | None,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str]]:
    sent = {"Content-Type": content_type, **(headers or {})}
    if signature is not None:
        sent["X-Twilio-Signature"] = signature
    async with client.post(PATH, data=urlencode(params), headers=sent) as response:
        return response.status, dict(response.headers)


def rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "twilio_video_operator_webhooks_rejected_total", {"endpoint": "room-events", "reason": reason}
    )
    return value or 0.0


async def test_signed_event_is_accepted_fast_and_queued_once(
    client: TestClient[object, object], settings: Settings, hub: WebhookHub
) -> None:
    channel = hub.channel("room-events")
    assert (await post(client, EVENT, sign(EVENT)))[0] == 204
    assert channel.depth == 1
    # Twilio retrying the same event, or a replay: accepted, not queued again.
    assert (await post(client, EVENT, sign(EVENT)))[0] == 204
    assert channel.depth == 1
    processed: list[CallbackEvent] = []

    async def sink(event: CallbackEvent) -> None:
        processed.append(event)

    channel.attach(sink)
    await channel.drained()
    await channel.detach()
    assert [(e.account_sid, e.params["ParticipantIdentity"]) for e in processed] == [(ACCOUNT, "alice")]


async def test_the_host_header_does_not_matter(client: TestClient[object, object]) -> None:
    event = {**EVENT, "SequenceNumber": "40"}
    assert (await post(client, event, sign(event), headers={"Host": "evil.example.org"}))[0] == 204
    local_url = str(client.make_url(PATH))
    spoofed = {**EVENT, "SequenceNumber": "41"}
    assert (await post(client, spoofed, sign(spoofed, url=local_url)))[0] == 403


async def test_bad_or_missing_signatures_are_refused(client: TestClient[object, object]) -> None:
    before = rejected("signature")
    assert (await post(client, EVENT, None))[0] == 403
    assert (await post(client, EVENT, "bm90IGEgc2lnbmF0dXJl"))[0] == 403
    assert (await post(client, EVENT, sign(EVENT, token="another-token-0123456789abcdef")))[0] == 403
    tampered = {**EVENT, "ParticipantIdentity": "mallory"}
    assert (await post(client, tampered, sign(EVENT)))[0] == 403
    assert rejected("signature") - before == 4


async def test_unknown_accounts_are_refused_and_tenants_accepted(
    client: TestClient[object, object], settings: Settings, hub: WebhookHub
) -> None:
    tenant = "AC" + "c" * 32
    event = {**EVENT, "AccountSid": tenant, "SequenceNumber": "50"}
    assert (await post(client, event, sign(event, token="tenant-token-0123456789abcdef")))[0] == 403
    hub.accounts.accept(("ns", "tenant"), tenant, "tenant-token-0123456789abcdef")
    assert (await post(client, event, sign(event, token="tenant-token-0123456789abcdef")))[0] == 204
    assert (await post(client, event, sign(event)))[0] == 403  # the operator's token does not sign for it


async def test_no_tenant_token_speaks_for_the_operators_account(
    client: TestClient[object, object], settings: Settings, hub: WebhookHub
) -> None:
    """A tenant Secret naming the operator's AccountSid, with a token of the tenant's choosing, changes
    nothing: the operator's callbacks still verify with the operator's token only."""
    forged = "forged-token-0123456789abcdef"
    accounts = hub.accounts
    assert not accounts.accept(("tenant-b", "creds"), settings.TWILIO_ACCOUNT_SID, forged)
    event = {**EVENT, "SequenceNumber": "51"}
    assert (await post(client, event, sign(event, token=forged)))[0] == 403
    assert (await post(client, event, sign(event)))[0] == 204


async def test_other_methods_are_405(client: TestClient[object, object]) -> None:
    for method in ("GET", "PUT", "DELETE"):
        async with client.request(method, PATH) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"


async def test_bodies_over_64_kib_are_413(client: TestClient[object, object]) -> None:
    big = b"A=" + b"x" * (64 * 1024)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
    async with client.post(PATH, data=big, headers=headers) as response:
        assert response.status == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(9):
            yield b"x" * 8192

    async with client.post(PATH, data=chunks(), headers=headers) as response:
        assert response.status == 413


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (urlencode(EVENT), "application/json"),
        ("%ff%fe=1", "application/x-www-form-urlencoded"),
        ("not a form", "application/x-www-form-urlencoded"),
        (urlencode({k: v for k, v in EVENT.items() if k != "RoomSid"}), "application/x-www-form-urlencoded"),
        (
            urlencode({k: v for k, v in EVENT.items() if k != "AccountSid"}),
            "application/x-www-form-urlencoded",
        ),
        (urlencode({**EVENT, "StatusCallbackEvent": ""}), "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_requests_are_400(
    client: TestClient[object, object], body: str, content_type: str
) -> None:
    headers = {"Content-Type": content_type, "X-Twilio-Signature": "x"}
    async with client.post(PATH, data=body.encode("latin-1"), headers=headers) as response:
        assert response.status == 400


async def test_overload_answers_503_with_retry_after(
    client: TestClient[object, object], settings: Settings, hub: WebhookHub
) -> None:
    channel = hub.channel("room-events")
    channel._capacity = 1
    first = {**EVENT, "SequenceNumber": "60"}
    second = {**EVENT, "SequenceNumber": "61"}
    assert (await post(client, first, sign(first)))[0] == 204
    status, headers = await post(client, second, sign(second))
    assert status == 503 and headers["Retry-After"] == "5"
    # Nothing remembered for the refused event: its retry is accepted once there is room.
    processed: list[str] = []

    async def sink(event: CallbackEvent) -> None:
        processed.append(event.params["SequenceNumber"])

    channel.attach(sink)
    await channel.drained()
    assert (await post(client, second, sign(second)))[0] == 204
    await channel.drained()
    await channel.detach()
    assert processed == ["60", "61"]


def test_dedupe_key() -> None:
    assert room_event_key(EVENT) == (EVENT["RoomSid"], "participant-connected", "3", EVENT["Timestamp"])
    without_sequence = {k: v for k, v in EVENT.items() if k != "SequenceNumber"}
    assert room_event_key(without_sequence)[2] == EVENT["ParticipantSid"]
