"""Programmable Messaging: Messages (API v2010, spec-checked) and Messaging Services (v1, not in the specs).

A message moves on the emulator clock from ``queued`` (or ``accepted`` with a Messaging Service) to
``sent`` and ``delivered``, or to ``failed``/``undelivered`` for a recipient the control API marks as
failing; every change after creation reaches the StatusCallback as a signed form POST, received here by a
local aiohttp server on 127.0.0.1 and checked with twilio's RequestValidator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_compositions_support import CallbackReceiver, Received, advance, serve_callback_receiver
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

ControlCall = Any
Subaccount = Any

SENDER = "+15005550006"
CALLBACK_PARAMS = {
    "AccountSid",
    "ApiVersion",
    "From",
    "To",
    "MessageSid",
    "SmsSid",
    "MessageStatus",
    "SmsStatus",
}


@pytest.fixture
def receiver(emulator: Any) -> Iterator[CallbackReceiver]:
    yield from serve_callback_receiver(emulator)


def statuses_for(receiver: CallbackReceiver, sid: str, count: int, timeout: float = 5.0) -> list[Received]:
    """The first ``count`` callbacks about message ``sid``, in arrival order."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in list(receiver.requests) if r.params.get("MessageSid") == sid]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{len(found)} callbacks for {sid} within {timeout} s, expected {count}")
        time.sleep(0.02)


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def test_message_lifecycle_sends_signed_status_callbacks(
    twilio_client: Client, emulator: Any, emulator_control: ControlCall, receiver: CallbackReceiver
) -> None:
    message = twilio_client.messages.create(
        to="+15551230001", from_=SENDER, body="Your session starts at 10:00", status_callback=receiver.url()
    )
    assert message.sid.startswith("SM") and message.status == "queued"
    assert message.direction == "outbound-api" and message.num_segments == "1"
    assert message.date_sent is None and message.error_code is None
    assert message.account_sid == emulator.credentials["account_sid"]

    advance(emulator_control, 5)
    received = statuses_for(receiver, message.sid, 2)
    assert [r.params["MessageStatus"] for r in received] == ["sent", "delivered"]
    receiver.assert_signed(emulator.credentials["auth_token"])
    validator = RequestValidator(emulator.credentials["auth_token"])
    for request in received:
        assert request.method == "POST"
        assert set(request.params) >= CALLBACK_PARAMS
        assert "ErrorCode" not in request.params and "MessagingServiceSid" not in request.params
        assert request.params["From"] == SENDER and request.params["To"] == "+15551230001"
        assert request.params["SmsStatus"] == request.params["MessageStatus"]
        forged = {**request.params, "MessageStatus": "failed"}
        assert not validator.validate(request.url, forged, request.signature)

    fetched = twilio_client.messages(message.sid).fetch()
    assert fetched.status == "delivered" and fetched.date_sent is not None
    assert fetched.body == "Your session starts at 10:00"
    assert fetched.date_updated >= fetched.date_created


def test_failing_recipients_end_undelivered_or_failed_with_an_error_code(
    twilio_client: Client, emulator: Any, emulator_control: ControlCall, receiver: CallbackReceiver
) -> None:
    assert emulator_control("POST", "messages/failures", {"to": "+15551230002"}).status == 201
    marked = emulator_control(
        "POST", "messages/failures", {"to": "+15551230003", "status": "failed", "errorCode": 21610}
    )
    assert marked.body == {"to": "+15551230003", "status": "failed", "errorCode": 21610}
    assert emulator_control("POST", "messages/failures", {"to": "+1", "status": "lost"}).status == 400

    unreachable = twilio_client.messages.create(
        to="+15551230002", from_=SENDER, body="hello", status_callback=receiver.url()
    )
    opted_out = twilio_client.messages.create(
        to="+15551230003", from_=SENDER, body="hello", status_callback=receiver.url()
    )
    advance(emulator_control, 5)

    undelivered = statuses_for(receiver, unreachable.sid, 2)
    assert [r.params["MessageStatus"] for r in undelivered] == ["sent", "undelivered"]
    assert "ErrorCode" not in undelivered[0].params and undelivered[1].params["ErrorCode"] == "30003"
    failed = statuses_for(receiver, opted_out.sid, 1)
    assert [r.params["MessageStatus"] for r in failed] == ["failed"]
    assert failed[0].params["ErrorCode"] == "21610"
    receiver.assert_signed(emulator.credentials["auth_token"])

    first = twilio_client.messages(unreachable.sid).fetch()
    assert first.status == "undelivered" and first.error_code == 30003 and first.error_message
    second = twilio_client.messages(opted_out.sid).fetch()
    assert second.status == "failed" and second.error_code == 21610 and second.date_sent is None

    listed = emulator_control("GET", "messages/failures").body["failures"]
    assert {item["to"] for item in listed} == {"+15551230002", "+15551230003"}
    assert emulator_control("DELETE", "messages/failures").status == 204
    healthy = twilio_client.messages.create(to="+15551230002", from_=SENDER, body="again")
    advance(emulator_control, 5)
    assert twilio_client.messages(healthy.sid).fetch().status == "delivered"


