"""Helpers of the Composition integration tests (the operator harness with the Composition handlers, Twilio
rooms with recordings, signed callbacks), and checks that the helpers themselves are right.

Other ``test_composition_*`` modules import from here (pytest puts this directory on ``sys.path``);
importing ``bed_fixture`` provides the ``bed`` fixture.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import kopf
import pytest
from operator_harness import OperatorHarness, condition, eventually
from twilio.request_validator import RequestValidator

from kube_backends import KubeBackend
from twilio_video_operator.controllers.composition import CompositionController
from twilio_video_operator.delivery import MIN_PART_SIZE
from twilio_video_operator.handlers.composition import register_handlers
from twilio_video_operator.kube import COMPOSITIONS
from twilio_video_operator.reconcilers.composition_plan import Timing
from twilio_video_operator.webhooks.composition_events import CHANNEL, composition_callback_url

API_VERSION = "video.openclaw.io/v1alpha1"
WAIT = 15.0
FAST = Timing(
    poll_min=1.0,
    poll_max=2.0,
    room_wait=0.2,
    transient_retry=0.3,
    credentials_retry=1.0,
    delivery_retry_min=0.2,
    delivery_retry_max=0.5,
    delivery_stuck_min=0.3,
    delivery_stuck_max=0.6,
)

__all__ = ["condition"]


#: The Composition runtime of each running harness (by the harness's id).
RUNTIMES: dict[int, CompositionController] = {}


def composition_registrar(registry: kopf.OperatorRegistry, harness: OperatorHarness) -> None:
    """Adds the Composition handlers (fast timings, S3 parts of the minimum size) to the harness."""

    def started(runtime: CompositionController) -> None:
        RUNTIMES[id(harness)] = runtime

    register_handlers(
        registry,
        clock=harness.clock,
        tick_seconds=0.1,
        timing=FAST,
        on_start=started,  # drained() waits for the callbacks it applies once a busy object is free
        deliverer_options={
            "part_size": MIN_PART_SIZE,
            "max_attempts": 1,
            "connect_timeout": 2,
            "read_timeout": 10,
        },
    )


@pytest.fixture(name="bed")
async def bed_fixture(tmp_path: Path, kube_backend: KubeBackend) -> AsyncIterator[OperatorHarness]:
    """Kubernetes API, Twilio emulator and the operator with VideoRoom and Composition handlers."""
    async with OperatorHarness(tmp_path, registrars=[composition_registrar], backend=kube_backend) as harness:
        yield harness
    RUNTIMES.pop(id(harness), None)


# ------------------------------------------------------------------------------------------ Twilio side


def basic_auth(bed: OperatorHarness) -> dict[str, str]:
    assert bed.emulator is not None
    creds = bed.emulator.credentials
    user_password = f"{creds['account_sid']}:{creds['auth_token']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(user_password).decode()}


async def twilio(bed: OperatorHarness, method: str, path: str, form: Any = None) -> Any:
    """A Twilio REST call to the emulator with the account's Auth Token."""
    assert bed.http is not None and bed.emulator is not None
    async with bed.http.request(
        method, bed.twilio_url + path, data=form, headers=basic_auth(bed)
    ) as response:
        body = await response.json() if response.status != 204 else None
        assert response.status < 400, f"{method} {path}: {response.status} {body}"
        return body


async def control(bed: OperatorHarness, path: str, body: Mapping[str, Any]) -> Any:
    return await bed._control("POST", path, dict(body))


async def recorded_room(
    bed: OperatorHarness, namespace: str | None = None, *, complete: bool = True, seconds: float = 20
) -> str:
    """A group room where one participant was recorded for ``seconds`` (then completed, unless told not).

    On the operator's shared account a namespace composes only rooms named ``<namespace>:...``: pass the
    namespace whose Compositions will compose it.
    """
    name = (f"{namespace}:" if namespace else "") + "room-" + secrets.token_hex(4)
    room = await twilio(
        bed, "POST", "/v1/Rooms", {"UniqueName": name, "Type": "group", "RecordParticipantsOnConnect": "true"}
    )
    await bed.join(name, "alice")
    await bed.advance_clock(seconds)
    if complete:
        await complete_room(bed, room["sid"])
    return str(room["sid"])


async def complete_room(bed: OperatorHarness, room_sid: str) -> None:
    await twilio(bed, "POST", f"/v1/Rooms/{room_sid}", {"Status": "completed"})


async def twilio_composition(bed: OperatorHarness, sid: str) -> dict[str, Any]:
    result: dict[str, Any] = await twilio(bed, "GET", f"/v1/Compositions/{sid}")
    return result


