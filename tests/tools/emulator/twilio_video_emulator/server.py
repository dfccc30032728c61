"""Running the emulator: ``start_emulator()`` in a loop, or as a context manager."""

from __future__ import annotations

import logging
import socket
from types import TracebackType
from typing import Any

from aiohttp import web

from .app import create_app
from .core import EmulatorState
from .entities import ApiKey
from .keys import DEFAULT_KEY_NAME, create_key
from .persistence import load_file, save_file
from .sendgrid_core import default_key as default_sendgrid_key

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_KEY_NAME", "Emulator", "start_emulator"]


class Emulator:
    """A running emulator: its URL, its state and the credentials clients should use."""

    def __init__(self, state: EmulatorState, runner: web.AppRunner, url: str, state_file: str | None) -> None:
        self.state = state
        self.url = url
        self._runner = runner
        self._state_file = state_file
        self._stopped = False

    @property
    def default_key(self) -> ApiKey:
        """The main account's standard API key handed out in :attr:`credentials` (created again if it was
        deleted)."""
        for key in self.state.keys.values():
            if (
                key.friendly_name == DEFAULT_KEY_NAME
                and key.kind == "key"
                and key.type == "standard"
                and key.account_sid == self.state.account_sid
            ):
                return key
        return create_key(self.state, DEFAULT_KEY_NAME)

    @property
    def credentials(self) -> dict[str, str]:
        key = self.default_key
        return {
            "url": self.url,
            "account_sid": self.state.account_sid,
            "auth_token": self.state.auth_token,
            "api_key": key.sid,
            "api_secret": key.secret,
            "sendgrid_api_key": default_sendgrid_key(self.state).api_key,
        }

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._state_file:
            save_file(self.state, self._state_file)
        await self._runner.cleanup()

    async def __aenter__(self) -> Emulator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _bound_port(site: web.TCPSite) -> int:
    server: Any = site._server  # aiohttp exposes the listening sockets only here
    sockets: list[socket.socket] = list(server.sockets) if server is not None else []
    if not sockets:
        raise RuntimeError("the emulator is not listening")
    return int(sockets[0].getsockname()[1])


async def start_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    state_file: str | None = None,
    *,
    account_sid: str | None = None,
    auth_token: str | None = None,
) -> Emulator:
    """Serve on ``host:port`` (0 picks a free port); ``state_file`` is loaded now and saved on stop."""
    state = EmulatorState.create(account_sid=account_sid, auth_token=auth_token)
    app = create_app(state)
    if state_file and load_file(state, state_file):
        log.info("emulator state loaded from %s", state_file)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
        bound = _bound_port(site)
    except BaseException:
        await runner.cleanup()
        raise
    public_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in public_host:
        public_host = f"[{public_host}]"
    url = f"http://{public_host}:{bound}"
    state.base_url = url
    emulator = Emulator(state, runner, url, state_file)
    _ = emulator.credentials  # the default keys exist from the start, so a saved state holds them
    return emulator
