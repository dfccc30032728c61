"""Tenant isolation, end to end: what a tenant with RBAC on the three kinds and on its own namespace's
Secrets (and their status) can try against another tenant, and the rule that stops it (docs/security.md).

Each test names the finding it reproduces; every one of them failed before the rule existed.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from operator_harness import OperatorHarness, condition, eventually
from test_composition_callbacks import event, query_of
from test_composition_harness import (
    composition_registrar,
    create_composition,
    create_counts,
    drained,
    reason_of,
    sign,
    wait_composition,
)
from test_composition_harness import post_callback as post_composition_callback
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
from twilio.request_validator import RequestValidator

from twilio_video_operator.kube import COMPOSITIONS, SECRETS, VIDEOROOMS
from twilio_video_operator.webhooks.composition_events import composition_callback_url

ROOM_EVENTS = "/twilio/room-events"


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path, registrars=[composition_registrar]) as harness:
        yield harness


def in_progress(obj: dict[str, Any]) -> bool:
    return condition(obj, "Ready").get("reason") == "InProgress"


def stalled(reason: str) -> Any:
    return lambda o: (
        condition(o, "Stalled").get("status") == "True" and (condition(o, "Stalled").get("reason") == reason)
    )


def twilio_status(bed: OperatorHarness, sid: str) -> str:
    assert bed.emulator is not None
    return str(bed.emulator.state.rooms[sid].status)


async def put_secret(bed: OperatorHarness, namespace: str, name: str, data: Mapping[str, str]) -> None:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"video.openclaw.io/credentials": "1"}},
        "data": encoded,
    }
    await bed.kube_client.create(SECRETS, namespace, body)


async def live_room(bed: OperatorHarness, namespace: str, name: str, spec: Mapping[str, Any]) -> str:
    await bed.create_room(namespace, name, spec)
    obj = await bed.wait_room(namespace, name, in_progress)
    return str(obj["status"]["sid"])


async def post_callback(bed: OperatorHarness, params: Mapping[str, str], token: str) -> int:
    """POST a room status callback to the operator, signed with ``token``, as Twilio would."""
    assert bed.http is not None and bed.settings is not None
    url = bed.settings.PUBLIC_BASE_URL + ROOM_EVENTS
    signature = RequestValidator(token).compute_signature(url, dict(params))
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    async with bed.http.post(url, data=urlencode(dict(params)), headers=headers) as response:
        return response.status


def room_ended(account_sid: str, room_sid: str, unique_name: str) -> dict[str, str]:
    return {
        "AccountSid": account_sid,
        "RoomSid": room_sid,
        "RoomName": unique_name,
        "RoomStatus": "completed",
        "RoomType": "group",
        "StatusCallbackEvent": "room-ended",
        "SequenceNumber": "99",
        "Timestamp": "2026-12-07T00:00:00.000Z",
        "RoomDuration": "1",
    }


async def patch_status(bed: OperatorHarness, namespace: str, name: str, status: Mapping[str, Any]) -> None:
    """Edit a VideoRoom's status by hand, as anyone with RBAC on ``videorooms/status`` can."""
    await bed.kube_client.patch_status(VIDEOROOMS, namespace, name, dict(status))


# ------------------------------------------------------------------------------- finding 1: callbacks


