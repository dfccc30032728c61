"""A running operator (SigningKeyRotation handlers and the token service under kopf, via ``run_operator``)
against the embedded Kubernetes API and the Twilio emulator, with one clock shared by both.

The operator's clock is the wall clock plus an offset; :meth:`SharedClock.advance` moves that offset and
the emulator's clock together, so hours of rotation schedule pass in milliseconds and the emulator checks
token expiry on the same time line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from official_client import OfficialClient

from kube_backends import EmbeddedBackend, KubeBackend
from twilio_video_emulator.server import Emulator, start_emulator
from twilio_video_operator.crdgen import build_crds
from twilio_video_operator.gateway import RetryPolicy
from twilio_video_operator.handlers import base_registry
from twilio_video_operator.handlers.signingkeyrotation import register_handlers
from twilio_video_operator.kube import SIGNINGKEYROTATIONS, VIDEOROOMS, KubeClient, Resource
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_operator.reconcilers.signingkeyrotation_plan import BackoffPolicy
from twilio_video_operator.runner import run_operator
from twilio_video_operator.settings import Settings, load_settings
from twilio_video_operator.tokens.ratelimit import RateLimits
from twilio_video_playground.kube import AccessRule, EmbeddedKubernetes

NAMESPACE = "tenant"
API_VERSION = "video.openclaw.io/v1alpha1"
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
EVENTS = Resource("", "v1", "events")
START_TIMEOUT = 20.0
WAIT_TIMEOUT = 10.0
TICK_SECONDS = 0.05


class SharedClock:
    """The operator's clock, kept equal to the emulator's (wall clock plus the same offset)."""

    def __init__(self, emulator: Emulator, http: aiohttp.ClientSession) -> None:
        self.offset = timedelta(0)
        self._emulator = emulator
        self._http = http

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def time(self) -> float:
        return self.now().timestamp()

    async def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
        async with self._http.post(
            f"{self._emulator.url}/_emulator/clock/advance", json={"seconds": seconds}
        ) as resp:
            assert resp.status == 200, await resp.text()


@dataclass
class Harness:
    backend: KubeBackend
    emulator: Emulator
    client: KubeClient
    """The operator's own Kubernetes client (for the few requests the official one has no call for)."""
    official: OfficialClient
    """The official ``kubernetes`` client: the tests' independent view of the objects they check."""
    http: aiohttp.ClientSession
    clock: SharedClock
    operator_url: str
    settings: Settings
    kubeconfig: Path
    limits: RateLimits | None
    backoff: BackoffPolicy
    socket: socket.socket
    tick_seconds: float = TICK_SECONDS
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _operator: asyncio.Task[None] | None = None

    @property
    def kube(self) -> EmbeddedKubernetes:
        """The embedded API (its configured grants); a test that needs it cannot run on the real one."""
        return self.backend.embedded

    # --- the operator ----------------------------------------------------------------------------------

    async def start_operator(self) -> None:
        """Run the operator (these handlers only) under kopf via ``run_operator``; return once it is ready."""
        registry = base_registry()
        register_handlers(
            registry, clock=self.clock.now, tick_seconds=self.tick_seconds, backoff=self.backoff
        )
        ready = asyncio.Event()
        self._operator = operator = asyncio.create_task(
            run_operator(
                self.settings,
                kubeconfig=self.kubeconfig,
                stop_flag=self._stop,
                ready_flag=ready,
                registry=registry,
                http_socket=self.socket,
                context_options={
                    "gateway_overrides": {"retry": RetryPolicy(max_attempts=1), "request_timeout": 5.0},
                    "token_options": {"clock": self.clock.time, "limits": self.limits},
                },
            )
        )
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {operator, waiter}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if operator in done:
            operator.result()
            raise RuntimeError("the operator stopped during startup")
        if waiter not in done:
            raise RuntimeError("the operator did not start in time")

    async def restart_operator(self) -> None:
        """Stop the operator and start a new one at the same address: what the first remembered is gone,
        as on another replica or after a restart."""
        await self.stop_operator()
        self._stop = asyncio.Event()
        if self.socket.fileno() == -1:  # the stopped server closed it
            self.socket = _free_socket(int(self.operator_url.rsplit(":", 1)[1]))
        await self.start_operator()

    async def stop_operator(self) -> None:
        operator, self._operator = self._operator, None
        if operator is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(operator, 15)
        except BaseException:  # shutting down, whatever happened
            operator.cancel()
            with contextlib.suppress(BaseException):
                await operator

    # --- Kubernetes ------------------------------------------------------------------------------------

    async def create_rotation(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": API_VERSION,
            "kind": "SigningKeyRotation",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"secretName": name, **spec},
        }
        return await self.official.create(SIGNINGKEYROTATIONS.plural, NAMESPACE, body)

    async def rotation(self, name: str) -> dict[str, Any]:
        found = await self.official.get(SIGNINGKEYROTATIONS.plural, NAMESPACE, name)
        assert found is not None
        return found

    async def rotation_status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = (await self.rotation(name)).get("status") or {}
        return status

    async def wait_status(
        self, name: str, check: Callable[[dict[str, Any]], bool], within: float = WAIT_TIMEOUT
    ) -> dict[str, Any]:
        """Poll the object's status until ``check`` holds (bounded)."""
        status: dict[str, Any] = {}
        try:
            async with asyncio.timeout(within):
                while True:
                    status = await self.rotation_status(name)
                    if check(status):
                        break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"status of {name} never matched; last seen: {status}") from None
        return status

    async def annotate(self, name: str, annotations: dict[str, str | None]) -> None:
        await self.official.patch(
            SIGNINGKEYROTATIONS.plural, NAMESPACE, name, {"metadata": {"annotations": annotations}}
        )

    async def secret(self, name: str) -> dict[str, str]:
        found = await self.official.read_secret(NAMESPACE, name)
        assert found is not None
        return found

    async def events(self, name: str) -> list[dict[str, Any]]:
        items = await self.official.events(NAMESPACE)
        return [item for item in items if (item.get("involvedObject") or {}).get("name") == name]

    async def event_reasons(self, name: str) -> list[str]:
        return [str(event.get("reason")) for event in await self.events(name)]

    async def wait_event_reasons(self, name: str, *wanted: str, within: float = WAIT_TIMEOUT) -> list[str]:
        """Poll the object's Events until one of each ``wanted`` reason was posted (bounded). The operator
        posts an Event just after the status write it reports, on its own thread: a status seen here does
        not mean its Event is there yet."""
        reasons: list[str] = []
        try:
            async with asyncio.timeout(within):
                while True:
                    reasons = await self.event_reasons(name)
                    if set(wanted) <= set(reasons):
                        return reasons
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"no {wanted} Event about {name}; reasons seen: {reasons}") from None

    def allow_service_account(self, token: str, account: str, rooms: tuple[str, ...] = ("*",)) -> str:
        """A ServiceAccount bearer token that TokenReview accepts and RBAC lets mint for ``rooms``."""
        username = f"system:serviceaccount:{NAMESPACE}:{account}"
        self.kube.allow_tokens[token] = {
            "username": username,
            "uid": f"uid-{account}",
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{NAMESPACE}",
                "system:authenticated",
            ],
        }
        rule = AccessRule(
            verbs=("create",),
            api_groups=("video.openclaw.io",),
            resources=("videorooms/token",),
            namespaces=(NAMESPACE,),
            names=rooms,
            users=(username,),
        )
        self.kube.rbac_rules.append(rule)
        return username

    async def service_account_token(self, account: str, rooms: tuple[str, ...] = ("*",)) -> str:
        """A ServiceAccount of the namespace, a Role and RoleBinding that let it mint tokens for ``rooms``
        (``*``: any), and a token the API server issues for it (TokenRequest): real objects, so that
        TokenReview and SubjectAccessReview are answered by whichever API server the test runs on."""
        rule: dict[str, Any] = {
            "apiGroups": ["video.openclaw.io"],
            "resources": ["videorooms/token"],
            "verbs": ["create"],
        }
        if "*" not in rooms:
            rule["resourceNames"] = list(rooms)
        return await self.official.issue_service_account_token(NAMESPACE, account, rule)

    # --- rooms -----------------------------------------------------------------------------------------

    async def create_room(
        self, name: str, *, open_at_twilio: bool = True, room_status: str = "in-progress", **spec: Any
    ) -> str:
        """A VideoRoom whose status says ``room_status`` and, if asked, the in-progress room at the emulator
        (what the VideoRoom handlers would have done). Returns the room's UniqueName."""
        unique_name = f"{NAMESPACE}:{name}"
        body = {
            "apiVersion": API_VERSION,
            "kind": "VideoRoom",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
        await self.official.create(VIDEOROOMS.plural, NAMESPACE, body)
        status: dict[str, Any] = {"uniqueName": unique_name, "roomStatus": room_status}
        if open_at_twilio:
            status["sid"] = await self._open_emulator_room(unique_name)
        await self.official.patch_status(VIDEOROOMS.plural, NAMESPACE, name, status)
        return unique_name

    async def set_room_status(self, name: str, room_status: str) -> None:
        await self.official.patch_status(VIDEOROOMS.plural, NAMESPACE, name, {"roomStatus": room_status})

    async def _open_emulator_room(self, unique_name: str) -> str:
        creds = self.emulator.credentials
        form = {"UniqueName": unique_name, "Type": "group", "MaxParticipantDuration": "86400"}
        headers = _basic_auth(creds["api_key"], creds["api_secret"])
        async with self.http.post(f"{self.emulator.url}/v1/Rooms", data=form, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            sid: str = (await resp.json())["sid"]
            return sid

    async def join(
        self, unique_name: str, identity: str, token: str, *, stay: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """A participant joins with ``token`` (the emulator verifies it), then leaves unless ``stay``."""
        path = f"{self.emulator.url}/_emulator/rooms/{quote(unique_name, safe='')}/participants"
        async with self.http.post(path, json={"identity": identity, "token": token}) as resp:
            body: dict[str, Any] = await resp.json()
            status = resp.status
        if status == 201 and not stay:
            async with self.http.delete(f"{path}/{quote(body['sid'], safe='')}") as resp:
                assert resp.status == 204
        return status, body

    # --- Twilio ----------------------------------------------------------------------------------------

    async def twilio_keys(self) -> dict[str, str]:
        """Live API keys at the emulator (SID -> friendly name), listed through the Keys API."""
        creds = self.emulator.credentials
        url = f"{self.emulator.url}/2010-04-01/Accounts/{creds['account_sid']}/Keys.json?PageSize=1000"
        async with self.http.get(url, headers=_basic_auth(creds["account_sid"], creds["auth_token"])) as resp:
            assert resp.status == 200, await resp.text()
            return {key["sid"]: key["friendly_name"] for key in (await resp.json())["keys"]}

    async def faults(self, **settings: Any) -> None:
        async with self.http.post(f"{self.emulator.url}/_emulator/faults", json=settings) as resp:
            assert resp.status == 200, await resp.text()

    async def twilio_requests(self, operation: str) -> int:
        async with self.http.get(f"{self.emulator.url}/_emulator/requests") as resp:
            stats = await resp.json()
        return sum(int(count) for count in stats["operations"].get(operation, {}).values())

    # --- token service ---------------------------------------------------------------------------------

    async def request_token(
        self, body: Any, *, bearer: str | None = None, method: str = "POST", raw: bytes | None = None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.http.request(
            method, f"{self.operator_url}/v1/token", headers=headers, **kwargs
        ) as resp:
            return resp.status, dict(resp.headers), await resp.json()


def _basic_auth(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def running_operator(
    tmp_path: Path,
    *,
    limits: RateLimits | None = None,
    backoff: BackoffPolicy | None = None,
    start: bool = True,
    tick_seconds: float = TICK_SECONDS,
    backend: KubeBackend | None = None,
    settings_overrides: Mapping[str, Any] | None = None,
) -> AsyncIterator[Harness]:
    """A Kubernetes API (``backend``; by default a fresh embedded one with the CRDs of the current models),
    the emulator and, unless ``start`` is False (then call :meth:`Harness.start_operator`), the operator."""
    backend = backend or EmbeddedBackend(crds=build_crds())
    await backend.start(tmp_path / "kubeconfig")
    kubeconfig = backend.kubeconfig
    emulator = await start_emulator(host="127.0.0.1", port=0)
    client = KubeClient(connection_from_kubeconfig(kubeconfig))
    official = OfficialClient(kubeconfig)
    http = aiohttp.ClientSession()
    harness: Harness | None = None
    try:
        await backend.fresh_namespace(NAMESPACE)
        sock = _free_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        creds = emulator.credentials
        settings = load_settings(
            TWILIO_ACCOUNT_SID=creds["account_sid"],
            TWILIO_AUTH_TOKEN=creds["auth_token"],
            TWILIO_API_KEY=creds["api_key"],
            TWILIO_API_SECRET=creds["api_secret"],
            TWILIO_BASE_URL=creds["url"],
            PUBLIC_BASE_URL=url,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=0,
            WATCH_NAMESPACES="",
            LEADER_ELECTION_NAMESPACE=NAMESPACE,
            POD_NAME="rotation-operator",
            **{
                # Verified joins use Verify Services the tests create at run time.
                "TENANT_TWILIO_SERVICES": {
                    "*": {"messagingServices": ["*"], "studioFlows": ["*"], "verifyServices": ["*"]}
                },
                **dict(settings_overrides or {}),
            },
        )
        harness = Harness(
            backend=backend,
            emulator=emulator,
            client=client,
            official=official,
            http=http,
            clock=SharedClock(emulator, http),
            operator_url=url,
            settings=settings,
            kubeconfig=kubeconfig,
            limits=limits,
            backoff=backoff or BackoffPolicy(base=timedelta(seconds=30), cap=timedelta(minutes=10)),
            socket=sock,
            tick_seconds=tick_seconds,
        )
        if start:
            await harness.start_operator()
        yield harness
    finally:
        if harness is not None:
            await harness.stop_operator()
        await http.close()
        await client.close()
        official.close()
        await emulator.stop()
        await backend.stop()
