"""SendGrid v3 through the official ``sendgrid`` client: Mail Send with dynamic templates, errors in
SendGrid's shape, Bearer keys issued by the emulator, the Email Activity subset, faults and the control API
(``/_emulator/sendgrid/keys``, ``/_emulator/sendgrid/mail``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail

ControlCall = Any
SENDER = "sessions@example.com"
ClientFactory = Callable[..., SendGridAPIClient]


@pytest.fixture
def sendgrid_client(emulator: Any) -> SendGridAPIClient:
    """The official client with the emulator's default key (``credentials["sendgrid_api_key"]``)."""
    return SendGridAPIClient(emulator.credentials["sendgrid_api_key"], host=emulator.url)


@pytest.fixture
def sendgrid_with(emulator: Any, emulator_control: ControlCall) -> ClientFactory:
    """``sendgrid_with(**key_body)``: a client with a new key made by ``POST /_emulator/sendgrid/keys``."""

    def make(**body: Any) -> SendGridAPIClient:
        answer = emulator_control("POST", "sendgrid/keys", body)
        assert answer.status == 201, answer.body
        return SendGridAPIClient(answer.body["apiKey"], host=emulator.url)

    return make


def http_error(call: Callable[[], Any]) -> HTTPError:
    with pytest.raises(HTTPError) as caught:
        call()
    return caught.value


def errors_of(error: HTTPError) -> list[dict[str, Any]]:
    body = json.loads(error.body)
    assert set(body) == {"errors"}
    return list(body["errors"])


def dynamic_template(client: SendGridAPIClient, subject: str) -> str:
    created = client.client.templates.post(request_body={"name": "recording", "generation": "dynamic"})
    assert created.status_code == 201
    template_id = str(json.loads(created.body)["id"])
    version = client.client.templates._(template_id).versions.post(
        request_body={"name": "v1", "subject": subject, "html_content": "<a href='{{link}}'>{{room}}</a>"}
    )
    assert version.status_code == 201 and json.loads(version.body)["active"] == 1
    return template_id


def sent(emulator_control: ControlCall, query: str = "") -> list[dict[str, Any]]:
    answer = emulator_control("GET", "sendgrid/mail" + query)
    assert answer.status == 200, answer.body
    return list(answer.body["mail"])


def test_a_dynamic_template_mail_is_accepted_and_recorded(
    sendgrid_client: SendGridAPIClient, emulator: Any, emulator_control: ControlCall
) -> None:
    template_id = dynamic_template(sendgrid_client, "Recording of {{room}} is ready")
    assert template_id.startswith("d-")
    mail = Mail(from_email=SENDER, to_emails="host@example.com")
    mail.template_id = template_id
    mail.dynamic_template_data = {"room": "webinar", "link": "https://example.com/r/1"}
    mail.custom_arg = CustomArg("notification", "webinar/recording-available")

    answer = sendgrid_client.send(mail)
    assert answer.status_code == 202 and answer.body in (b"", "")
    message_id = answer.headers["X-Message-Id"]

    (record,) = sent(emulator_control)
    assert record["messageId"] == message_id and record["status"] == "processed"
    assert record["to"] == ["host@example.com"] and record["from"] == SENDER
    assert record["templateId"] == template_id
    assert record["dynamicTemplateData"] == {"room": "webinar", "link": "https://example.com/r/1"}
    assert record["subject"] == "Recording of webinar is ready"
    assert record["customArgs"] == {"notification": "webinar/recording-available"}
    assert record["accountSid"] == emulator.credentials["account_sid"]
    assert sent(emulator_control, "?to=host@example.com") == [record]
    assert sent(emulator_control, "?to=nobody@example.com") == []

    # Email Activity finds it by its custom argument: how a sender checks a send whose answer it lost.
    query = 'unique_args[\'notification\']="webinar/recording-available" AND to_email="host@example.com"'
    activity = sendgrid_client.client.messages.get(query_params={"query": query, "limit": 10})
    (found,) = json.loads(activity.body)["messages"]
    assert found["msg_id"].startswith(message_id) and found["status"] == "delivered"
    missing = sendgrid_client.client.messages.get(
        query_params={"query": "unique_args['notification']=\"other\"", "limit": 10}
    )
    assert json.loads(missing.body)["messages"] == []