async def test_a_tenant_secret_cannot_change_how_the_operators_account_is_verified(
    bed: OperatorHarness,
) -> None:
    """Finding 1: a Secret naming the operator's AccountSid with an Auth Token of the tenant's choosing
    made that token verify every callback of the operator's account."""
    assert bed.emulator is not None
    operator = bed.emulator.credentials
    team_a, team_b = await bed.namespace("a"), await bed.namespace("b")
    victim = await live_room(bed, team_a, "standup", {})

    forged = "tenant-b-chose-this-token-0123456789"
    await put_secret(
        bed,
        team_b,
        "twilio",
        {
            "TWILIO_ACCOUNT_SID": operator["account_sid"],
            "TWILIO_API_KEY": operator["api_key"],
            "TWILIO_API_SECRET": operator["api_secret"],
            "TWILIO_AUTH_TOKEN": forged,
        },
    )
    await bed.create_room(team_b, "mine", {"credentialsRef": {"name": "twilio"}})
    obj = await bed.wait_room(team_b, "mine", stalled("AccountNotAllowed"))
    assert "operator's own Twilio account" in condition(obj, "Stalled")["message"]
    assert "sid" not in obj["status"]

    # B's forged room-ended for A's room is refused; Twilio's own callbacks still get through.
    event = room_ended(operator["account_sid"], victim, f"{team_a}:standup")
    assert await post_callback(bed, event, forged) == 403
    await bed.join(victim, "alice")
    obj = await bed.wait_room(team_a, "standup", lambda o: o["status"]["participants"]["connected"] == 1)
    assert obj["status"]["roomStatus"] == "in-progress" and twilio_status(bed, victim) == "in-progress"


async def test_a_tenants_own_account_is_verified_with_the_token_twilio_accepted(bed: OperatorHarness) -> None:
    """A tenant's own account works end to end: its Auth Token, once Twilio accepted it, verifies its
    rooms' callbacks; a token Twilio refuses stalls the room and verifies nothing."""
    tenant = await bed.subaccount()
    ns = await bed.namespace("own")
    await put_secret(
        bed,
        ns,
        "wrong",
        {
            "TWILIO_ACCOUNT_SID": tenant["account_sid"],
            "TWILIO_API_KEY": tenant["api_key"],
            "TWILIO_API_SECRET": tenant["api_secret"],
            "TWILIO_AUTH_TOKEN": "not-the-accounts-token",
        },
    )
    await bed.create_room(ns, "refused", {"credentialsRef": {"name": "wrong"}})
    obj = await bed.wait_room(ns, "refused", stalled("AuthFailed"))
    assert "TWILIO_AUTH_TOKEN" in condition(obj, "Stalled")["message"]
    assert "not-the-accounts-token" not in str(obj)
    event = room_ended(tenant["account_sid"], "RM" + "0" * 32, "x")
    assert await post_callback(bed, event, "not-the-accounts-token") == 403

    await put_secret(bed, ns, "right", {**_tenant_data(tenant), "TWILIO_AUTH_TOKEN": tenant["auth_token"]})
    sid = await live_room(
        bed, ns, "accepted", {"credentialsRef": {"name": "right"}, "uniqueName": "any-name"}
    )
    assert bed.emulator is not None
    assert bed.emulator.state.rooms[sid].account_sid == tenant["account_sid"]
    await join_as(bed, tenant, sid, "carol")
    await bed.wait_room(ns, "accepted", lambda o: o["status"]["participants"]["connected"] == 1)


def _tenant_data(tenant: Mapping[str, str]) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": tenant["account_sid"],
        "TWILIO_API_KEY": tenant["api_key"],
        "TWILIO_API_SECRET": tenant["api_secret"],
    }


async def join_as(bed: OperatorHarness, account: Mapping[str, str], room_sid: str, identity: str) -> None:
    """A participant joins a room of ``account`` with a token signed by that account's key."""
    valid_until = int((bed.clock() + timedelta(minutes=10)).timestamp())
    token = AccessToken(
        account["account_sid"],
        account["api_key"],
        account["api_secret"],
        identity=identity,
        nbf=None,
        valid_until=valid_until,
        grants=[VideoGrant(room=room_sid)],
    ).to_jwt()
    body = {"identity": identity, "token": str(token)}
    await bed._control("POST", f"rooms/{room_sid}/participants?accountSid={account['account_sid']}", body)


# --------------------------------------------------------------------------- finding 2: room adoption


