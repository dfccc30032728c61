"""Verified joins end to end: ``POST /v1/token`` on the running operator for a room with
``access.verification``, with the code sent through the official ``twilio`` client's Verify v2 calls to
the emulator, and every VerificationCheck counted by the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rotation_harness import NAMESPACE, Harness, running_operator
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import AsyncBaseUrlHttpClient

pytestmark = pytest.mark.slow

APP = "token-of-the-paid-webinar-app"
PHONE = "+15551230001"
CHECK = "CreateVerificationCheck"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_operator(tmp_path) as harness:
        harness.allow_service_account(APP, "app", ("paid",))
        yield harness


@pytest.fixture
async def twilio(h: Harness) -> AsyncIterator[Client]:
    creds = h.emulator.credentials
    http = AsyncBaseUrlHttpClient(creds["url"])
    yield Client(creds["api_key"], creds["api_secret"], creds["account_sid"], http_client=http)
    await http.close()


async def ask(h: Harness, identity: str = PHONE, **more: Any) -> tuple[int, dict[str, Any]]:
    status, _, body = await h.request_token(
        {"namespace": NAMESPACE, "room": "paid", "identity": identity, **more}, bearer=APP
    )
    return status, body


async def send_code(h: Harness, twilio: Client, service: str, to: str = PHONE) -> tuple[str, str]:
    """Start a verification (the official client) and read the code "sent" (the emulator's control API)."""
    started = await twilio.verify.v2.services(service).verifications.create_async(to=to, channel="sms")
    async with h.http.get(
        f"{h.emulator.url}/_emulator/verify/codes", params={"verificationSid": started.sid}
    ) as r:
        [sent] = (await r.json())["codes"]
    return str(started.sid), str(sent["code"])


async def test_tokens_need_one_successful_check_per_ttl(h: Harness, twilio: Client) -> None:
    service = (await twilio.verify.v2.services.create_async(friendly_name="Paid webinar")).sid
    await h.create_room("paid", access={"verification": {"serviceSid": service, "ttl": "10m"}})

    status, body = await ask(h)
    assert (status, body["error"]) == (403, "VerificationRequired")
    assert await h.twilio_requests(CHECK) == 0

    _, code = await send_code(h, twilio, service)
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    status, body = await ask(h, verificationCode=wrong)
    assert (status, body["error"]) == (403, "VerificationFailed")
    assert await h.twilio_requests(CHECK) == 1

    status, body = await ask(h, verificationCode=code)
    assert status == 200 and body["identity"] == PHONE, body
    assert await h.twilio_requests(CHECK) == 2

    # Within the TTL: tokens without a code, and a stale code sent again is not checked again.
    for more in ({}, {"verificationCode": code}):
        status, body = await ask(h, **more)
        assert status == 200, body
    assert await h.twilio_requests(CHECK) == 2

    # The success is this identity's in this room only.
    status, body = await ask(h, identity="+15551230002")
    assert (status, body["error"]) == (403, "VerificationRequired")

    # Past the TTL a new check is needed; the used code is gone at Verify.
    await h.clock.advance(601)
    status, body = await ask(h)
    assert (status, body["error"]) == (403, "VerificationRequired")
    status, body = await ask(h, verificationCode=code)
    assert (status, body["error"]) == (403, "VerificationNotFound")
    sid, code = await send_code(h, twilio, service)
    status, body = await ask(h, verificationCode=code, verificationSid=sid)
    assert status == 200, body
    assert await h.twilio_requests(CHECK) == 4


async def test_a_verification_of_another_address_is_refused(h: Harness, twilio: Client) -> None:
    service = (await twilio.verify.v2.services.create_async(friendly_name="Paid webinar")).sid
    await h.create_room("paid", access={"verification": {"serviceSid": service}})
    sid, code = await send_code(h, twilio, service, to="+15559990000")
    status, body = await ask(h, verificationCode=code, verificationSid=sid)
    assert (status, body["error"]) == (403, "VerificationMismatch")
    status, body = await ask(h, verificationSid=sid)
    assert status == 400, body


async def test_too_many_wrong_codes_end_the_verification_with_one_check_each(
    h: Harness, twilio: Client
) -> None:
    service = (await twilio.verify.v2.services.create_async(friendly_name="Paid webinar")).sid
    await h.create_room("paid", access={"verification": {"serviceSid": service}})
    _, code = await send_code(h, twilio, service)
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    answers = []
    for _ in range(6):
        await h.clock.advance(2)  # past the per-identity rate limit
        answers.append((await ask(h, verificationCode=wrong))[1]["error"])
    assert answers == ["VerificationFailed"] * 5 + ["VerificationAttemptsExceeded"]
    assert await h.twilio_requests(CHECK) == 6  # Verify's 429 (60202) is final: not retried
    status, body = await ask(h, verificationCode=code)
    assert (status, body["error"]) == (403, "VerificationNotFound")


async def test_the_pass_of_a_check_is_taken_after_a_restart_without_a_new_code(
    h: Harness, twilio: Client
) -> None:
    """A new operator process (as another replica would) remembers nothing of the first's check, yet takes
    the pass its answer carried: no code, no VerificationCheck; a request without the pass needs a code."""
    service = (await twilio.verify.v2.services.create_async(friendly_name="Paid webinar")).sid
    await h.create_room("paid", access={"verification": {"serviceSid": service, "ttl": "10m"}})
    _, code = await send_code(h, twilio, service)
    status, body = await ask(h, verificationCode=code)
    assert status == 200, body
    verification_pass, until = body["verificationPass"], body["verificationPassExpiresAt"]
    assert len(verification_pass) <= 128 and PHONE not in verification_pass
    status, again = await ask(h)  # the same replica remembers; it hands out the same pass
    assert status == 200 and again["verificationPass"] == verification_pass, again

    await h.restart_operator()
    status, body = await ask(h)
    assert (status, body["error"]) == (403, "VerificationRequired")
    status, body = await ask(h, verificationPass="vp1.1.forged")
    assert (status, body["error"]) == (403, "VerificationRequired")
    # Another identity cannot use it.
    status, body = await ask(h, identity="+15551230002", verificationPass=verification_pass)
    assert (status, body["error"]) == (403, "VerificationRequired")
    status, body = await ask(h, verificationPass=verification_pass)
    assert status == 200 and body["identity"] == PHONE, body
    assert body["verificationPassExpiresAt"] == until  # a pass never extends the check
    assert await h.twilio_requests(CHECK) == 1

    # Past the TTL the pass is refused and the identity verifies again.
    await h.clock.advance(601)
    status, body = await ask(h, verificationPass=verification_pass)
    assert (status, body["error"]) == (403, "VerificationRequired")
    assert await h.twilio_requests(CHECK) == 1
