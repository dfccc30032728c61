"""Accounts: the API v2010 Accounts resource, subaccounts, and every resource scoped to its account.

A subaccount has its own SID and Auth Token. Rooms, recordings, compositions, hooks, settings and keys of one
account are invisible to another; callbacks carry the owning account's SID and are signed with its token;
Access Tokens join only rooms of the account that owns the signing key.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from test_compositions_support import (
    GRID_LAYOUT,
    CallbackReceiver,
    advance,
    complete_room,
    serve_callback_receiver,
    wait_for_status,
)
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient

# Fixture types of conftest.py (not imported: pytest provides them).
ClientFactory = Any
ControlCall = Any
Subaccount = Any
TokenFactory = Any


@pytest.fixture
def callback_receiver(emulator: Any) -> Iterator[CallbackReceiver]:
    yield from serve_callback_receiver(emulator)


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def control_json(base_url: str, method: str, path: str, body: Any = None) -> Any:
    """The JSON answer of the control API of an emulator started by ``emulator_factory``."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base_url}/_emulator/{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def raw_get(emulator: Any, path: str, user: str, password: str) -> tuple[int, Any]:
    request = urllib.request.Request(emulator.url + path)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())


def join_in(
    emulator_control: ControlCall, room: str, identity: str, token: str, account_sid: str | None = None
) -> Any:
    """Join ``room`` (SID or UniqueName, resolved in ``account_sid``, default the main account)."""
    body: dict[str, Any] = {"identity": identity, "token": token}
    if account_sid is not None:
        body["accountSid"] = account_sid
    return emulator_control("POST", f"rooms/{room}/participants", body)


def sub_token(
    access_token: TokenFactory, subaccount: Subaccount, identity: str, room: str | None = None
) -> str:
    return access_token(
        identity,
        room,
        key_sid=subaccount.api_key,
        secret=subaccount.api_secret,
        account_sid=subaccount.account_sid,
    )


# ------------------------------------------------------------------------------------ Accounts resource


def test_create_fetch_and_list_subaccounts(
    twilio_client: Client, emulator: Any, make_client: ClientFactory
) -> None:
    main_sid = emulator.state.account_sid
    created = twilio_client.api.v2010.accounts.create_with_http_info(friendly_name="tenant-a")
    assert created.status_code == 201
    sub = created.data
    assert sub.sid.startswith("AC") and len(sub.sid) == 34 and sub.sid != main_sid
    assert sub.auth_token and sub.auth_token != emulator.credentials["auth_token"]
    assert (sub.owner_account_sid, sub.friendly_name, sub.status) == (main_sid, "tenant-a", "active")
    assert sub.date_created is not None and sub.date_created.tzinfo is not None
    assert sub.uri == f"/2010-04-01/Accounts/{sub.sid}.json"

    unnamed = twilio_client.api.v2010.accounts.create()
    assert unnamed.friendly_name.startswith("SubAccount Created at ")

    fetched = twilio_client.api.v2010.accounts(sub.sid).fetch()
    assert (fetched.sid, fetched.auth_token) == (sub.sid, sub.auth_token)
    main = twilio_client.api.v2010.accounts(main_sid).fetch()
    assert main.owner_account_sid == main_sid  # a parent account owns itself

    assert {a.sid for a in twilio_client.api.v2010.accounts.list()} == {main_sid, sub.sid, unnamed.sid}
    assert [a.sid for a in twilio_client.api.v2010.accounts.list(friendly_name="tenant-a")] == [sub.sid]

    # The subaccount sees itself only, and cannot reach its parent or its siblings.
    sub_client = make_client(sub.sid, sub.auth_token, sub.sid)
    assert [a.sid for a in sub_client.api.v2010.accounts.list()] == [sub.sid]
    for other in (main_sid, unnamed.sid):
        error = rest_error(lambda other=other: sub_client.api.v2010.accounts(other).fetch())
        assert (error.status, error.code) == (404, 20404)


