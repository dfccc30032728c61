"""Shared building blocks of the Twilio Video emulator.

Everything a resource module needs lives here: the controllable clock and scheduler, SID and date helpers,
Twilio's error type, request-parameter parsing, Twilio's two pagination styles, route registration with the
spec ``operationId`` and the :class:`EmulatorState` that all modules share.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast, overload
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.abc import AbstractView
from aiohttp.web_urldispatcher import AbstractRoute
from multidict import MultiDict, MultiDictProxy

from .callbacks import CallbackDispatcher
from .entities import (
    Account,
    ApiKey,
    Participant,
    Recording,
    Room,
    Track,
    Transcription,
)

__all__ = [
    "OPERATIONS_KEY",
    "STATE_KEY",
    "Account",
    "ApiKey",
    "CallbackDispatcher",
    "Clock",
    "EmulatorState",
    "Participant",
    "Recording",
    "Room",
    "Scheduler",
    "Track",
    "Transcription",
    "TwilioError",
    "add_route",
    "iso",
    "new_sid",
    "paginate_v1",
    "paginate_v2010",
    "param_bool",
    "param_enum",
    "param_int",
    "param_json",
    "parse_iso",
    "read_params",
    "rfc2822",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Any]


# --------------------------------------------------------------------------------------------- time


class Clock:
    """Wall-clock time (aware UTC) plus an offset that tests move forward with :meth:`advance`."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset = timedelta(seconds=offset_seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += timedelta(seconds=seconds)


class Scheduler:
    """Runs callables once the emulator clock reaches their due time (earliest first, FIFO on ties)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._running = False

    def call_at(self, when: datetime, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._counter), fn))

    def call_later(self, seconds: float, fn: Callable[[], None]) -> None:
        self.call_at(self.clock.now() + timedelta(seconds=seconds), fn)

    def run_due(self) -> None:
        """Run everything due now; callbacks may schedule more work, which runs too if already due."""
        if self._running:  # a scheduled function that triggers run_due() again must not recurse
            return
        self._running = True
        try:
            while self._heap and self._heap[0][0] <= self.clock.now():
                _, _, fn = heapq.heappop(self._heap)
                try:
                    fn()
                except Exception:
                    log.exception("scheduled emulator task failed")
        finally:
            self._running = False

    def __len__(self) -> int:
        return len(self._heap)


def iso(dt: datetime) -> str:
    """Video v1 date format: ``2015-07-30T20:00:00Z`` (UTC, whole seconds)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_or_none(dt: datetime | None) -> str | None:
    return None if dt is None else iso(dt)


def rfc2822(dt: datetime) -> str:
    """API v2010 date format: ``Mon, 13 Jun 2016 22:50:08 +0000``."""
    return format_datetime(dt.astimezone(UTC).replace(microsecond=0), usegmt=False).replace("-0000", "+0000")


def parse_iso(value: str) -> datetime:
    """Parse ``YYYY-MM-DD`` or an ISO-8601 date-time (``Z`` or offset) into an aware UTC datetime."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def new_sid(prefix: str) -> str:
    """A Twilio SID: two-letter prefix plus 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


# --------------------------------------------------------------------------------------------- errors


class TwilioError(Exception):
    """An error answered as Twilio's JSON body; the HTTP status equals ``status``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }

    def response(self, headers: Mapping[str, str] | None = None) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=headers)


def not_found(what: str = "resource") -> TwilioError:
    return TwilioError(404, 20404, f"The requested {what} was not found")


def bad_request(message: str, code: int = 20001) -> TwilioError:
    return TwilioError(400, code, message)


# --------------------------------------------------------------------------------------------- params


async def read_params(request: web.Request) -> MultiDictProxy[str]:
    """Form body for POST (merged over the query string), the query string otherwise; repeated keys kept."""
    if request.method != "POST" or not request.can_read_body:
        return cast(MultiDictProxy[str], request.query)
    form = await request.post()
    merged: MultiDict[str] = MultiDict(request.query)
    for key, value in form.items():
        if isinstance(value, str):
            merged.add(key, value)
    return MultiDictProxy(merged)


def param_str(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value is not None else None


def param_bool(params: Mapping[str, str], name: str, default: bool) -> bool:
    """``true``/``false`` in any case; anything else is a 400."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise bad_request(f"Invalid value for {name}: expected true or false")


