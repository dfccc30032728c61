"""Run one Twilio operation: circuit breaker, bounded retries with backoff, classification, logging."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from twilio.base.exceptions import TwilioException

from twilio_video_operator import metrics
from twilio_video_operator.gateway.catalog import Operation
from twilio_video_operator.gateway.circuit import CircuitBreaker, CircuitOpen, CircuitState
from twilio_video_operator.gateway.classify import classify
from twilio_video_operator.gateway.errors import (
    AuthError,
    CircuitOpenError,
    GatewayError,
    RetryableError,
    ThrottledError,
    TransientError,
)
from twilio_video_operator.gateway.retry import RetryPolicy
from twilio_video_operator.gateway.transport import CallRecord, recording

T = TypeVar("T")

logger = logging.getLogger("twilio_video_operator.gateway")


def retry_reason(error: GatewayError, record: CallRecord | None = None) -> str | None:
    """Why ``error`` may be retried right away, or ``None`` when it must go to the caller.

    A request that may already have been applied (a create that got a 5xx, or lost its connection after
    sending) is never repeated blindly: the caller looks the resource up first.
    """
    if isinstance(error, ThrottledError):
        return "throttled"
    if isinstance(error, RetryableError) and not error.maybe_applied:
        if error.status is not None:
            return "server_error"
        last = record.last if record is not None else None
        return last.failure if last is not None and last.failure else "network"
    return None


class Executor:
    """Runs operations under a retry policy and per-service circuit breakers.

    ``sleep``, ``clock`` and ``rng`` are injectable so tests can run the retry loop without waiting.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        breaker_for: Callable[[str], CircuitBreaker],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._breaker_for = breaker_for
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()

    async def run(
        self,
        operation: Operation,
        attempt_once: Callable[[], Awaitable[T]],
        *,
        secrets: tuple[str, ...] = (),
        account_sid: str = "",
    ) -> T:
        """Call ``attempt_once`` until it succeeds, fails for good, or the policy's bounds are reached."""
        started = self._clock()
        queued = 0.0  # waiting for a concurrency slot does not use up the retry budget
        breaker = self._breaker_for(operation.service)
        attempt = 0
        while True:
            attempt += 1
            try:
                breaker.acquire()
            except CircuitOpen as exc:
                raise CircuitOpenError(
                    f"not calling Twilio {operation.service}: too many consecutive failures",
                    operation=operation.op_id,
                    retry_after=exc.retry_after,
                ) from None
            with recording(operation) as record:
                try:
                    result = await attempt_once()
                except asyncio.CancelledError:
                    breaker.record_neutral()
                    raise
                except Exception as exc:
                    error = classify(exc, operation, record, secrets)
                    if error is None:
                        breaker.record_neutral()
                        raise
                    cause: BaseException = exc
                else:
                    breaker.record_success()
                    _log_exchanges(record, attempt, account_sid, None)
                    if operation.mutating:
                        _log_mutation(record, attempt, account_sid)
                    return result
            _record_outcome(breaker, error)
            _log_exchanges(record, attempt, account_sid, error)
            reason = retry_reason(error, record)
            queued += record.queued_seconds
            elapsed = self._clock() - started - queued
            delay = self.policy.backoff(attempt, getattr(error, "retry_after", None), self._rng)
            if (
                reason is None
                or attempt >= self.policy.max_attempts
                or elapsed + delay > self.policy.total_budget
                or breaker.state is CircuitState.OPEN
            ):
                if attempt > 1 and reason is not None:
                    logger.warning(
                        "Twilio call failed after %d attempts, giving up: %s %s",
                        attempt,
                        type(error).__name__,
                        error,
                        extra=_fields(operation, error.status, error.request_id, attempt, account_sid, error),
                    )
                else:
                    logger.log(
                        _failure_level(error),
                        "Twilio call failed: %s %s",
                        type(error).__name__,
                        error,
                        extra=_fields(operation, error.status, error.request_id, attempt, account_sid, error),
                    )
                if isinstance(cause, TwilioException):
                    # The SDK's exception repeats the server's text unredacted; the error carries it all.
                    raise error from None
                raise error from cause
            metrics.TWILIO_OUTBOUND_API_RETRIES.labels(operation.op_id, reason).inc()
            logger.warning(
                "Twilio call failed, retry %d/%d in %.2fs: %s %s",
                attempt,
                self.policy.max_attempts - 1,
                delay,
                type(error).__name__,
                error,
                extra={
                    **_fields(operation, error.status, error.request_id, attempt, account_sid, error),
                    "retry_reason": reason,
                    "retry_delay_seconds": round(delay, 3),
                },
            )
            await self._sleep(delay)


def _record_outcome(breaker: CircuitBreaker, error: GatewayError) -> None:
    if isinstance(error, RetryableError):
        breaker.record_failure()
    elif isinstance(error, ThrottledError):
        breaker.record_neutral()
    else:
        # Twilio answered with a definite 4xx: the service itself is healthy.
        breaker.record_success()


def _failure_level(error: GatewayError) -> int:
    """WARNING for what needs attention (Twilio unavailable, credentials refused); INFO for definite 4xx
    answers, which callers usually expect and handle (404 on a fetch, 53113 on a create, 53118 on a
    complete) and otherwise report through the object's conditions."""
    return logging.WARNING if isinstance(error, TransientError | AuthError) else logging.INFO


def _log_mutation(record: CallRecord, attempt: int, account_sid: str) -> None:
    """One INFO record per create, update or delete that Twilio accepted, with its request id."""
    last = record.last
    status = last.status if last is not None else None
    request_id = last.request_id if last is not None else None
    logger.info(
        "Twilio %s -> %s (request %s)",
        record.operation.op_id,
        status if status is not None else "-",
        request_id or "-",
        extra={
            **_fields(record.operation, status, request_id, attempt, account_sid, None),
            "duration_seconds": round(sum(exchange.duration for exchange in record.exchanges), 4),
        },
    )


def _fields(
    operation: Operation,
    status: int | None,
    request_id: str | None,
    attempt: int,
    account_sid: str,
    error: GatewayError | None,
) -> dict[str, object]:
    fields: dict[str, object] = {
        "operation": operation.op_id,
        "http_status": status,
        "twilio_request_id": request_id,
        "attempt": attempt,
        "account_sid": account_sid,
    }
    if error is not None:
        fields["error_class"] = type(error).__name__
        fields["twilio_code"] = error.code
    return fields


def _log_exchanges(record: CallRecord, attempt: int, account_sid: str, error: GatewayError | None) -> None:
    if not logger.isEnabledFor(logging.DEBUG):
        return
    for exchange in record.exchanges:
        outcome = exchange.status if exchange.status is not None else exchange.failure
        logger.debug(
            "Twilio %s %s %s -> %s in %.3fs (request %s)",
            record.operation.op_id,
            exchange.method,
            exchange.path,
            outcome,
            exchange.duration,
            exchange.request_id or "-",
            extra={
                **_fields(
                    record.operation, exchange.status, exchange.request_id, attempt, account_sid, error
                ),
                "duration_seconds": round(exchange.duration, 4),
            },
        )
