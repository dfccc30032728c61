"""The token service's Verify gate: one VerificationCheck per identity, room and TTL, and a 403 with a
reason (or a 503) for every way a check can fail."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from twilio_video_operator.gateway.errors import RetryableError, TerminalError, ThrottledError
from twilio_video_operator.gateway.verify import VerificationCheckInfo
from twilio_video_operator.models.videoroom import AccessVerification
from twilio_video_operator.tokens.errors import TokenRequestError
from twilio_video_operator.tokens.verification import VerificationGate, parse_verification, same_address

RULE = AccessVerification.model_validate({"serviceSid": "VA" + "a" * 32, "ttl": "10m"})
KEY = ("ns", "paid", "+15550001")
VE = "VE" + "b" * 32


class FakeVerify:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, str | None, str | None]] = []

    async def __call__(
        self, service_sid: str, code: str, *, to: str | None, verification_sid: str | None
    ) -> VerificationCheckInfo | None:
        self.calls.append((service_sid, code, to, verification_sid))
        await asyncio.sleep(0)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]


def check(status: str = "approved", to: str = "+15550001") -> VerificationCheckInfo:
    return VerificationCheckInfo(sid=VE, to=to, status=status, valid=status == "approved")


async def refusal(
    gate: VerificationGate, code: str | None = "123456", sid: str | None = None
) -> tuple[int, str]:
    with pytest.raises(TokenRequestError) as caught:
        await gate.require(RULE, KEY, code, sid)
    return caught.value.status, caught.value.reason


async def test_one_check_per_ttl_even_for_concurrent_requests() -> None:
    now = [1000.0]
    verify = FakeVerify(check())
    gate = VerificationGate(verify, lambda: now[0])
    await asyncio.gather(*(gate.require(RULE, KEY, "123456", None) for _ in range(5)))
    assert verify.calls == [(RULE.service_sid, "123456", "+15550001", None)]
    await gate.require(RULE, KEY, None, None)
    now[0] += 600
    assert await refusal(gate, code=None) == (403, "VerificationRequired")
    assert len(verify.calls) == 1


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (check("pending"), (403, "VerificationFailed")),
        (None, (403, "VerificationNotFound")),
        (check(to="+15559999"), (403, "VerificationMismatch")),
        (
            TerminalError("max", operation="CreateVerificationCheck", status=429, code=60202),
            (403, "VerificationAttemptsExceeded"),
        ),
        (
            ThrottledError("busy", operation="CreateVerificationCheck", status=429, code=20429),
            (503, "VerificationUnavailable"),
        ),
        (
            RetryableError("down", operation="CreateVerificationCheck", status=503),
            (503, "VerificationUnavailable"),
        ),
    ],
)
async def test_every_failure_has_its_answer_and_nothing_is_cached(
    answer: Any, expected: tuple[int, str]
) -> None:
    verify = FakeVerify(answer)
    gate = VerificationGate(verify, lambda: 0.0)
    assert await refusal(gate) == expected
    assert await refusal(gate, code=None) == (403, "VerificationRequired")


async def test_a_verification_sid_checks_by_sid_and_must_name_the_identity() -> None:
    verify = FakeVerify(check())
    gate = VerificationGate(verify, lambda: 0.0)
    await gate.require(RULE, KEY, "123456", VE)
    assert verify.calls == [(RULE.service_sid, "123456", None, VE)]


def test_request_fields_are_checked() -> None:
    assert parse_verification("123456", VE) == ("123456", VE)
    assert parse_verification(None, None) == (None, None)
    for code, sid in (
        ("", None),
        ("12 34", None),
        ("x" * 33, None),
        (123456, None),
        ("1234", "VE1"),
        (None, VE),
    ):
        with pytest.raises(TokenRequestError) as caught:
            parse_verification(code, sid)
        assert caught.value.status == 400
    assert same_address("Ann@Example.com", "ann@example.com") and not same_address("+1555", "+1556")
    assert not same_address("+1555", None)
