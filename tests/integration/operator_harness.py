"""A reusable in-loop test bed: the embedded Kubernetes API, the Twilio emulator and the real operator.

Everything runs in the test's event loop on 127.0.0.1. The operator runs through ``run_operator`` with the
VideoRoom handlers registered on a fresh registry, its clock tied to the emulator's clock (so that
advancing the emulator's time moves the operator's schedule too), and ``PUBLIC_BASE_URL`` pointing at its
own HTTP server, where the emulator delivers signed room callbacks.

Usage from a test module (the directory of the test is on ``sys.path``)::

    from operator_harness import OperatorHarness

    @pytest.fixture
    async def harness(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
        async with OperatorHarness(tmp_path) as bed:
            yield bed

    async def test_something(harness: OperatorHarness) -> None:
        ns = await harness.namespace()
        await harness.create_room(ns, "standup", {"maxParticipants": 4})
        room = await harness.wait_room(ns, "standup", lambda r: r["status"].get("sid"))

Other kinds' handlers join with ``registrars`` (callables taking the registry and the harness);
``harness.api_hook`` wraps the operator's Twilio operations (e.g. to stop it right after a call), and
``stop_operator(crash=True)`` / ``start_operator()`` simulate a killed and restarted process.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from twilio_video_operator.dev.kube import EmbeddedKubernetes
from twilio_video_operator.emulator.server import Emulator, start_emulator
from twilio_video_operator.gateway.circuit import CircuitSettings
from twilio_video_operator.gateway.retry import RetryPolicy
from twilio_video_operator.handlers.videoroom import register_handlers
from twilio_video_operator.kube import VIDEOROOMS, KubeClient, Resource
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_operator.reconcilers.videoroom_controller import VideoRoomController
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi
from twilio_video_operator.runner import run_operator
from twilio_video_operator.settings import Settings, load_settings
from twilio_video_operator.webhooks.hub import WebhookHub
from twilio_video_operator.webhooks.room_events import CHANNEL

REPO = Path(__file__).resolve().parents[2]
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
EVENTS_PATH = "/api/v1/namespaces/{namespace}/events"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
DEFAULT_WAIT = 10.0

Registrar = Callable[[kopf.OperatorRegistry, "OperatorHarness"], None]
_namespace_numbers = itertools.count(1)


def _bind(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


class OperatorHarness:
    """Embedded Kubernetes API + Twilio emulator + operator. Start with ``async with``."""

    def __init__(
        self,
        workdir: Path,
        *,
        registrars: Sequence[Registrar] = (),
        resync_interval: timedelta | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.registrars = list(registrars)
        self.resync_interval = resync_interval
        self.settings_overrides = dict(settings_overrides or {})
        self.kube: EmbeddedKubernetes | None = None
        self.emulator: Emulator | None = None
        self.client: KubeClient | None = None
        self.http: aiohttp.ClientSession | None = None
        self.settings: Settings | None = None
        self.controller: VideoRoomController | None = None
        self.api_hook: Callable[[RoomApi], RoomApi] | None = None
        """Wraps the operator's Twilio operations while set (e.g. to stop right after a call)."""
        self.kubeconfig = workdir / "kubeconfig"
        self._port = 0
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> OperatorHarness:
        try:
            self.kube = EmbeddedKubernetes(REPO / "crds")
            await self.kube.start()
            self.kube.write_kubeconfig(self.kubeconfig)
            self.client = KubeClient(connection_from_kubeconfig(self.kubeconfig))
            self.emulator = await start_emulator()
            self.http = aiohttp.ClientSession()
            await self.start_operator()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_operator()
        for closing in (self.http, self.client):
            if closing is not None:
                await closing.close()
        if self.emulator is not None:
            await self.emulator.stop()
        if self.kube is not None:
            await self.kube.stop()

    def clock(self) -> datetime:
        """The emulator's clock; the operator's reconciles use it too."""
        assert self.emulator is not None
        return self.emulator.state.clock.now()

    def _settings(self, port: int) -> Settings:
        assert self.emulator is not None
        creds = self.emulator.credentials
        return load_settings(
            **{
                "TWILIO_ACCOUNT_SID": creds["account_sid"],
                "TWILIO_AUTH_TOKEN": creds["auth_token"],
                "TWILIO_API_KEY": creds["api_key"],
                "TWILIO_API_SECRET": creds["api_secret"],
                "TWILIO_BASE_URL": creds["url"],
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": port,
                **self.settings_overrides,
            }
        )

    async def start_operator(self) -> None:
        """Start an operator (on the same port as the previous one, so callbacks keep reaching it)."""
        sock = _bind(self._port)
        self._port = int(sock.getsockname()[1])
        if self.settings is None:
            self.settings = self._settings(self._port)
        registry = kopf.OperatorRegistry()

        def started(controller: VideoRoomController) -> None:
            self.controller = controller

        register_handlers(
            registry,
            clock=self.clock,
            resync_interval=self.resync_interval,
            on_start=started,
            gateway_overrides=self.gateway_overrides(),
            api_hook=lambda api: self.api_hook(api) if self.api_hook is not None else api,
        )
        for registrar in self.registrars:
            registrar(registry, self)

        @kopf.on.startup(registry=registry, id="harness-timeouts")
        def quick(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.watching.connect_timeout = 5
            settings.networking.request_timeout = 10

        ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(
            run_operator(
                self.settings,
                kubeconfig=self.kubeconfig,
                stop_flag=self._stop,
                ready_flag=ready,
                registry=registry,
                http_socket=sock,
            ),
            name="operator under test",
        )
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if self._task in done:
            self._task.result()
            raise RuntimeError("the operator exited during startup")
        if waiter not in done:
            raise RuntimeError("the operator did not start in time")

    def gateway_overrides(self) -> dict[str, Any]:
        """Gateway settings for tests: short backoffs so that fault storms settle quickly."""
        return {
            "retry": RetryPolicy(max_attempts=4, total_budget=5.0, base_delay=0.05, max_delay=0.5),
            "circuit": CircuitSettings(failure_threshold=50, cooldown=1.0),
            "request_timeout": 5.0,
        }

    async def stop_operator(self, *, crash: bool = False) -> None:
        """Stop the operator: gracefully, or (``crash``) by cancelling it at once like a killed process."""
        task, self._task = self._task, None
        if task is None:
            return
        if crash:
            task.cancel()
            # A killed process takes its timers and in-flight reconciles with it.
            if self.controller is not None:
                await self.controller.stop()
        elif self._stop is not None:
            self._stop.set()
        await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.controller = None

    # ------------------------------------------------------------------------------------- Kubernetes

    @property
    def kube_client(self) -> KubeClient:
        assert self.client is not None
        return self.client

    async def namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}{next(_namespace_numbers)}"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.kube_client.create(NAMESPACES, None, body)
        return name

    async def create_room(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        *,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "VideoRoom",
            "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
            "spec": dict(spec),
        }
        return await self.kube_client.create(VIDEOROOMS, namespace, body)

    async def patch_room(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.kube_client.patch(VIDEOROOMS, namespace, name, dict(patch))

    async def get_room(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube_client.get(VIDEOROOMS, namespace, name)

    async def delete_room(self, namespace: str, name: str) -> None:
        await self.kube_client.delete(VIDEOROOMS, namespace, name)

    async def wait_room(
        self,
        namespace: str,
        name: str,
        check: Callable[[dict[str, Any]], Any],
        timeout: float = DEFAULT_WAIT,  # noqa: ASYNC109 - a bound for polling, not a cancellation scope
    ) -> dict[str, Any]:
        """Poll the object until ``check(object)`` is truthy; fail with the last object seen."""
        last: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    last = await self.get_room(namespace, name)
                    if last is not None and check(last):
                        return last
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"VideoRoom {namespace}/{name} did not get there: {last}") from None

    async def wait_gone(self, namespace: str, name: str, wait: float = DEFAULT_WAIT) -> None:
        async def gone() -> bool:
            return await self.get_room(namespace, name) is None

        await eventually(gone, wait)

    async def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        result = await self.kube_client.request("GET", EVENTS_PATH.format(namespace=namespace))
        items: list[dict[str, Any]] = result.get("items", [])
        return [e for e in items if name is None or e.get("involvedObject", {}).get("name") == name]

    # ------------------------------------------------------------------------------------- Twilio emulator

    @property
    def twilio_url(self) -> str:
        assert self.emulator is not None
        return self.emulator.url

    async def _control(self, method: str, path: str, body: Any = None) -> Any:
        assert self.http is not None
        async with self.http.request(method, self.twilio_url + "/_emulator/" + path, json=body) as response:
            text = await response.text()
            if response.status >= 400:
                raise AssertionError(f"emulator {method} {path}: {response.status} {text}")
            return await response.json() if text else None

    async def twilio_counts(self) -> dict[str, int]:
        """Twilio API requests so far, by operationId (all status codes together)."""
        stats = await self._control("GET", "requests")
        return {op: sum(codes.values()) for op, codes in stats["operations"].items()}

    async def twilio_stats(self) -> dict[str, dict[str, int]]:
        """Twilio API requests so far, by operationId and HTTP status code."""
        stats = await self._control("GET", "requests")
        operations: dict[str, dict[str, int]] = stats["operations"]
        return operations

    async def twilio_calls(self) -> int:
        return sum((await self.twilio_counts()).values())

    async def subaccount(self, friendly_name: str = "tenant") -> dict[str, str]:
        """A Twilio subaccount of the emulator's main account, with a Standard key:
        ``account_sid``, ``auth_token``, ``api_key``, ``api_secret`` (a tenant's own account)."""
        made = await self._control("POST", "accounts", {"friendlyName": friendly_name})
        return {
            "account_sid": made["accountSid"],
            "auth_token": made["authToken"],
            "api_key": made["apiKey"],
            "api_secret": made["apiSecret"],
        }

    async def reset_counts(self) -> None:
        await self._control("DELETE", "requests")

    async def faults(self, **settings: Any) -> None:
        """``rate429``, ``rate5xx``, ``latencyMs``, ``seed``...; no arguments clears every fault."""
        await self._control("POST", "faults", settings)

    async def advance_clock(self, seconds: float) -> None:
        """Move Twilio's (and the operator's) time forward, then let the operator look at its timers."""
        await self._control("POST", "clock/advance", {"seconds": seconds})
        if self.controller is not None:
            self.controller.wake()

    def token(self, room: str, identity: str, ttl: int = 600) -> str:
        assert self.emulator is not None
        creds = self.emulator.credentials
        valid_until = int((self.clock() + timedelta(seconds=ttl)).timestamp())
        token = AccessToken(
            creds["account_sid"],
            creds["api_key"],
            creds["api_secret"],
            identity=identity,
            nbf=None,
            valid_until=valid_until,
            grants=[VideoGrant(room=room)],
        )
        return str(token.to_jwt())

    async def join(self, room: str, identity: str) -> str:
        """A simulated participant joins ``room`` (SID or UniqueName); returns its PA SID."""
        body = {"identity": identity, "token": self.token(room, identity)}
        joined = await self._control("POST", f"rooms/{room}/participants", body)
        return str(joined["sid"])

    async def leave(self, room: str, participant: str) -> None:
        await self._control("DELETE", f"rooms/{room}/participants/{participant}")

    async def create_twilio_room(self, unique_name: str, **params: str) -> str:
        """Create a room directly at the emulator, as someone other than the operator; returns its SID."""
        assert self.http is not None and self.emulator is not None
        creds = self.emulator.credentials
        basic = base64.b64encode(f"{creds['account_sid']}:{creds['auth_token']}".encode()).decode()
        form = {"UniqueName": unique_name, **params}
        headers = {"Authorization": f"Basic {basic}"}
        async with self.http.post(self.twilio_url + "/v1/Rooms", data=form, headers=headers) as response:
            body = await response.json()
            assert response.status == 201, body
            return str(body["sid"])

    def twilio_rooms(self, unique_name: str | None = None) -> list[Any]:
        """The emulator's rooms (all statuses), optionally only those with ``unique_name``."""
        assert self.emulator is not None
        rooms = list(self.emulator.state.rooms.values())
        return [room for room in rooms if unique_name is None or room.unique_name == unique_name]

    async def callbacks(self, wait: float = 5.0) -> list[dict[str, Any]]:
        """The emulator's callback delivery log, after the queued deliveries were attempted."""
        log = await self._control("GET", f"callbacks?wait={wait}")
        deliveries: list[dict[str, Any]] = log["deliveries"]
        return deliveries

    async def settled(self) -> None:
        """Wait until the emulator delivered its callbacks and the operator processed them."""
        await self.callbacks()
        assert self.settings is not None
        async with asyncio.timeout(DEFAULT_WAIT):
            await WebhookHub.of(self.settings).channel(CHANNEL).drained()


async def eventually(check: Callable[[], Awaitable[Any]], wait: float = DEFAULT_WAIT) -> Any:
    """Await ``check()`` until it returns something truthy (polling); fail after ``wait`` seconds."""
    async with asyncio.timeout(wait):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


def condition(obj: Mapping[str, Any], type: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == type:
            return dict(item)
    return {}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    """A running test bed (see :class:`OperatorHarness`)."""
    async with OperatorHarness(tmp_path) as bed:
        yield bed
