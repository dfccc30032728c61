"""Shared helpers of the composition contract tests (no tests here): a signed-callback receiver and rooms.

The receiver runs on the emulator's own event loop, so plain (synchronous) tests can use it while the
twilio client blocks; the requests it got are read from the test thread.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.rest import Client

COMPOSITION_PARAMS = {
    "AccountSid",
    "RoomSid",
    "CompositionSid",
    "CompositionUri",
    "StatusCallbackEvent",
    "Timestamp",
}
HOOK_PARAMS = {"HookSid", "HookUri", "HookFriendlyName"}
GRID_LAYOUT = {"grid": {"video_sources": ["*"]}}
TIMESTAMP_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


@dataclass
class Received:
    method: str
    url: str  # the exact URL the request was sent to, query included
    params: dict[str, str]  # form body of a POST, query of a GET
    signature: str
    content_type: str

    @property
    def event(self) -> str:
        return self.params.get("StatusCallbackEvent", "")


@dataclass
class CallbackReceiver:
    base_url: str
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str = "/events") -> str:
        return self.base_url + path

    def events(self, sid: str | None = None) -> list[str]:
        return [r.event for r in list(self.requests) if sid is None or r.params.get("CompositionSid") == sid]

    def of(self, event: str, sid: str | None = None) -> list[Received]:
        return [
            r
            for r in list(self.requests)
            if r.event == event and (sid is None or r.params.get("CompositionSid") == sid)
        ]

    def wait_for(self, event: str, sid: str | None = None, timeout: float = 5.0) -> Received:
        deadline = time.monotonic() + timeout
        while True:
            found = self.of(event, sid)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                pytest.fail(f"no {event} callback within {timeout} s; got {self.events()}")
            time.sleep(0.02)

    def assert_signed(self, auth_token: str) -> None:
        """Every request carries a valid X-Twilio-Signature (checked with twilio's RequestValidator)."""
        validator = RequestValidator(auth_token)
        for request in list(self.requests):
            params = request.params if request.method == "POST" else {}
            assert validator.validate(request.url, params, request.signature), request
            assert request.content_type == "application/x-www-form-urlencoded"


def serve_callback_receiver(emulator: Any) -> Iterator[CallbackReceiver]:
    """A receiver on 127.0.0.1 served by the emulator's loop, for a fixture; answers 200 to everything."""
    holder: list[CallbackReceiver] = []

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            form = await request.post()
            params = {key: str(value) for key, value in form.items()}
        else:
            params = dict(request.query)
        holder[0].requests.append(
            Received(
                method=request.method,
                url=holder[0].base_url + request.raw_path,
                params=params,
                signature=request.headers.get("X-Twilio-Signature", ""),
                content_type=request.headers.get("Content-Type", ""),
            )
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    emulator.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    emulator.run(site.start())
    port = runner.addresses[0][1]
    holder.append(CallbackReceiver(f"http://127.0.0.1:{port}"))
    yield holder[0]
    emulator.run(runner.cleanup())


def recorded_room(
    client: Client,
    join_participant: Callable[..., str],
    emulator_control: Callable[..., Any],
    *,
    name: str,
    seconds: float = 20,
    identities: tuple[str, ...] = ("alice", "bob"),
    record: bool = True,
    room_type: str = "group",
) -> str:
    """A group room that ``identities`` joined (audio + video each) ``seconds`` ago; returns its SID."""
    room = client.video.v1.rooms.create(
        unique_name=name, type=room_type, record_participants_on_connect=record
    )
    for identity in identities:
        join_participant(name, identity)
    advance(emulator_control, seconds)
    return str(room.sid)


def advance(emulator_control: Callable[..., Any], seconds: float) -> None:
    answer = emulator_control("POST", "clock/advance", {"seconds": seconds})
    assert answer.status == 200, answer.body


def complete_room(client: Client, room_sid: str) -> None:
    client.video.v1.rooms(room_sid).update(status="completed")


def wait_for_status(client: Client, sid: str, statuses: tuple[str, ...], timeout: float = 5.0) -> Any:
    """Poll FetchComposition until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        composition = client.video.v1.compositions(sid).fetch()
        if composition.status in statuses:
            return composition
        if time.monotonic() > deadline:
            pytest.fail(f"composition {sid} is {composition.status}, expected one of {statuses}")
        time.sleep(0.02)


@dataclass
class Download:
    status: int
    headers: dict[str, str]
    body: bytes


def download(url: str, headers: dict[str, str] | None = None) -> Download:
    """An unauthenticated GET (the media URL needs no credentials)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return Download(answer.status, dict(answer.headers.items()), answer.read())
    except urllib.error.HTTPError as error:
        return Download(error.code, dict(error.headers.items()), error.read())


def media_redirect(client: Client, sid: str, query: str = "") -> tuple[int, dict[str, str], Any]:
    """``GET /v1/Compositions/{sid}/Media`` through the twilio client (which never follows redirects)."""
    url = f"https://video.twilio.com/v1/Compositions/{sid}/Media{query}"
    response = client.request("GET", url)
    body = json.loads(response.text) if response.text else None
    headers = {str(k): str(v) for k, v in dict(response.headers or {}).items()}
    return response.status_code, headers, body
