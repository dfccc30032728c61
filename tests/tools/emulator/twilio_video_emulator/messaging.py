"""Programmable Messaging: API v2010 ``Messages`` and a minimal Messaging v1 ``/v1/Services``.

A message is created ``queued`` (``accepted`` with a Messaging Service, which then queues it and assigns its
sender) and moves on the emulator clock, one step every :data:`STEP_SECONDS`, to ``sent`` and
``delivered``; a recipient marked as failing through the control API ends ``failed`` (from ``queued``) or
``undelivered`` (from ``sent``) with an ``ErrorCode``. Each change after creation is POSTed to the
message's ``StatusCallback`` (or its service's), signed with the owning account's Auth Token, as Twilio
does; the initial status is not. Messages belong to the account in their path, services to the
principal's account. Messaging v1 ``/v1/Services`` serves create, list, fetch, update and delete.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiMapping

from .auth import account_of, acts_for, principal_of
from .control_json import json_object, matching, query_filters
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    iso,
    new_sid,
    paginate_v2010,
    parse_iso,
    read_params,
    rfc2822,
)
from .owned_records import (
    OwnedRoutes,
    install_store,
    installed_store,
    required_param,
    resource_not_found,
)

MESSAGING_KEY = "messaging"
API_VERSION = "2010-04-01"
STEP_SECONDS = 1.0
MAX_BODY = 1600
MAX_CALLBACK_URL = 4000
MAX_FRIENDLY_NAME = 64
# Twilio's "valid From" test number: the sender a Messaging Service assigns (the emulator has no numbers).
DEFAULT_SENDER = "+15005550006"
WHATSAPP = "whatsapp:"
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})
FAILURE_STATUSES = ("failed", "undelivered")
DEFAULT_ERROR_CODE = {"failed": 30008, "undelivered": 30003}
ERROR_MESSAGES = {
    21610: "Attempt to send to unsubscribed recipient",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
# Alphanumeric sender IDs: up to 11 letters, digits and spaces, at least one letter.
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
# GSM 03.38 basic character set plus its extension table: such bodies take 160 characters per segment.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


@dataclass
class MessagingService:
    sid: str
    account_sid: str
    friendly_name: str
    date_created: datetime
    date_updated: datetime
    status_callback: str | None = None
    inbound_request_url: str | None = None
    fallback_url: str | None = None


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str | None
    status: str
    date_created: datetime
    date_updated: datetime
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    date_sent: datetime | None = None
    num_segments: str = "1"
    error_code: int | None = None
    error_message: str | None = None
    content_sid: str | None = None
    content_variables: Any = None
    # Decided at creation from the failing recipients: "delivered", "failed" or "undelivered".
    outcome: str = "delivered"
    outcome_code: int | None = None
    # When the next status change is due (None once final); kept so a loaded state can re-arm it.
    next_step_at: datetime | None = None


@dataclass
class Failure:
    status: str
    error_code: int


@dataclass
class MessagingStore:
    """Every account's messages and Messaging Services, and the recipients marked as failing."""

    state: EmulatorState
    services: dict[str, MessagingService] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)

    # -- lifecycle ------------------------------------------------------------------------------------

    def failure_for(self, to: str) -> Failure | None:
        """A failing recipient matches its address with or without the channel prefix."""
        bare = to.split(":", 1)[1] if ":" in to else to
        return self.failures.get(to) or self.failures.get(bare)

    def arm(self, message: Message, when: datetime) -> None:
        message.next_step_at = when
        self.state.scheduler.call_at(when, lambda: self.step(message.sid, when))

    def step(self, sid: str, due: datetime) -> None:
        """One status change of ``sid``, stamped with its due time (the clock may have jumped past it)."""
        message = self.messages.get(sid)
        if message is None or message.next_step_at != due or message.status in FINAL_STATUSES:
            return
        if message.status == "accepted":
            message.status = "queued"
            message.from_ = message.from_ or self._sender(message)
            message.num_segments = segments(message.body)
        elif message.status == "queued" and message.outcome == "failed":
            self._fail(message, "failed")
        elif message.status == "queued":
            message.status = "sent"
            message.date_sent = due
        elif message.outcome == "undelivered":
            self._fail(message, "undelivered")
        else:
            message.status = "delivered"
        message.date_updated = due
        message.next_step_at = None
        if message.status not in FINAL_STATUSES:
            self.arm(message, due + timedelta(seconds=STEP_SECONDS))
        self._notify(message)

    def _fail(self, message: Message, status: str) -> None:
        message.status = status
        message.error_code = message.outcome_code or DEFAULT_ERROR_CODE[status]
        message.error_message = ERROR_MESSAGES.get(message.error_code, "Unknown error")

    def _sender(self, message: Message) -> str:
        return WHATSAPP + DEFAULT_SENDER if message.to.startswith(WHATSAPP) else DEFAULT_SENDER

    def _notify(self, message: Message) -> None:
        url = message.status_callback
        if url is None and message.messaging_service_sid is not None:
            service = self.services.get(message.messaging_service_sid)
            url = service.status_callback if service is not None else None
        if url is None:
            return
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_ or "",
            "To": message.to,
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": message.status,
            "SmsStatus": message.status,
        }
        if message.messaging_service_sid is not None:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        token = self.state.auth_token_of(message.account_sid)
        self.state.callbacks.send(url, "POST", params, f"message-{message.status}", auth_token=token)

    # -- persistence ----------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "services": [asdict(service) for service in self.services.values()],
            "messages": [asdict(message) for message in self.messages.values()],
            "failures": {to: asdict(failure) for to, failure in self.failures.items()},
        }

    def load(self, data: dict[str, Any]) -> None:
        self.services = {raw["sid"]: MessagingService(**raw) for raw in data.get("services", [])}
        self.messages = {raw["sid"]: Message(**raw) for raw in data.get("messages", [])}
        self.failures = {to: Failure(**raw) for to, raw in data.get("failures", {}).items()}
        for message in self.messages.values():
            if message.next_step_at is not None and message.status not in FINAL_STATUSES:
                self.arm(message, message.next_step_at)