def test_one_record_per_personalization(
    sendgrid_client: SendGridAPIClient, emulator_control: ControlCall
) -> None:
    body = {
        "from": {"email": SENDER},
        "subject": "Starts in 15 minutes",
        "content": [{"type": "text/plain", "value": "See you soon"}],
        "personalizations": [
            {"to": [{"email": "a@example.com"}], "cc": [{"email": "c@example.com"}]},
            {"to": [{"email": "b@example.com"}], "subject": "Your session starts soon"},
        ],
    }
    assert sendgrid_client.client.mail.send.post(request_body=body).status_code == 202
    first, second = sent(emulator_control)
    assert (first["to"], first["cc"], first["subject"]) == (
        ["a@example.com"],
        ["c@example.com"],
        body["subject"],
    )
    assert (second["to"], second["subject"]) == (["b@example.com"], "Your session starts soon")
    assert sent(emulator_control, "?to=c@example.com") == [first]
    assert emulator_control("DELETE", "sendgrid/mail").status == 204
    assert sent(emulator_control) == []


def test_an_unknown_template_is_accepted_and_dropped(
    sendgrid_client: SendGridAPIClient, emulator_control: ControlCall
) -> None:
    mail = Mail(from_email=SENDER, to_emails="host@example.com")
    mail.template_id = "d-" + "0" * 32
    assert sendgrid_client.send(mail).status_code == 202
    (record,) = sent(emulator_control)
    assert record["status"] == "dropped" and record["reason"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"personalizations", "from.email", "subject", "content"}),
        (
            {
                "personalizations": [{"to": [{"email": "not an address"}]}],
                "from": {"email": SENDER},
                "template_id": "d-" + "1" * 32,
            },
            {"personalizations.0.to.0.email"},
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.com"}]}],
                "from": {"email": SENDER},
                "template_id": "x",
            },
            {"template_id"},
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.com"}], "dynamic_template_data": []}],
                "from": {"email": "nobody"},
                "template_id": "d-" + "1" * 32,
            },
            {"personalizations.0.dynamic_template_data", "from.email"},
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.com"}], "custom_args": {"n": 1}}],
                "from": {"email": SENDER},
                "subject": "s",
                "content": [{"type": "text/plain", "value": ""}],
            },
            {"personalizations.0.custom_args", "content.0.value"},
        ),
        (
            {
                "personalizations": [{"to": [{"email": "a@example.com"}], "subject": 5}],
                "from": {"email": SENDER},
                "subject": ["s"],
                "content": [{"type": "text/plain", "value": "v"}],
            },
            {"personalizations.0.subject", "subject"},
        ),
    ],
)
def test_refusals_list_every_error_in_sendgrid_shape(
    sendgrid_client: SendGridAPIClient, emulator_control: ControlCall, body: dict[str, Any], fields: set[str]
) -> None:
    error = http_error(lambda: sendgrid_client.client.mail.send.post(request_body=body))
    assert error.status_code == 400
    errors = errors_of(error)
    assert {item["field"] for item in errors} == fields
    assert all(set(item) == {"message", "field", "help"} and item["message"] for item in errors)
    assert sent(emulator_control) == []


