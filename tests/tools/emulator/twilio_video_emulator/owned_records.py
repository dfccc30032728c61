"""What the REST handlers of account-owned records share (Messaging Services, Studio, Verify, Composition
Hooks): the store a module keeps, a record by its path SID, a newest-first page, the list, fetch and delete
handlers of a collection, a required parameter.

A record of another account is answered as if it did not exist (404/20404), as on Twilio.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

from aiohttp import web

from .auth import account_of
from .core import STATE_KEY, EmulatorState, TwilioError, paginate_v1


class AccountRecord(Protocol):
    @property
    def sid(self) -> str: ...

    @property
    def account_sid(self) -> str: ...


R = TypeVar("R", bound=AccountRecord)
T = TypeVar("T")


class PersistedStore(Protocol):
    def dump(self) -> dict[str, Any]: ...

    def load(self, data: dict[str, Any]) -> None: ...


S = TypeVar("S", bound=PersistedStore)


def install_store(state: EmulatorState, key: str, store: S) -> S:
    """Keep a module's ``store`` in ``state.extensions`` under ``key``, saved and loaded with the state."""
    state.extensions[key] = store
    state.persisters[key] = (store.dump, store.load)
    return store


def installed_store(state: EmulatorState, key: str, kind: type[T]) -> T:
    """The store a module's ``install`` put in ``state.extensions`` under ``key``."""
    store = state.extensions.get(key)
    if not isinstance(store, kind):
        raise RuntimeError(f"{key} is not installed")
    return store


def resource_not_found(request: web.Request) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def owned_record(records: Mapping[str, R], request: web.Request, name: str = "Sid") -> R:
    """The record whose SID is the path's ``{name}``, if the caller's account owns it."""
    record = records.get(request.match_info[name])
    if record is None or record.account_sid != account_of(request):
        raise resource_not_found(request)
    return record


def owned_page(
    request: web.Request,
    records: dict[str, R],
    render: Callable[[R], dict[str, Any]],
    key: str,
    keep: Callable[[R], bool] = lambda record: True,
) -> web.Response:
    """One page of the caller's records that ``keep`` accepts, newest first, as a v1/v2 list body."""
    account_sid = account_of(request)
    rendered = [
        render(record)
        for record in reversed(records.values())
        if record.account_sid == account_sid and keep(record)
    ]
    return web.json_response(paginate_v1(request, rendered, key))


@dataclass(frozen=True)
class OwnedRoutes(Generic[R]):
    """The list, fetch and delete handlers of one collection of account-owned records (path ``{Sid}``)."""

    records_of: Callable[[EmulatorState], dict[str, R]]
    render: Callable[[EmulatorState, R], dict[str, Any]]
    list_key: str
    on_delete: Callable[[EmulatorState, R], None] | None = None
    """What goes with a deleted record (a flow's executions, a service's verifications)."""

    def lookup(self, request: web.Request, name: str = "Sid") -> R:
        return owned_record(self.records_of(request.app[STATE_KEY]), request, name)

    async def list(self, request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        return owned_page(request, self.records_of(state), partial(self.render, state), self.list_key)

    async def fetch(self, request: web.Request) -> web.Response:
        return web.json_response(self.render(request.app[STATE_KEY], self.lookup(request)))

    async def delete(self, request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        record = self.lookup(request)
        del self.records_of(state)[record.sid]
        if self.on_delete is not None:
            self.on_delete(state, record)
        return web.Response(status=204)


def required_param(params: Mapping[str, str], name: str) -> str:
    """A form parameter that must be present and non-empty."""
    value = params.get(name)
    if not value:
        raise TwilioError(400, 20001, f"Missing required parameter {name} in the post body")
    return value
