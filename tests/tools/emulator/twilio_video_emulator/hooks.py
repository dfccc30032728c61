"""Composition hooks: CRUD, and a composition for every completed Group Room while a hook is enabled.

A hook belongs to the principal's account and composes only that account's rooms. Its ``FriendlyName`` is
unique in the account; a duplicate is answered ``409`` with code ``20409``.
Compositions created by a hook report to the hook's ``StatusCallback`` and start with a
``composition-enqueued`` event that names the hook (``HookSid``, ``HookUri``, ``HookFriendlyName``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import web

from .auth import account_of
from .composition_options import GROUP_ROOM_TYPES, CompositionOptions, parse_options
from .compositions import service_of
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    iso,
    new_sid,
    param_bool,
    param_date,
    read_params,
)
from .entities import Room
from .owned_records import OwnedRoutes, install_store, installed_store, owned_page

HOOKS_KEY = "composition_hooks"
MAX_FRIENDLY_NAME = 100


@dataclass
class CompositionHook:
    sid: str
    account_sid: str
    friendly_name: str
    enabled: bool
    date_created: datetime
    date_updated: datetime
    options: CompositionOptions


def hook_path(sid: str) -> str:
    return f"/v1/CompositionHooks/{sid}"


def render_hook(state: EmulatorState, hook: CompositionHook) -> dict[str, Any]:
    options = hook.options
    return {
        "account_sid": hook.account_sid,
        "friendly_name": hook.friendly_name,
        "enabled": hook.enabled,
        "date_created": iso(hook.date_created),
        "date_updated": iso(hook.date_updated),
        "sid": hook.sid,
        "audio_sources": list(options.audio_sources),
        "audio_sources_excluded": list(options.audio_sources_excluded),
        "video_layout": options.video_layout or {},
        "resolution": options.resolution,
        "trim": options.trim,
        "format": options.format,
        "status_callback": options.status_callback,
        "status_callback_method": options.status_callback_method,
        "url": state.url(hook_path(hook.sid)),
    }


def name_filter(pattern: str) -> re.Pattern[str]:
    """Case-insensitive match of a whole name, where ``*`` stands for any characters."""
    return re.compile(".*".join(re.escape(piece) for piece in pattern.split("*")), re.IGNORECASE)


class HookService:
    """The composition hooks of every account; kept in ``state.extensions``."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.hooks: dict[str, CompositionHook] = {}

    def check_name(self, name: str | None, account_sid: str, exclude_sid: str | None = None) -> str:
        if name is None or not name.strip():
            raise TwilioError(400, 20001, "Missing required parameter FriendlyName")
        if len(name) > MAX_FRIENDLY_NAME:
            raise TwilioError(400, 20002, f"FriendlyName can be at most {MAX_FRIENDLY_NAME} characters")
        if any(
            h.friendly_name == name and h.account_sid == account_sid and h.sid != exclude_sid
            for h in self.hooks.values()
        ):
            raise TwilioError(409, 20409, f"A composition hook named {name!r} already exists")
        return name

    def create(
        self, name: str, enabled: bool, options: CompositionOptions, account_sid: str
    ) -> CompositionHook:
        now = self.state.clock.now()
        hook = CompositionHook(
            sid=new_sid("HK"),
            account_sid=account_sid,
            friendly_name=name,
            enabled=enabled,
            date_created=now,
            date_updated=now,
            options=options,
        )
        self.hooks[hook.sid] = hook
        return hook

    def on_room_ended(self, room: Room) -> None:
        """Room-completed listener: the room account's enabled hooks compose a completed Group Room."""
        if room.status != "completed" or room.type not in GROUP_ROOM_TYPES:
            return
        compositions = service_of(self.state)
        for hook in list(self.hooks.values()):
            if hook.enabled and hook.account_sid == room.account_sid:
                options = CompositionOptions(**asdict(hook.options))
                compositions.create(room, options, hook_sid=hook.sid, hook_friendly_name=hook.friendly_name)

    def dump(self) -> dict[str, Any]:
        records = []
        for hook in self.hooks.values():
            record = asdict(hook)
            record["date_created"] = hook.date_created.isoformat()
            record["date_updated"] = hook.date_updated.isoformat()
            records.append(record)
        return {"hooks": records}

    def load(self, data: dict[str, Any]) -> None:
        self.hooks = {}
        for raw in data.get("hooks", []):
            record = dict(raw)
            for name in ("date_created", "date_updated"):
                if isinstance(record[name], str):
                    record[name] = datetime.fromisoformat(record[name])
            record["options"] = CompositionOptions(**record["options"])
            hook = CompositionHook(**record)
            self.hooks[hook.sid] = hook


def hooks_of(state: EmulatorState) -> HookService:
    return installed_store(state, HOOKS_KEY, HookService)


HOOKS = OwnedRoutes(lambda state: hooks_of(state).hooks, render_hook, "composition_hooks")


async def create_hook(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    service = hooks_of(state)
    account_sid = account_of(request)
    params = await read_params(request)
    name = service.check_name(params.get("FriendlyName"), account_sid)
    enabled = param_bool(params, "Enabled", True)
    options = parse_options(params)
    options.require_sources()
    hook = service.create(name, enabled, options, account_sid)
    return web.json_response(render_hook(state, hook), status=201)


async def list_hooks(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    query = request.query
    enabled = param_bool(query, "Enabled", True) if query.get("Enabled") else None
    pattern = query.get("FriendlyName")
    matcher = name_filter(pattern) if pattern else None
    after = param_date(query, "DateCreatedAfter")
    before = param_date(query, "DateCreatedBefore")

    def keep(hook: CompositionHook) -> bool:
        return (
            (enabled is None or hook.enabled == enabled)
            and (matcher is None or matcher.fullmatch(hook.friendly_name) is not None)
            and (after is None or hook.date_created >= after)
            and (before is None or hook.date_created < before)
        )

    return owned_page(request, hooks_of(state).hooks, partial(render_hook, state), "composition_hooks", keep)


async def update_hook(request: web.Request) -> web.Response:
    """POST with FriendlyName required; other parameters replace the hook's values when present."""
    state = request.app[STATE_KEY]
    hook = HOOKS.lookup(request)
    params = await read_params(request)
    name = hooks_of(state).check_name(params.get("FriendlyName"), hook.account_sid, exclude_sid=hook.sid)
    enabled = param_bool(params, "Enabled", hook.enabled)
    options = parse_options(params, base=hook.options)
    options.require_sources()
    hook.friendly_name = name
    hook.enabled = enabled
    hook.options = options
    hook.date_updated = state.clock.now()
    return web.json_response(render_hook(state, hook))


def install(app: web.Application, state: EmulatorState) -> None:
    service = install_store(state, HOOKS_KEY, HookService(state))
    state.room_completed_listeners.append(service.on_room_ended)
    add_route(app, "POST", "/v1/CompositionHooks", create_hook, "CreateCompositionHook")
    add_route(app, "GET", "/v1/CompositionHooks", list_hooks, "ListCompositionHook")
    add_route(app, "GET", "/v1/CompositionHooks/{Sid}", HOOKS.fetch, "FetchCompositionHook")
    add_route(app, "POST", "/v1/CompositionHooks/{Sid}", update_hook, "UpdateCompositionHook")
    add_route(app, "DELETE", "/v1/CompositionHooks/{Sid}", HOOKS.delete, "DeleteCompositionHook")
