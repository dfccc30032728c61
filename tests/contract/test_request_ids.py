"""``Twilio-Request-Id``: on every Twilio API answer, in Twilio's format, never on the control API."""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.request
from typing import Any

from twilio.rest import Client

REQUEST_ID = re.compile(r"RQ[0-9a-f]{32}")
HEADER = "Twilio-Request-Id"


def raw(
    url: str, method: str = "GET", auth: tuple[str, str] | None = None, data: bytes | None = None
) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased) of one request; redirects are not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, data=data, method=method)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def request_id(headers: dict[str, str]) -> str:
    value = headers.get(HEADER.lower())
    assert value is not None, f"no {HEADER} in {sorted(headers)}"
    assert REQUEST_ID.fullmatch(value), value
    return value


def test_every_twilio_answer_carries_a_request_id(emulator: Any, emulator_control: Any) -> None:
    creds = emulator.credentials
    auth = (creds["account_sid"], creds["auth_token"])
    base = emulator.url
    keys = f"{base}/2010-04-01/Accounts/{creds['account_sid']}/Keys"
    answers = [
        raw(f"{base}/v1/Rooms", auth=auth),  # 200 list
        raw(f"{base}/v1/Rooms", "POST", auth, b"UniqueName=ids"),  # 201 create
        raw(f"{base}/v1/Rooms/ids", auth=auth),  # 200 fetch
        raw(f"{base}/v1/Rooms/ids", "POST", auth, b"Status=bogus"),  # 400/53112
        raw(f"{base}/v1/Rooms/RM{'0' * 32}", auth=auth),  # 404 resource
        raw(f"{base}/v1/Rooms", auth=("AC" + "0" * 32, "wrong")),  # 401
        raw(f"{base}/v1/NoSuchThing", auth=auth),  # 404 route
        raw(f"{base}/v1/Rooms", "DELETE", auth),  # 405
        raw(f"{keys}.json", "POST", auth, b"FriendlyName=ids"),  # 201 v2010
    ]
    statuses = [status for status, _ in answers]
    assert statuses == [200, 201, 200, 400, 404, 401, 404, 405, 201]
    ids = [request_id(headers) for _, headers in answers]
    assert len(set(ids)) == len(ids)  # one per request
    recent = emulator_control("GET", "requests").body["recent"]
    assert [entry["requestId"] for entry in recent] == ids  # the journal names the same requests
    assert [entry["status"] for entry in recent] == [str(status) for status in statuses]
    assert recent[1] == {
        "requestId": ids[1],
        "operation": "CreateRoom",
        "method": "POST",
        "path": "/v1/Rooms",
        "status": "201",
    }

    key_sid = next(key.sid for key in emulator.state.keys.values() if key.friendly_name == "ids")
    status, headers = raw(f"{keys}/{key_sid}.json", "DELETE", auth)
    assert status == 204
    request_id(headers)

    assert emulator_control("POST", "faults", {"rate429": 1}).status == 200
    status, headers = raw(f"{base}/v1/Rooms", auth=auth)
    assert status == 429 and headers["retry-after"]
    request_id(headers)
    assert emulator_control("POST", "faults", {"rate5xx": 1}).status == 200
    status, headers = raw(f"{base}/v1/Rooms", auth=auth)
    assert status in (500, 503)
    request_id(headers)
    assert emulator_control("POST", "faults", {}).status == 200


def test_control_api_has_no_request_id(emulator: Any) -> None:
    for path in ("health", "clock", "requests", "callbacks", "faults", "no-such-route"):
        status, headers = raw(f"{emulator.url}/_emulator/{path}")
        assert status in (200, 404)
        assert HEADER.lower() not in headers, path
    status, headers = raw(f"{emulator.url}/_emulator/media/recordings/RT{'0' * 32}?Expires=1&Signature=x")
    assert status in (403, 404) and HEADER.lower() not in headers


def test_twilio_client_sees_the_request_id(twilio_client: Client) -> None:
    answer = twilio_client.video.v1.rooms.create_with_http_info(unique_name="with-id")
    assert answer.status_code == 201
    headers = {str(k).lower(): str(v) for k, v in dict(answer.headers or {}).items()}
    request_id(headers)
