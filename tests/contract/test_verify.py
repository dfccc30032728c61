"""Verify v2 through the official twilio client, every 2xx answer checked against twilio_verify_v2.json.

The code a verification "sent" is read from ``GET /_emulator/verify/codes``; checks approve it, leave it
pending on a wrong code, stop it after five wrong codes (60202) and find nothing once it expired (10
minutes of emulator clock), was approved or canceled.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from test_compositions_support import advance
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

ControlCall = Any
PHONE = "+15551240001"


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def sent_code(emulator_control: ControlCall, to: str) -> dict[str, Any]:
    """The newest verification to ``to`` as the control API shows it (its code included)."""
    answer = emulator_control("GET", f"verify/codes?to={quote(to)}")
    assert answer.status == 200, answer.body
    assert answer.body["codes"], f"no code was sent to {to}"
    return dict(answer.body["codes"][0])


def wrong(code: str) -> str:
    return "".join(str((int(digit) + 1) % 10) for digit in code)


@pytest.fixture
def service(twilio_client: Client) -> Any:
    return twilio_client.verify.v2.services.create(friendly_name="Paid rooms")


def test_a_right_code_approves_once(
    twilio_client: Client, service: Any, emulator_control: ControlCall
) -> None:
    assert service.sid.startswith("VA") and service.code_length == 6
    verification = twilio_client.verify.v2.services(service.sid).verifications.create(to=PHONE, channel="sms")
    assert verification.sid.startswith("VE") and verification.status == "pending"
    assert verification.valid is False and len(verification.send_code_attempts) == 1

    sent = sent_code(emulator_control, PHONE)
    assert sent["verificationSid"] == verification.sid and sent["serviceSid"] == service.sid
    assert len(sent["code"]) == 6 and sent["code"].isdigit() and sent["status"] == "pending"

    checks = twilio_client.verify.v2.services(service.sid).verification_checks
    miss = checks.create(to=PHONE, code=wrong(sent["code"]))
    assert (miss.status, miss.valid, miss.sid) == ("pending", False, verification.sid)
    hit = checks.create(to=PHONE, code=sent["code"])
    assert (hit.status, hit.valid, hit.sid) == ("approved", True, verification.sid)

    # An approved verification is gone, as on Twilio: a second check, a fetch and an update find nothing.
    assert rest_error(lambda: checks.create(to=PHONE, code=sent["code"])).status == 404
    fetch = twilio_client.verify.v2.services(service.sid).verifications(verification.sid).fetch
    assert rest_error(fetch).code == 20404
    assert sent_code(emulator_control, PHONE)["status"] == "approved"


def test_sending_again_resends_the_same_code_up_to_five_times(
    twilio_client: Client, service: Any, emulator_control: ControlCall
) -> None:
    verifications = twilio_client.verify.v2.services(service.sid).verifications
    first = verifications.create(to=PHONE, channel="sms")
    code = sent_code(emulator_control, PHONE)["code"]
    for attempt in range(2, 6):
        again = verifications.create(to=PHONE, channel="whatsapp" if attempt % 2 else "sms")
        assert again.sid == first.sid and len(again.send_code_attempts) == attempt
    resent = sent_code(emulator_control, PHONE)
    assert (resent["code"], resent["sends"]) == (code, 5)
    error = rest_error(lambda: verifications.create(to=PHONE, channel="sms"))
    assert (error.status, error.code) == (429, 60203)
    check = twilio_client.verify.v2.services(service.sid).verification_checks.create(
        verification_sid=first.sid, code=code
    )
    assert check.status == "approved" and check.channel == "whatsapp"  # the channel of the last send


def test_five_wrong_codes_end_the_verification_with_60202(
    twilio_client: Client, service: Any, emulator_control: ControlCall
) -> None:
    twilio_client.verify.v2.services(service.sid).verifications.create(to=PHONE, channel="sms")
    code = sent_code(emulator_control, PHONE)["code"]
    checks = twilio_client.verify.v2.services(service.sid).verification_checks
    for _ in range(5):
        assert checks.create(to=PHONE, code=wrong(code)).status == "pending"
    error = rest_error(lambda: checks.create(to=PHONE, code=code))
    assert (error.status, error.code) == (429, 60202)
    assert sent_code(emulator_control, PHONE)["status"] == "max_attempts_reached"
    assert rest_error(lambda: checks.create(to=PHONE, code=code)).status == 404
    # A new verification starts over with a new code.
    fresh = twilio_client.verify.v2.services(service.sid).verifications.create(to=PHONE, channel="sms")
    new_code = sent_code(emulator_control, PHONE)
    assert new_code["verificationSid"] == fresh.sid and new_code["failedChecks"] == 0
    assert checks.create(to=PHONE, code=new_code["code"]).status == "approved"


def test_a_code_expires_after_ten_minutes(
    twilio_client: Client, service: Any, emulator_control: ControlCall
) -> None:
    verification = twilio_client.verify.v2.services(service.sid).verifications.create(
        to="Someone@Example.com", channel="email"
    )
    assert verification.to == "someone@example.com" and verification.channel == "email"
    code = sent_code(emulator_control, "someone@example.com")["code"]
    advance(emulator_control, 9 * 60)
    fetched = twilio_client.verify.v2.services(service.sid).verifications(verification.sid).fetch()
    assert fetched.status == "pending"
    advance(emulator_control, 61)
    checks = twilio_client.verify.v2.services(service.sid).verification_checks
    error = rest_error(lambda: checks.create(verification_sid=verification.sid, code=code))
    assert (error.status, error.code) == (404, 20404)
    assert sent_code(emulator_control, "someone@example.com")["status"] == "expired"


def test_canceled_and_approved_by_update(twilio_client: Client, service: Any) -> None:
    verifications = twilio_client.verify.v2.services(service.sid).verifications
    canceled = verifications(verifications.create(to=PHONE, channel="sms").sid).update(status="canceled")
    assert canceled.status == "canceled"
    checks = twilio_client.verify.v2.services(service.sid).verification_checks
    assert rest_error(lambda: checks.create(to=PHONE, code="123456")).status == 404
    other = verifications.create(to="+15551240002", channel="call")
    assert other.sid != canceled.sid
    error = rest_error(lambda: verifications(other.sid).update(status="pending"))
    assert (error.status, error.code) == (400, 60441)


def test_custom_code_length_and_custom_codes(twilio_client: Client, emulator_control: ControlCall) -> None:
    service = twilio_client.verify.v2.services.create(
        friendly_name="Short", code_length=4, custom_code_enabled=True
    )
    verifications = twilio_client.verify.v2.services(service.sid).verifications
    verifications.create(to=PHONE, channel="sms")
    assert len(sent_code(emulator_control, PHONE)["code"]) == 4
    verifications.create(to="+15551240003", channel="sms", custom_code="987654")
    assert sent_code(emulator_control, "+15551240003")["code"] == "987654"
    error = rest_error(lambda: twilio_client.verify.v2.services.create(friendly_name="x", code_length=3))
    assert (error.status, error.code) == (400, 60200)


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"to": "5551234", "channel": "sms"}, 60200),
        ({"to": PHONE, "channel": "pigeon"}, 60200),
        ({"to": "not-an-email", "channel": "email"}, 60200),
        ({"to": PHONE, "channel": "sms", "custom_code": "1234"}, 60200),
    ],
)
def test_verification_refusals(
    twilio_client: Client, service: Any, arguments: dict[str, str], code: int
) -> None:
    error = rest_error(
        lambda: twilio_client.verify.v2.services(service.sid).verifications.create(**arguments)
    )
    assert (error.status, error.code) == (400, code)


def test_services_and_codes_are_per_account(
    twilio_client: Client,
    subaccount_client: Client,
    subaccount: Any,
    service: Any,
    emulator_control: ControlCall,
) -> None:
    assert [s.sid for s in twilio_client.verify.v2.services.list()] == [service.sid]
    assert subaccount_client.verify.v2.services.list() == []
    error = rest_error(
        lambda: subaccount_client.verify.v2.services(service.sid).verifications.create(
            to=PHONE, channel="sms"
        )
    )
    assert error.status == 404
    own = subaccount_client.verify.v2.services.create(friendly_name="Tenant")
    subaccount_client.verify.v2.services(own.sid).verifications.create(to=PHONE, channel="sms")
    twilio_client.verify.v2.services(service.sid).verifications.create(to=PHONE, channel="sms")
    tenant = emulator_control("GET", f"verify/codes?to={quote(PHONE)}&accountSid={subaccount.account_sid}")
    assert [c["serviceSid"] for c in tenant.body["codes"]] == [own.sid]
    # The main account's code does not verify the subaccount's verification.
    main_code = sent_code(emulator_control, PHONE)
    assert main_code["serviceSid"] == service.sid
    tenant_code = tenant.body["codes"][0]["code"]
    if tenant_code != main_code["code"]:
        check = subaccount_client.verify.v2.services(own.sid).verification_checks.create(
            to=PHONE, code=main_code["code"]
        )
        assert check.status == "pending"
    assert (
        subaccount_client.verify.v2.services(own.sid)
        .verification_checks.create(to=PHONE, code=tenant_code)
        .status
        == "approved"
    )
    twilio_client.verify.v2.services(service.sid).delete()
    assert twilio_client.verify.v2.services.list() == []


async def test_the_async_client_verifies_too(
    async_twilio_client: Client, emulator_control: ControlCall, emulator: Any
) -> None:
    service = await async_twilio_client.verify.v2.services.create_async(friendly_name="Async")
    verifications = async_twilio_client.verify.v2.services(service.sid).verifications
    verification = await verifications.create_async(to=PHONE, channel="sms")
    code = sent_code(emulator_control, PHONE)["code"]
    checks = async_twilio_client.verify.v2.services(service.sid).verification_checks
    check = await checks.create_async(verification_sid=verification.sid, code=code)
    assert check.status == "approved"
