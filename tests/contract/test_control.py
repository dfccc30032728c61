"""The control API: clock, faults, request counters, keys, health, persistence and the CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient


def raw_get(url: str, user: str, password: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_health_and_clock(emulator_control: Any) -> None:
    health = emulator_control("GET", "health")
    assert health.status == 200 and health.body["status"] == "ok"
    before = emulator_control("GET", "clock").body["now"]
    after = emulator_control("POST", "clock/advance", {"seconds": 3600}).body["now"]
    assert after > before and int(after[11:13]) == (int(before[11:13]) + 1) % 24
    assert emulator_control("POST", "clock/advance", {"seconds": -1}).status == 400
    assert emulator_control("POST", "clock/advance", {}).status == 400


def test_rate_limit_fault(emulator: Any, twilio_client: Client, emulator_control: Any) -> None:
    assert emulator_control("POST", "faults", {"rate429": 1}).status == 200
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.video.v1.rooms.create()
    assert (caught.value.status, caught.value.code) == (429, 20429)
    credentials = emulator.credentials
    status, headers, body = raw_get(
        emulator.url + "/v1/Rooms", credentials["account_sid"], credentials["auth_token"]
    )
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert json.loads(body)["more_info"] == "https://www.twilio.com/docs/errors/20429"
    assert emulator_control("GET", "health").status == 200  # the control API is never faulted
    assert emulator_control("POST", "faults", {}).body["rate429"] == 0
    assert twilio_client.video.v1.rooms.create().status == "in-progress"


def test_server_error_fault(twilio_client: Client, emulator_control: Any) -> None:
    emulator_control("POST", "faults", {"rate5xx": 1, "seed": 3})
    statuses = set()
    for _ in range(8):
        with pytest.raises(TwilioRestException) as caught:
            twilio_client.video.v1.rooms.create()
        statuses.add(caught.value.status)
        assert caught.value.code in (20500, 20503)
    assert statuses == {500, 503}


def test_faults_are_seeded(emulator: Any, emulator_control: Any) -> None:
    credentials = emulator.credentials

    def outcomes() -> list[int]:
        emulator_control("POST", "faults", {"rate429": 0.5, "seed": 42})
        url = emulator.url + "/v1/Rooms"
        return [raw_get(url, credentials["account_sid"], credentials["auth_token"])[0] for _ in range(12)]

    first = outcomes()
    assert first == outcomes() and set(first) == {200, 429}


def test_latency_fault(twilio_client: Client, emulator_control: Any) -> None:
    emulator_control("POST", "faults", {"latencyMs": 200})
    started = time.monotonic()
    twilio_client.video.v1.rooms.list()
    assert time.monotonic() - started >= 0.2


def test_dropped_connections(emulator: Any, emulator_control: Any) -> None:
    emulator_control("POST", "faults", {"rateDrop": 1})
    credentials = emulator.credentials
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        raw_get(emulator.url + "/v1/Rooms", credentials["account_sid"], credentials["auth_token"])
    counts = emulator_control("GET", "requests").body["operations"]
    assert counts["ListRoom"] == {"dropped": 1}


async def test_concurrency_limit(async_twilio_client: Client, emulator_control: Any) -> None:
    await asyncio.to_thread(emulator_control, "POST", "faults", {"concurrencyLimit": 2, "latencyMs": 300})
    results = await asyncio.gather(
        *(async_twilio_client.video.v1.rooms.create_async() for _ in range(5)), return_exceptions=True
    )
    limited = [r for r in results if isinstance(r, TwilioRestException)]
    created = [r for r in results if not isinstance(r, BaseException)]
    assert len(created) == 2 and len(limited) == 3
    assert all((e.status, e.code) == (429, 20429) for e in limited)


def test_request_counters(emulator: Any, twilio_client: Client, emulator_control: Any) -> None:
    room = twilio_client.video.v1.rooms.create()
    twilio_client.video.v1.rooms(room.sid).fetch()
    with pytest.raises(TwilioRestException):
        twilio_client.video.v1.rooms("nothing").fetch()
    twilio_client.new_keys.create()
    credentials = emulator.credentials
    raw_get(emulator.url + "/v1/NoSuchThing", credentials["account_sid"], credentials["auth_token"])
    emulator_control("GET", "health")
    counts = emulator_control("GET", "requests").body
    assert counts["operations"] == {
        "(unknown)": {"404": 1},
        "CreateNewKey": {"201": 1},
        "CreateRoom": {"201": 1},
        "FetchRoom": {"200": 1, "404": 1},
    }
    assert counts["total"] == 5
    assert emulator_control("DELETE", "requests").status == 204
    assert emulator_control("GET", "requests").body["total"] == 0


def test_unknown_routes_use_twilio_errors(emulator: Any) -> None:
    credentials = emulator.credentials
    status, _, body = raw_get(
        emulator.url + "/v1/Nope", credentials["account_sid"], credentials["auth_token"]
    )
    assert status == 404 and json.loads(body)["code"] == 20404
    request = urllib.request.Request(emulator.url + "/v1/Rooms", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 405 and json.loads(caught.value.read())["code"] == 20004


def test_control_input_errors(emulator_control: Any) -> None:
    assert emulator_control("POST", "faults", {"rate429": 2}).status == 400
    assert emulator_control("POST", "faults", {"bogus": 1}).status == 400
    assert emulator_control("POST", "keys", {"type": "superuser"}).status == 400
    assert emulator_control("DELETE", "rooms/none/participants/x").status == 404
    assert emulator_control("POST", "rooms/none/fail").status == 404


def test_control_keys(emulator: Any, emulator_control: Any) -> None:
    answer = emulator_control("POST", "keys", {"friendlyName": "ops", "type": "standard"})
    assert answer.status == 201 and answer.body["sid"].startswith("SK") and len(answer.body["secret"]) == 32
    status, _, _ = raw_get(emulator.url + "/v1/Rooms", answer.body["sid"], answer.body["secret"])
    assert status == 200


def test_state_survives_a_restart(tmp_path: Path, emulator_factory: Any) -> None:
    state_file = tmp_path / "emulator.json"
    first = emulator_factory(str(state_file))
    credentials = first.credentials
    client = Client(
        credentials["account_sid"], credentials["auth_token"], http_client=BaseUrlHttpClient(first.url)
    )
    room = client.video.v1.rooms.create(unique_name="persisted", record_participants_on_connect=True)
    key = client.new_keys.create(friendly_name="kept")
    first.stop()
    assert state_file.exists() and oct(state_file.stat().st_mode & 0o777) == "0o600"

    second = emulator_factory(str(state_file))
    again = second.credentials
    assert again == {**credentials, "url": second.url}
    client = Client(key.sid, key.secret, again["account_sid"], http_client=BaseUrlHttpClient(second.url))
    fetched = client.video.v1.rooms("persisted").fetch()
    assert fetched.sid == room.sid and fetched.status == "in-progress"


def test_command_line(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twilio_video_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state",
            str(state_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        info = json.loads(line)
        assert set(info) == {"url", "account_sid", "auth_token", "api_key", "api_secret", "sendgrid_api_key"}
        with urllib.request.urlopen(info["url"] + "/_emulator/health", timeout=5) as answer:
            assert json.loads(answer.read())["status"] == "ok"
        status, _, _ = raw_get(info["url"] + "/v1/Rooms", info["api_key"], info["api_secret"])
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    assert code == 0 and state_file.exists()