def test_keys_authenticate_and_scope(
    emulator: Any, emulator_control: ControlCall, sendgrid_with: ClientFactory
) -> None:
    mail = Mail(from_email=SENDER, to_emails="a@example.com", subject="s", plain_text_content="t")
    for key in ("", "SG.nope.nope", emulator.credentials["auth_token"]):
        stranger = SendGridAPIClient(key, host=emulator.url)
        error = http_error(lambda: stranger.send(mail))  # noqa: B023 (called at once)
        assert error.status_code == 401 and errors_of(error)[0]["message"]
    read_only = sendgrid_with(name="read only", scopes=["templates.read"])
    error = http_error(lambda: read_only.send(mail))
    assert (error.status_code, errors_of(error)[0]["message"]) == (403, "access forbidden")

    keys = emulator_control("GET", "sendgrid/keys").body["keys"]
    assert {key["name"] for key in keys} == {"emulator", "read only"}
    assert all("apiKey" not in key for key in keys)
    revoked = next(key for key in keys if key["name"] == "read only")
    assert emulator_control("DELETE", f"sendgrid/keys/{revoked['apiKeyId']}").status == 204
    assert http_error(lambda: read_only.client.templates.get()).status_code == 401
    assert emulator_control("POST", "sendgrid/keys", {"scopes": "all"}).status == 400
    assert emulator_control("POST", "sendgrid/keys", {"accountSid": "AC" + "0" * 32}).status == 404


def test_keys_of_a_subaccount_see_its_own_templates_and_mail(
    sendgrid_client: SendGridAPIClient,
    sendgrid_with: ClientFactory,
    subaccount: Any,
    emulator: Any,
    emulator_control: ControlCall,
) -> None:
    tenant = sendgrid_with(name="tenant", accountSid=subaccount.account_sid)
    template_id = dynamic_template(sendgrid_client, "Hi")
    assert http_error(lambda: tenant.client.templates._(template_id).get()).status_code == 404
    listed = json.loads(tenant.client.templates.get(query_params={"generations": "dynamic"}).body)
    assert listed["result"] == []
    mail = Mail(from_email=SENDER, to_emails="a@example.com")
    mail.template_id = template_id
    assert tenant.send(mail).status_code == 202
    (record,) = sent(emulator_control, f"?accountSid={subaccount.account_sid}")
    assert record["status"] == "dropped"  # another account's template is unknown to this one
    assert sent(emulator_control, f"?accountSid={emulator.credentials['account_sid']}") == []


def test_faults_apply_in_sendgrid_shape(
    sendgrid_client: SendGridAPIClient, emulator_control: ControlCall
) -> None:
    mail = Mail(from_email=SENDER, to_emails="a@example.com", subject="s", plain_text_content="t")
    assert emulator_control("POST", "faults", {"rate429": 1.0}).status == 200
    error = http_error(lambda: sendgrid_client.send(mail))
    assert error.status_code == 429 and error.headers["Retry-After"] == "1"
    assert errors_of(error) == [{"message": "too many requests", "field": None, "help": None}]
    assert sent(emulator_control) == []

    # A lost answer: the mail was sent, the client saw a 5xx.
    emulator_control("POST", "faults", {"rateLostResponse": 1.0, "lostResponseMode": "5xx"})
    error = http_error(lambda: sendgrid_client.send(mail))
    assert error.status_code in (500, 503) and errors_of(error)[0]["field"] is None
    assert len(sent(emulator_control)) == 1
    emulator_control("POST", "faults", {})

    stats = emulator_control("GET", "requests").body
    statuses = stats["operations"]["SendGrid.MailSend"]
    assert statuses.get("429") == 1 and statuses.get("500", 0) + statuses.get("503", 0) == 1
    assert sum(stats["lostResponses"]["SendGrid.MailSend"].values()) == 1
    assert all(
        entry["requestId"] == "" for entry in stats["recent"] if entry["operation"].startswith("SendGrid")
    )


def test_unknown_paths_answer_sendgrid_404(sendgrid_client: SendGridAPIClient) -> None:
    error = http_error(lambda: sendgrid_client.client.suppression.bounces.get())
    assert error.status_code == 404 and errors_of(error)[0]["message"] == "resource not found"
    assert "Twilio-Request-Id" not in error.headers
