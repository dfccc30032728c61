"""A reusable in-loop test bed: the embedded Kubernetes API, the Twilio emulator and the real operator.

The embedded API, the emulator and the operator's HTTP side run in the test's event loop on 127.0.0.1. The
operator runs through ``run_operator`` (leader election included, with a fixed identity so that a restarted
operator takes its Lease back at once) with the VideoRoom handlers registered on a fresh registry, its clock
tied to the emulator's clock (so that advancing the emulator's time moves the operator's schedule too), and
``PUBLIC_BASE_URL`` pointing at its own HTTP server, where the emulator delivers signed room callbacks.
kopf itself runs through its own test runner, ``kopf.testing.KopfRunner``, on a thread and loop of its own
(as in production, where :class:`~twilio_video_operator.reconciler.KopfThread` runs it):
``harness.in_operator(fn)`` runs a coroutine function there.

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
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import kopf
import pytest
from kopf.testing import KopfRunner
from official_client import OfficialClient
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from kube_backends import EmbeddedBackend, KubeBackend
from twilio_video_emulator.server import Emulator, start_emulator
from twilio_video_operator.context import OperatorContext
from twilio_video_operator.controllers.videoroom import VideoRoomController
from twilio_video_operator.gateway.circuit import CircuitSettings
from twilio_video_operator.gateway.retry import RetryPolicy
from twilio_video_operator.handlers import base_registry
from twilio_video_operator.handlers.videoroom import register_handlers
from twilio_video_operator.kube import VIDEOROOMS, KubeClient, Resource
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi
from twilio_video_operator.runner import run_operator
from twilio_video_operator.settings import Settings, load_settings
from twilio_video_operator.webhooks.room_events import CHANNEL
from twilio_video_playground.kube import EmbeddedKubernetes

NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
EVENTS_PATH = "/api/v1/namespaces/{namespace}/events"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
DEFAULT_WAIT = 10.0

OPERATOR_NAMESPACE = "operator-system"
T = TypeVar("T")

Registrar = Callable[[kopf.OperatorRegistry, "OperatorHarness"], None]
_namespace_numbers = itertools.count(1)


class KopfRunnerReconciler:
    """The operator's reconciler run by kopf's own test runner: ``kopf run`` on a thread of its own.

    ``KopfRunner`` passes no ``memo`` to kopf, so the harness's registry starts with a startup handler that
    puts the operator's context where the handlers look for it (``memo.operator``), and ends with one that
    tells :meth:`start` that every startup handler has run.
    """

    def __init__(
        self,
        context: OperatorContext,
        registry: kopf.OperatorRegistry,
        kopf_settings: Callable[[], kopf.OperatorSettings],
        started: threading.Event,
    ) -> None:
        self.context = context
        self.registry = registry
        self.kopf_settings = kopf_settings
        self.started = started
        self.runner: KopfRunner | None = None

    @property
    def exited(self) -> bool:
        runner = self.runner
        return runner is not None and runner.future.done()

    async def start(self, namespaces: Sequence[str]) -> None:
        scope = [arg for namespace in namespaces for arg in ("-n", namespace)] or ["-A"]
        self.started.clear()
        self.runner = KopfRunner(
            ["run", "--standalone", *scope], registry=self.registry, settings=self.kopf_settings()
        )
        await asyncio.to_thread(self.runner.__enter__)
        async with asyncio.timeout(START_TIMEOUT):
            while not self.started.is_set():
                if self.runner.future.done():
                    raise RuntimeError(f"kopf exited during its startup: {self.runner.output[-2000:]}")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            with contextlib.suppress(Exception):  # a failed run is reported by the test that caused it
                await asyncio.to_thread(runner.__exit__, None, None, None)


def _bind(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


#: Every namespace may use every Messaging Service, Studio Flow and Verify Service of the emulator's main
#: account (tests create them at run time); tests of the restriction pass their own TENANT_TWILIO_SERVICES.
EVERY_SERVICE = {"*": {"messagingServices": ["*"], "studioFlows": ["*"], "verifyServices": ["*"]}}


class OperatorHarness:
    """Embedded Kubernetes API + Twilio emulator + operator. Start with ``async with``."""

    def __init__(
        self,
        workdir: Path,
        *,
        registrars: Sequence[Registrar] = (),
        resync_interval: timedelta | None = None,
        settings_overrides: Mapping[str, Any] | None = None,
        backend: KubeBackend | None = None,
    ) -> None:
        self.workdir = workdir
        self.backend = backend or EmbeddedBackend()
        """The Kubernetes API: a fresh embedded one unless a test passes the real one (``kube_backend``)."""
        self._backend_started = False
        self.registrars = list(registrars)
        self.resync_interval = resync_interval
        self.settings_overrides = dict(settings_overrides or {})
        self.kube: EmbeddedKubernetes | None = None
        """The embedded API itself (None on the real backend)."""
        self.emulator: Emulator | None = None
        self.client: KubeClient | None = None
        self.official: OfficialClient | None = None
        """The official ``kubernetes`` client: the tests' independent view (rooms, namespaces, Events)."""
        self.http: aiohttp.ClientSession | None = None
        self.settings: Settings | None = None
        self.controller: VideoRoomController | None = None
        self.api_hook: Callable[[RoomApi], RoomApi] | None = None
        """Wraps the operator's Twilio operations while set (e.g. to stop right after a call)."""
        self.context: OperatorContext | None = None
        self.operator_loop: asyncio.AbstractEventLoop | None = None
        """The loop kopf and the controllers run on (a thread of KopfRunner's)."""
        self.kubeconfig = workdir / "kubeconfig"
        self._port = 0
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> OperatorHarness:
        try:
            await self.backend.start(self.kubeconfig)
            self._backend_started = True
            self.kube = self.backend.embedded if isinstance(self.backend, EmbeddedBackend) else None
            self.client = KubeClient(connection_from_kubeconfig(self.kubeconfig))
            self.official = OfficialClient(self.kubeconfig)
            await self.backend.fresh_namespace(OPERATOR_NAMESPACE)
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
        if self.official is not None:
            self.official.close()
        if self.emulator is not None:
            await self.emulator.stop()
        if self._backend_started:
            self._backend_started = False
            await self.backend.stop()

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
                "SENDGRID_BASE_URL": creds["url"],
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": port,
                "LEADER_ELECTION_NAMESPACE": OPERATOR_NAMESPACE,
                "POD_NAME": "operator-under-test",
                "TENANT_TWILIO_SERVICES": EVERY_SERVICE,
                **self.settings_overrides,
            }
        )

    async def start_operator(self) -> None:
        """Start an operator (on the same port as the previous one, so callbacks keep reaching it)."""
        sock = _bind(self._port)
        self._port = int(sock.getsockname()[1])
        if self.settings is None:
            self.settings = self._settings(self._port)
        registry = base_registry()
        kopf_started = threading.Event()

        @kopf.on.startup(registry=registry, id="harness-context")
        async def bind(memo: kopf.Memo, **_: Any) -> None:
            memo.operator = self.context
            self.operator_loop = asyncio.get_running_loop()

        def started(controller: VideoRoomController) -> None:
            self.controller = controller

        register_handlers(
            registry,
            clock=self.clock,
            resync_interval=self.resync_interval,
            on_start=started,
            api_hook=lambda api: self.api_hook(api) if self.api_hook is not None else api,
        )
        for registrar in self.registrars:
            registrar(registry, self)

        @kopf.on.startup(registry=registry, id="harness-timeouts")
        def quick(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.watching.connect_timeout = 5
            settings.networking.request_timeout = 10
            kopf_started.set()

        def on_context(context: OperatorContext) -> None:
            self.context = context

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
                reconciler=lambda context, registry, kopf_settings: KopfRunnerReconciler(
                    context, registry, kopf_settings, kopf_started
                ),
                context_options=self.context_options(),
                on_context=on_context,
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

    def context_options(self) -> dict[str, Any]:
        """What the operator's context is built with (harnesses of other kinds add to it)."""
        return {"gateway_overrides": self.gateway_overrides()}

    async def in_operator(self, function: Callable[[], Awaitable[T]]) -> T:
        """Await ``function()`` on the operator's loop (where the controllers live), from the test's."""
        assert self.operator_loop is not None, "the operator has not started"
        future = asyncio.run_coroutine_threadsafe(_call(function), self.operator_loop)
        return await asyncio.wrap_future(future)

    async def stop_operator(self, *, crash: bool = False) -> None:
        """Stop the operator: gracefully, or (``crash``) by cancelling it at once like a killed process."""
        task, self._task = self._task, None
        if task is None:
            return
        if crash:
            # A killed process takes its timers and in-flight reconciles with it.
            if self.controller is not None:
                await self.in_operator(self.controller.stop)
            task.cancel()
        elif self._stop is not None:
            self._stop.set()
        await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task
        self.controller = None
        self.operator_loop = None

    # ------------------------------------------------------------------------------------- Kubernetes

    @property
    def kube_client(self) -> KubeClient:
        assert self.client is not None
        return self.client

    @property
    def kube_official(self) -> OfficialClient:
        assert self.official is not None
        return self.official

    async def namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}{next(_namespace_numbers)}"
        await self.kube_official.create_namespace(name)
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
        return await self.kube_official.create(VIDEOROOMS.plural, namespace, body)

    async def patch_room(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self.kube_official.patch(VIDEOROOMS.plural, namespace, name, patch)

    async def get_room(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.kube_official.get(VIDEOROOMS.plural, namespace, name)

    async def delete_room(self, namespace: str, name: str) -> None:
        await self.kube_official.delete(VIDEOROOMS.plural, namespace, name)

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
        items = await self.kube_official.events(namespace)
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
        if self.controller is not None and self.operator_loop is not None:
            self.operator_loop.call_soon_threadsafe(self.controller.wake)

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
        assert self.context is not None
        async with asyncio.timeout(DEFAULT_WAIT):
            await self.context.hub.channel(CHANNEL).drained()


def _namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def _call(function: Callable[[], Awaitable[T]]) -> T:
    return await function()


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
async def harness(tmp_path: Path, kube_backend: KubeBackend) -> AsyncIterator[OperatorHarness]:
    """A running test bed (see :class:`OperatorHarness`) on ``kube_backend``."""
    async with OperatorHarness(tmp_path, backend=kube_backend) as bed:
        yield bed
