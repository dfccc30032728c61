"""A whole test bed on 127.0.0.1: the embedded Kubernetes API in this process, the Twilio emulator in this
process or in one of its own (the benchmark's choice: its answers then never wait for this process's event
loop), and an operator (the real one, or the naive baseline) in a process of its own.

The operator runs separately so that it can be measured (peak RSS, CPU seconds) and killed with SIGKILL.
The Kubernetes API runs here so that its request counters can be read directly; the requests this process
sends itself are tallied in a ledger and subtracted, so what remains is the operator's traffic.

Used by ``tests/bench/run.py`` and by the chaos suites in ``tests/chaos/``::

    async with Stack(tmp_path) as stack:
        operator = stack.new_operator()
        await operator.start()
        await stack.client.create(VIDEOROOMS, "bench", videoroom_manifest("bench", "r1"))
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import aiohttp
from procstat import ProcessSample, sample

from kube_backends import EmbeddedBackend, KubeBackend
from twilio_video_emulator.server import Emulator, start_emulator
from twilio_video_operator.kube import KubeClient, Resource
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_playground.kube import EmbeddedKubernetes
from twilio_video_playground.kube.emulator import request_verb

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"
NAIVE_OPERATOR = Path(__file__).resolve().with_name("naive_operator.py")
API_GROUP, API_VERSION = "video.openclaw.io", "v1alpha1"
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
OPERATOR_START_TIMEOUT = 60.0
OPERATOR_STOP_TIMEOUT = 15.0

Flavor = Literal["operator", "naive"]
Key = tuple[str, str]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request_key(method: str, resource: Resource, name: str | None, subresource: str | None) -> Key:
    """The ``(verb, resource)`` key the embedded API counts a request under."""
    plural = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    return request_verb(method, name, {}), plural + (f"/{subresource}" if subresource else "")


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], *, within: float, interval: float = 0.2
) -> bool:
    """Poll ``predicate`` until it holds (True) or ``within`` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


class LedgerClient:
    """The Kubernetes calls this process makes, counted like the embedded API counts them."""

    def __init__(self, client: KubeClient) -> None:
        self.raw = client
        self.ledger: Counter[Key] = Counter()

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        self.ledger[request_key("POST", resource, None, None)] += 1
        return await self.raw.create(resource, namespace, body)

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        self.ledger[request_key("PATCH", resource, name, subresource)] += 1
        return await self.raw.patch(resource, namespace, name, patch, subresource=subresource)

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        self.ledger[request_key("DELETE", resource, name, None)] += 1
        return await self.raw.delete(resource, namespace, name)

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.ledger[request_key("GET", resource, name, None)] += 1
        return await self.raw.get(resource, namespace, name)


