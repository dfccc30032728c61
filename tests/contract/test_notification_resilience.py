"""Messaging, Studio and Verify under the emulator's faults, and all four notification products (SendGrid
included) across a restart with ``--state``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from test_compositions_support import advance
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient

ControlCall = Any
SENDER = "+15005550006"


def lost_answers(emulator_control: ControlCall, operation: str) -> int:
    stats = emulator_control("GET", "requests").body
    return sum(stats["lostResponses"].get(operation, {}).values())


def test_a_lost_create_message_answer_still_sends_it(
    twilio_client: Client, emulator_control: ControlCall
) -> None:
    emulator_control("POST", "faults", {"rateLostResponse": 1.0, "lostResponseMode": "5xx"})
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.messages.create(to="+15551260001", from_=SENDER, body="reminder")
    assert caught.value.status in (500, 503)
    emulator_control("POST", "faults", {})
    assert lost_answers(emulator_control, "CreateMessage") == 1

    (message,) = twilio_client.messages.list(to="+15551260001")
    advance(emulator_control, 5)
    assert twilio_client.messages(message.sid).fetch().status == "delivered"


def test_a_lost_execution_answer_makes_the_retry_a_conflict(
    twilio_client: Client, emulator_control: ControlCall
) -> None:
    flow_sid = emulator_control("POST", "studio/flows", {"executionSeconds": 60}).body["sid"]
    executions = twilio_client.studio.v2.flows(flow_sid).executions
    emulator_control("POST", "faults", {"rateLostResponse": 1.0, "lostResponseMode": "drop"})
    with pytest.raises(requests.ConnectionError):
        executions.create(to="+15551260002", from_=SENDER)
    emulator_control("POST", "faults", {})
    with pytest.raises(TwilioRestException) as caught:
        executions.create(to="+15551260002", from_=SENDER)
    assert (caught.value.status, caught.value.code) == (409, 20409)
    assert len(emulator_control("GET", "studio/executions").body["executions"]) == 1


def test_verify_routes_are_faulted_with_twilio_errors(
    twilio_client: Client, emulator_control: ControlCall
) -> None:
    service = twilio_client.verify.v2.services.create(friendly_name="Faulted")
    emulator_control("POST", "faults", {"rate429": 1.0})
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.verify.v2.services(service.sid).verifications.create(to="+15551260003", channel="sms")
    assert (caught.value.status, caught.value.code) == (429, 20429)
    emulator_control("POST", "faults", {})
    assert emulator_control("GET", "verify/codes").body["codes"] == []
    stats = emulator_control("GET", "requests").body["operations"]
    assert stats["CreateVerification"] == {"429": 1}


def test_notification_state_survives_a_restart(tmp_path: Path, emulator_factory: Any) -> None:
    state_file = str(tmp_path / "emulator.json")
    first = emulator_factory(state_file)
    credentials = first.credentials
    client = Client(
        credentials["account_sid"], credentials["auth_token"], http_client=BaseUrlHttpClient(first.url)
    )
    service = client.messaging.v1.services.create(friendly_name="kept")
    verify = client.verify.v2.services.create(friendly_name="kept")
    verification = client.verify.v2.services(verify.sid).verifications.create(
        to="+15551260004", channel="sms"
    )
    flow = client.studio.v2.flows.create(friendly_name="kept", status="published", definition={"states": []})
    execution = client.studio.v2.flows(flow.sid).executions.create(to="+15551260004", from_=SENDER)
    mail = Mail(from_email="a@example.com", to_emails="b@example.com", subject="kept", plain_text_content="x")
    SendGridAPIClient(credentials["sendgrid_api_key"], host=first.url).send(mail)
    # Last, so that it is saved before its status changes (one a second) are over.
    message = client.messages.create(to="+15551260004", messaging_service_sid=service.sid, body="kept")
    first.stop()

    second = emulator_factory(state_file)
    assert second.credentials["sendgrid_api_key"] == credentials["sendgrid_api_key"]
    client = Client(
        credentials["account_sid"], credentials["auth_token"], http_client=BaseUrlHttpClient(second.url)
    )
    assert client.messaging.v1.services(service.sid).fetch().friendly_name == "kept"
    assert client.studio.v2.flows(flow.sid).executions(execution.sid).fetch().status == "active"
    codes = second.call(lambda: list(second.state.extensions["verify"].verifications.values()))
    assert [v.sid for v in codes] == [verification.sid]
    check = client.verify.v2.services(verify.sid).verification_checks.create(
        verification_sid=verification.sid, code=codes[0].code
    )
    assert check.status == "approved"
    # The message's pending status changes were armed again: it still reaches "delivered".
    second.call(lambda: second.state.clock.advance(5))
    second.call(second.state.scheduler.run_due)
    assert client.messages(message.sid).fetch().status == "delivered"
    sendgrid = SendGridAPIClient(credentials["sendgrid_api_key"], host=second.url)
    activity = sendgrid.client.messages.get(query_params={"query": 'subject="kept"', "limit": 1})
    assert json.loads(activity.body)["messages"][0]["to_email"] == "b@example.com"
