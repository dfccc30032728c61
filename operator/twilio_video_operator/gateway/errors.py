"""The errors the gateway raises. Callers branch on the class; no SDK exception ever leaves the gateway.

=====================  =============================================  ==============================
class                  when                                           what a caller does
=====================  =============================================  ==============================
``ThrottledError``     HTTP 429 / code 20429                          retry later (``retry_after``)
``RetryableError``     5xx, 408, connection error, timeout            retry later; if
                                                                      ``maybe_applied``, look up
                                                                      before creating again
``CircuitOpenError``   too many consecutive failures on a service     retry after ``retry_after``
``AuthError``          HTTP 401 / 403, code 20003                     stop until credentials change
``NotFoundError``      HTTP 404 / code 20404                          the resource does not exist
``TerminalError``      any other 4xx (bad parameter, 53113, ...)      stop until the spec changes
=====================  =============================================  ==============================
"""

from __future__ import annotations


class GatewayError(Exception):
    """A failed Twilio operation. The message never contains a secret.

    ``code`` is Twilio's error code when the response carried one, ``status`` the HTTP status (``None`` when
    no response arrived), ``operation`` the spec operationId, ``request_id`` Twilio's request id header.
    """

    transient = False

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [f"{self.operation}: {self.message}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"Twilio code {self.code}")
        if self.request_id:
            parts.append(f"request {self.request_id}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(operation={self.operation!r}, status={self.status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r}, message={self.message!r})"
        )


class TransientError(GatewayError):
    """A failure that may clear by itself; ``retry_after`` is a hint in seconds when known."""

    transient = True

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, operation=operation, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after


class ThrottledError(TransientError):
    """Twilio refused the request for concurrency (429 / 20429).

    Such a request was never processed, so it is always safe to send again.
    """


class RetryableError(TransientError):
    """A server error, connection failure or timeout.

    ``maybe_applied`` is True when a non-idempotent request (a create) may have reached Twilio and taken
    effect; the caller must look the resource up before creating it again.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        status: int | None = None,
        code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
    ) -> None:
        super().__init__(
            message,
            operation=operation,
            status=status,
            code=code,
            request_id=request_id,
            retry_after=retry_after,
        )
        self.maybe_applied = maybe_applied

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} | may have been applied" if self.maybe_applied else text


class CircuitOpenError(TransientError):
    """The gateway is not sending requests to this Twilio service for a cool-down period."""


class FencedError(TransientError):
    """The request would change Twilio, and this process may not do so now (it no longer leads); it was
    not sent."""


class AuthError(GatewayError):
    """Twilio rejected the credentials (401/20003) or the action is not allowed for them (403)."""


class NotFoundError(GatewayError):
    """The resource does not exist (404/20404)."""


class TerminalError(GatewayError):
    """Twilio rejected the request itself (other 4xx); repeating it unchanged cannot succeed."""
