"""Fuzzed Twilio status callbacks against ``POST /twilio/room-events`` and ``/twilio/composition-events``:
bad or missing signatures, missing fields, huge bodies, wrong content types, wrong methods, and replays of
genuine deliveries. Every forged request gets a 4xx, a replay gets 204, no status changes, and the operator
keeps answering ``/healthz``."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import pytest_asyncio
from chaos_support import (
    NAMESPACE,
    by_level,
    composition_done,
    create_compositions,
    create_rooms,
    handler_exists,
    observe_stack,
    require_handler,
    room_in_progress,
    room_names,
    start_operator,
    wait_objects,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from operator_stack import OperatorProcess, Stack, wait_until
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
from twilio.request_validator import RequestValidator
from twilio_setup import recorded_rooms, ticking_clock

from secret_scan import SecretScanner

ROOM_EVENTS = "/twilio/room-events"
COMPOSITION_EVENTS = "/twilio/composition-events"
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024
EXAMPLES = by_level(60, 400)


@dataclass
class Target:
    stack: Stack
    operator: OperatorProcess
    host: str
    port: int
    deliveries: list[dict[str, Any]]

    @property
    def account_sid(self) -> str:
        return self.stack.credentials["account_sid"]

    def send(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> int:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            answer.read()
            return answer.status
        finally:
            connection.close()

    def statuses(self) -> dict[str, Any]:
        """What a callback could change: the observed fields and conditions of every object."""
        seen: dict[str, Any] = {}
        for plural in ("videorooms", "compositions"):
            for obj in self.stack.objects(plural):
                status = dict(obj.get("status") or {})
                status.pop("lastSyncedAt", None)
                status["conditions"] = sorted(
                    (c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or []
                )
                seen[f"{plural}/{obj['metadata']['name']}"] = status
        return seen


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    """The operator with rooms in progress (one with a participant) and, when compositions are handled,
    a completed Composition: genuine callbacks have been delivered for all of them."""
    require_handler("videoroom")
    async with Stack(tmp_path_factory.mktemp("webhooks"), namespaces=(NAMESPACE,)) as stack:
        operator = await start_operator(stack)
        names = room_names(2)
        await create_rooms(stack, names)
        assert not await wait_objects(stack, "videorooms", names, room_in_progress, within=60)
        creds = stack.credentials
        token = AccessToken(
            creds["account_sid"], creds["api_key"], creds["api_secret"], identity="alice", ttl=600
        )
        token.add_grant(VideoGrant(room=f"{NAMESPACE}:{names[0]}"))
        status, body = await stack.control.join(f"{NAMESPACE}:{names[0]}", "alice", token.to_jwt())
        assert status == 201, body
        if handler_exists("composition"):
            room_sids = await recorded_rooms(stack, 1, namespace=NAMESPACE)
            async with ticking_clock(stack, step=20.0, every=0.5):
                planned = await create_compositions(stack, room_sids)
                assert not await wait_objects(
                    stack, "compositions", list(planned), composition_done, within=60
                )
        await stack.control.callbacks(wait=5)
        await wait_until(lambda: connected(stack, names[0]) == 1, within=10)
        deliveries = [entry for entry in await stack.control.callbacks() if entry.get("status_code") == 204]
        url = urlsplit(operator.http_url)
        yield Target(stack, operator, str(url.hostname), int(url.port or 80), deliveries)


def connected(stack: Stack, name: str) -> int | None:
    status = (stack.object("videorooms", NAMESPACE, name) or {}).get("status") or {}
    count = (status.get("participants") or {}).get("connected")
    return int(count) if count is not None else None


def signature(target: Target, path: str, params: Mapping[str, str]) -> str:
    return str(
        RequestValidator(target.stack.credentials["auth_token"]).compute_signature(
            f"{target.operator.http_url}{path}", dict(params)
        )
    )


FIELD_NAMES = st.sampled_from(
    [
        "AccountSid",
        "RoomSid",
        "RoomName",
        "RoomStatus",
        "StatusCallbackEvent",
        "CompositionSid",
        "ParticipantIdentity",
        "ParticipantSid",
        "SequenceNumber",
        "Timestamp",
        "PercentageDone",
    ]
) | st.text(max_size=12)
FIELD_VALUES = st.sampled_from(
    [
        "room-ended",
        "participant-connected",
        "composition-available",
        "completed",
        "in-progress",
        "RM0123456789abcdef0123456789abcdef",
        "CJ0123456789abcdef0123456789abcdef",
        "-1",
        "1e309",
        "NaN",
    ]
) | st.text(max_size=300)


@st.composite
def forged_requests(draw: st.DrawFn, account_sid: str) -> tuple[str, bytes, dict[str, str]]:
    """A request that no genuine Twilio delivery looks like: method, body and headers."""
    params = draw(st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=12))
    if draw(st.booleans()):
        params["AccountSid"] = account_sid  # so that the signature check itself is reached
    encoding = draw(st.sampled_from(["form", "json", "raw", "huge"]))
    if encoding == "form":
        body = urlencode(params).encode()
    elif encoding == "json":
        body = json.dumps(params).encode()
    elif encoding == "raw":
        body = draw(st.binary(max_size=2048))
    else:
        body = urlencode({**params, "Padding": "x" * draw(st.integers(MAX_BODY, 3 * MAX_BODY))}).encode()
    headers = {
        "Content-Type": draw(
            st.sampled_from(
                [
                    FORM,
                    f"{FORM}; charset=utf-8",
                    "application/json",
                    "text/plain",
                    "multipart/form-data; boundary=x",
                    "",
                ]
            )
        )
    }
    forged = draw(
        st.one_of(
            st.none(),
            st.text(max_size=64),
            st.binary(min_size=20, max_size=20).map(lambda raw: base64.b64encode(raw).decode()),
        )
    )
    if forged is not None:
        # (CR and LF cannot be sent in a header value at all: the client library refuses them)
        headers["X-Twilio-Signature"] = (
            forged.encode("ascii", "ignore").decode().replace("\r", "").replace("\n", "")
        )
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS"]))
    return method, body, headers


PATHS = [ROOM_EVENTS, COMPOSITION_EVENTS]


@pytest.mark.parametrize("path", PATHS)
def test_forged_callbacks_are_refused(target: Target, path: str, secret_scanner: SecretScanner) -> None:
    before = target.statuses()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(request=forged_requests(target.account_sid))
    def check(request: tuple[str, bytes, dict[str, str]]) -> None:
        method, body, headers = request
        status = target.send(method, path, body, headers)
        assert 400 <= status < 500, f"{method} {path} ({len(body)} bytes, {headers}) answered {status}"
        well_formed = all(32 <= ord(char) < 127 for char in headers.get("X-Twilio-Signature", ""))
        if well_formed and method != "POST":  # (a control character in a header is refused as bad HTTP)
            assert status == 405
        elif well_formed and len(body) > MAX_BODY:
            assert status == 413

    check()
    assert target.operator.running, "the operator process died"
    assert _healthy(target), "/healthz does not answer 200 after the fuzzing"
    assert target.statuses() == before, "a forged callback changed a status"
    observe_stack(secret_scanner, target.stack)


def test_signature_over_another_url_is_refused(target: Target) -> None:
    """A genuine event with a signature computed for another URL (a replay against another endpoint)."""
    genuine = next(entry for entry in target.deliveries if urlsplit(entry["url"]).path == ROOM_EVENTS)
    params = genuine["params"]
    wrong = RequestValidator(target.stack.credentials["auth_token"]).compute_signature(
        f"http://attacker.example{ROOM_EVENTS}", params
    )
    status = target.send(
        "POST", ROOM_EVENTS, urlencode(params).encode(), {"Content-Type": FORM, "X-Twilio-Signature": wrong}
    )
    assert status == 403


def test_replayed_deliveries_are_accepted_and_change_nothing(
    target: Target, secret_scanner: SecretScanner
) -> None:
    assert target.deliveries, "no genuine callback was delivered to replay"
    before = target.statuses()
    answers = []
    for entry in target.deliveries:
        url = urlsplit(entry["url"])
        path = url.path + (f"?{url.query}" if url.query else "")
        params = {key: str(value) for key, value in entry["params"].items()}
        headers = {"Content-Type": FORM, "X-Twilio-Signature": signature(target, path, params)}
        answers.append(target.send("POST", path, urlencode(params).encode(), headers))
    assert set(answers) == {204}, f"replays answered {answers}"
    assert _wait_quiet(target, before), "a replayed callback changed a status"
    assert _healthy(target)
    observe_stack(secret_scanner, target.stack)


def _healthy(target: Target) -> bool:
    return target.send("GET", "/healthz", b"", {}) == 200


def _wait_quiet(target: Target, before: dict[str, Any]) -> bool:
    """Replays are processed after the 204: give them a moment, then compare."""
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if target.statuses() != before:
            return False
        time.sleep(0.1)
    return target.statuses() == before
