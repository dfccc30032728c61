"""SendGrid v3 Mail Send (``POST /v3/mail/send``) and a subset of the Email Activity API (``GET
/v3/messages``).

A valid send is answered ``202`` with an ``X-Message-Id`` header and recorded once per personalization; the
control API lists the records. The rules follow SendGrid's published Mail Send errors. As on SendGrid, a
``template_id`` of no template (or of another account's) is accepted and the mail is dropped afterwards.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from aiohttp import web

from .core import STATE_KEY, iso
from .sendgrid_core import SendGridError, add_sendgrid_route, authenticate, error_item, json_body, sendgrid_of

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_ACTIVITY_LIMIT = 1000
HELP = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
PERSONALIZATION_HELP = f"{HELP}#-Personalizations-Errors"
MESSAGE_ID_HEADER = "X-Message-Id"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DYNAMIC_TEMPLATE_ID = re.compile(r"^d-[0-9a-f]{32}$")
_LEGACY_TEMPLATE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Handlebars {{name}}, {{{name}}} and {{a.b}}: the emulator substitutes plain references only.
_HANDLEBARS = re.compile(r"\{\{\{?\s*([A-Za-z0-9_.]+)\s*\}?\}\}")
# One clause of an Email Activity query: field="value" or unique_args['name']="value".
_CLAUSE = re.compile(r"""^\s*(?:unique_args\['([^']+)'\]|([a-z_]+))\s*=\s*"((?:[^"\\]|\\.)*)"\s*$""")
ACTIVITY_FIELDS = frozenset({"to_email", "from_email", "subject", "status", "msg_id", "template_id"})


# -------------------------------------------------------------------------------------- validation


def _valid_email(value: Any) -> bool:
    return (
        isinstance(value, dict) and isinstance(value.get("email"), str) and bool(_EMAIL.match(value["email"]))
    )


def _addresses(
    personalization: dict[str, Any], kind: str, index: int, errors: list[dict[str, Any]]
) -> list[str]:
    items = personalization.get(kind)
    if items is None and kind != "to":
        return []
    help_url = f"{HELP}#message.personalizations.{kind}"
    if not isinstance(items, list) or not items:
        if kind == "to":
            errors.append(
                error_item(
                    "The to array is required for all personalization objects, and must have at least "
                    "one email object with a valid email address.",
                    f"personalizations.{index}.to",
                    help_url,
                )
            )
        else:
            errors.append(
                error_item(f"The {kind} field must be an array.", f"personalizations.{index}.{kind}")
            )
        return []
    emails = []
    for position, item in enumerate(items):
        if not _valid_email(item):
            errors.append(
                error_item(
                    "Does not contain a valid address.",
                    f"personalizations.{index}.{kind}.{position}.email",
                    help_url,
                )
            )
            continue
        emails.append(str(item["email"]))
    return emails


