"""The emulator's aiohttp application: middleware (clock, faults, auth, errors, counting) and modules."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from .auth import PRINCIPAL_KEY, authenticate
from .core import OPERATIONS_KEY, STATE_KEY, EmulatorState, TwilioError, new_sid, operation_of
from .faults import RETRY_AFTER_SECONDS, FaultConfig, too_many_requests

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"
# Twilio answers every API request with this header: "RQ" plus 32 lowercase hex digits.
REQUEST_ID_HEADER = "Twilio-Request-Id"
REQUEST_ID_KEY = web.RequestKey("twilio_request_id", str)
# The status a request's handler answered when fault ``rateLostResponse`` kept the client from seeing it.
LOST_STATUS_KEY = web.RequestKey("emulator_lost_status", str)
UNKNOWN_OPERATION = "(unknown)"
RECENT_REQUESTS = 200
SCHEDULER_TICK_SECONDS = 0.1

# Modules whose ``install(app, state)`` registers routes, in order.
MODULES = (
    "rooms",
    "participants",
    "recordings",
    "accounts",
    "keys",
    "composition_routes",
    "hooks",
    "composition_settings",
    "messaging",
    "studio",
    "verify",
    "sendgrid",
    "control",
)


@dataclass
class RequestStats:
    """Counts of Twilio API requests by operationId and HTTP status, requests now in flight, the
    last :data:`RECENT_REQUESTS` requests with their ``Twilio-Request-Id``, and the answers lost after the
    work was done (by operationId and the status the client never saw)."""

    counts: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    lost: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    in_flight: int = 0
    recent: collections.deque[dict[str, str]] = field(
        default_factory=lambda: collections.deque(maxlen=RECENT_REQUESTS)
    )

    def record(
        self,
        operation: str,
        status: str,
        request_id: str = "",
        method: str = "",
        path: str = "",
        lost_status: str | None = None,
    ) -> None:
        """``status`` is what the client saw; ``lost_status`` the handler's answer it did not see."""
        self.counts[operation][status] += 1
        entry = {
            "requestId": request_id,
            "operation": operation,
            "method": method,
            "path": path,
            "status": status,
        }
        if lost_status is not None:
            self.lost[operation][lost_status] += 1
            entry["lostStatus"] = lost_status
        self.recent.append(entry)

    def to_json(self) -> dict[str, object]:
        operations = {op: dict(sorted(statuses.items())) for op, statuses in sorted(self.counts.items())}
        total = sum(sum(statuses.values()) for statuses in self.counts.values())
        lost = {op: dict(sorted(statuses.items())) for op, statuses in sorted(self.lost.items())}
        return {
            "operations": operations,
            "total": total,
            "inFlight": self.in_flight,
            "lostResponses": lost,
            "lostResponsesTotal": sum(sum(statuses.values()) for statuses in self.lost.values()),
            "recent": list(self.recent),
        }

    def reset(self) -> None:
        self.counts.clear()
        self.lost.clear()
        self.recent.clear()


@dataclass(frozen=True)
class VendorRoute:
    """A route of another vendor's API on the same port (SendGrid): faulted and counted like Twilio's, but
    it authenticates requests itself, answers errors (injected ones too) in its vendor's shape through
    ``render_error`` and carries no ``Twilio-Request-Id``."""

    operation: str
    render_error: Callable[[TwilioError, Mapping[str, str] | None], web.Response]