def messaging_of(state: EmulatorState) -> MessagingStore:
    return installed_store(state, MESSAGING_KEY, MessagingStore)


def segments(body: str | None) -> str:
    """SMS segments of ``body``: 160/153 characters in GSM-7, 70/67 in UCS-2."""
    if not body:
        return "1"
    single, multi = (160, 153) if all(char in _GSM7 for char in body) else (70, 67)
    if len(body) <= single:
        return "1"
    return str(-(-len(body) // multi))


# --------------------------------------------------------------------------------------------- params


def _is_address(value: str, *, sender: bool) -> bool:
    number = value[len(WHATSAPP) :] if value.startswith(WHATSAPP) else value
    if _E164.match(number):
        return True
    return sender and not value.startswith(WHATSAPP) and bool(_ALPHANUMERIC.match(value))


def callback_url(value: str | None, code: int = 21609) -> str | None:
    """An absolute http(s) URL with a hostname without underscores, as the Messages API requires."""
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or "_" in host or len(value) > MAX_CALLBACK_URL:
        raise TwilioError(400, code, "The StatusCallback URL is not a valid URL")
    return value


def _content_variables(params: MultiMapping[str]) -> Any:
    raw = params.get("ContentVariables")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise TwilioError(400, 21656, "The ContentVariables Parameter is invalid")
    return value


def _message_account(state: EmulatorState, request: web.Request) -> str:
    account_sid = request.match_info["AccountSid"]
    if not acts_for(state, principal_of(request), account_sid):
        raise resource_not_found(request)
    return account_sid


# ------------------------------------------------------------------------------------------- messages


def message_uri(message: Message) -> str:
    return f"/2010-04-01/Accounts/{message.account_sid}/Messages/{message.sid}.json"


def render_message(message: Message) -> dict[str, Any]:
    base = message_uri(message)[: -len(".json")]
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": rfc2822(message.date_created),
        "date_sent": rfc2822(message.date_sent) if message.date_sent is not None else None,
        "date_updated": rfc2822(message.date_updated),
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": message.error_message,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": "0",
        "num_segments": message.num_segments,
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {"media": f"{base}/Media.json"},
        "to": message.to,
        "uri": message_uri(message),
    }


async def create_message(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = messaging_of(state)
    account_sid = _message_account(state, request)
    params = await read_params(request)
    to = params.get("To") or ""
    if not to:
        raise TwilioError(400, 21604, "A 'To' phone number is required.")
    if not _is_address(to, sender=False):
        raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
    sender = params.get("From") or None
    service_sid = params.get("MessagingServiceSid") or None
    if sender is None and service_sid is None:
        raise TwilioError(400, 21603, "A 'From' phone number is required.")
    if service_sid is not None:
        service = store.services.get(service_sid) if _SERVICE_SID.match(service_sid) else None
        if service is None or service.account_sid != account_sid:
            raise TwilioError(400, 21701, f"The Messaging Service Sid {service_sid} is invalid.")
    if sender is not None:
        if not _is_address(sender, sender=True):
            raise TwilioError(400, 21212, f"Invalid From Number (caller ID): {sender}")
        if sender.startswith(WHATSAPP) != to.startswith(WHATSAPP):
            raise TwilioError(
                400, 21910, "Invalid From and To pair. From and To should be of the same channel"
            )
    if params.getall("MediaUrl", []):
        raise TwilioError(400, 20001, "MediaUrl is not supported by the emulator")
    content_sid = params.get("ContentSid") or None
    if content_sid is not None and not _CONTENT_SID.match(content_sid):
        raise TwilioError(400, 21655, "The ContentSid is Invalid")
    variables = _content_variables(params)
    body = params.get("Body")
    if not body and content_sid is None:
        raise TwilioError(400, 21602, "Message body is required.")
    if body is not None and len(body) > MAX_BODY:
        raise TwilioError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    status_callback = callback_url(params.get("StatusCallback"))
    now = state.clock.now()
    failure = store.failure_for(to)
    message = Message(
        sid=new_sid("SM"),
        account_sid=account_sid,
        to=to,
        from_=sender,
        body=body if body else None,
        status="accepted" if service_sid is not None else "queued",
        date_created=now,
        date_updated=now,
        messaging_service_sid=service_sid,
        status_callback=status_callback,
        # With a Messaging Service no sender is assigned yet, so Twilio reports 0 segments.
        num_segments="0" if service_sid is not None else segments(body),
        content_sid=content_sid,
        content_variables=variables,
        outcome=failure.status if failure is not None else "delivered",
        outcome_code=failure.error_code if failure is not None else None,
    )
    store.messages[message.sid] = message
    store.arm(message, now + timedelta(seconds=STEP_SECONDS))
    return web.json_response(render_message(message), status=201)


def _message_from_path(state: EmulatorState, request: web.Request, name: str = "Sid") -> Message:
    account_sid = _message_account(state, request)
    message = messaging_of(state).messages.get(request.match_info[name])
    if message is None or message.account_sid != account_sid:
        raise resource_not_found(request)
    return message


async def fetch_message(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_message(_message_from_path(state, request)))


def _sent_day(query: MultiMapping[str], name: str) -> str | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return parse_iso(raw[:10]).date().isoformat()
    except ValueError:
        raise TwilioError(400, 20001, f"{name} must be a date (YYYY-MM-DD)") from None


async def list_messages(request: web.Request) -> web.Response:
    """Newest first; ``To``, ``From`` and ``DateSent`` (``=``, ``<`` on or before, ``>`` on or after)."""
    state = request.app[STATE_KEY]
    account_sid = _message_account(state, request)
    query = request.query
    to, sender = query.get("To"), query.get("From")
    on, before, after = (_sent_day(query, name) for name in ("DateSent", "DateSent<", "DateSent>"))
    records = []
    for message in reversed(messaging_of(state).messages.values()):
        day = message.date_sent.date().isoformat() if message.date_sent is not None else None
        if message.account_sid != account_sid or (to is not None and message.to != to):
            continue
        if sender is not None and message.from_ != sender:
            continue
        if (on or before or after) and day is None:
            continue
        if (on and day != on) or (before and day and day > before) or (after and day and day < after):
            continue
        records.append(render_message(message))
    return web.json_response(paginate_v2010(request, records, "messages"))


async def list_media(request: web.Request) -> web.Response:
    """Messages carry no media in the emulator: the list is always empty."""
    _message_from_path(request.app[STATE_KEY], request, "MessageSid")
    return web.json_response(paginate_v2010(request, [], "media_list"))


# --------------------------------------------------------------------------------- messaging services


def render_service(state: EmulatorState, service: MessagingService) -> dict[str, Any]:
    url = state.url(f"/v1/Services/{service.sid}")
    links = (
        "phone_numbers",
        "short_codes",
        "alpha_senders",
        "messages",
        "us_app_to_person",
        "us_app_to_person_usecases",
        "channel_senders",
        "destination_alpha_senders",
    )
    names = {
        "phone_numbers": "PhoneNumbers",
        "short_codes": "ShortCodes",
        "alpha_senders": "AlphaSenders",
        "messages": "Messages",
        "us_app_to_person": "Compliance/Usa2p",
        "us_app_to_person_usecases": "Compliance/Usa2p/Usecases",
        "channel_senders": "ChannelSenders",
        "destination_alpha_senders": "DestinationAlphaSenders",
    }
    return {
        "account_sid": service.account_sid,
        "area_code_geomatch": True,
        "date_created": iso(service.date_created),
        "date_updated": iso(service.date_updated),
        "fallback_method": "POST",
        "fallback_to_long_code": True,
        "fallback_url": service.fallback_url,
        "friendly_name": service.friendly_name,
        "inbound_method": "POST",
        "inbound_request_url": service.inbound_request_url,
        "links": {name: f"{url}/{names[name]}" for name in links},
        "mms_converter": True,
        "scan_message_content": "inherit",
        "sid": service.sid,
        "smart_encoding": True,
        "status_callback": service.status_callback,
        "sticky_sender": True,
        "synchronous_validation": False,
        "url": url,
        "us_app_to_person_registered": False,
        "use_inbound_webhook_on_number": False,
        "usecase": "undeclared",
        "validity_period": 36000,
    }


async def create_service(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    params = await read_params(request)
    name = required_param(params, "FriendlyName")
    if len(name) > MAX_FRIENDLY_NAME:
        raise TwilioError(400, 20001, f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    now = state.clock.now()
    service = MessagingService(
        sid=new_sid("MG"),
        account_sid=account_of(request),
        friendly_name=name,
        date_created=now,
        date_updated=now,
        status_callback=callback_url(params.get("StatusCallback")),
        inbound_request_url=callback_url(params.get("InboundRequestUrl"), 20001),
        fallback_url=callback_url(params.get("FallbackUrl"), 20001),
    )
    messaging_of(state).services[service.sid] = service
    return web.json_response(render_service(state, service), status=201)


SERVICES = OwnedRoutes(lambda state: messaging_of(state).services, render_service, "services")


async def update_service(request: web.Request) -> web.Response:
    """FriendlyName, StatusCallback, InboundRequestUrl and FallbackUrl; an empty URL clears it."""
    state = request.app[STATE_KEY]
    service = SERVICES.lookup(request)
    params = await read_params(request)
    name = params.get("FriendlyName")
    if name is not None:
        if not name or len(name) > MAX_FRIENDLY_NAME:
            raise TwilioError(400, 20001, f"FriendlyName must be 1 to {MAX_FRIENDLY_NAME} characters")
        service.friendly_name = name
    if "StatusCallback" in params:
        service.status_callback = callback_url(params.get("StatusCallback"))
    if "InboundRequestUrl" in params:
        service.inbound_request_url = callback_url(params.get("InboundRequestUrl"), 20001)
    if "FallbackUrl" in params:
        service.fallback_url = callback_url(params.get("FallbackUrl"), 20001)
    service.date_updated = state.clock.now()
    return web.json_response(render_service(state, service))


# ------------------------------------------------------------------------------------------- control


def _render_failure(to: str, failure: Failure) -> dict[str, Any]:
    return {"to": to, "status": failure.status, "errorCode": failure.error_code}


async def add_failure(request: web.Request) -> web.Response:
    """``{"to", "status"?: "undelivered" | "failed", "errorCode"?}``: later messages to ``to`` fail."""
    store = messaging_of(request.app[STATE_KEY])
    body = await json_object(request)
    to = body.get("to")
    status = body.get("status", "undelivered")
    if not isinstance(to, str) or not to:
        raise TwilioError(400, 20001, "to is required")
    if status not in FAILURE_STATUSES:
        raise TwilioError(400, 20001, "status must be failed or undelivered")
    code = body.get("errorCode", DEFAULT_ERROR_CODE[status])
    if isinstance(code, bool) or not isinstance(code, int) or code <= 0:
        raise TwilioError(400, 20001, "errorCode must be a positive integer")
    store.failures[to] = Failure(status, code)
    return web.json_response(_render_failure(to, store.failures[to]), status=201)


async def list_failures(request: web.Request) -> web.Response:
    store = messaging_of(request.app[STATE_KEY])
    return web.json_response(
        {"failures": [_render_failure(to, failure) for to, failure in store.failures.items()]}
    )


async def clear_failures(request: web.Request) -> web.Response:
    """Every failing recipient, or only ``?to=``."""
    store = messaging_of(request.app[STATE_KEY])
    to = request.query.get("to")
    if to is None:
        store.failures.clear()
    else:
        store.failures.pop(to, None)
    return web.Response(status=204)


def _control_view(message: Message) -> dict[str, Any]:
    return {
        "sid": message.sid,
        "accountSid": message.account_sid,
        "to": message.to,
        "from": message.from_,
        "body": message.body,
        "status": message.status,
        "messagingServiceSid": message.messaging_service_sid,
        "contentSid": message.content_sid,
        "contentVariables": message.content_variables,
        "statusCallback": message.status_callback,
        "errorCode": message.error_code,
        "dateCreated": iso(message.date_created),
    }


async def control_messages(request: web.Request) -> web.Response:
    """Every message (oldest first) with what the Message resource does not show (content template,
    variables, status callback); ``?accountSid=``, ``?to=`` and ``?status=`` filter."""
    state = request.app[STATE_KEY]
    filters = query_filters(state, request.query, ("accountSid", "to", "status"))
    views = [_control_view(message) for message in messaging_of(state).messages.values()]
    return web.json_response({"messages": matching(views, filters)})


def install(app: web.Application, state: EmulatorState) -> None:
    install_store(state, MESSAGING_KEY, MessagingStore(state))
    base = "/2010-04-01/Accounts/{AccountSid}/Messages"
    # ".json" variants first: a bare "{Sid}" would otherwise swallow the suffix.
    for suffix in (".json", ""):
        add_route(app, "POST", base + suffix, create_message, "CreateMessage")
        add_route(app, "GET", base + suffix, list_messages, "ListMessage")
        add_route(app, "GET", base + "/{MessageSid}/Media" + suffix, list_media, "ListMedia")
        add_route(app, "GET", base + "/{Sid}" + suffix, fetch_message, "FetchMessage")
    add_route(app, "POST", "/v1/Services", create_service, "CreateService")
    add_route(app, "GET", "/v1/Services", SERVICES.list, "ListService")
    add_route(app, "GET", "/v1/Services/{Sid}", SERVICES.fetch, "FetchService")
    add_route(app, "POST", "/v1/Services/{Sid}", update_service, "UpdateService")
    add_route(app, "DELETE", "/v1/Services/{Sid}", SERVICES.delete, "DeleteService")
    app.router.add_get("/_emulator/messages", control_messages)
    app.router.add_post("/_emulator/messages/failures", add_failure)
    app.router.add_get("/_emulator/messages/failures", list_failures)
    app.router.add_delete("/_emulator/messages/failures", clear_failures)