def test_who_may_create_subaccounts(
    subaccount: Subaccount, subaccount_client: Client, key_client: Client
) -> None:
    nested = rest_error(lambda: subaccount_client.api.v2010.accounts.create(friendly_name="nested"))
    assert (nested.status, nested.code) == (403, 20403)
    standard = rest_error(lambda: key_client.api.v2010.accounts.create(friendly_name="by-key"))
    assert (standard.status, standard.code) == (401, 20003)


def test_suspended_and_closed_subaccounts(
    twilio_client: Client, subaccount: Subaccount, subaccount_client: Client, emulator: Any
) -> None:
    accounts = twilio_client.api.v2010.accounts
    assert accounts(subaccount.account_sid).update(status="suspended").status == "suspended"
    refused = rest_error(lambda: subaccount_client.video.v1.rooms.create(unique_name="x"))
    assert (refused.status, refused.code) == (401, 20003)
    status, _ = raw_get(emulator, "/v1/Rooms", subaccount.api_key, subaccount.api_secret)
    assert status == 401
    assert (
        accounts(subaccount.account_sid).update(status="active", friendly_name="back").friendly_name == "back"
    )
    assert subaccount_client.video.v1.rooms.create(unique_name="x").status == "in-progress"

    assert accounts(subaccount.account_sid).update(status="closed").status == "closed"
    reopen = rest_error(lambda: accounts(subaccount.account_sid).update(status="active"))
    assert (reopen.status, reopen.code) == (400, 20001)
    main = rest_error(lambda: accounts(emulator.state.account_sid).update(status="suspended"))
    assert (main.status, main.code) == (400, 20001)


def test_main_auth_token_does_not_authenticate_a_subaccount(
    subaccount: Subaccount, make_client: ClientFactory, emulator: Any
) -> None:
    client = make_client(subaccount.account_sid, emulator.credentials["auth_token"], subaccount.account_sid)
    error = rest_error(lambda: client.video.v1.rooms.create(unique_name="nope"))
    assert (error.status, error.code) == (401, 20003)
    status, body = raw_get(emulator, "/v1/Rooms", subaccount.account_sid, emulator.credentials["auth_token"])
    assert (status, body["code"], body["message"]) == (401, 20003, "Authenticate")


# ------------------------------------------------------------------------------------------------ rooms


def test_rooms_are_scoped_to_their_account(
    twilio_client: Client, subaccount: Subaccount, subaccount_client: Client, make_client: ClientFactory
) -> None:
    main_room = twilio_client.video.v1.rooms.create(unique_name="x")
    sub_room = subaccount_client.video.v1.rooms.create(unique_name="x")  # same name, another account
    assert main_room.sid != sub_room.sid
    assert sub_room.account_sid == subaccount.account_sid and main_room.account_sid != subaccount.account_sid
    duplicate = rest_error(lambda: subaccount_client.video.v1.rooms.create(unique_name="x"))
    assert (duplicate.status, duplicate.code) == (400, 53113)

    assert [r.sid for r in twilio_client.video.v1.rooms.list()] == [main_room.sid]
    assert [r.sid for r in subaccount_client.video.v1.rooms.list()] == [sub_room.sid]
    assert [r.sid for r in subaccount_client.video.v1.rooms.list(unique_name="x")] == [sub_room.sid]
    assert twilio_client.video.v1.rooms("x").fetch().sid == main_room.sid
    assert subaccount_client.video.v1.rooms("x").fetch().sid == sub_room.sid

    # The subaccount's Standard key acts for the subaccount.
    key_client = make_client(subaccount.api_key, subaccount.api_secret, subaccount.account_sid)
    assert key_client.video.v1.rooms("x").fetch().sid == sub_room.sid

    for client, foreign in ((twilio_client, sub_room.sid), (subaccount_client, main_room.sid)):
        error = rest_error(lambda c=client, s=foreign: c.video.v1.rooms(s).fetch())
        assert (error.status, error.code) == (404, 20404)
        error = rest_error(lambda c=client, s=foreign: c.video.v1.rooms(s).update(status="completed"))
        assert (error.status, error.code) == (404, 20404)
        with pytest.raises(TwilioException) as caught:
            client.video.v1.rooms(foreign).participants.list()
        assert caught.value.args[1].status_code == 404

    subaccount_client.video.v1.rooms(sub_room.sid).update(status="completed")
    assert twilio_client.video.v1.rooms(main_room.sid).fetch().status == "in-progress"
    completed = subaccount_client.video.v1.rooms.list(status="completed")
    assert [r.sid for r in completed] == [sub_room.sid]
    assert twilio_client.video.v1.rooms.list(status="completed") == []