STATS_KEY = web.AppKey("emulator_stats", RequestStats)
FAULTS_KEY = web.AppKey("emulator_faults", FaultConfig)
VENDOR_ROUTES_KEY = web.AppKey("emulator_vendor_routes", dict[AbstractRoute, VendorRoute])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def twilio_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request advances due timers; API routes (Twilio's and other vendors') are also faulted and
    counted, Twilio's authenticated here."""
    state = request.app[STATE_KEY]
    state.scheduler.run_due()
    if request.path.startswith(CONTROL_PREFIX):
        try:
            return await handler(request)
        except TwilioError as error:
            return error.response()
    vendor = request.app[VENDOR_ROUTES_KEY].get(request.match_info.route)
    if vendor is None:
        request[REQUEST_ID_KEY] = new_sid("RQ")
    operation = vendor.operation if vendor is not None else operation_of(request)
    stats = request.app[STATS_KEY]
    stats.in_flight += 1
    try:
        response = await _serve(request, handler, operation, vendor, request.app[FAULTS_KEY], stats)
    finally:
        stats.in_flight -= 1
    stats.record(
        operation or UNKNOWN_OPERATION,
        "dropped" if isinstance(response, _Dropped) else str(response.status),
        request.get(REQUEST_ID_KEY, ""),
        request.method,
        request.path,
        request.get(LOST_STATUS_KEY),
    )
    return response


class _Dropped(web.Response):
    """Stand-in answer for a deliberately dropped connection: the transport is closed, nothing is sent."""


async def _serve(
    request: web.Request,
    handler: Handler,
    operation: str | None,
    vendor: VendorRoute | None,
    faults: FaultConfig,
    stats: RequestStats,
) -> web.StreamResponse:
    try:
        if faults.active:
            if faults.concurrency_limit and stats.in_flight > faults.concurrency_limit:
                raise too_many_requests()
            if faults.latency_ms:
                await asyncio.sleep(faults.latency_ms / 1000)
            fate = faults.draw()
            if fate == "drop":
                return _drop(request)
            if fate == "429":
                raise too_many_requests()
            if fate == "5xx":
                raise faults.server_error()
        if operation is None:
            raise _route_error(request)
        if vendor is None:
            request[PRINCIPAL_KEY] = authenticate(request.app[STATE_KEY], request)
        response = await handler(request)
        lost = faults.lose_answer(request.method, response.status) if not response.prepared else None
        if lost is not None:  # the work is done: only the answer goes missing
            request[LOST_STATUS_KEY] = str(response.status)
            if lost == "drop":
                return _drop(request)
            raise faults.server_error()
        return response
    except TwilioError as error:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.status == 429 else None
        return error.response(headers) if vendor is None else vendor.render_error(error, headers)
    except web.HTTPException:
        raise
    except Exception:
        log.exception(
            "emulator failed on %s %s (request %s)",
            request.method,
            request.path,
            request.get(REQUEST_ID_KEY, "-"),
        )
        failure = TwilioError(500, 20500, "Internal Server Error")
        return failure.response() if vendor is None else vendor.render_error(failure, None)


def _drop(request: web.Request) -> _Dropped:
    if request.transport is not None:
        request.transport.abort()
    return _Dropped(status=499)


def _route_error(request: web.Request) -> TwilioError:
    match_info = request.match_info
    http_exception = getattr(match_info, "http_exception", None)
    if isinstance(http_exception, web.HTTPMethodNotAllowed):
        return TwilioError(405, 20004, "Method not allowed")
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Stamp every Twilio API answer (errors, redirects and aiohttp's own answers included)."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


async def _scheduler_ticker(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]

    async def tick() -> None:
        while True:
            await asyncio.sleep(SCHEDULER_TICK_SECONDS)
            state.scheduler.run_due()

    await state.callbacks.start()
    task = asyncio.create_task(tick(), name="emulator-scheduler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await state.callbacks.close()


def create_app(state: EmulatorState) -> web.Application:
    """Build the application serving the Twilio API and the control API for ``state``."""
    app = web.Application(middlewares=[twilio_middleware], client_max_size=1024**2)
    app[STATE_KEY] = state
    app[OPERATIONS_KEY] = {}
    app[VENDOR_ROUTES_KEY] = {}
    app[STATS_KEY] = RequestStats()
    app[FAULTS_KEY] = FaultConfig()
    for name in MODULES:
        importlib.import_module(f"{__package__}.{name}").install(app, state)
    app.on_response_prepare.append(_add_request_id)
    app.cleanup_ctx.append(_scheduler_ticker)
    return app
