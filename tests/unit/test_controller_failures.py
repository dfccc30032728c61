"""Each kind's controller answers a failed Kubernetes call or unusable credentials with the one Outcome."""

from __future__ import annotations

from typing import Any, cast

from twilio_video_operator.controllers.composition import CompositionController
from twilio_video_operator.controllers.outcome import KUBE_RETRY_SECONDS, Verdict
from twilio_video_operator.controllers.signingkeyrotation import (
    REVOKE_RETRY_SECONDS,
    SigningKeyRotationController,
)
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.kube import KubeApiError
from twilio_video_operator.reconcilers.credentials import CredentialsConnector, SecretData

OPERATOR = CredentialSet.from_mapping(
    {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_API_KEY": "SK" + "0" * 32, "TWILIO_API_SECRET": "s"}
)
UNAVAILABLE = KubeApiError(503, "ServiceUnavailable", "etcd is away")


class Unreachable:
    """A Kubernetes API that answers every call with 503."""

    async def get(self, *args: Any) -> dict[str, Any] | None:
        raise UNAVAILABLE


async def no_secret(namespace: str, name: str) -> SecretData | None:
    return None


async def token_accepted(creds: CredentialSet) -> None:
    return None


def connector() -> CredentialsConnector:
    return CredentialsConnector(OPERATOR, no_secret, token_accepted)


async def test_composition_retries_when_the_object_cannot_be_read() -> None:
    controller = CompositionController(
        cast(Any, Unreachable()), cast(Any, None), connector(), cast(Any, None), public_base_url="http://op"
    )
    outcome = await controller.reconcile("tenant", "c1")
    assert (outcome.verdict, outcome.delay) == (Verdict.RETRY, KUBE_RETRY_SECONDS)
    assert outcome.message == "cannot read the object: 503 ServiceUnavailable"


async def test_a_rotation_retries_when_the_object_cannot_be_read() -> None:
    controller = SigningKeyRotationController(cast(Any, Unreachable()), cast(Any, None), connector())
    outcome = await controller.reconcile("tenant", "keys")
    assert (outcome.verdict, outcome.delay) == (Verdict.RETRY, KUBE_RETRY_SECONDS)


class Deleting:
    """The API as a rotation's deletion sees it: the object, still there with its finalizer."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    async def get(self, resource: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.body


async def test_a_rotation_whose_credentials_secret_is_gone_keeps_its_finalizer_and_says_why() -> None:
    body = {
        "metadata": {"namespace": "tenant", "name": "keys", "uid": "u-1"},
        "spec": {"secretName": "keys", "deletionPolicy": "Revoke", "credentialsRef": {"name": "gone"}},
    }
    controller = SigningKeyRotationController(cast(Any, Deleting(body)), cast(Any, None), connector())
    outcome = await controller.finalize(body)
    assert (outcome.verdict, outcome.delay) == (Verdict.RETRY, REVOKE_RETRY_SECONDS)
    assert "Secret gone (credentialsRef) does not exist" in outcome.message
