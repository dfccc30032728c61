"""The gateway against a small local fake of Twilio that answers with scripted responses."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import logging
import pkgutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from pydantic import SecretStr

from local_http import serve_locally
from twilio_video_operator.gateway import (
    ALL_OPERATIONS,
    AuthError,
    CircuitOpenError,
    CircuitSettings,
    CredentialSet,
    GatewayConfig,
    NotFoundError,
    Operation,
    RetryableError,
    RetryPolicy,
    TerminalError,
    ThrottledError,
    TwilioGateway,
)
from twilio_video_operator.logs import JsonFormatter, RedactingFilter
from twilio_video_operator.settings import Settings

AC = "AC" + "1" * 32
SK = "SK" + "2" * 32
SECRET = "fakeApiSecretValue00000000000000"
TOKEN = "fakeAuthTokenValue00000000000000"
RM = "RM" + "3" * 32
CJ = "CJ" + "4" * 32


def room_body(sid: str = RM, unique_name: str = "ns:room", status: str = "in-progress") -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": AC,
        "status": status,
        "unique_name": unique_name,
        "type": "group",
        "max_participants": 25,
        "max_participant_duration": 14400,
        "date_created": "2026-03-01T10:00:00Z",
        "date_updated": "2026-03-01T10:00:00Z",
        "end_time": "2026-03-01T11:00:00Z" if status == "completed" else None,
        "duration": 3600 if status == "completed" else None,
        "status_callback": "https://operator.example/twilio/room-events",
        "status_callback_method": "POST",
        "video_codecs": ["VP8", "H264"],
        "media_region": "us1",
        "audio_only": False,
        "record_participants_on_connect": True,
        "empty_room_timeout": 5,
        "unused_room_timeout": 5,
        "large_room": False,
        "url": f"https://video.twilio.com/v1/Rooms/{sid}",
        "links": {},
    }


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    form: dict[str, list[str]]
    auth_user: str | None


class FakeTwilio:
    """Answers ``(method, path)`` with scripted replies; the last reply of a script repeats."""

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self.scripts[(method, path)] = list(replies)

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.seen if seen.method == method and seen.path == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = await request.post() if request.method == "POST" else {}
        values: dict[str, list[str]] = {}
        for key in form:
            values[key] = [str(value) for value in form.getall(key)]  # type: ignore[attr-defined]
        self.seen.append(Seen(request.method, request.path, values, _basic_user(request)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            replies = self.scripts.get((request.method, request.path))
            if not replies:
                return web.json_response(error_body(404, 20404, "not found"), status=404)
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.drop:
                assert request.transport is not None
                request.transport.close()
                return web.Response()
            if reply.body is None:
                return web.Response(status=reply.status, headers=reply.headers)
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner, self.url = await serve_locally(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _basic_user(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    if not value.startswith("Basic "):
        return None
    return base64.b64decode(value[6:]).decode().split(":", 1)[0]


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class Sleeps:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def creds() -> CredentialSet:
    return CredentialSet(AC, SK, SecretStr(SECRET), SecretStr(TOKEN))


GatewayFactory = Callable[..., TwilioGateway]


@pytest.fixture
async def make_gateway(fake: FakeTwilio, sleeps: Sleeps) -> AsyncIterator[GatewayFactory]:
    made: list[TwilioGateway] = []

    def factory(**overrides: Any) -> TwilioGateway:
        settings: dict[str, Any] = {
            "base_url": fake.url,
            "request_timeout": 2.0,
            "retry": RetryPolicy(max_attempts=4, total_budget=30.0, base_delay=0.05, max_delay=0.4),
            "circuit": CircuitSettings(failure_threshold=50, cooldown=30.0),
        }
        settings.update(overrides)
        gateway = TwilioGateway(GatewayConfig(**settings), sleep=sleeps)
        made.append(gateway)
        return gateway

    yield factory
    for gateway in made:
        await gateway.close()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Metrics:
    """Deltas of the gateway's metrics between construction and each read."""

    def __init__(self) -> None:
        self._start: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def mark(self, name: str, **labels: str) -> None:
        self._start[(name, tuple(sorted(labels.items())))] = sample(name, **labels)

    def delta(self, name: str, **labels: str) -> float:
        return sample(name, **labels) - self._start[(name, tuple(sorted(labels.items())))]