async def test_a_live_room_of_another_namespace_cannot_be_used_or_adopted(bed: OperatorHarness) -> None:
    """Finding 2: ``uniqueName: "<A's namespace>:<A's room>"`` with ``adoptExisting`` adopted A's room, and
    deleting B's object completed it."""
    team_a, team_b = await bed.namespace("a"), await bed.namespace("b")
    victim = await live_room(bed, team_a, "standup", {})
    await bed.reset_counts()

    spec = {"uniqueName": f"{team_a}:standup", "adoptExisting": True}
    await bed.create_room(team_b, "thief", spec)
    obj = await bed.wait_room(team_b, "thief", stalled("NameNotAllowed"))
    assert f"namespace {team_b} may use" in condition(obj, "Stalled")["message"]
    assert "sid" not in obj["status"]
    await bed.create_room(team_b, "plain", {"uniqueName": "no-prefix"})
    await bed.wait_room(team_b, "plain", stalled("NameNotAllowed"))
    assert await bed.twilio_calls() == 0

    await bed.delete_room(team_b, "thief")
    await bed.wait_gone(team_b, "thief")
    assert twilio_status(bed, victim) == "in-progress"
    assert await bed.twilio_calls() == 0


async def test_a_room_verified_for_one_object_is_never_adopted_by_another(bed: OperatorHarness) -> None:
    ns = await bed.namespace("a")
    first = await live_room(bed, ns, "first", {"uniqueName": f"{ns}:shared"})
    await bed.create_room(ns, "second", {"uniqueName": f"{ns}:shared", "adoptExisting": True})
    obj = await bed.wait_room(ns, "second", stalled("RoomClaimed"))
    assert f"{ns}/first" in condition(obj, "Stalled")["message"] and "sid" not in obj["status"]
    assert len(bed.twilio_rooms(f"{ns}:shared")) == 1 and twilio_status(bed, first) == "in-progress"


async def test_a_room_sid_written_into_status_by_hand_is_checked_before_it_is_used(
    bed: OperatorHarness,
) -> None:
    """Status is writable: B points its own object at A's room, then asks to complete and to delete it."""
    team_a, team_b = await bed.namespace("a"), await bed.namespace("b")
    victim = await live_room(bed, team_a, "standup", {})
    await live_room(bed, team_b, "mine", {})
    await patch_status(bed, team_b, "mine", {"sid": victim, "roomStatus": "in-progress"})
    await bed.patch_room(team_b, "mine", {"spec": {"state": "Completed"}})
    obj = await bed.wait_room(team_b, "mine", stalled("RoomNotOwned"))
    assert victim in condition(obj, "Stalled")["message"]
    assert twilio_status(bed, victim) == "in-progress"

    await patch_status(bed, team_b, "mine", {"sid": victim, "roomStatus": "in-progress"})
    await bed.delete_room(team_b, "mine")
    await bed.wait_gone(team_b, "mine")
    assert twilio_status(bed, victim) == "in-progress"


# ----------------------------------------------------------------------------- finding 3: compositions


async def test_a_composition_cannot_compose_another_namespaces_room(bed: OperatorHarness) -> None:
    """Finding 3: a Composition's ``roomSid`` (or a roomRef to a VideoRoom whose status was pointed at it)
    composed a room of another tenant."""
    team_a, team_b = await bed.namespace("a"), await bed.namespace("b")
    victim = await live_room(bed, team_a, "standup", {})
    await bed.join(victim, "alice")
    await bed.advance_clock(10)

    await create_composition(bed, team_b, "by-sid", {"roomSid": victim})
    obj = await wait_composition(bed, team_b, "by-sid", reason_of("Stalled", "RoomNotOwned"))
    assert f"namespace {team_b}" in condition(obj, "Stalled")["message"]

    await live_room(bed, team_b, "mine", {})
    await patch_status(bed, team_b, "mine", {"sid": victim})
    await create_composition(bed, team_b, "by-ref", {"roomRef": {"name": "mine"}})
    await wait_composition(bed, team_b, "by-ref", reason_of("Stalled", "RoomNotOwned"))
    assert await create_counts(bed) == 0

    # The namespace's own rooms still compose.
    await create_composition(bed, team_a, "own", {"roomSid": victim})
    await wait_composition(bed, team_a, "own", lambda o: (o.get("status") or {}).get("sid"))
    assert await create_counts(bed) == 1


