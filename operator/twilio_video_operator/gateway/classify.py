"""Turn whatever the twilio SDK or aiohttp raised into one :class:`GatewayError` subclass."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.response import Response

from twilio_video_operator.gateway.catalog import Operation
from twilio_video_operator.gateway.errors import (
    AuthError,
    GatewayError,
    NotFoundError,
    RetryableError,
    TerminalError,
    ThrottledError,
)
from twilio_video_operator.gateway.redaction import redact
from twilio_video_operator.gateway.retry import parse_retry_after
from twilio_video_operator.gateway.transport import REQUEST_ID_HEADER, RETRY_AFTER_HEADER, CallRecord, header

CODE_AUTHENTICATE = 20003
CODE_NOT_FOUND = 20404
CODE_TOO_MANY_REQUESTS = 20429
#: Verify's 429s that refuse for good (max check attempts, max send attempts): retrying cannot help.
CODES_DEFINITE_429 = (60202, 60203)

_SDK_PREFIX = re.compile(r"^Unable to \w+ (?:record|page)(?::\s*)?")
_MAX_MESSAGE = 300


def error_from_status(
    operation: Operation,
    *,
    status: int,
    code: int | None,
    message: str,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> GatewayError:
    """The classification table for an HTTP error response (see ``docs/gateway.md``)."""
    if code in CODES_DEFINITE_429:
        return TerminalError(
            message, operation=operation.op_id, status=status, code=code, request_id=request_id
        )
    if code == CODE_TOO_MANY_REQUESTS or status == 429:
        return ThrottledError(
            message,
            operation=operation.op_id,
            status=status,
            code=code,
            request_id=request_id,
            retry_after=retry_after,
        )
    if code == CODE_AUTHENTICATE or status in (401, 403):
        return AuthError(message, operation=operation.op_id, status=status, code=code, request_id=request_id)
    if code == CODE_NOT_FOUND or status == 404:
        return NotFoundError(
            message, operation=operation.op_id, status=status, code=code, request_id=request_id
        )
    if status >= 500 or status == 408:
        # A 5xx may come after the server acted on the request; a 408 says it never read it all.
        return RetryableError(
            message,
            operation=operation.op_id,
            status=status,
            code=code,
            request_id=request_id,
            retry_after=retry_after,
            maybe_applied=status != 408 and not operation.idempotent,
        )
    return TerminalError(message, operation=operation.op_id, status=status, code=code, request_id=request_id)


def error_from_response(
    operation: Operation, response: Response, secrets: Iterable[str] = (), now: datetime | None = None
) -> GatewayError:
    """Classify a raw error :class:`Response` (list pages and hand-made requests end up here)."""
    code, message = _parse_error_body(response.text)
    return error_from_status(
        operation,
        status=response.status_code,
        code=code,
        message=_clean(message or f"HTTP {response.status_code}", secrets),
        request_id=header(response.headers, REQUEST_ID_HEADER),
        retry_after=parse_retry_after(header(response.headers, RETRY_AFTER_HEADER), now),
    )


def classify(
    exc: BaseException,
    operation: Operation,
    record: CallRecord | None = None,
    secrets: Iterable[str] = (),
    now: datetime | None = None,
) -> GatewayError | None:
    """Return the gateway error for ``exc``, or ``None`` if it is not a Twilio/network failure (a bug)."""
    if isinstance(exc, GatewayError):
        return exc
    secrets = tuple(secrets)
    last = record.last if record is not None else None
    request_id = last.request_id if last is not None else None
    retry_after = parse_retry_after(last.retry_after, now) if last is not None else None
    if isinstance(exc, TwilioRestException):
        return error_from_status(
            operation,
            status=exc.status,
            code=_twilio_code(exc.code, exc.status),
            message=_clean(str(exc.msg or f"HTTP {exc.status}"), secrets),
            request_id=request_id,
            retry_after=retry_after,
        )
    if isinstance(exc, TwilioServiceException):
        return error_from_status(
            operation,
            status=exc.status,
            code=_twilio_code(exc.code, exc.status),
            message=_clean(str(exc.detail or exc.title), secrets),
            request_id=request_id,
            retry_after=retry_after,
        )
    if isinstance(exc, TwilioException) and len(exc.args) >= 2 and isinstance(exc.args[1], Response):
        error = error_from_response(operation, exc.args[1], secrets, now)
        error.request_id = error.request_id or request_id
        return error
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return _network_error(exc, operation, secrets)
    if isinstance(exc, TwilioException | ValueError):
        # A 2xx whose body the SDK could not read (not JSON, no records key, ...).
        status = last.status if last is not None else None
        return TerminalError(
            _clean(f"unexpected response from Twilio: {exc}", secrets),
            operation=operation.op_id,
            status=status,
            request_id=request_id,
        )
    return None


def _network_error(exc: BaseException, operation: Operation, secrets: tuple[str, ...]) -> RetryableError:
    # Connecting failed or timed out: the request never left, so even a create may be sent again.
    never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
    detail = str(exc) or type(exc).__name__
    return RetryableError(
        _clean(f"{kind} ({type(exc).__name__}: {detail})", secrets),
        operation=operation.op_id,
        maybe_applied=not never_sent and not operation.idempotent,
    )


def _twilio_code(code: object, status: int) -> int | None:
    """The SDK puts the HTTP status in ``code`` when the body had none; only real Twilio codes count."""
    if isinstance(code, int) and not isinstance(code, bool) and code >= 1000:
        return code
    if isinstance(code, str) and code.isdigit() and int(code) >= 1000:
        return int(code)
    return None


def _parse_error_body(text: str | None) -> tuple[int | None, str | None]:
    try:
        payload = json.loads(text or "")
    except ValueError:
        return None, None
    if not isinstance(payload, dict):
        return None, None
    message = payload.get("message") or payload.get("detail") or payload.get("title")
    return _twilio_code(payload.get("code"), 0), str(message) if message else None


def _clean(message: str, secrets: Iterable[str]) -> str:
    text = redact(_SDK_PREFIX.sub("", message).strip(), secrets)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