@overload
def param_int(params: Mapping[str, str], name: str, *, lo: int, hi: int, code: int, default: int) -> int: ...


@overload
def param_int(
    params: Mapping[str, str], name: str, *, lo: int, hi: int, code: int, default: None = None
) -> int | None: ...


def param_int(
    params: Mapping[str, str], name: str, *, lo: int, hi: int, code: int, default: int | None = None
) -> int | None:
    """An integer in ``lo..hi``; a non-integer or out-of-range value is ``TwilioError(400, code)``."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise bad_request(f"{name} must be an integer", code) from None
    if not lo <= value <= hi:
        raise bad_request(f"{name} must be between {lo} and {hi}", code)
    return value


def param_json(params: Mapping[str, str], name: str, code: int) -> Any:
    """A JSON-encoded parameter (``None`` when absent); invalid JSON is ``TwilioError(400, code)``."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request(f"{name} is not valid JSON", code) from None


@overload
def param_enum(
    params: Mapping[str, str], name: str, values: Iterable[str], *, code: int, default: str
) -> str: ...


@overload
def param_enum(
    params: Mapping[str, str], name: str, values: Iterable[str], *, code: int, default: None = None
) -> str | None: ...


def param_enum(
    params: Mapping[str, str], name: str, values: Iterable[str], *, code: int, default: str | None = None
) -> str | None:
    """One of ``values`` (matched case-insensitively, returned in canonical spelling)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    canonical = {value.lower(): value for value in values}
    found = canonical.get(raw.strip().lower())
    if found is None:
        raise bad_request(f"{name} must be one of: {', '.join(canonical.values())}", code)
    return found


def param_date(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_iso(raw)
    except ValueError:
        raise bad_request(f"{name} must be an ISO-8601 date or date-time") from None


# --------------------------------------------------------------------------------------------- pagination

PAGING_PARAMS = frozenset({"PageSize", "Page", "PageToken"})


def _page_window(request: web.Request, max_page_size: int) -> tuple[int, int, int]:
    """(page_size, page, offset) from the query; the offset comes from PageToken when present."""
    query = request.query
    page_size = param_int(query, "PageSize", lo=1, hi=max_page_size, code=20001, default=50)
    page = param_int(query, "Page", lo=0, hi=10**9, code=20001, default=0)
    token = query.get("PageToken")
    if token:
        if not token.startswith("PT") or not token[2:].isdigit():
            raise bad_request("Invalid PageToken")
        offset = int(token[2:])
    else:
        offset = page * page_size
    return page_size, page, offset


def _page_query(request: web.Request, page_size: int, page: int, offset: int | None) -> str:
    pairs = [(k, v) for k, v in request.query.items() if k not in PAGING_PARAMS]
    pairs += [("PageSize", str(page_size)), ("Page", str(page))]
    if offset is not None and page > 0:
        pairs.append(("PageToken", f"PT{offset}"))
    return urlencode(pairs)


def paginate_v1(
    request: web.Request, records: list[dict[str, Any]], key: str, *, max_page_size: int = 1000
) -> dict[str, Any]:
    """Video/IAM list body: ``{key: [...], "meta": {...}}`` with absolute URLs on the emulator's base URL."""
    page_size, page, offset = _page_window(request, max_page_size)
    chunk = records[offset : offset + page_size]
    base = request.app[STATE_KEY].base_url.rstrip("/") + request.path

    def url(target_page: int, target_offset: int | None) -> str:
        return f"{base}?{_page_query(request, page_size, target_page, target_offset)}"

    has_next = offset + page_size < len(records)
    return {
        key: chunk,
        "meta": {
            "page": page,
            "page_size": page_size,
            "first_page_url": url(0, None),
            "previous_page_url": url(page - 1, max(offset - page_size, 0)) if page > 0 else None,
            "url": url(page, offset),
            "next_page_url": url(page + 1, offset + page_size) if has_next else None,
            "key": key,
        },
    }


def paginate_v2010(
    request: web.Request, records: list[dict[str, Any]], key: str, *, max_page_size: int = 1000
) -> dict[str, Any]:
    """API v2010 list body: the list key plus relative ``*_uri`` fields at the top level."""
    page_size, page, offset = _page_window(request, max_page_size)
    chunk = records[offset : offset + page_size]
    path = request.path

    def uri(target_page: int, target_offset: int | None) -> str:
        return f"{path}?{_page_query(request, page_size, target_page, target_offset)}"

    has_next = offset + page_size < len(records)
    return {
        key: chunk,
        "first_page_uri": uri(0, None),
        "end": offset + max(len(chunk) - 1, 0),
        "previous_page_uri": uri(page - 1, max(offset - page_size, 0)) if page > 0 else None,
        "uri": uri(page, offset),
        "page_size": page_size,
        "start": offset,
        "next_page_uri": uri(page + 1, offset + page_size) if has_next else None,
        "page": page,
    }


