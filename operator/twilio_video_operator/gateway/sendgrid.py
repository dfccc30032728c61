"""SendGrid v3: Mail Send with a dynamic template, and Email Activity to find a mail whose answer was lost.

Requests go through the gateway's instrumented HTTP client (its own concurrency cap, the leadership
fence before each send, per-request metrics) and its executor (retries, circuit breaker ``sendgrid``).
Mail Send is a create: a 5xx or a broken connection after sending is not repeated; the caller looks the
mail up by its ``custom_args`` (``unique_args`` in Email Activity queries) before sending again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twilio.http.response import Response

from twilio_video_operator.gateway.catalog import SENDGRID_LIST_MESSAGES as LIST_MESSAGES
from twilio_video_operator.gateway.catalog import SENDGRID_MAIL_SEND as MAIL_SEND
from twilio_video_operator.gateway.catalog import Operation
from twilio_video_operator.gateway.classify import error_from_status
from twilio_video_operator.gateway.errors import GatewayError, TerminalError
from twilio_video_operator.gateway.executor import Executor
from twilio_video_operator.gateway.redaction import redact
from twilio_video_operator.gateway.retry import parse_retry_after
from twilio_video_operator.gateway.transport import RETRY_AFTER_HEADER, InstrumentedHttpClient, header

SENDGRID_BASE_URL = "https://api.sendgrid.com"
MESSAGE_ID_HEADER = "X-Message-Id"
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Mail:
    """One templated mail to one recipient."""

    to: str
    from_email: str
    from_name: str | None
    template_id: str
    data: Mapping[str, Any]
    """``dynamic_template_data``."""
    custom_args: Mapping[str, str]
    """Echoed by SendGrid in Email Activity as ``unique_args``: how a lost send is found again."""

    def body(self) -> dict[str, Any]:
        sender: dict[str, str] = {"email": self.from_email}
        if self.from_name:
            sender["name"] = self.from_name
        return {
            "personalizations": [
                {
                    "to": [{"email": self.to}],
                    "dynamic_template_data": dict(self.data),
                    "custom_args": dict(self.custom_args),
                }
            ],
            "from": sender,
            "template_id": self.template_id,
        }


class SendGridApi:
    """SendGrid calls with one API key. Build through ``TwilioGateway.sendgrid(api_key)``."""

    def __init__(self, http: InstrumentedHttpClient, executor: Executor, api_key: str, base_url: str) -> None:
        self._http = http
        self._executor = executor
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}

    async def send(self, mail: Mail) -> str | None:
        """Mail Send (202); returns SendGrid's ``X-Message-Id`` when it gave one."""
        # A JSON text: aiohttp sends a str body as it is (the SDK's signature says form fields).
        payload: Any = json.dumps(mail.body(), separators=(",", ":"))

        async def attempt() -> str | None:
            url = f"{self._base_url}/v3/mail/send"
            response = await self._http.request("POST", url, data=payload, headers=self._headers())
            self._check(MAIL_SEND, response, mail.to)
            return header(response.headers, MESSAGE_ID_HEADER)

        return await self._executor.run(MAIL_SEND, attempt, secrets=(self._api_key, mail.to))

    async def find(self, arg_name: str, arg_value: str) -> str | None:
        """The ``msg_id`` of the mail whose ``custom_args[arg_name]`` is ``arg_value``, if SendGrid has it."""
        query = urlencode({"query": f"unique_args['{arg_name}']=\"{arg_value}\"", "limit": "10"})

        async def attempt() -> str | None:
            response = await self._http.request(
                "GET", f"{self._base_url}/v3/messages?{query}", headers=self._headers()
            )
            self._check(LIST_MESSAGES, response, "")
            try:
                messages = json.loads(response.text or "{}").get("messages") or []
            except (ValueError, AttributeError):
                raise TerminalError(
                    "unexpected Email Activity answer",
                    operation=LIST_MESSAGES.op_id,
                    status=response.status_code,
                ) from None
            for message in messages:
                if isinstance(message, dict) and message.get("msg_id"):
                    return str(message["msg_id"])
            return None

        return await self._executor.run(LIST_MESSAGES, attempt, secrets=(self._api_key,))

    def _check(self, operation: Operation, response: Response, address: str) -> None:
        """Raise the gateway error of a SendGrid error answer (``{"errors": [{"message", ...}]}``)."""
        if response.status_code < 400:
            return
        raise sendgrid_error(operation, response, (self._api_key, address))


def sendgrid_error(operation: Operation, response: Response, secrets: tuple[str, ...]) -> GatewayError:
    """Classify a SendGrid error answer like a Twilio one (401/403 auth, 429 throttled, 5xx retryable)."""
    try:
        errors = json.loads(response.text or "{}").get("errors") or []
        first = errors[0].get("message") if errors and isinstance(errors[0], dict) else None
    except (ValueError, AttributeError):
        first = None
    message = redact(str(first or f"HTTP {response.status_code}"), [s for s in secrets if s])
    return error_from_status(
        operation,
        status=response.status_code,
        code=None,
        message=message[:_MAX_MESSAGE],
        retry_after=parse_retry_after(header(response.headers, RETRY_AFTER_HEADER)),
    )
