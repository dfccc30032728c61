"""API keys (v2010 Keys and SigningKeys, IAM v1 Keys) and authentication with them."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def raw_request(emulator: Any, method: str, path: str, user: str, password: str) -> int:
    request = urllib.request.Request(emulator.url + path, method=method)
    request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_key_lifecycle(twilio_client: Client) -> None:
    created = twilio_client.new_keys.create_with_http_info(friendly_name="rotation-1")
    assert created.status_code == 201
    key = created.data
    assert key.sid.startswith("SK") and len(key.secret) == 32 and key.friendly_name == "rotation-1"
    assert key.date_created is not None and key.date_created.tzinfo is not None
    fetched = twilio_client.keys(key.sid).fetch()
    assert fetched.friendly_name == "rotation-1" and not hasattr(fetched, "secret")
    assert twilio_client.keys(key.sid).update(friendly_name="renamed").friendly_name == "renamed"
    assert key.sid in {k.sid for k in twilio_client.keys.list()}
    assert twilio_client.keys(key.sid).delete() is True
    gone = rest_error(lambda: twilio_client.keys(key.sid).fetch())
    assert (gone.status, gone.code) == (404, 20404)


def test_keys_paginate(twilio_client: Client) -> None:
    created = {twilio_client.new_keys.create(friendly_name=f"k{i}").sid for i in range(5)}
    listed = {k.sid for k in twilio_client.keys.list(page_size=2)}
    assert created <= listed and len(listed) == 6  # plus the emulator's default key


def test_signing_keys(twilio_client: Client) -> None:
    created = twilio_client.new_signing_keys.create(friendly_name="signing")
    assert created.sid.startswith("SK") and len(created.secret) == 32
    assert [k.sid for k in twilio_client.signing_keys.list()] == [created.sid]
    assert twilio_client.signing_keys(created.sid).fetch().friendly_name == "signing"
    assert twilio_client.signing_keys(created.sid).update(friendly_name="two").friendly_name == "two"
    assert created.sid not in {k.sid for k in twilio_client.keys.list()}
    assert twilio_client.signing_keys(created.sid).delete() is True
    assert rest_error(lambda: twilio_client.signing_keys(created.sid).fetch()).status == 404


def test_api_key_authenticates_until_deleted(twilio_client: Client, make_client: Any) -> None:
    key = twilio_client.new_keys.create(friendly_name="app")
    app = make_client(key.sid, key.secret)
    assert app.video.v1.rooms.create().status == "in-progress"
    twilio_client.keys(key.sid).delete()
    denied = rest_error(lambda: app.video.v1.rooms.create())
    assert (denied.status, denied.code) == (401, 20003)


def test_bad_credentials(emulator: Any) -> None:
    credentials = emulator.credentials
    client = Client(credentials["account_sid"], "wrong", http_client=BaseUrlHttpClient(emulator.url))
    error = rest_error(lambda: client.video.v1.rooms.create())
    assert (error.status, error.code) == (401, 20003)
    assert raw_request(emulator, "GET", "/v1/Rooms", "SK" + "0" * 32, "x") == 401
    request = urllib.request.Request(emulator.url + "/v1/Rooms")
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(request, timeout=5)
    assert anonymous.value.code == 401


def test_standard_keys_cannot_manage_keys(key_client: Client) -> None:
    assert key_client.video.v1.rooms.create().status == "in-progress"
    for call in (
        lambda: key_client.new_keys.create(friendly_name="nope"),
        lambda: key_client.keys.list(),
        lambda: key_client.new_signing_keys.create(),
    ):
        try:
            call()
        except TwilioRestException as error:
            assert (error.status, error.code) == (401, 20003)
        except TwilioException as error:  # list calls raise a plain TwilioException
            assert error.args[1].status_code == 401
        else:
            pytest.fail("a standard key managed keys")


def test_main_keys_can_manage_keys(emulator_control: Any, make_client: Any) -> None:
    answer = emulator_control("POST", "keys", {"friendlyName": "admin", "type": "main"})
    assert answer.status == 201 and answer.body["type"] == "main"
    admin = make_client(answer.body["sid"], answer.body["secret"])
    created = admin.new_keys.create(friendly_name="made-by-main")
    assert admin.keys(created.sid).fetch().friendly_name == "made-by-main"


def test_other_account_in_path(twilio_client: Client) -> None:
    other = twilio_client.api.v2010.accounts("AC" + "1" * 32)
    error = rest_error(lambda: other.keys("SK" + "0" * 32).fetch())
    assert (error.status, error.code) == (404, 20404)


def test_paths_with_and_without_json_suffix(emulator: Any) -> None:
    credentials = emulator.credentials
    account, token = credentials["account_sid"], credentials["auth_token"]
    base = f"/2010-04-01/Accounts/{account}"
    assert raw_request(emulator, "GET", f"{base}/Keys.json", account, token) == 200
    assert raw_request(emulator, "GET", f"{base}/Keys", account, token) == 200
    assert raw_request(emulator, "GET", f"{base}/Keys/{credentials['api_key']}", account, token) == 200
    assert raw_request(emulator, "GET", f"{base}/SigningKeys", account, token) == 200


def test_iam_keys(twilio_client: Client) -> None:
    account = twilio_client.account_sid
    iam = twilio_client.iam.v1
    standard = iam.new_api_key.create(account_sid=account, friendly_name="iam-standard")
    assert len(standard.secret) == 32 and standard.policy is None
    policy = {"allow": ["/twilio/video/rooms/read"]}
    restricted = iam.new_api_key.create(
        account_sid=account, friendly_name="iam-restricted", key_type="restricted", policy=policy
    )
    assert restricted.policy == policy
    listed = {k.sid: k for k in iam.get_api_keys.list(account_sid=account, page_size=1)}
    assert {standard.sid, restricted.sid} <= set(listed)
    assert iam.api_key(standard.sid).fetch().friendly_name == "iam-standard"
    assert iam.api_key(standard.sid).update(friendly_name="renamed").friendly_name == "renamed"
    assert iam.api_key(standard.sid).delete() is True
    assert rest_error(lambda: iam.api_key(standard.sid).fetch()).status == 404


async def test_keys_with_the_async_client(async_twilio_client: Client) -> None:
    key = await async_twilio_client.new_keys.create_async(friendly_name="async")
    assert len(key.secret) == 32
    assert (await async_twilio_client.keys(key.sid).fetch_async()).friendly_name == "async"
    assert key.sid in {k.sid for k in await async_twilio_client.keys.list_async(page_size=1)}
    updated = await async_twilio_client.keys(key.sid).update_async(friendly_name="renamed")
    assert updated.friendly_name == "renamed"
    assert await async_twilio_client.keys(key.sid).delete_async() is True
    signing = await async_twilio_client.new_signing_keys.create_async(friendly_name="s")
    assert await async_twilio_client.signing_keys(signing.sid).delete_async() is True