async def test_429_with_retry_after_then_created(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    fake.script(
        "POST",
        "/v1/Rooms",
        Reply(429, error_body(429, 20429, "Too Many Requests"), {"Retry-After": "2"}),
        Reply(201, room_body()),
    )
    metrics = Metrics()
    requests = (
        "twilio_outbound_api_requests_total",
        {"service": "video", "op_type": "create", "op_id": "CreateRoom"},
    )
    metrics.mark(requests[0], **requests[1])
    metrics.mark("twilio_throttled_requests_total", op_id="CreateRoom")
    metrics.mark(
        "twilio_outbound_api_requests_error_total", service="video", op_id="CreateRoom", status_code="429"
    )
    metrics.mark("twilio_outbound_api_retries_total", op_id="CreateRoom", reason="throttled")
    metrics.mark("twilio_outbound_api_request_duration_seconds_count", op_id="CreateRoom")

    room = await make_gateway().api(creds).create_room(unique_name="ns:room", type="group")

    assert room.sid == RM and room.in_progress
    assert fake.count("POST", "/v1/Rooms") == 2
    assert len(sleeps.delays) == 1
    assert 2.0 <= sleeps.delays[0] <= 2.05
    assert metrics.delta(requests[0], **requests[1]) == 2
    assert metrics.delta("twilio_throttled_requests_total", op_id="CreateRoom") == 1
    assert (
        metrics.delta(
            "twilio_outbound_api_requests_error_total", service="video", op_id="CreateRoom", status_code="429"
        )
        == 1
    )
    assert metrics.delta("twilio_outbound_api_retries_total", op_id="CreateRoom", reason="throttled") == 1
    assert metrics.delta("twilio_outbound_api_request_duration_seconds_count", op_id="CreateRoom") == 2


async def test_retry_after_beyond_budget_goes_to_the_caller(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    fake.script(
        "GET",
        f"/v1/Rooms/{RM}",
        Reply(429, error_body(429, 20429, "Too Many Requests"), {"Retry-After": "60"}),
    )
    with pytest.raises(ThrottledError) as raised:
        await make_gateway().api(creds).fetch_room(RM)
    assert raised.value.retry_after == 60.0
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 1
    assert sleeps.delays == []


async def test_time_queued_for_a_slot_does_not_use_up_the_retry_budget(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    other = "RM" + "4" * 32
    fake.script("GET", f"/v1/Rooms/{other}", Reply(200, room_body(other), delay=0.6))  # holds the slot
    fake.script(
        "GET",
        f"/v1/Rooms/{RM}",
        Reply(429, error_body(429, 20429, "Too Many Requests"), {"Retry-After": "0"}),
        Reply(200, room_body()),
    )
    policy = RetryPolicy(max_attempts=4, total_budget=0.3, base_delay=0.05, max_delay=0.4)
    api = make_gateway(max_concurrency=1, retry=policy).api(creds)
    holder = asyncio.create_task(api.fetch_room(other))
    await asyncio.sleep(0.05)  # the slot is taken: the next fetch queues for about 0.55 s

    room = await api.fetch_room(RM)

    assert room is not None and room.sid == RM  # retried although 0.55 s > the 0.3 s budget went by
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 2
    assert await holder is not None


async def test_5xx_then_success_on_a_read(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    failure = Reply(500, error_body(500, 20500, "Internal Server Error"))
    fake.script("GET", f"/v1/Rooms/{RM}", failure, failure, failure, Reply(200, room_body()))
    metrics = Metrics()
    metrics.mark(
        "twilio_outbound_api_requests_error_total", service="video", op_id="FetchRoom", status_code="500"
    )

    room = await make_gateway().api(creds).fetch_room(RM)

    assert room is not None and room.sid == RM
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 4
    assert len(sleeps.delays) == 3
    # Full jitter under a doubling ceiling (0.05, 0.1, 0.2).
    for attempt, delay in enumerate(sleeps.delays, start=1):
        assert 0.0 <= delay <= 0.05 * 2 ** (attempt - 1)
    assert (
        metrics.delta(
            "twilio_outbound_api_requests_error_total", service="video", op_id="FetchRoom", status_code="500"
        )
        == 3
    )


async def test_5xx_beyond_max_attempts_raises_retryable(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    fake.script(
        "GET",
        f"/v1/Rooms/{RM}",
        Reply(503, error_body(503, 20503, "Service Unavailable"), {"Twilio-Request-Id": "RQabc"}),
    )
    with pytest.raises(RetryableError) as raised:
        await make_gateway().api(creds).fetch_room(RM)
    error = raised.value
    assert (error.status, error.code, error.request_id, error.maybe_applied) == (503, 20503, "RQabc", False)
    assert error.operation == "FetchRoom"
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 4
    assert len(sleeps.delays) == 3


async def test_auth_failure_is_not_retried(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    fake.script("POST", "/v1/Rooms", Reply(401, error_body(401, 20003, "Authenticate")))
    with pytest.raises(AuthError) as raised:
        await make_gateway().api(creds).create_room(unique_name="ns:room")
    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert fake.count("POST", "/v1/Rooms") == 1
    assert sleeps.delays == []


async def test_fetch_404_is_none(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script(
        "GET", "/v1/Rooms/ns:gone", Reply(404, error_body(404, 20404, "The requested resource was not found"))
    )
    assert await make_gateway().api(creds).fetch_room("ns:gone") is None
    assert fake.count("GET", "/v1/Rooms/ns:gone") == 1


async def test_room_exists_is_terminal_with_code(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    fake.script("POST", "/v1/Rooms", Reply(400, error_body(400, 53113, "Room exists")))
    with pytest.raises(TerminalError) as raised:
        await make_gateway().api(creds).create_room(unique_name="ns:room")
    assert (raised.value.status, raised.value.code, raised.value.message) == (400, 53113, "Room exists")
    # The SDK exception (unredacted server text) is not chained into tracebacks.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert fake.count("POST", "/v1/Rooms") == 1
    assert sleeps.delays == []


async def test_connection_drop_on_create_is_not_retried_blindly(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    fake.script("POST", "/v1/Rooms", Reply(drop=True), Reply(201, room_body()))
    metrics = Metrics()
    metrics.mark(
        "twilio_outbound_api_requests_error_total", service="video", op_id="CreateRoom", status_code="network"
    )
    with pytest.raises(RetryableError) as raised:
        await make_gateway().api(creds).create_room(unique_name="ns:room")
    assert raised.value.maybe_applied is True
    assert raised.value.status is None
    assert raised.value.__cause__ is not None  # the network error stays visible for debugging
    assert fake.count("POST", "/v1/Rooms") == 1
    assert sleeps.delays == []
    assert (
        metrics.delta(
            "twilio_outbound_api_requests_error_total",
            service="video",
            op_id="CreateRoom",
            status_code="network",
        )
        == 1
    )


async def test_server_error_on_create_is_maybe_applied(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("POST", "/v1/Compositions", Reply(500, error_body(500, 20500, "oops")))
    with pytest.raises(RetryableError) as raised:
        await make_gateway().api(creds).create_composition(room_sid=RM, audio_sources=["*"])
    assert raised.value.maybe_applied is True
    assert fake.count("POST", "/v1/Compositions") == 1


async def test_connection_drop_on_a_read_is_retried(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    # aiohttp itself resends an idempotent request once when a kept-alive connection drops, so drop twice
    # to be sure the gateway's own retry is exercised.
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(drop=True), Reply(drop=True), Reply(200, room_body()))
    room = await make_gateway().api(creds).fetch_room(RM)
    assert room is not None
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 3
    assert 1 <= len(sleeps.delays) <= 2


async def test_timeout_on_create_is_maybe_applied(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("POST", "/v1/Rooms", Reply(201, room_body(), delay=0.4))
    metrics = Metrics()
    metrics.mark(
        "twilio_outbound_api_requests_error_total", service="video", op_id="CreateRoom", status_code="timeout"
    )
    with pytest.raises(RetryableError) as raised:
        await make_gateway(request_timeout=0.1).api(creds).create_room(unique_name="ns:room")
    assert raised.value.maybe_applied is True
    assert fake.count("POST", "/v1/Rooms") == 1
    assert (
        metrics.delta(
            "twilio_outbound_api_requests_error_total",
            service="video",
            op_id="CreateRoom",
            status_code="timeout",
        )
        == 1
    )


async def test_concurrency_cap_is_never_exceeded(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(200, room_body(), delay=0.05))
    gateway = make_gateway(max_concurrency=3)
    other = CredentialSet("AC" + "9" * 32, auth_token=SecretStr(TOKEN))
    calls = [gateway.api(creds if i % 2 else other).fetch_room(RM) for i in range(12)]
    rooms = await asyncio.wait_for(asyncio.gather(*calls), timeout=10)
    assert all(room is not None for room in rooms)
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 12
    assert fake.max_in_flight == 3
    assert sample("twilio_inflight_requests") == 0


async def test_list_page_errors_are_classified_and_retried(
    fake: FakeTwilio, make_gateway: GatewayFactory, sleeps: Sleeps, creds: CredentialSet
) -> None:
    page = {
        "rooms": [room_body(), room_body(sid="RM" + "5" * 32, unique_name="ns:other")],
        "meta": {"key": "rooms", "page": 0, "page_size": 20, "next_page_url": None},
    }
    fake.script(
        "GET",
        "/v1/Rooms",
        Reply(429, error_body(429, 20429, "Too Many Requests"), {"Retry-After": "1"}),
        Reply(200, page),
    )
    room = await make_gateway().api(creds).find_in_progress_room("ns:room")
    assert room is not None and room.sid == RM
    assert fake.count("GET", "/v1/Rooms") == 2
    assert len(sleeps.delays) == 1 and sleeps.delays[0] >= 1.0

    fake.script("GET", "/v1/Rooms", Reply(400, error_body(400, 20001, "Invalid PageSize")))
    with pytest.raises(TerminalError) as raised:
        await make_gateway().api(creds).find_in_progress_room("ns:room")
    assert (raised.value.code, raised.value.operation) == (20001, "ListRoom")


async def test_circuit_opens_after_repeated_failures(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(500, error_body(500, 20500, "down")))
    gateway = make_gateway(
        retry=RetryPolicy(max_attempts=2, base_delay=0.0, max_delay=0.0),
        circuit=CircuitSettings(failure_threshold=3, cooldown=30.0),
    )
    api = gateway.api(creds)
    with pytest.raises(RetryableError):
        await api.fetch_room(RM)  # failures 1 and 2
    with pytest.raises(RetryableError):
        await api.fetch_room(RM)  # failure 3 opens the circuit; no further attempt
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 3
    assert sample("twilio_circuit_state", service="video") == 2
    with pytest.raises(CircuitOpenError) as raised:
        await api.fetch_room(RM)
    assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 30
    assert fake.count("GET", f"/v1/Rooms/{RM}") == 3
    # The Keys API is a different service with its own breaker.
    fake.script(
        "GET", f"/2010-04-01/Accounts/{AC}/Keys/{SK}.json", Reply(404, error_body(404, 20404, "nope"))
    )
    assert await api.fetch_key(SK) is None


async def test_rest_calls_use_the_api_key_and_keys_calls_the_auth_token(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(200, room_body()))
    fake.script(
        "POST",
        f"/2010-04-01/Accounts/{AC}/Keys.json",
        Reply(
            201,
            {
                "sid": "SK" + "7" * 32,
                "friendly_name": "rotation",
                "secret": "newKeySecret",
                "date_created": "Mon, 13 Jun 2016 22:50:08 +0000",
                "date_updated": "Mon, 13 Jun 2016 22:50:08 +0000",
            },
        ),
    )
    api = make_gateway().api(creds)
    await api.fetch_room(RM)
    key = await api.create_key("rotation")
    assert key.secret.get_secret_value() == "newKeySecret"
    assert "newKeySecret" not in repr(key)
    assert key.date_created is not None and key.date_created.year == 2016
    users = {seen.path: seen.auth_user for seen in fake.seen}
    assert users[f"/v1/Rooms/{RM}"] == SK
    assert users[f"/2010-04-01/Accounts/{AC}/Keys.json"] == AC


async def test_create_room_sends_every_parameter_as_twilio_expects(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("POST", "/v1/Rooms", Reply(201, room_body()))
    await (
        make_gateway()
        .api(creds)
        .create_room(
            unique_name="ns:room",
            type="group",
            status_callback="https://operator.example/twilio/room-events",
            max_participants=10,
            empty_room_timeout=3,
            record_participants_on_connect=True,
            recording_rules=[{"type": "exclude", "all": True}],
            video_codecs=["VP8", "H264"],
            audio_only=False,
        )
    )
    form = fake.seen[-1].form
    assert form["UniqueName"] == ["ns:room"]
    assert form["Type"] == ["group"]
    assert form["MaxParticipants"] == ["10"]
    assert form["EmptyRoomTimeout"] == ["3"]
    assert form["RecordParticipantsOnConnect"] == ["true"]
    assert form["AudioOnly"] == ["false"]
    assert form["VideoCodecs"] == ["VP8", "H264"]
    assert form["RecordingRules"] == ['[{"type": "exclude", "all": true}]']
    assert "MediaRegion" not in form and "UnusedRoomTimeout" not in form


async def test_complete_room_is_idempotent(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("POST", f"/v1/Rooms/{RM}", Reply(400, error_body(400, 53118, "Room completed")))
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(200, room_body(status="completed")))
    room = await make_gateway().api(creds).complete_room(RM)
    assert room.status == "completed" and room.duration == 3600
    assert fake.seen[0].form == {"Status": ["completed"]}


async def test_disconnect_of_a_gone_participant_is_none(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("POST", f"/v1/Rooms/{RM}/Participants/alice", Reply(404, error_body(404, 20404, "not found")))
    assert await make_gateway().api(creds).disconnect_participant(RM, "alice") is None


async def test_recording_rules_are_sent_as_one_json_array_and_retried_like_an_update(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    rules = [{"type": "exclude", "all": True}, {"type": "include", "kind": "audio"}]
    answer = {"room_sid": RM, "rules": rules, "date_created": None, "date_updated": None}
    fake.script(
        "POST",
        f"/v1/Rooms/{RM}/RecordingRules",
        Reply(503, error_body(503, 20500, "down")),
        Reply(200, answer),
    )
    held = await make_gateway().api(creds).update_recording_rules(RM, rules)
    assert held == rules
    assert [request.form for request in fake.seen] == [{"Rules": [json.dumps(rules)]}] * 2
    fake.script(
        "POST",
        f"/v1/Rooms/{RM}/RecordingRules",
        Reply(400, error_body(400, 53120, "Invalid Recording Rule(s)")),
    )
    with pytest.raises(TerminalError) as raised:
        await make_gateway().api(creds).update_recording_rules(RM, [{"type": "include"}])
    assert raised.value.code == 53120 and raised.value.operation == "UpdateRoomRecordingRule"


async def test_deletes_tolerate_404(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("DELETE", f"/v1/Compositions/{CJ}", Reply(204), Reply(404, error_body(404, 20404, "gone")))
    api = make_gateway().api(creds)
    assert await api.delete_composition(CJ) is True
    assert await api.delete_composition(CJ) is False


@pytest.mark.parametrize(
    "reply",
    [
        Reply(302, None, {"Location": "https://media.example/c.mp4?sig=1"}),
        Reply(200, {"redirect_to": "https://media.example/c.mp4?sig=1"}),
    ],
)
async def test_composition_media_url_does_not_follow_the_redirect(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet, reply: Reply
) -> None:
    fake.script("GET", f"/v1/Compositions/{CJ}/Media", reply)
    url = await make_gateway().api(creds).composition_media_url(CJ)
    assert url == "https://media.example/c.mp4?sig=1"
    assert fake.count("GET", f"/v1/Compositions/{CJ}/Media") == 1


async def test_composition_media_url_errors(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("GET", f"/v1/Compositions/{CJ}/Media", Reply(404, error_body(404, 20404, "no media")))
    with pytest.raises(NotFoundError) as raised:
        await make_gateway().api(creds).composition_media_url(CJ)
    assert raised.value.operation == "FetchCompositionMedia"


async def test_secrets_never_reach_errors_or_logs(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(
        "POST",
        "/v1/Rooms",
        Reply(503, error_body(503, 20503, "busy")),
        Reply(400, error_body(400, 20001, f"bad request echoing {SECRET} and {TOKEN}")),
    )
    caplog.set_level(logging.DEBUG)
    gateway = make_gateway()
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(503, error_body(503, 20503, "busy")), Reply(200, room_body()))
    await gateway.api(creds).fetch_room(RM)
    with pytest.raises(RetryableError):
        await gateway.api(creds).create_room(unique_name="ns:room")
    with pytest.raises(TerminalError) as raised:
        await gateway.api(creds).create_room(unique_name="ns:room")
    assert "busy" not in raised.value.message
    assert "bad request echoing" in raised.value.message
    texts = [str(raised.value), repr(raised.value), caplog.text]
    texts += [str(getattr(record, key, "")) for record in caplog.records for key in vars(record)]
    for text in texts:
        assert SECRET not in text
        assert TOKEN not in text
        assert base64.b64encode(f"{SK}:{SECRET}".encode()).decode() not in text
    retry_logs = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert retry_logs and getattr(retry_logs[0], "operation", None) == "FetchRoom"
    debug_logs = [
        record for record in caplog.records if record.levelno == logging.DEBUG and "twilio" in record.name
    ]
    assert any(getattr(record, "http_status", None) == 200 for record in debug_logs)


def rq(digit: str) -> dict[str, str]:
    return {"Twilio-Request-Id": "RQ" + digit * 32}


async def test_mutations_and_failures_are_logged_with_the_twilio_request_id(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(
        "POST",
        "/v1/Rooms",
        Reply(201, room_body(), rq("a")),
        Reply(400, error_body(400, 53113, "exists"), rq("b")),
    )
    fake.script(
        "GET",
        f"/v1/Rooms/{RM}",
        Reply(200, room_body(), rq("c")),
        Reply(404, error_body(404, 20404, "gone"), rq("d")),
    )
    fake.script("POST", f"/v1/Rooms/{RM}", Reply(202, room_body(status="completed"), rq("e")))
    fake.script("DELETE", f"/v1/Compositions/{CJ}", Reply(204, None, rq("f")))
    fake.script("GET", f"/v1/Compositions/{CJ}", Reply(401, error_body(401, 20003, "Authenticate"), rq("0")))
    fake.script("POST", "/v1/Compositions", Reply(503, error_body(503, 20503, "busy"), rq("1")))
    caplog.set_level(logging.INFO, logger="twilio_video_operator.gateway")
    api = make_gateway().api(creds)

    await api.create_room(unique_name="ns:room")
    await api.fetch_room(RM)  # a read that succeeds: nothing at INFO
    await api.complete_room(RM)
    assert await api.delete_composition(CJ) is True
    with pytest.raises(TerminalError):
        await api.create_room(unique_name="ns:room")
    assert await api.fetch_room(RM) is None
    with pytest.raises(AuthError):
        await api.fetch_composition(CJ)
    with pytest.raises(RetryableError):
        await api.create_composition(room_sid=RM, audio_sources=["*"])

    records = [r for r in caplog.records if r.name == "twilio_video_operator.gateway"]
    logged = [
        (
            r.levelname,
            getattr(r, "operation", None),
            getattr(r, "http_status", None),
            getattr(r, "twilio_request_id", None),
        )
        for r in records
    ]
    assert logged == [
        ("INFO", "CreateRoom", 201, "RQ" + "a" * 32),
        ("INFO", "UpdateRoom", 202, "RQ" + "e" * 32),
        ("INFO", "DeleteComposition", 204, "RQ" + "f" * 32),
        ("INFO", "CreateRoom", 400, "RQ" + "b" * 32),
        ("INFO", "FetchRoom", 404, "RQ" + "d" * 32),
        ("WARNING", "FetchComposition", 401, "RQ" + "0" * 32),
        ("WARNING", "CreateComposition", 503, "RQ" + "1" * 32),
    ]
    assert getattr(records[3], "twilio_code", None) == 53113
    assert getattr(records[3], "error_class", None) == "TerminalError"
    assert getattr(records[0], "account_sid", None) == AC
    assert "RQ" + "a" * 32 in records[0].getMessage()

    # As the operator writes them: JSON lines with a twilio_request_id field and no secret.
    redaction, formatter = RedactingFilter(), JsonFormatter()
    lines = [formatter.format(record) for record in records if redaction.filter(record)]
    assert [json.loads(line)["twilio_request_id"] for line in lines] == [entry[3] for entry in logged]
    assert all(SECRET not in line and TOKEN not in line for line in lines)


async def test_changed_credentials_replace_the_client_and_close_the_old_session(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    gateway = make_gateway()
    first = gateway.client_for(creds)
    assert gateway.client_for(CredentialSet(AC, SK, SecretStr(SECRET), SecretStr(TOKEN))) is first
    rotated = CredentialSet(AC, SK, SecretStr(SECRET + "new"), SecretStr(TOKEN))
    second = gateway.client_for(rotated)
    assert second is not first
    assert second.password == SECRET + "new"
    await asyncio.sleep(0.01)  # let the scheduled close run
    assert first.http_client.session.closed
    assert not second.http_client.session.closed
    other_account = CredentialSet("AC" + "8" * 32, auth_token=SecretStr(TOKEN))
    third = gateway.keys_client_for(other_account)
    assert third.username == other_account.account_sid
    assert gateway.client_count == 2
    await gateway.close()
    assert second.http_client.session.closed and third.http_client.session.closed
    with pytest.raises(RuntimeError):
        gateway.client_for(creds)


async def test_a_client_in_use_is_closed_only_after_its_call(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(200, room_body(), delay=0.2))
    gateway = make_gateway()
    old_client = gateway.client_for(creds)
    call = asyncio.create_task(gateway.api(creds).fetch_room(RM))
    await asyncio.sleep(0.05)
    gateway.client_for(CredentialSet(AC, SK, SecretStr("rotated-secret"), SecretStr(TOKEN)))
    await asyncio.sleep(0.01)
    assert not old_client.http_client.session.closed
    assert await asyncio.wait_for(call, timeout=5) is not None
    await asyncio.sleep(0.01)
    assert old_client.http_client.session.closed


async def test_idle_clients_are_closed(fake: FakeTwilio, creds: CredentialSet) -> None:
    now = [0.0]
    gateway = TwilioGateway(GatewayConfig(base_url=fake.url, idle_client_ttl=60.0), clock=lambda: now[0])
    try:
        idle = gateway.client_for(creds)
        now[0] = 30.0
        other = CredentialSet("AC" + "6" * 32, auth_token=SecretStr(TOKEN))
        gateway.client_for(other)
        assert gateway.client_count == 2
        now[0] = 61.0
        gateway.client_for(other)  # other was used at 30 s; creds last at 0 s
        assert gateway.client_count == 1
        await asyncio.sleep(0.01)
        assert idle.http_client.session.closed
    finally:
        await gateway.close()


async def test_requests_outside_an_operation_are_still_counted(
    fake: FakeTwilio, make_gateway: GatewayFactory, creds: CredentialSet
) -> None:
    fake.script("GET", f"/v1/Rooms/{RM}", Reply(200, room_body()))
    metrics = Metrics()
    labels = {"service": "video", "op_type": "read", "op_id": "Other"}
    metrics.mark("twilio_outbound_api_requests_total", **labels)
    client = make_gateway().client_for(creds)
    room = await client.video.v1.rooms(RM).fetch_async()
    assert room.sid == RM
    assert metrics.delta("twilio_outbound_api_requests_total", **labels) == 1


def test_config_from_settings() -> None:
    settings = Settings(
        TWILIO_ACCOUNT_SID=AC,
        TWILIO_AUTH_TOKEN=SecretStr(TOKEN),
        PUBLIC_BASE_URL="https://operator.example",
        TWILIO_BASE_URL="http://127.0.0.1:9999/",
        TWILIO_MAX_CONCURRENCY=3,
    )
    config = GatewayConfig.from_settings(settings, request_timeout=4.0)
    assert config.base_url == "http://127.0.0.1:9999"
    assert (config.max_concurrency, config.request_timeout) == (3, 4.0)
    assert config.retry == RetryPolicy()
    with pytest.raises(ValueError):
        GatewayConfig(max_concurrency=0)


def test_operation_catalog_ids_are_unique_and_typed() -> None:
    ids = [operation.op_id for operation in ALL_OPERATIONS]
    assert len(ids) == len(set(ids))
    creates = {operation.op_id for operation in ALL_OPERATIONS if not operation.idempotent}
    assert creates == {
        "CreateRoom",
        "CreateComposition",
        "CreateNewKey",
        "CreateMessage",
        "CreateExecution",
        "SendGrid.MailSend",
        "CreateVerificationCheck",
    }
    services = {operation.service for operation in ALL_OPERATIONS}
    assert services == {"video", "api", "studio", "verify", "sendgrid"}


def test_every_operation_the_gateway_names_is_in_the_catalog() -> None:
    """An operation defined in any gateway module but missing from ALL_OPERATIONS would have no row in
    the catalog the docs and dashboards are written from."""
    package = importlib.import_module("twilio_video_operator.gateway")
    named: set[Operation] = set()
    for module_info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(module_info.name)
        named |= {value for value in vars(module).values() if isinstance(value, Operation)}
    assert named - set(ALL_OPERATIONS) == set()
    assert {"CreateMessage", "ListExecution", "SendGrid.ListMessages"} <= {op.op_id for op in named}
