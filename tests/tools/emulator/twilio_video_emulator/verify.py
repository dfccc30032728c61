"""Verify v2: Services, Verifications and VerificationCheck, per account.

A Verification "sends" a numeric code of the service's ``code_length`` (the control API shows it). Starting
a verification again for the same ``To`` while one is pending resends the same code on the same ``VE`` SID,
as Twilio does, up to :data:`MAX_SENDS` sends (then 429/60203). A check with the right code approves it;
a wrong code leaves it ``pending``; after :data:`MAX_FAILED_CHECKS` wrong codes the next check is 429/60202
and the verification is over. A verification lasts :data:`CODE_TTL` on the emulator clock; an expired,
approved, canceled or exhausted verification is gone (404/20404), as on Twilio.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .auth import account_of
from .control_json import matching, query_filters
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    iso,
    new_sid,
    param_bool,
    read_params,
)
from .owned_records import (
    OwnedRoutes,
    install_store,
    installed_store,
    required_param,
    resource_not_found,
)

VERIFY_KEY = "verify"
CODE_TTL = timedelta(minutes=10)
MAX_SENDS = 5
MAX_FAILED_CHECKS = 5
DEFAULT_CODE_LENGTH = 6
MAX_FRIENDLY_NAME = 32
CHANNELS = ("sms", "call", "email", "whatsapp", "sna")
UPDATE_STATUSES = ("canceled", "approved")

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VERIFICATION_SID = re.compile(r"^VE[0-9a-fA-F]{32}$")
_DIGITS = re.compile(r"^[0-9]{4,10}$")


@dataclass
class VerifyService:
    sid: str
    account_sid: str
    friendly_name: str
    date_created: datetime
    date_updated: datetime
    code_length: int = DEFAULT_CODE_LENGTH
    lookup_enabled: bool = False
    skip_sms_to_landlines: bool = False
    dtmf_input_required: bool = True
    tts_name: str | None = None
    psd2_enabled: bool = False
    do_not_share_warning_enabled: bool = False
    custom_code_enabled: bool = False


@dataclass
class Verification:
    sid: str
    service_sid: str
    account_sid: str
    to: str
    channel: str
    code: str
    date_created: datetime
    date_updated: datetime
    expires_at: datetime
    status: str = "pending"
    failed_checks: int = 0
    send_code_attempts: list[dict[str, str]] = field(default_factory=list)


@dataclass
class VerifyStore:
    state: EmulatorState
    services: dict[str, VerifyService] = field(default_factory=dict)
    verifications: dict[str, Verification] = field(default_factory=dict)

    def refresh(self, verification: Verification) -> Verification:
        """Expire a pending verification once its time is up (checked when it is looked at)."""
        if verification.status == "pending" and self.state.clock.now() >= verification.expires_at:
            verification.status = "expired"
            verification.date_updated = verification.expires_at
        return verification

    def pending_to(self, service: VerifyService, to: str) -> Verification | None:
        for verification in reversed(self.verifications.values()):
            same = verification.service_sid == service.sid and verification.to == to
            if same and self.refresh(verification).status == "pending":
                return verification
        return None

    def dump(self) -> dict[str, Any]:
        return {
            "services": [asdict(service) for service in self.services.values()],
            "verifications": [asdict(item) for item in self.verifications.values()],
        }

    def load(self, data: dict[str, Any]) -> None:
        self.services = {raw["sid"]: VerifyService(**raw) for raw in data.get("services", [])}
        self.verifications = {raw["sid"]: Verification(**raw) for raw in data.get("verifications", [])}


def verify_of(state: EmulatorState) -> VerifyStore:
    return installed_store(state, VERIFY_KEY, VerifyStore)


def _invalid(name: str, value: str | None = None) -> TwilioError:
    suffix = f": {value}" if value else ""
    return TwilioError(400, 60200, f"Invalid parameter `{name}`{suffix}")


# ----------------------------------------------------------------------------------------- services


def render_service(state: EmulatorState, service: VerifyService) -> dict[str, Any]:
    url = state.url(f"/v2/Services/{service.sid}")
    return {
        "sid": service.sid,
        "account_sid": service.account_sid,
        "friendly_name": service.friendly_name,
        "code_length": service.code_length,
        "lookup_enabled": service.lookup_enabled,
        "psd2_enabled": service.psd2_enabled,
        "skip_sms_to_landlines": service.skip_sms_to_landlines,
        "dtmf_input_required": service.dtmf_input_required,
        "tts_name": service.tts_name,
        "do_not_share_warning_enabled": service.do_not_share_warning_enabled,
        "custom_code_enabled": service.custom_code_enabled,
        "push": {"include_date": False, "apn_credential_sid": None, "fcm_credential_sid": None},
        "totp": {"issuer": None, "time_step": None, "code_length": None, "skew": None},
        "whatsapp": {"msg_service_sid": None, "from": None},
        "passkeys": {
            "relying_party": {"id": None, "name": None, "origins": None},
            "authenticator_attachment": None,
            "discoverable_credentials": None,
            "user_verification": None,
        },
        "default_template_sid": None,
        "verify_event_subscription_enabled": False,
        "date_created": iso(service.date_created),
        "date_updated": iso(service.date_updated),
        "url": url,
        "links": {
            "verification_checks": f"{url}/VerificationCheck",
            "verifications": f"{url}/Verifications",
            "rate_limits": f"{url}/RateLimits",
            "messaging_configurations": f"{url}/MessagingConfigurations",
            "entities": f"{url}/Entities",
            "webhooks": f"{url}/Webhooks",
            "access_tokens": f"{url}/AccessTokens",
        },
    }


def _code_length(params: MultiMapping[str]) -> int:
    raw = params.get("CodeLength")
    if raw is None or raw == "":
        return DEFAULT_CODE_LENGTH
    try:
        value = int(raw)
    except ValueError:
        raise _invalid("CodeLength", raw) from None
    if not 4 <= value <= 10:
        raise _invalid("CodeLength", raw)
    return value


async def create_service(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    params = await read_params(request)
    name = required_param(params, "FriendlyName")
    if len(name) > MAX_FRIENDLY_NAME:
        raise _invalid("FriendlyName", name)
    now = state.clock.now()
    service = VerifyService(
        sid=new_sid("VA"),
        account_sid=account_of(request),
        friendly_name=name,
        date_created=now,
        date_updated=now,
        code_length=_code_length(params),
        lookup_enabled=param_bool(params, "LookupEnabled", False),
        skip_sms_to_landlines=param_bool(params, "SkipSmsToLandlines", False),
        dtmf_input_required=param_bool(params, "DtmfInputRequired", True),
        tts_name=params.get("TtsName") or None,
        psd2_enabled=param_bool(params, "Psd2Enabled", False),
        do_not_share_warning_enabled=param_bool(params, "DoNotShareWarningEnabled", False),
        custom_code_enabled=param_bool(params, "CustomCodeEnabled", False),
    )
    verify_of(state).services[service.sid] = service
    return web.json_response(render_service(state, service), status=201)


def _drop_verifications(state: EmulatorState, service: VerifyService) -> None:
    verifications = verify_of(state).verifications
    for sid in [sid for sid, item in verifications.items() if item.service_sid == service.sid]:
        del verifications[sid]


SERVICES = OwnedRoutes(
    lambda state: verify_of(state).services, render_service, "services", _drop_verifications
)


# ------------------------------------------------------------------------------------ verifications


def _render_outcome(verification: Verification) -> dict[str, Any]:
    """The fields a Verification and a VerificationCheck of it share."""
    return {
        "sid": verification.sid,
        "service_sid": verification.service_sid,
        "account_sid": verification.account_sid,
        "to": verification.to,
        "channel": verification.channel,
        "status": verification.status,
        "valid": verification.status == "approved",
        "amount": None,
        "payee": None,
        "date_created": iso(verification.date_created),
        "date_updated": iso(verification.date_updated),
    }


def render_verification(state: EmulatorState, verification: Verification) -> dict[str, Any]:
    return {
        **_render_outcome(verification),
        "lookup": {},
        "send_code_attempts": list(verification.send_code_attempts),
        "sna": None,
        "url": state.url(f"/v2/Services/{verification.service_sid}/Verifications/{verification.sid}"),
    }


def render_check(verification: Verification) -> dict[str, Any]:
    return {**_render_outcome(verification), "sna_attempts_error_codes": []}


def _recipient(params: MultiMapping[str], channel: str) -> str:
    to = (params.get("To") or "").strip()
    if not to:
        raise _invalid("To")
    if channel == "email":
        if not _EMAIL.match(to):
            raise _invalid("To", to)
        return to.lower()
    if not _E164.match(to):
        raise _invalid("To", to)
    return to


def _code(service: VerifyService, params: MultiMapping[str]) -> str:
    custom = params.get("CustomCode")
    if custom:
        if not service.custom_code_enabled:
            raise TwilioError(400, 60200, "Custom codes are not enabled for this service")
        if not _DIGITS.match(custom):
            raise _invalid("CustomCode")
        return custom
    return "".join(secrets.choice("0123456789") for _ in range(service.code_length))


async def create_verification(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = verify_of(state)
    service = SERVICES.lookup(request, "ServiceSid")
    params = await read_params(request)
    channel = (params.get("Channel") or "").strip().lower()
    if channel not in CHANNELS:
        raise _invalid("Channel", params.get("Channel"))
    to = _recipient(params, channel)
    now = state.clock.now()
    attempt = {"attempt_sid": new_sid("VL"), "channel": channel, "time": iso(now)}
    verification = store.pending_to(service, to)
    if verification is not None:
        if len(verification.send_code_attempts) >= MAX_SENDS:
            raise TwilioError(429, 60203, "Max send attempts reached")
        # Twilio resends the pending code (same SID) rather than starting over.
        verification.channel = channel
        verification.send_code_attempts.append(attempt)
        verification.date_updated = now
        return web.json_response(render_verification(state, verification), status=201)
    verification = Verification(
        sid=new_sid("VE"),
        service_sid=service.sid,
        account_sid=service.account_sid,
        to=to,
        channel=channel,
        code=_code(service, params),
        date_created=now,
        date_updated=now,
        expires_at=now + CODE_TTL,
        send_code_attempts=[attempt],
    )
    store.verifications[verification.sid] = verification
    return web.json_response(render_verification(state, verification), status=201)


def _pending_from_path(state: EmulatorState, request: web.Request) -> Verification:
    service = SERVICES.lookup(request, "ServiceSid")
    store = verify_of(state)
    verification = store.verifications.get(request.match_info["Sid"])
    if (
        verification is None
        or verification.service_sid != service.sid
        or store.refresh(verification).status != "pending"
    ):
        raise resource_not_found(request)
    return verification


async def fetch_verification(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_verification(state, _pending_from_path(state, request)))


async def update_verification(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    verification = _pending_from_path(state, request)
    params = await read_params(request)
    status = params.get("Status")
    if status not in UPDATE_STATUSES:
        raise TwilioError(400, 60441, "Illegal status: only approved and canceled can be set")
    verification.status = status
    verification.date_updated = state.clock.now()
    return web.json_response(render_verification(state, verification))


async def create_check(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = verify_of(state)
    service = SERVICES.lookup(request, "ServiceSid")
    params = await read_params(request)
    code = params.get("Code")
    if not code:
        raise _invalid("Code")
    sid = params.get("VerificationSid")
    to = params.get("To")
    verification: Verification | None
    if sid:
        if not _VERIFICATION_SID.match(sid):
            raise TwilioError(400, 60426, "Verification ID invalid or not provided")
        verification = store.verifications.get(sid)
        if verification is not None and (
            verification.service_sid != service.sid or store.refresh(verification).status != "pending"
        ):
            verification = None
    elif to:
        verification = store.pending_to(service, to.strip().lower() if "@" in to else to.strip())
    else:
        raise TwilioError(400, 60200, "Either a 'To' or a 'VerificationSid' parameter is required")
    if verification is None:
        raise resource_not_found(request)
    now = state.clock.now()
    if verification.failed_checks >= MAX_FAILED_CHECKS:
        verification.status = "max_attempts_reached"
        verification.date_updated = now
        raise TwilioError(429, 60202, "Max check attempts reached")
    if secrets.compare_digest(code, verification.code):
        verification.status = "approved"
    else:
        verification.failed_checks += 1
    verification.date_updated = now
    return web.json_response(render_check(verification))


# ------------------------------------------------------------------------------------------- control


async def control_codes(request: web.Request) -> web.Response:
    """The codes "sent", newest first; ``?to=``, ``?verificationSid=``, ``?serviceSid=``, ``?accountSid=``
    filter. Expired verifications show ``status`` ``expired``."""
    state = request.app[STATE_KEY]
    store = verify_of(state)
    filters = query_filters(state, request.query, ("to", "verificationSid", "serviceSid", "accountSid"))
    if "@" in filters.get("to", ""):
        filters["to"] = filters["to"].lower()  # email recipients are kept in lower case
    views = [
        {
            "verificationSid": verification.sid,
            "serviceSid": verification.service_sid,
            "accountSid": verification.account_sid,
            "to": verification.to,
            "channel": verification.channel,
            "code": verification.code,
            "status": store.refresh(verification).status,
            "sends": len(verification.send_code_attempts),
            "failedChecks": verification.failed_checks,
            "dateCreated": iso(verification.date_created),
            "expiresAt": iso(verification.expires_at),
        }
        for verification in reversed(store.verifications.values())
    ]
    return web.json_response({"codes": matching(views, filters)})


def install(app: web.Application, state: EmulatorState) -> None:
    install_store(state, VERIFY_KEY, VerifyStore(state))
    add_route(app, "POST", "/v2/Services", create_service, "CreateService")
    add_route(app, "GET", "/v2/Services", SERVICES.list, "ListService")
    add_route(app, "GET", "/v2/Services/{Sid}", SERVICES.fetch, "FetchService")
    add_route(app, "DELETE", "/v2/Services/{Sid}", SERVICES.delete, "DeleteService")
    verifications = "/v2/Services/{ServiceSid}/Verifications"
    add_route(app, "POST", verifications, create_verification, "CreateVerification")
    add_route(app, "GET", verifications + "/{Sid}", fetch_verification, "FetchVerification")
    add_route(app, "POST", verifications + "/{Sid}", update_verification, "UpdateVerification")
    add_route(
        app, "POST", "/v2/Services/{ServiceSid}/VerificationCheck", create_check, "CreateVerificationCheck"
    )
    app.router.add_get("/_emulator/verify/codes", control_codes)