# --------------------------------------------------------------------------------------------- routing

OPERATIONS_KEY = web.AppKey("operations", dict[AbstractRoute, str])


def add_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler | type[AbstractView],
    operation_id: str,
) -> None:
    """Register a Twilio API route; the middlewares count, fault and authenticate it as ``operation_id``."""
    route = app.router.add_route(method, path, handler)
    app[OPERATIONS_KEY][route] = operation_id


def operation_of(request: web.Request) -> str | None:
    """The spec operationId of the matched route, or ``None`` for control and unknown routes."""
    route = request.match_info.route
    return request.app[OPERATIONS_KEY].get(route)


# --------------------------------------------------------------------------------------------- state

Persister = tuple[Callable[[], dict[str, Any]], Callable[[dict[str, Any]], None]]


MAIN_ACCOUNT_NAME = "Main Account"


@dataclass
class EmulatorState:
    """Everything the emulator knows; one instance per running server.

    ``account_sid`` and ``auth_token`` are the main account's; ``accounts`` holds it and its subaccounts.
    Every room, key, recording, composition and hook carries the SID of the account that owns it.
    """

    account_sid: str
    auth_token: str
    clock: Clock
    scheduler: Scheduler
    callbacks: CallbackDispatcher
    base_url: str = "http://127.0.0.1"
    accounts: dict[str, Account] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    rooms: dict[str, Room] = field(default_factory=dict)
    # Account SID -> (UniqueName -> RM SID) of that account's in-progress rooms: names are unique per account.
    room_index: dict[str, dict[str, str]] = field(default_factory=dict)
    # RT SID -> recording, across all rooms (``/v1/Recordings``).
    recordings: dict[str, Recording] = field(default_factory=dict)
    # Called when a room ends (status "completed", or "failed" via the control API), after its participants
    # were disconnected and its recordings finalized.
    room_completed_listeners: list[Callable[[Room], None]] = field(default_factory=list)
    extensions: dict[str, Any] = field(default_factory=dict)
    persisters: dict[str, Persister] = field(default_factory=dict)

    @classmethod
    def create(cls, account_sid: str | None = None, auth_token: str | None = None) -> EmulatorState:
        account = account_sid or new_sid("AC")
        token = auth_token or secrets.token_hex(16)
        clock = Clock()
        state = cls(
            account_sid=account,
            auth_token=token,
            clock=clock,
            scheduler=Scheduler(clock),
            callbacks=CallbackDispatcher(token, now=clock.now),
        )
        state.ensure_main_account()
        return state

    def ensure_main_account(self) -> None:
        """Register the main account from ``account_sid`` and ``auth_token`` (after create or load)."""
        account = self.accounts.get(self.account_sid)
        if account is None:
            now = self.clock.now()
            account = Account(
                sid=self.account_sid,
                auth_token=self.auth_token,
                friendly_name=MAIN_ACCOUNT_NAME,
                owner_account_sid=self.account_sid,
                date_created=now,
                date_updated=now,
            )
            self.accounts[self.account_sid] = account
        account.auth_token = self.auth_token
        account.owner_account_sid = self.account_sid
        self.callbacks.auth_token = self.auth_token

    @property
    def room_names(self) -> dict[str, str]:
        """UniqueName -> RM SID of the main account's in-progress rooms."""
        return self.names_in(self.account_sid)

    def names_in(self, account_sid: str) -> dict[str, str]:
        """UniqueName -> RM SID of ``account_sid``'s in-progress rooms (the live index, not a copy)."""
        return self.room_index.setdefault(account_sid, {})

    def auth_token_of(self, account_sid: str) -> str:
        """The Auth Token that signs ``account_sid``'s callbacks (the main account's for an unknown SID)."""
        account = self.accounts.get(account_sid)
        return account.auth_token if account is not None else self.auth_token

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on the emulator's own base URL."""
        return self.base_url.rstrip("/") + path


STATE_KEY = web.AppKey("emulator_state", EmulatorState)
