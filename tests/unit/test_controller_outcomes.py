"""The one mapping from a controller's Outcome to kopf's answers."""

from __future__ import annotations

import kopf
import pytest

from twilio_video_operator.controllers.outcome import KUBE_RETRY_SECONDS, Outcome, Verdict, kube_failed
from twilio_video_operator.handlers._outcomes import settle
from twilio_video_operator.kube import KubeApiError


def test_done_returns() -> None:
    settle(Outcome.done("nothing left"))


def test_retry_is_a_temporary_error_with_its_delay() -> None:
    with pytest.raises(kopf.TemporaryError) as caught:
        settle(Outcome.retry("Twilio is busy", 12.5), about="Composition ns/c1")
    assert caught.value.delay == 12.5
    assert str(caught.value) == "Composition ns/c1: Twilio is busy"


def test_a_negative_delay_retries_at_once() -> None:
    assert Outcome.retry("now", -3).delay == 0.0


def test_give_up_is_a_permanent_error() -> None:
    with pytest.raises(kopf.PermanentError, match="may not delete"):
        settle(Outcome.give_up("the credentials may not delete the composition"))


def test_a_failed_kubernetes_call_is_retried_soon_and_named_without_detail() -> None:
    outcome = kube_failed("read the object", KubeApiError(503, "ServiceUnavailable", "etcd is away"))
    assert outcome.verdict is Verdict.RETRY and outcome.delay == KUBE_RETRY_SECONDS
    assert outcome.message == "cannot read the object: 503 ServiceUnavailable"
    assert kube_failed("write the status", OSError("boom")).message == "cannot write the status: OSError"