# ----------------------------------------------------------------- finding 5: billing decisions vs status


async def test_a_signed_room_ended_for_a_live_room_is_confirmed_with_twilio(bed: OperatorHarness) -> None:
    """Finding 5: a signed ``room-ended`` for a live room marked it completed and nothing looked again."""
    assert bed.emulator is not None
    operator = bed.emulator.credentials
    ns = await bed.namespace("a")
    sid = await live_room(bed, ns, "standup", {})
    await bed.reset_counts()
    event = room_ended(operator["account_sid"], sid, f"{ns}:standup")
    assert await post_callback(bed, event, operator["auth_token"]) == 204
    await bed.settled()

    async def fetched() -> dict[str, int] | None:
        counts = await bed.twilio_counts()
        return counts if counts.get("FetchRoom") else None

    assert await eventually(fetched) == {"FetchRoom": 1}
    obj = await bed.wait_room(ns, "standup", lambda o: o["status"].get("lastSyncedAt") is not None)
    assert obj["status"]["roomStatus"] == "in-progress" and twilio_status(bed, sid) == "in-progress"


async def test_deleting_with_complete_ends_the_room_whatever_status_says(bed: OperatorHarness) -> None:
    """Finding 5: ``status.roomStatus`` edited to ``failed`` made deletion skip completing the room."""
    ns = await bed.namespace("a")
    sid = await live_room(bed, ns, "standup", {})
    await patch_status(bed, ns, "standup", {"roomStatus": "failed"})
    await bed.delete_room(ns, "standup")
    await bed.wait_gone(ns, "standup")
    assert twilio_status(bed, sid) == "completed"

    # Hidden from status altogether: the room this process opened is still completed.
    sid = await live_room(bed, ns, "hidden", {})
    await patch_status(bed, ns, "hidden", {"sid": None, "roomStatus": None})
    await bed.delete_room(ns, "hidden")
    await bed.wait_gone(ns, "hidden")
    assert twilio_status(bed, sid) == "completed"


async def test_a_callback_changes_only_objects_of_the_account_that_signed_it(bed: OperatorHarness) -> None:
    """Tenant B's own account is verified (Twilio accepted its token); B signs composition events for
    A's composition and room events for A's room: they are accepted at the door and change nothing."""
    tenant = await bed.subaccount()
    team_a, team_b = await bed.namespace("a"), await bed.namespace("b")
    await put_secret(bed, team_b, "own", {**_tenant_data(tenant), "TWILIO_AUTH_TOKEN": tenant["auth_token"]})
    await live_room(bed, team_b, "mine", {"credentialsRef": {"name": "own"}})  # B's token is now accepted

    victim = await live_room(bed, team_a, "standup", {})
    await bed.join(victim, "alice")
    await bed.advance_clock(10)
    await create_composition(bed, team_a, "rec", {"roomSid": victim})
    obj = await wait_composition(bed, team_a, "rec", lambda o: (o.get("status") or {}).get("sid"))

    forged = event(obj, "composition-progress", tenant["account_sid"], PercentageDone="99")
    query = query_of(obj)
    assert bed.settings is not None
    url = composition_callback_url(bed.settings.PUBLIC_BASE_URL, **query)
    signature = sign(tenant["auth_token"], url, forged)
    assert await post_composition_callback(bed, forged, query=query, signature=signature) == 204
    ended = room_ended(tenant["account_sid"], victim, "x")
    assert await post_callback(bed, ended, tenant["auth_token"]) == 204
    await drained(bed)
    await bed.settled()
    current = await bed.kube_client.get(COMPOSITIONS, team_a, "rec")
    assert current is not None and current["status"].get("progressPercent") != 99
    room = await bed.get_room(team_a, "standup")
    assert room is not None and room["status"]["roomStatus"] == "in-progress"