def test_access_tokens_join_only_rooms_of_their_account(
    twilio_client: Client,
    subaccount: Subaccount,
    subaccount_client: Client,
    emulator_control: ControlCall,
    access_token: TokenFactory,
) -> None:
    main_room = twilio_client.video.v1.rooms.create(unique_name="x")
    sub_room = subaccount_client.video.v1.rooms.create(unique_name="x")
    sub = subaccount.account_sid

    joined = join_in(emulator_control, "x", "alice", sub_token(access_token, subaccount, "alice", "x"), sub)
    assert joined.status == 201, joined.body
    by_sid = join_in(emulator_control, sub_room.sid, "bob", sub_token(access_token, subaccount, "bob"))
    assert by_sid.status == 201, by_sid.body
    assert {p.identity for p in subaccount_client.video.v1.rooms(sub_room.sid).participants.list()} == {
        "alice",
        "bob",
    }

    # A subaccount token does not open the main account's room, nor a main token the subaccount's.
    for room, identity, token, account in (
        ("x", "carol", sub_token(access_token, subaccount, "carol", "x"), None),
        (main_room.sid, "carol", sub_token(access_token, subaccount, "carol"), None),
        ("x", "dave", access_token("dave", "x"), sub),
        (sub_room.sid, "dave", access_token("dave"), None),
    ):
        answer = join_in(emulator_control, room, identity, token, account)
        assert (answer.status, answer.body["code"]) == (404, 53106), answer.body
    assert twilio_client.video.v1.rooms(main_room.sid).participants.list() == []

    # "sub" must be the account that owns the signing key.
    forged = access_token(
        "erin",
        "x",
        key_sid=subaccount.api_key,
        secret=subaccount.api_secret,
        account_sid=twilio_client.account_sid,
    )
    answer = join_in(emulator_control, "x", "erin", forged)
    assert (answer.status, answer.body["code"]) == (401, 20103)


def test_room_callbacks_are_signed_with_the_owning_account_token(
    subaccount: Subaccount,
    subaccount_client: Client,
    emulator_control: ControlCall,
    access_token: TokenFactory,
    callback_receiver: CallbackReceiver,
    emulator: Any,
) -> None:
    room = subaccount_client.video.v1.rooms.create(
        unique_name="hooked",
        status_callback=callback_receiver.url("/rooms"),
        record_participants_on_connect=True,
    )
    token = sub_token(access_token, subaccount, "alice", "hooked")
    assert join_in(emulator_control, "hooked", "alice", token, subaccount.account_sid).status == 201
    advance(emulator_control, 5)
    subaccount_client.video.v1.rooms(room.sid).update(status="completed")
    callback_receiver.wait_for("room-ended")
    callback_receiver.wait_for("recording-completed")

    events = {r.event for r in callback_receiver.requests}
    assert {"room-created", "participant-connected", "recording-started", "room-ended"} <= events
    assert {r.params["AccountSid"] for r in callback_receiver.requests} == {subaccount.account_sid}
    callback_receiver.assert_signed(subaccount.auth_token)
    main_validator = RequestValidator(emulator.credentials["auth_token"])
    assert not any(main_validator.validate(r.url, r.params, r.signature) for r in callback_receiver.requests)


# ------------------------------------------------------------------------------- recordings, compositions