async def media_sha256(bed: OperatorHarness, sid: str) -> tuple[str, int]:
    """Download a composition's media straight from the emulator: (sha256, size)."""
    assert bed.http is not None and bed.emulator is not None
    media = f"{bed.twilio_url}/v1/Compositions/{sid}/Media"
    async with bed.http.get(media, headers=basic_auth(bed), allow_redirects=False) as response:
        location = response.headers["Location"]
    digest, size = hashlib.sha256(), 0
    async with bed.http.get(location) as response:
        async for chunk in response.content.iter_chunked(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def create_counts(bed: OperatorHarness) -> int:
    return (await bed.twilio_counts()).get("CreateComposition", 0)


# -------------------------------------------------------------------------------------- Kubernetes side


async def create_composition(
    bed: OperatorHarness,
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": "Composition",
        "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
        "spec": dict(spec),
    }
    return await bed.kube_official.create(COMPOSITIONS.plural, namespace, body)


async def get_composition(bed: OperatorHarness, namespace: str, name: str) -> dict[str, Any] | None:
    return await bed.kube_official.get(COMPOSITIONS.plural, namespace, name)


async def wait_deleted(bed: OperatorHarness, namespace: str, *names: str, within: float = WAIT) -> None:
    """Wait until none of the named Compositions exists any more."""
    async with asyncio.timeout(within):
        while True:
            remaining = [name for name in names if await get_composition(bed, namespace, name) is not None]
            if not remaining:
                return
            await asyncio.sleep(0.05)


async def wait_composition(
    bed: OperatorHarness,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], Any],
    within: float = WAIT,
) -> dict[str, Any]:
    """Poll the Composition until ``check(object)`` is truthy; fail with the last object seen."""
    last: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                last = await get_composition(bed, namespace, name)
                if last is not None and check(last):
                    return last
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"Composition {namespace}/{name} did not get there: {last}") from None


def has(status_field: str, value: Any = None) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        found = (obj.get("status") or {}).get(status_field)
        return found is not None if value is None else found == value

    return check


def reason_of(type: str, reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: condition(obj, type).get("reason") == reason


async def put_secret(bed: OperatorHarness, namespace: str, name: str, data: Mapping[str, str]) -> None:
    await bed.kube_official.put_secret(namespace, name, data)


async def events(bed: OperatorHarness, namespace: str, name: str) -> list[tuple[str, str, str]]:
    return [(e["type"], e["reason"], e["message"]) for e in await bed.events(namespace, name)]


async def event_posted(
    bed: OperatorHarness, namespace: str, name: str, kind: str, reason: str
) -> list[tuple[str, str, str]]:
    """The object's Events once one of ``kind`` and ``reason`` is among them: an Event may follow the
    status write a test waited for (a claim, a callback's news)."""

    async def posted() -> list[tuple[str, str, str]] | None:
        found = await events(bed, namespace, name)
        return found if any((k, r) == (kind, reason) for k, r, _ in found) else None

    result: list[tuple[str, str, str]] = await eventually(posted, WAIT)
    return result


async def drained(bed: OperatorHarness) -> None:
    """Wait until the emulator delivered its callbacks and the operator processed them."""
    await bed.callbacks()
    assert bed.settings is not None
    async with asyncio.timeout(WAIT):
        assert bed.context is not None
        await bed.context.hub.channel(CHANNEL).drained()
        runtime = RUNTIMES.get(id(bed))
        if runtime is not None:
            await runtime.settled()


# ------------------------------------------------------------------------------------------- callbacks


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """``X-Twilio-Signature`` as Twilio computes it: HMAC-SHA1 of the URL and the sorted form fields."""
    payload = url + "".join(key + params[key] for key in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


async def post_callback(
    bed: OperatorHarness,
    params: Mapping[str, str],
    *,
    query: Mapping[str, str] | None = None,
    signature: str | None = None,
    method: str = "POST",
    body: bytes | None = None,
) -> int:
    """Send a composition callback to the operator, signed with the account's Auth Token unless given."""
    assert bed.http is not None and bed.settings is not None and bed.emulator is not None
    path = "/twilio/composition-events" + (f"?{urlencode(dict(query))}" if query else "")
    url = bed.settings.PUBLIC_BASE_URL + path
    if signature is None:
        signature = sign(bed.emulator.credentials["auth_token"], url, params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    data = body if body is not None else urlencode(dict(params)).encode()
    async with bed.http.request(method, url, data=data, headers=headers) as response:
        return response.status


# ----------------------------------------------------------------------------------- checks of the helpers


def test_sign_matches_twilios_validator() -> None:
    url = composition_callback_url("https://op.example.test", "ns", "c1", "uid-1")
    params = {
        "AccountSid": "AC" + "1" * 32,
        "StatusCallbackEvent": "composition-progress",
        "PercentageDone": "10",
    }
    assert RequestValidator("token-123").validate(url, params, sign("token-123", url, params))
    assert url == "https://op.example.test/twilio/composition-events?namespace=ns&name=c1&uid=uid-1"


async def test_a_recorded_room_can_be_composed(bed: OperatorHarness) -> None:
    room_sid = await recorded_room(bed)
    composition = await twilio(bed, "POST", "/v1/Compositions", {"RoomSid": room_sid, "AudioSources": "*"})
    assert composition["status"] == "enqueued"
    async with asyncio.timeout(WAIT):
        while (await twilio_composition(bed, composition["sid"]))["status"] != "completed":
            await bed.advance_clock(1)
    digest, size = await media_sha256(bed, composition["sid"])
    assert size == (await twilio_composition(bed, composition["sid"]))["size"] and len(digest) == 64
