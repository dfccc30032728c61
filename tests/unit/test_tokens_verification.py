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
from twilio_video_operator.tokens.verification import (
    VerificationGate,
    parse_pass,
    parse_verification,
    same_address,
)
from twilio_video_operator.tokens.verification_pass import PassSigner, PassSubject

RULE = AccessVerification.model_validate({"serviceSid": "VA" + "a" * 32, "ttl": "10m"})
KEY = PassSubject("ns", "paid", "uid-1", "+15550001", RULE.service_sid)
SIGNER = PassSigner("the operator's api secret")
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
    gate: VerificationGate, code: str | None = "123456", sid: str | None = None, presented: str | None = None
) -> tuple[int, str]:
    with pytest.raises(TokenRequestError) as caught:
        await gate.require(RULE, KEY, code, sid, presented)
    return caught.value.status, caught.value.reason


async def test_one_check_per_ttl_even_for_concurrent_requests() -> None:
    now = [1000.0]
    verify = FakeVerify(check())
    gate = VerificationGate(verify, lambda: now[0], SIGNER)
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
    gate = VerificationGate(verify, lambda: 0.0, SIGNER)
    assert await refusal(gate) == expected
    assert await refusal(gate, code=None) == (403, "VerificationRequired")


async def test_a_verification_sid_checks_by_sid_and_must_name_the_identity() -> None:
    verify = FakeVerify(check())
    gate = VerificationGate(verify, lambda: 0.0, SIGNER)
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


async def test_the_pass_of_a_check_lets_another_replica_mint_until_the_check_expires() -> None:
    now = [1000.0]
    verify = FakeVerify(check())
    first = VerificationGate(verify, lambda: now[0], SIGNER)
    passed = await first.require(RULE, KEY, "123456", None)
    assert passed.expires_at == 1600
    # Another replica (another gate, the same operator secret) has no memory of it but takes the pass.
    other = VerificationGate(FakeVerify(check()), lambda: now[0], PassSigner("the operator's api secret"))
    assert await refusal(other, code=None) == (403, "VerificationRequired")
    shown = await other.require(RULE, KEY, None, None, passed.pass_token)
    assert shown.expires_at == passed.expires_at  # a pass never extends the check
    assert len(verify.calls) == 1
    now[0] += 601
    assert await refusal(other, code=None, presented=passed.pass_token) == (403, "VerificationRequired")


@pytest.mark.parametrize(
    "other",
    [
        PassSubject("ns", "paid", "uid-1", "+15550002", RULE.service_sid),  # another identity
        PassSubject("ns", "free", "uid-1", "+15550001", RULE.service_sid),  # another room
        PassSubject("ns", "paid", "uid-2", "+15550001", RULE.service_sid),  # the room recreated
        PassSubject("team", "paid", "uid-1", "+15550001", RULE.service_sid),  # another namespace
        PassSubject("ns", "paid", "uid-1", "+15550001", "VA" + "c" * 32),  # another Verify Service
    ],
)
def test_a_pass_is_good_for_its_subject_only(other: PassSubject) -> None:
    token = SIGNER.issue(KEY, 2000)
    assert SIGNER.expiry(token, KEY, 1000) == 2000
    assert SIGNER.expiry(token, other, 1000) is None


def test_forged_altered_or_foreign_passes_are_refused() -> None:
    token = SIGNER.issue(KEY, 2000)
    version, stamp, mac = token.split(".")
    for forged in (
        f"{version}.{int(stamp) + 3600}.{mac}",  # a later expiry under the same MAC
        f"{version}.{stamp}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        f"vp2.{stamp}.{mac}",
        f"{version}.-{stamp}.{mac}",
        f"{version}.{stamp}",
        "",
        "vp1.2000.é",
        PassSigner("another operator's secret").issue(KEY, 2000),
    ):
        assert SIGNER.expiry(forged, KEY, 1000) is None, forged
    assert SIGNER.expiry(token, KEY, 2000) is None  # expired at its stamp


def test_the_pass_field_is_checked() -> None:
    assert parse_pass(None) is None
    assert parse_pass("vp1.1.x") == "vp1.1.x"
    for value in ("", "x" * 129, 5, "é"):
        with pytest.raises(TokenRequestError) as caught:
            parse_pass(value)
        assert caught.value.status == 400