def test_recordings_and_compositions_are_scoped(
    twilio_client: Client,
    subaccount: Subaccount,
    subaccount_client: Client,
    emulator_control: ControlCall,
    access_token: TokenFactory,
    callback_receiver: CallbackReceiver,
    emulator: Any,
) -> None:
    main_hook = twilio_client.video.v1.composition_hooks.create(friendly_name="Recorder", audio_sources=["*"])
    sub_hook = subaccount_client.video.v1.composition_hooks.create(  # the name is unique per account only
        friendly_name="Recorder", audio_sources=["*"], status_callback=callback_receiver.url("/hook")
    )
    assert [h.sid for h in twilio_client.video.v1.composition_hooks.list()] == [main_hook.sid]
    assert [h.sid for h in subaccount_client.video.v1.composition_hooks.list()] == [sub_hook.sid]
    error = rest_error(lambda: twilio_client.video.v1.composition_hooks(sub_hook.sid).fetch())
    assert (error.status, error.code) == (404, 20404)

    room = subaccount_client.video.v1.rooms.create(unique_name="rec", record_participants_on_connect=True)
    token = sub_token(access_token, subaccount, "alice", "rec")
    assert join_in(emulator_control, "rec", "alice", token, subaccount.account_sid).status == 201
    advance(emulator_control, 20)

    recordings = subaccount_client.video.v1.recordings.list()
    assert len(recordings) == 2 and {r.account_sid for r in recordings} == {subaccount.account_sid}
    assert twilio_client.video.v1.recordings.list() == []
    error = rest_error(lambda: twilio_client.video.v1.recordings(recordings[0].sid).fetch())
    assert (error.status, error.code) == (404, 20404)
    foreign_room = rest_error(
        lambda: twilio_client.video.v1.compositions.create(room_sid=room.sid, audio_sources=["*"])
    )
    assert (foreign_room.status, foreign_room.code) == (400, 53106)

    created = subaccount_client.video.v1.compositions.create(
        room_sid=room.sid,
        audio_sources=["*"],
        video_layout=GRID_LAYOUT,
        status_callback=callback_receiver.url(),
    )
    assert created.account_sid == subaccount.account_sid
    complete_room(subaccount_client, room.sid)
    advance(emulator_control, 3600)
    wait_for_status(subaccount_client, created.sid, ("completed",))
    callback_receiver.wait_for("composition-available", created.sid)

    # Only the subaccount's own hook composed its room; the main account's hook did not.
    compositions = subaccount_client.video.v1.compositions.list()
    assert {c.sid for c in compositions} >= {created.sid} and len(compositions) == 2
    assert twilio_client.video.v1.compositions.list() == []
    error = rest_error(lambda: twilio_client.video.v1.compositions(created.sid).fetch())
    assert (error.status, error.code) == (404, 20404)
    enqueued = callback_receiver.wait_for("composition-enqueued")
    assert enqueued.params["HookSid"] == sub_hook.sid
    assert {r.params["AccountSid"] for r in callback_receiver.requests} == {subaccount.account_sid}
    callback_receiver.assert_signed(subaccount.auth_token)


def test_settings_belong_to_each_account(
    twilio_client: Client, subaccount_client: Client, subaccount: Subaccount
) -> None:
    subaccount_client.video.v1.composition_settings().create(friendly_name="tenant storage")
    assert subaccount_client.video.v1.composition_settings().fetch().friendly_name == "tenant storage"
    main = twilio_client.video.v1.composition_settings().fetch()
    assert main.friendly_name is None and main.account_sid == twilio_client.account_sid
    assert subaccount_client.video.v1.recording_settings().fetch().account_sid == subaccount.account_sid


# ------------------------------------------------------------------------------------------------- keys