def test_a_messaging_service_accepts_then_queues_whatsapp_messages(
    twilio_client: Client, emulator: Any, emulator_control: ControlCall, receiver: CallbackReceiver
) -> None:
    service = twilio_client.messaging.v1.services.create(friendly_name="notifications")
    assert service.sid.startswith("MG") and service.status_callback is None
    service = twilio_client.messaging.v1.services(service.sid).update(
        friendly_name="session notifications", status_callback=receiver.url()
    )
    assert service.status_callback == receiver.url()
    assert twilio_client.messaging.v1.services(service.sid).fetch().friendly_name == "session notifications"
    assert [s.sid for s in twilio_client.messaging.v1.services.list()] == [service.sid]

    message = twilio_client.messages.create(
        to="whatsapp:+15551230004", messaging_service_sid=service.sid, body="Join the room"
    )
    assert message.status == "accepted" and message.from_ is None and message.num_segments == "0"
    assert message.messaging_service_sid == service.sid

    advance(emulator_control, 5)
    received = statuses_for(receiver, message.sid, 3)
    assert [r.params["MessageStatus"] for r in received] == ["queued", "sent", "delivered"]
    for request in received:
        assert request.params["MessagingServiceSid"] == service.sid
        assert request.params["From"] == "whatsapp:" + SENDER
        assert request.params["To"] == "whatsapp:+15551230004"
    receiver.assert_signed(emulator.credentials["auth_token"])
    fetched = twilio_client.messages(message.sid).fetch()
    assert fetched.from_ == "whatsapp:" + SENDER and fetched.num_segments == "1"


def test_message_callbacks_of_a_subaccount_are_signed_with_its_token(
    subaccount: Subaccount,
    subaccount_client: Client,
    twilio_client: Client,
    emulator: Any,
    emulator_control: ControlCall,
    receiver: CallbackReceiver,
) -> None:
    message = subaccount_client.messages.create(
        to="+15551230005", from_=SENDER, body="tenant", status_callback=receiver.url()
    )
    assert message.account_sid == subaccount.account_sid
    advance(emulator_control, 5)
    received = statuses_for(receiver, message.sid, 2)
    receiver.assert_signed(subaccount.auth_token)
    assert all(r.params["AccountSid"] == subaccount.account_sid for r in received)
    assert not RequestValidator(emulator.credentials["auth_token"]).validate(
        received[0].url, received[0].params, received[0].signature
    )

    # The main account sees none of it under its own path; as the parent it may address the subaccount's.
    assert rest_error(lambda: twilio_client.messages(message.sid).fetch()).status == 404
    assert [m.sid for m in twilio_client.messages.list()] == []
    parent_view = twilio_client.api.v2010.accounts(subaccount.account_sid).messages.list()
    assert [m.sid for m in parent_view] == [message.sid]
    # A subaccount cannot address its parent's path.
    main_sid = emulator.credentials["account_sid"]
    error = rest_error(
        lambda: subaccount_client.api.v2010.accounts(main_sid).messages.create(
            to="+15551230005", from_=SENDER, body="x"
        )
    )
    assert error.status == 404 and error.code == 20404


