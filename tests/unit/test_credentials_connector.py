"""The one credentials connector: a Secret reference in, credentials or a problem out, checked once per
resourceVersion, with the tenancy rules of docs/security.md."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from twilio_video_operator.controllers.credentials import redact_credentials
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import AuthError, TransientError
from twilio_video_operator.logs import forget_secrets, redact
from twilio_video_operator.models.conditions import Reason
from twilio_video_operator.reconcilers.credentials import CredentialsConnector, SecretData, Source

OPERATOR = CredentialSet.from_mapping(
    {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_API_KEY": "SK" + "0" * 32,
        "TWILIO_API_SECRET": "op-secret",
    }
)
TENANT = {
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_API_KEY": "SK" + "1" * 32,
    "TWILIO_API_SECRET": "t-sec",
}


class World:
    """Secrets by name, what Twilio says of Auth Tokens, and what the connector told its hooks."""

    def __init__(self) -> None:
        self.secrets: dict[str, SecretData] = {}
        self.refuse: set[str] = set()
        self.twilio_down = False
        self.checks: list[str] = []
        self.accepted: list[tuple[Source, str]] = []
        self.read: list[str] = []

    def put(self, name: str, data: Mapping[str, str], version: str = "1") -> None:
        self.secrets[name] = SecretData(resource_version=version, data=dict(data))

    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        assert namespace == "tenant"
        return self.secrets.get(name)

    async def check_token(self, creds: CredentialSet) -> None:
        token = creds.auth_token.get_secret_value() if creds.auth_token else ""
        self.checks.append(token)
        if self.twilio_down:
            raise TransientError("down", operation="ListKey", status=503)
        if token in self.refuse:
            raise AuthError("refused", operation="ListKey", status=401, code=20003)

    def connector(self) -> CredentialsConnector:
        return CredentialsConnector(
            OPERATOR,
            self.read_secret,
            self.check_token,
            on_read=lambda creds: self.read.append(creds.account_sid),
            on_accepted=lambda source, creds: self.accepted.append((source, creds.account_sid)),
        )


async def test_no_reference_is_the_operators_shared_account() -> None:
    connection = await World().connector().connect("tenant", None)
    assert connection.credentials == OPERATOR and connection.shared and connection.problem is None
    assert connection.revision == f"operator:{OPERATOR.fingerprint}"


@pytest.mark.parametrize(
    ("data", "require_api_key", "reason"),
    [
        (None, True, Reason.CREDENTIALS_NOT_FOUND),
        ({"TWILIO_ACCOUNT_SID": "AC" + "1" * 32}, True, Reason.INVALID_CREDENTIALS),
        ({"TWILIO_AUTH_TOKEN": "tok"}, False, Reason.INVALID_CREDENTIALS),
        ({**TENANT, "TWILIO_ACCOUNT_SID": OPERATOR.account_sid}, True, Reason.ACCOUNT_NOT_ALLOWED),
    ],
)
async def test_unusable_secrets_are_a_problem_with_one_reason(
    data: dict[str, str] | None, require_api_key: bool, reason: Reason
) -> None:
    world = World()
    if data is not None:
        world.put("creds", data)
    connection = await world.connector().connect("tenant", "creds", require_api_key=require_api_key)
    assert connection.credentials is None and connection.problem is not None
    assert connection.problem[0] == reason
    assert world.checks == []  # Twilio is never asked about a Secret refused on its own
    assert "t-sec" not in connection.problem[1]


async def test_an_auth_token_alone_will_do_where_no_api_key_is_needed() -> None:
    world = World()
    world.put("keys", {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "tok"})
    connection = await world.connector().connect("tenant", "keys", require_api_key=False)
    assert connection.credentials is not None and connection.callbacks_verifiable
    assert world.checks == ["tok"] and world.accepted == [(("tenant", "keys"), "AC" + "1" * 32)]


async def test_a_refused_token_is_auth_failed_and_verifies_nothing() -> None:
    world = World()
    world.put("creds", {**TENANT, "TWILIO_AUTH_TOKEN": "bad"})
    world.refuse.add("bad")
    connection = await world.connector().connect("tenant", "creds")
    assert connection.problem is not None and connection.problem[0] == Reason.AUTH_FAILED
    assert world.accepted == []


async def test_a_secret_is_checked_once_per_resource_version() -> None:
    world = World()
    world.put("creds", {**TENANT, "TWILIO_AUTH_TOKEN": "tok"}, version="7")
    connector = world.connector()
    first = await connector.connect("tenant", "creds")
    again = await connector.connect("tenant", "creds")
    assert first == again and first.revision == "creds@7" and world.checks == ["tok"]
    world.put("creds", {**TENANT, "TWILIO_AUTH_TOKEN": "tok2"}, version="8")
    changed = await connector.connect("tenant", "creds")
    assert changed.revision == "creds@8" and world.checks == ["tok", "tok2"]


async def test_twilio_being_down_is_transient_and_not_remembered() -> None:
    world = World()
    world.put("creds", {**TENANT, "TWILIO_AUTH_TOKEN": "tok"})
    world.twilio_down = True
    connector = world.connector()
    down = await connector.connect("tenant", "creds")
    assert down.transient and down.problem is not None and down.problem[0] == Reason.TWILIO_UNAVAILABLE
    world.twilio_down = False
    up = await connector.connect("tenant", "creds")
    assert up.credentials is not None and world.checks == ["tok", "tok"]


def test_redaction_is_registered_for_every_secret_value_read() -> None:
    forget_secrets()
    try:
        creds = CredentialSet.from_mapping({**TENANT, "TWILIO_AUTH_TOKEN": "a-token-value"})
        redact_credentials(creds)
        assert "t-sec" not in redact("secret t-sec and token a-token-value")
        assert "a-token-value" not in redact("token a-token-value")
    finally:
        forget_secrets()