class EmulatorControl:
    """The emulator's control API (``/_emulator/``): faults, request counters, clock, participants."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self._http().request(method, f"{self.url}/_emulator/{path}", json=body) as answer:
            text = await answer.text()
            return answer.status, (await answer.json(content_type=None)) if text else None

    async def set_faults(self, **settings: float | int) -> dict[str, Any]:
        status, body = await self.call("POST", "faults", settings)
        if status != 200:
            raise RuntimeError(f"the emulator refused the faults {settings}: {status} {body}")
        return dict(body)

    async def clear_faults(self) -> None:
        await self.set_faults()

    async def requests(self) -> dict[str, dict[str, int]]:
        """Twilio API requests served so far: ``{operationId: {status: count}}``."""
        _, body = await self.call("GET", "requests")
        return {op: dict(statuses) for op, statuses in body["operations"].items()}

    async def reset_requests(self) -> None:
        await self.call("DELETE", "requests")

    async def advance_clock(self, seconds: float) -> None:
        await self.call("POST", "clock/advance", {"seconds": seconds})

    async def callbacks(self, wait: float | None = None) -> list[dict[str, Any]]:
        path = "callbacks" if wait is None else f"callbacks?wait={wait}"
        _, body = await self.call("GET", path)
        return list(body["deliveries"])

    async def join(
        self, room: str, identity: str, token: str, tracks: list[dict[str, str]] | None = None
    ) -> tuple[int, Any]:
        body: dict[str, Any] = {"identity": identity, "token": token}
        if tracks is not None:
            body["tracks"] = tracks
        return await self.call("POST", f"rooms/{room}/participants", body)


def count_requests(operations: Mapping[str, Mapping[str, int]], *, status_prefix: str = "") -> Counter[str]:
    """Requests by operationId, keeping only statuses that start with ``status_prefix``."""
    counts: Counter[str] = Counter()
    for operation, statuses in operations.items():
        for status, count in statuses.items():
            if str(status).startswith(status_prefix):
                counts[operation] += count
    return counts


@dataclass
class OperatorProcess:
    """An operator command running in its own process, logging to ``log_path``."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    http_url: str
    flavor: Flavor
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the operator is not started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def start(self, *, within: float = OPERATOR_START_TIMEOUT) -> None:
        """Start the process (appending to its log) and wait until ``/healthz`` answers 200."""
        if self.running:
            raise RuntimeError("the operator is already running")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )
        self.starts += 1
        if not await wait_until(self.healthy, within=within, interval=0.1):
            tail = self.log_tail()
            self.kill()
            raise RuntimeError(
                f"the {self.flavor} process did not become healthy within {within:.0f}s:\n{tail}"
            )

    async def healthy(self) -> bool:
        if not self.running:
            raise RuntimeError(f"the {self.flavor} process exited early:\n{self.log_tail()}")
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
                session.get(f"{self.http_url}/healthz") as answer,
            ):
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as in a node failure or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=OPERATOR_STOP_TIMEOUT)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within the stop timeout."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.process.wait, OPERATOR_STOP_TIMEOUT)
        self.kill()

    def sample(self) -> ProcessSample:
        return sample(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class KubeSnapshot:
    served: Counter[Key]
    own: Counter[Key]


@dataclass
class EmulatorProcess:
    """The Twilio emulator in a process of its own (``python -m twilio_video_emulator``), the way
    Twilio is a service of its own: its answers do not wait for this process's event loop."""

    process: asyncio.subprocess.Process
    credentials: dict[str, str]

    @classmethod
    async def start(cls, log_path: Path, *, within: float = OPERATOR_START_TIMEOUT) -> EmulatorProcess:
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "twilio_video_emulator",
                "--host",
                "127.0.0.1",
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=within)
            credentials = {key: str(value) for key, value in json.loads(line).items()}
        except (TimeoutError, ValueError) as exc:
            process.kill()
            await process.wait()
            raise RuntimeError(f"the emulator did not start; see {log_path}") from exc
        return cls(process, credentials)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=OPERATOR_STOP_TIMEOUT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class Stack:
    """A Kubernetes API and the Twilio emulator; operators are added with :meth:`new_operator`.

    The Kubernetes API is ``backend`` (``tests/kube_backends.py``): by default a fresh embedded one in this
    process, or the real kube-apiserver. The emulator runs in this process (its state can be inspected:
    :attr:`emulator`) or, with ``separate_emulator``, in a process of its own (:attr:`emulator_process`;
    only its HTTP APIs are reachable).
    """

    work_dir: Path
    namespaces: Sequence[str] = ("default",)
    crd_dir: Path = CRD_DIR
    separate_emulator: bool = False
    backend: KubeBackend | None = None
    emulator: Emulator = field(init=False)
    emulator_process: EmulatorProcess | None = field(init=False, default=None)
    client: LedgerClient = field(init=False)
    control: EmulatorControl = field(init=False)
    credentials: dict[str, str] = field(init=False, default_factory=dict)
    kubeconfig: Path = field(init=False)
    operators: list[OperatorProcess] = field(init=False, default_factory=list)
    seen_secrets: set[str] = field(init=False, default_factory=set)
    _started: list[str] = field(init=False, default_factory=list)

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.backend is None:
            self.backend = EmbeddedBackend(crd_dir=self.crd_dir)
        await self.backend.start(self.work_dir / "kubeconfig", namespace=self.namespaces[0])
        self._started.append("kube")
        self.kubeconfig = self.backend.kubeconfig
        self.client = LedgerClient(KubeClient(connection_from_kubeconfig(self.kubeconfig)))
        self._started.append("client")
        for namespace in self.namespaces:
            await self.backend.fresh_namespace(namespace)
        if self.separate_emulator:
            self.emulator_process = await EmulatorProcess.start(self.work_dir / "emulator.log")
            self._started.append("emulator")
            self.credentials = dict(self.emulator_process.credentials)
        else:
            self.emulator = await start_emulator(host="127.0.0.1", port=0, state_file=None)
            self._started.append("emulator")
            self.credentials = {key: str(value) for key, value in self.emulator.credentials.items()}
        self.control = EmulatorControl(self.credentials["url"])
        self.harvest_secrets()

    @property
    def kube_backend(self) -> KubeBackend:
        if self.backend is None:
            raise RuntimeError("the stack is not started")
        return self.backend

    @property
    def kube(self) -> EmbeddedKubernetes:
        """The embedded API itself (its configured grants); not there on the real backend."""
        return self.kube_backend.embedded

    async def stop(self) -> None:
        for operator in self.operators:
            await operator.stop()
        if "emulator" in self._started:
            self.harvest_secrets()
            await self.control.close()
            if self.emulator_process is not None:
                await self.emulator_process.stop()
            else:
                await self.emulator.stop()
        if "client" in self._started:
            await self.client.raw.close()
        if "kube" in self._started:
            await self.kube_backend.stop()
        self._started.clear()

    # --- operators ------------------------------------------------------------------------------------------

    def operator_env(self, http_port: int, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment of an operator process: credentials of the emulator, kubeconfig, HTTP port."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TWILIO_", "VIDEO_", "KUBECONFIG", "PUBLIC_BASE_URL", "HTTP_"))
        }
        env = {
            **inherited,
            "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": str(self.kube_backend.operator_kubeconfig),
            "TWILIO_ACCOUNT_SID": self.credentials["account_sid"],
            "TWILIO_AUTH_TOKEN": self.credentials["auth_token"],
            "TWILIO_API_KEY": self.credentials["api_key"],
            "TWILIO_API_SECRET": self.credentials["api_secret"],
            "TWILIO_BASE_URL": self.credentials["url"],
            "SENDGRID_BASE_URL": self.credentials["url"],
            # The chaos runs send through services they create at the emulator at run time.
            "TENANT_TWILIO_SERVICES": json.dumps(
                {"*": {"messagingServices": ["*"], "studioFlows": ["*"], "verifyServices": ["*"]}}
            ),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(http_port),
            "LOG_LEVEL": "INFO",
        }
        env.update(overrides or {})
        return env

    def new_operator(
        self, flavor: Flavor = "operator", *, env: Mapping[str, str] | None = None, name: str | None = None
    ) -> OperatorProcess:
        """An operator process, not started yet (``await operator.start()``)."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if flavor == "operator":
            argv = [sys.executable, "-m", "twilio_video_operator", "run"]
        else:
            argv = [
                sys.executable,
                "-m",
                "kopf",
                "run",
                "--standalone",
                "--all-namespaces",
                f"--liveness={url}/healthz",
                str(NAIVE_OPERATOR),
            ]
        log_path = self.work_dir / f"{name or flavor}-{len(self.operators)}.log"
        # One name per process slot, kept across restarts, as a container restarted in its pod keeps the
        # pod's name: a restarted leader takes its Lease back at once instead of waiting for it to expire.
        identity = {"POD_NAME": f"{name or flavor}-{len(self.operators)}"}
        operator = OperatorProcess(
            argv, self.operator_env(port, {**identity, **(env or {})}), log_path, url, flavor
        )
        self.operators.append(operator)
        return operator

    # --- reading state directly (no API request, so nothing to subtract) ------------------------------------

    def object(
        self, plural: str, namespace: str | None, name: str, api_version: str = ""
    ) -> dict[str, Any] | None:
        return self.kube_backend.object(api_version or f"{API_GROUP}/{API_VERSION}", plural, namespace, name)

    def objects(self, plural: str, api_version: str = "") -> list[dict[str, Any]]:
        """The objects of the kind in this stack's world: the whole embedded API, or the stack's namespaces
        of the shared real one."""
        return self.kube_backend.objects(api_version or f"{API_GROUP}/{API_VERSION}", plural, self.namespaces)

    async def objects_by_name(self, plural: str, namespace: str) -> dict[str, dict[str, Any]]:
        """The objects of one namespace by name, in one read (on the real API a list from its watch cache,
        off the event loop), for polling many objects."""
        backend = self.kube_backend
        api_version = f"{API_GROUP}/{API_VERSION}"
        if isinstance(backend, EmbeddedBackend):  # the stored objects, read in place
            found = backend.objects(api_version, plural, [namespace], cached=True)
        else:
            found = await asyncio.to_thread(backend.objects, api_version, plural, [namespace], cached=True)
        return {
            obj["metadata"]["name"]: obj for obj in found if obj["metadata"].get("namespace") == namespace
        }

    def kube_snapshot(self) -> KubeSnapshot:
        return KubeSnapshot(self.kube_backend.served_requests(), Counter(self.client.ledger))

    def operator_requests_since(self, snapshot: KubeSnapshot) -> Counter[Key]:
        """Kubernetes API requests served since ``snapshot``, minus the ones this process sent (where the
        backend's counts include them)."""
        served = self.kube_backend.served_requests()
        served.subtract(snapshot.served)
        if self.kube_backend.counts_own_requests:
            own = Counter(self.client.ledger)
            own.subtract(snapshot.own)
            served.subtract(own)
        return Counter({key: count for key, count in served.items() if count > 0})

    # --- secrets that must never leak ----------------------------------------------------------------------

    def harvest_secrets(self) -> set[str]:
        """Every secret value seen so far: the account's Auth Token, every API key secret the emulator has
        issued (keys deleted later included, as long as they were seen here once), and the values held in
        Secrets of the Kubernetes API. Call it now and then during a test; :meth:`stop` calls it last. A
        separate emulator's state cannot be read: its Auth Token and standard key are what is known."""
        if self.emulator_process is not None:
            found = {self.credentials["auth_token"], self.credentials["api_secret"]}
        else:
            state = self.emulator.state
            found = {state.auth_token, *(key.secret for key in state.keys.values())}
        for secret in self.objects("secrets", "v1"):
            found.update(_secret_values(secret))
        self.seen_secrets.update(value for value in found if value and len(value) >= 8)
        return set(self.seen_secrets)


SECRET_KEY_WORDS = ("SECRET", "TOKEN", "PASSWORD")


def _secret_values(secret: Mapping[str, Any]) -> Iterable[str]:
    """Values of a Secret's entries whose key names a secret (``TWILIO_API_SECRET``...), not SIDs."""
    for key, value in (secret.get("data") or {}).items():
        if any(word in key.upper() for word in SECRET_KEY_WORDS):
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                yield base64.b64decode(str(value), validate=True).decode()
    for key, value in (secret.get("stringData") or {}).items():
        if any(word in key.upper() for word in SECRET_KEY_WORDS):
            yield str(value)