def test_keys_are_scoped_to_their_account(
    twilio_client: Client, subaccount: Subaccount, subaccount_client: Client, emulator: Any
) -> None:
    sub, main = subaccount.account_sid, emulator.state.account_sid
    own = subaccount_client.api.v2010.accounts(sub).new_keys.create(friendly_name="own")
    listed = {k.sid for k in subaccount_client.api.v2010.accounts(sub).keys.list()}
    assert listed == {subaccount.api_key, own.sid}
    assert emulator.credentials["api_key"] not in listed

    # The subaccount cannot reach its parent's keys; the parent manages the subaccount's, as on Twilio.
    error = rest_error(lambda: subaccount_client.api.v2010.accounts(main).new_keys.create(friendly_name="up"))
    assert (error.status, error.code) == (404, 20404)
    error = rest_error(
        lambda: subaccount_client.api.v2010.accounts(sub).keys(emulator.credentials["api_key"]).fetch()
    )
    assert (error.status, error.code) == (404, 20404)
    by_parent = twilio_client.api.v2010.accounts(sub).new_keys.create(friendly_name="by parent")
    assert by_parent.sid in {k.sid for k in subaccount_client.api.v2010.accounts(sub).keys.list()}
    assert by_parent.sid not in {k.sid for k in twilio_client.keys.list()}
    # A key path must name the key's own account.
    error = rest_error(lambda: twilio_client.keys(by_parent.sid).fetch())
    assert (error.status, error.code) == (404, 20404)
    assert twilio_client.api.v2010.accounts(sub).keys(by_parent.sid).delete() is True

    # IAM: AccountSid selects the account the same way.
    iam_key = subaccount_client.iam.v1.new_api_key.create(account_sid=sub, friendly_name="iam")
    assert iam_key.sid in {k.sid for k in subaccount_client.iam.v1.get_api_keys.list(account_sid=sub)}
    with pytest.raises(TwilioException):
        subaccount_client.iam.v1.get_api_keys.list(account_sid=main)
    error = rest_error(lambda: subaccount_client.iam.v1.api_key(emulator.credentials["api_key"]).fetch())
    assert (error.status, error.code) == (404, 20404)


# -------------------------------------------------------------------------------------- control, persistence


def test_control_api_lists_accounts_and_resolves_names_per_account(
    twilio_client: Client,
    subaccount: Subaccount,
    subaccount_client: Client,
    emulator_control: ControlCall,
    access_token: TokenFactory,
    emulator: Any,
) -> None:
    listed = emulator_control("GET", "accounts").body["accounts"]
    by_sid = {a["accountSid"]: a for a in listed}
    assert by_sid[emulator.state.account_sid]["main"] is True
    assert by_sid[subaccount.account_sid] == {
        "accountSid": subaccount.account_sid,
        "authToken": subaccount.auth_token,
        "friendlyName": "tenant",
        "ownerAccountSid": emulator.state.account_sid,
        "status": "active",
        "main": False,
    }
    assert emulator_control("GET", "health").body["accounts"] == 2

    sub_room = subaccount_client.video.v1.rooms.create(unique_name="x")
    assert emulator_control("POST", f"rooms/x/fail?accountSid={emulator.state.account_sid}").status == 404
    unknown = emulator_control("POST", f"rooms/x/fail?accountSid=AC{'0' * 32}")
    assert (unknown.status, unknown.body["code"]) == (404, 20404)
    token = sub_token(access_token, subaccount, "alice", "x")
    assert join_in(emulator_control, "x", "alice", token, subaccount.account_sid).status == 201
    track = emulator_control(
        "POST",
        f"rooms/x/participants/alice/tracks?accountSid={subaccount.account_sid}",
        {"name": "screen", "kind": "video"},
    )
    assert track.status == 201, track.body
    assert emulator_control("POST", f"rooms/x/fail?accountSid={subaccount.account_sid}").status == 200
    assert subaccount_client.video.v1.rooms(sub_room.sid).fetch().status == "failed"

    key = emulator_control("POST", "keys", {"friendlyName": "ops", "accountSid": subaccount.account_sid})
    assert key.status == 201 and key.body["accountSid"] == subaccount.account_sid


def test_accounts_survive_a_restart(emulator_factory: Any, tmp_path: Any) -> None:
    state_file = str(tmp_path / "state.json")
    first = emulator_factory(state_file)
    created = control_json(first.url, "POST", "accounts", {"friendlyName": "persisted"})
    sub_sid, token = created["accountSid"], created["authToken"]
    client = Client(sub_sid, token, http_client=BaseUrlHttpClient(first.url))
    room_sid = client.video.v1.rooms.create(unique_name="x").sid
    first.stop()

    second = emulator_factory(state_file)
    status, body = raw_get(second, "/v1/Rooms/x", sub_sid, token)
    assert (status, body["sid"], body["account_sid"]) == (200, room_sid, sub_sid)
    status, _ = raw_get(second, "/v1/Rooms/x", second.state.account_sid, second.credentials["auth_token"])
    assert status == 404
    listed = control_json(second.url, "GET", "accounts")["accounts"]
    assert {a["accountSid"]: a["friendlyName"] for a in listed}[sub_sid] == "persisted"