def test_messaging_services_are_per_account(subaccount_client: Client, twilio_client: Client) -> None:
    service = twilio_client.messaging.v1.services.create(friendly_name="main")
    assert subaccount_client.messaging.v1.services.list() == []
    assert rest_error(lambda: subaccount_client.messaging.v1.services(service.sid).fetch()).status == 404
    error = rest_error(
        lambda: subaccount_client.messages.create(
            to="+15551230006", messaging_service_sid=service.sid, body="x"
        )
    )
    assert error.status == 400 and error.code == 21701
    twilio_client.messaging.v1.services(service.sid).delete()
    assert twilio_client.messaging.v1.services.list() == []


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"to": "", "from_": SENDER, "body": "x"}, 21604),
        ({"to": "5551234", "from_": SENDER, "body": "x"}, 21211),
        ({"to": "+15551230007", "body": "x"}, 21603),
        ({"to": "+15551230007", "from_": "+1", "body": "x"}, 21212),
        ({"to": "+15551230007", "from_": SENDER}, 21602),
        ({"to": "+15551230007", "from_": SENDER, "body": "x" * 1601}, 21617),
        ({"to": "whatsapp:+15551230007", "from_": SENDER, "body": "x"}, 21910),
        ({"to": "+15551230007", "messaging_service_sid": "MG" + "0" * 32, "body": "x"}, 21701),
        ({"to": "+15551230007", "from_": SENDER, "body": "x", "status_callback": "http://bad_host/x"}, 21609),
        ({"to": "+15551230007", "from_": SENDER, "content_sid": "HX1"}, 21655),
        (
            {"to": "+15551230007", "from_": SENDER, "content_sid": "HX" + "a" * 32, "content_variables": "{"},
            21656,
        ),
    ],
)
def test_create_message_refusals(twilio_client: Client, arguments: dict[str, Any], code: int) -> None:
    error = rest_error(lambda: twilio_client.messages.create(**arguments))
    assert (error.status, error.code) == (400, code)


def test_list_filters_and_pages(twilio_client: Client, emulator_control: ControlCall) -> None:
    sids = [
        twilio_client.messages.create(to=to, from_="Sessions", body=f"note {n}").sid
        for n, to in enumerate(["+15551230010", "+15551230011", "+15551230010"])
    ]
    advance(emulator_control, 5)
    assert [m.sid for m in twilio_client.messages.list(page_size=2)] == list(reversed(sids))
    page = twilio_client.messages.page(page_size=2)
    assert len(list(page)) == 2 and page.next_page_url is not None
    assert [m.sid for m in twilio_client.messages.list(to="+15551230010")] == [sids[2], sids[0]]
    assert [m.sid for m in twilio_client.messages.list(from_="Nobody")] == []
    sent = twilio_client.messages(sids[0]).fetch().date_sent
    assert len(twilio_client.messages.list(date_sent=sent)) == 3
    assert twilio_client.messages.list(date_sent_before=sent.replace(year=sent.year - 1)) == []
    assert len(twilio_client.messages.list(date_sent_after=sent.replace(year=sent.year - 1))) == 3
    assert twilio_client.messages(sids[0]).media.list() == []
    error = rest_error(lambda: twilio_client.messages("SM" + "0" * 32).fetch())
    assert (error.status, error.code) == (404, 20404)


def test_content_templates_are_recorded_for_the_control_api(
    twilio_client: Client, emulator_control: ControlCall
) -> None:
    content_sid = "HX" + "b" * 32
    message = twilio_client.messages.create(
        to="whatsapp:+15551230012",
        from_="whatsapp:" + SENDER,
        content_sid=content_sid,
        content_variables=json.dumps({"1": "standup", "2": "10:00"}),
    )
    assert message.body is None
    answer = emulator_control("GET", "messages?to=whatsapp:%2B15551230012")
    assert answer.status == 200
    (recorded,) = answer.body["messages"]
    assert recorded["sid"] == message.sid and recorded["contentSid"] == content_sid
    assert recorded["contentVariables"] == {"1": "standup", "2": "10:00"}
    advance(emulator_control, 5)
    delivered = emulator_control("GET", "messages?status=delivered").body["messages"]
    assert [item["sid"] for item in delivered] == [message.sid]
    assert emulator_control("GET", "messages?status=queued").body["messages"] == []
    assert emulator_control("GET", "messages?accountSid=AC" + "0" * 32).status == 404