def _custom_args(value: Any, field_name: str, errors: list[dict[str, Any]]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        errors.append(
            error_item(
                "Custom args must be an object whose values are strings.",
                field_name,
                f"{HELP}#message.custom_args",
            )
        )
        return {}
    return dict(value)


def _personalizations(body: dict[str, Any], errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        message = "The personalizations field is required and must have at least one personalization."
        errors.append(error_item(message, "personalizations", PERSONALIZATION_HELP))
        return []
    if len(personalizations) > MAX_PERSONALIZATIONS:
        message = (
            f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations per API "
            f"request. You have provided {len(personalizations)} personalizations. Please consider "
            "splitting this into multiple requests and resending your request."
        )
        errors.append(error_item(message, "personalizations", PERSONALIZATION_HELP))
        return []
    shared_args = _custom_args(body.get("custom_args"), "custom_args", errors)
    records: list[dict[str, Any]] = []
    recipients = 0
    for index, personalization in enumerate(personalizations):
        if not isinstance(personalization, dict):
            errors.append(error_item("Each personalization must be an object.", f"personalizations.{index}"))
            continue
        data = personalization.get("dynamic_template_data")
        if data is not None and not isinstance(data, dict):
            errors.append(
                error_item(
                    "The dynamic_template_data field must be an object.",
                    f"personalizations.{index}.dynamic_template_data",
                )
            )
        own_args = _custom_args(
            personalization.get("custom_args"), f"personalizations.{index}.custom_args", errors
        )
        to, cc, bcc = (_addresses(personalization, kind, index, errors) for kind in ("to", "cc", "bcc"))
        subject = personalization.get("subject")
        if subject is not None and not isinstance(subject, str):
            errors.append(error_item("The subject must be a string.", f"personalizations.{index}.subject"))
        recipients += len(to) + len(cc) + len(bcc)
        records.append(
            {
                "to": to,
                "cc": cc,
                "bcc": bcc,
                "subject": subject if isinstance(subject, str) else None,
                "data": data,
                "custom_args": {**shared_args, **own_args},
            }
        )
    if recipients > MAX_RECIPIENTS:
        message = f"There is a limit of {MAX_RECIPIENTS} total recipients (to + cc + bcc) per request."
        errors.append(error_item(message, "personalizations", PERSONALIZATION_HELP))
    return records


def _check_sender(body: dict[str, Any], errors: list[dict[str, Any]]) -> None:
    sender = body.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        message = (
            "The from object must be provided for every email send. It is an object that requires the email "
            'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
            '{"email" : "example@example.com", "name" : "Example Recipient"}.'
        )
        errors.append(error_item(message, "from.email", f"{HELP}#message.from"))
    elif not _valid_email(sender):
        message = "The from email does not contain a valid address."
        errors.append(error_item(message, "from.email", f"{HELP}#message.from"))


def _check_template_and_content(
    body: dict[str, Any], records: list[dict[str, Any]], errors: list[dict[str, Any]]
) -> None:
    template_id = body.get("template_id")
    if template_id is not None and (
        not isinstance(template_id, str)
        or not (_DYNAMIC_TEMPLATE_ID.match(template_id) or _LEGACY_TEMPLATE_ID.match(template_id))
    ):
        message = f"The template_id must be a valid GUID, you provided '{template_id}'."
        errors.append(error_item(message, "template_id", f"{HELP}#message.template_id"))
    subject = body.get("subject")
    if subject is not None and not isinstance(subject, str):
        errors.append(error_item("The subject must be a string.", "subject", f"{HELP}#message.subject"))
    every_subject = bool(records) and all(isinstance(r["subject"], str) and r["subject"] for r in records)
    if template_id is None and not every_subject and not (isinstance(subject, str) and subject):
        message = (
            "The subject is required. You can get around this requirement if you use a template with a "
            "subject defined or if every personalization has a subject defined."
        )
        errors.append(error_item(message, "subject", f"{HELP}#message.subject"))
    content = body.get("content")
    if content is None:
        if template_id is None:
            message = (
                "Unless a valid template_id is provided, the content parameter is required. There must be at "
                "least one defined content block. We typically suggest both text/plain and text/html blocks "
                "are included, but only one block is required."
            )
            errors.append(error_item(message, "content", f"{HELP}#message.content"))
        return
    if not isinstance(content, list) or not content:
        errors.append(error_item("The content field must be an array.", "content", f"{HELP}#message.content"))
        return
    for index, block in enumerate(content):
        value = block.get("value") if isinstance(block, dict) else None
        if not isinstance(value, str) or not value:
            message = "The content value must be a string at least one character in length."
            errors.append(error_item(message, f"content.{index}.value", f"{HELP}#message.content.value"))
        elif not isinstance(block.get("type"), str) or not block["type"]:
            message = "The content type must be a string at least one character in length."
            errors.append(error_item(message, f"content.{index}.type", f"{HELP}#message.content.type"))


def check_mail(body: Any) -> list[dict[str, Any]]:
    """The personalizations of a valid Mail Send body as (to, cc, bcc, subject, data, custom_args) records;
    a body with errors raises them all in one 400, as SendGrid does."""
    if not isinstance(body, dict):
        raise SendGridError(400, [error_item("Bad Request")])
    errors: list[dict[str, Any]] = []
    records = _personalizations(body, errors)
    _check_sender(body, errors)
    _check_template_and_content(body, records, errors)
    if errors:
        raise SendGridError(400, errors)
    return records


# -------------------------------------------------------------------------------------------- send


def _lookup(data: Any, dotted: str) -> str:
    value = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return ""
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value)


def render_handlebars(text: str, data: dict[str, Any] | None) -> str:
    return _HANDLEBARS.sub(lambda match: _lookup(data or {}, match.group(1)), text)


async def mail_send(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = sendgrid_of(state)
    key = authenticate(request, "mail.send")
    body = await json_body(request)
    records = check_mail(body)
    message_id = secrets.token_urlsafe(16)
    template_id = body.get("template_id")
    template = store.templates.get(template_id) if template_id else None
    if template is not None and template.account_sid != key.account_sid:
        template = None
    version = template.active_version() if template is not None else None
    # SendGrid accepts an unknown template and drops the mail later ("Not Delivered").
    dropped = template_id is not None and version is None
    now = iso(state.clock.now())
    for index, record in enumerate(records):
        subject = record["subject"] or body.get("subject")
        if not subject and version is not None and version.subject:
            subject = render_handlebars(version.subject, record["data"])
        store.sent.append(
            {
                "messageId": message_id,
                "msgId": f"{message_id}.emulator{index}",
                "accountSid": key.account_sid,
                "apiKeyId": key.api_key_id,
                "from": body["from"]["email"],
                "to": record["to"],
                "cc": record["cc"],
                "bcc": record["bcc"],
                "subject": subject,
                "templateId": template_id,
                "dynamicTemplateData": record["data"],
                "customArgs": record["custom_args"],
                "content": body.get("content"),
                "status": "dropped" if dropped else "processed",
                "reason": "no active version of this template" if dropped else None,
                "sentAt": now,
            }
        )
    return web.Response(status=202, headers={MESSAGE_ID_HEADER: message_id})


# ---------------------------------------------------------------------------------- email activity


def _parse_query(query: str) -> list[tuple[str, str]]:
    """``field="value"`` clauses joined by ``AND``; anything else of SendGrid's query language is a 400."""
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip(), flags=re.IGNORECASE) if query.strip() else []:
        match = _CLAUSE.match(part)
        if match is None or (match.group(2) is not None and match.group(2) not in ACTIVITY_FIELDS):
            raise SendGridError(400, [error_item(f"invalid query clause: {part.strip()}", "query")])
        name = f"unique_args.{match.group(1)}" if match.group(1) is not None else match.group(2)
        clauses.append((name, match.group(3).replace('\\"', '"')))
    return clauses


def _activity(record: dict[str, Any], to_email: str) -> dict[str, Any]:
    """The fields of a message in SendGrid's Email Activity list."""
    return {
        "from_email": record["from"],
        "msg_id": record["msgId"],
        "subject": record["subject"],
        "to_email": to_email,
        "status": "not_delivered" if record["status"] == "dropped" else "delivered",
        "opens_count": 0,
        "clicks_count": 0,
        "last_event_time": record["sentAt"],
    }


def _matches(record: dict[str, Any], message: dict[str, Any], clauses: list[tuple[str, str]]) -> bool:
    for name, value in clauses:
        if name.startswith("unique_args."):
            actual = record.get("customArgs", {}).get(name.removeprefix("unique_args."))
        elif name == "template_id":
            actual = record["templateId"]
        else:
            actual = message[name]
        if actual != value:
            return False
    return True


async def list_activity(request: web.Request) -> web.Response:
    """``GET /v3/messages?query=…&limit=N``: newest first, one entry per ``to`` address."""
    store = sendgrid_of(request.app[STATE_KEY])
    key = authenticate(request, "messages.read")
    try:
        limit = int(request.query.get("limit", ""))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_ACTIVITY_LIMIT:
        raise SendGridError(400, [error_item(f"limit must be between 1 and {MAX_ACTIVITY_LIMIT}", "limit")])
    clauses = _parse_query(request.query.get("query", ""))
    messages = [
        message
        for record in reversed(store.sent)
        if record["accountSid"] == key.account_sid
        for message in (_activity(record, to) for to in record["to"])
        if _matches(record, message, clauses)
    ]
    return web.json_response({"messages": messages[:limit]})


def install_routes(app: web.Application) -> None:
    add_sendgrid_route(app, "POST", "/v3/mail/send", mail_send, "MailSend")
    add_sendgrid_route(app, "GET", "/v3/messages", list_activity, "ListMessages")
