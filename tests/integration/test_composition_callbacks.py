"""``POST /twilio/composition-events`` on the real operator: signatures, limits, duplicates, replays and
callbacks out of order."""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import OperatorHarness, condition
from prometheus_client import REGISTRY
from test_composition_harness import (
    bed_fixture,  # noqa: F401 - the bed fixture
    create_composition,
    drained,
    get_composition,
    has,
    post_callback,
    recorded_room,
    sign,
    wait_composition,
)

from twilio_video_operator.webhooks.composition_events import composition_callback_url


async def enqueued(bed: OperatorHarness) -> tuple[str, dict[str, Any]]:
    """A namespace with Composition ``c1`` whose Twilio composition waits for its room (no callbacks yet)."""
    ns = await bed.namespace()
    room_sid = await recorded_room(bed, ns, complete=False)
    await create_composition(bed, ns, "c1", {"roomSid": room_sid})
    return ns, await wait_composition(bed, ns, "c1", has("sid"))


def event(obj: dict[str, Any], kind: str, account_sid: str, **extra: str) -> dict[str, str]:
    status = obj["status"]
    return {
        "AccountSid": account_sid,
        "RoomSid": status["roomSid"],
        "CompositionSid": status["sid"],
        "CompositionUri": f"/v1/Compositions/{status['sid']}",
        "StatusCallbackEvent": kind,
        "Timestamp": "2026-01-01T00:00:00.000Z",
        **extra,
    }


def query_of(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj["metadata"]
    return {"namespace": metadata["namespace"], "name": metadata["name"], "uid": metadata["uid"]}


def processed(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("twilio_video_operator_composition_callbacks_total", {"outcome": outcome})
        or 0.0
    )


async def test_forged_and_malformed_requests_are_refused(bed: OperatorHarness) -> None:
    ns, obj = await enqueued(bed)
    assert bed.emulator is not None and bed.settings is not None
    account = bed.emulator.credentials["account_sid"]
    params = event(obj, "composition-progress", account, PercentageDone="40", SecondsRemaining="6")
    query = query_of(obj)
    url = composition_callback_url(bed.settings.PUBLIC_BASE_URL, **query)

    assert await post_callback(bed, params, query=query, signature="") == 403  # unsigned
    assert await post_callback(bed, params, query=query, signature=sign("not-the-token", url, params)) == 403
    tampered = {**params, "PercentageDone": "90"}
    assert (
        await post_callback(
            bed, tampered, query=query, signature=sign(bed.emulator.credentials["auth_token"], url, params)
        )
        == 403
    )
    other_query = {**query, "name": "someone-else"}
    assert (
        await post_callback(
            bed,
            params,
            query=other_query,
            signature=sign(bed.emulator.credentials["auth_token"], url, params),
        )
        == 403
    )
    assert (
        await post_callback(bed, {**params, "AccountSid": "AC" + "9" * 32}, query=query) == 403
    )  # unknown account
    assert await post_callback(bed, params, query=query, method="GET") == 405
    assert await post_callback(bed, params, query=query, body=b"x=" + b"y" * (65 * 1024)) == 413
    missing = {key: value for key, value in params.items() if key != "CompositionSid"}
    assert await post_callback(bed, missing, query=query) == 400

    await drained(bed)
    current = await get_composition(bed, ns, "c1")
    assert current is not None and current["status"].get("progressPercent") is None  # nothing got through


async def test_duplicates_and_replays_are_processed_once(bed: OperatorHarness) -> None:
    ns, obj = await enqueued(bed)
    assert bed.emulator is not None
    account = bed.emulator.credentials["account_sid"]
    started = event(obj, "composition-started", account)
    progress = event(obj, "composition-progress", account, PercentageDone="30", SecondsRemaining="7")
    applied_before = processed("applied")

    for params in (started, progress, progress, started):
        assert await post_callback(bed, params, query=query_of(obj)) == 204
    await drained(bed)
    assert processed("applied") - applied_before == 2

    later = event(obj, "composition-progress", account, PercentageDone="60", SecondsRemaining="4")
    assert await post_callback(bed, later, query=query_of(obj)) == 204
    assert await post_callback(bed, progress, query=query_of(obj)) == 204  # a replay of older news
    await drained(bed)
    current = await get_composition(bed, ns, "c1")
    assert current is not None
    assert (current["status"]["progressPercent"], current["status"]["secondsRemaining"]) == (60, 4)
    assert processed("applied") - applied_before == 3


async def test_a_late_progress_never_moves_a_completed_composition_back(bed: OperatorHarness) -> None:
    ns, obj = await enqueued(bed)
    assert bed.emulator is not None
    account = bed.emulator.credentials["account_sid"]
    sid = obj["status"]["sid"]
    available = event(
        obj,
        "composition-available",
        account,
        MediaUri=f"/v1/Compositions/{sid}/Media",
        Duration="20",
        Size="5000",
    )
    progress = event(obj, "composition-progress", account, PercentageDone="50", SecondsRemaining="3")
    started = event(obj, "composition-started", account)

    for params in (available, progress, started):
        assert await post_callback(bed, params, query=query_of(obj)) == 204
    await drained(bed)

    current = await get_composition(bed, ns, "c1")
    assert current is not None
    status = current["status"]
    assert status["compositionStatus"] == "completed" and status["progressPercent"] == 100
    assert (status["sizeBytes"], status["durationSeconds"]) == (5000, 20)
    assert status["mediaUri"] == f"/v1/Compositions/{sid}/Media"
    assert condition(current, "Ready")["status"] == "True"


async def test_malformed_values_are_dropped(bed: OperatorHarness) -> None:
    ns, obj = await enqueued(bed)
    assert bed.emulator is not None
    before = processed("malformed")
    params = event(
        obj, "composition-progress", bed.emulator.credentials["account_sid"], PercentageDone="lots"
    )
    assert await post_callback(bed, params, query=query_of(obj)) == 204
    await drained(bed)
    assert processed("malformed") == before + 1
    current = await get_composition(bed, ns, "c1")
    assert current is not None and current["status"].get("progressPercent") is None


@pytest.mark.parametrize("host", ["evil.example.test", "127.0.0.1:1"])
async def test_the_signature_is_checked_against_the_public_url_not_the_host(
    bed: OperatorHarness, host: str
) -> None:
    _, obj = await enqueued(bed)
    assert bed.emulator is not None and bed.http is not None and bed.settings is not None
    params = event(obj, "composition-started", bed.emulator.credentials["account_sid"])
    query = query_of(obj)
    url_by_host = composition_callback_url(f"http://{host}", **query)
    signature = sign(bed.emulator.credentials["auth_token"], url_by_host, params)
    target = composition_callback_url(bed.settings.PUBLIC_BASE_URL, **query)
    headers = {"X-Twilio-Signature": signature, "Host": host}
    async with bed.http.post(target, data=params, headers=headers) as response:
        assert response.status == 403
