"""The local playground: a Kubernetes API, the Twilio emulator and the operator, all on 127.0.0.1.

The Kubernetes API is the embedded one (``kube="embedded"``, the default, which needs nothing but Python),
or a real kube-apiserver with etcd (``kube="real"``, ``dev --kube real``, see
:mod:`~twilio_video_playground.real_kube`) with the project's CRDs installed; everything else is the
same, state files included.

Into the state directory it writes, each file only once that part is ready (write, then rename):

- ``kubeconfig``: for kubectl and the operator, against the embedded Kubernetes API;
- ``emulator.json``: ``{"url", "account_sid", "auth_token", "api_key", "api_secret"}`` of the emulator;
- ``operator.json``: ``{"url", "replicas"}``: ``url`` serves tokens and callbacks (also the operator's
  ``PUBLIC_BASE_URL``); ``replicas`` lists ``{"url", "pid"}`` of each operator replica.

With ``replicas`` above 1 (``dev --replicas N``) the operator runs as N processes of its own
(:mod:`~twilio_video_playground.replicas`) that elect a leader through a Lease, behind a balancer that
plays the Service (:mod:`~twilio_video_playground.balancer`); ``url`` is the balancer's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import yaml

from twilio_video_emulator.server import Emulator, start_emulator
from twilio_video_operator.crdgen import build_crds
from twilio_video_operator.kube import KubeApiError, KubeClient, Resource
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_operator.logs import register_secret, setup_logging
from twilio_video_operator.runner import run_operator
from twilio_video_operator.settings import Settings, SettingsError, load_settings
from twilio_video_playground.balancer import Balancer
from twilio_video_playground.checkout import REPOSITORY
from twilio_video_playground.kube import EmbeddedKubernetes
from twilio_video_playground.kube.server import load_crd_manifests
from twilio_video_playground.real_kube import RealKubeApiServer, RealKubeUnavailable, locate_binary
from twilio_video_playground.replicas import ReplicaSet

logger = logging.getLogger(__name__)

KUBECONFIG_FILE = "kubeconfig"
EMULATOR_FILE = "emulator.json"
OPERATOR_FILE = "operator.json"
OPERATOR_START_TIMEOUT = 30.0
OPERATOR_STOP_TIMEOUT = 15.0
NAMESPACES = Resource(group="", version="v1", plural="namespaces", namespaced=False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
KUBE_BACKENDS = ("embedded", "real")
# The playground's own writes (apply, the demo's moderator) name this field manager, not the operator's.
PLAYGROUND_USER_AGENT = "twilio-video-playground"
#: The services of the emulator's account the playground's own namespace may use (the demo and the
#: examples send through services they create there at run time); any other namespace gets the operator's
#: secure default, nothing. TENANT_TWILIO_SERVICES in the environment replaces it.
PLAYGROUND_TENANT_SERVICES: dict[str, dict[str, list[str]]] = {
    "default": {"messagingServices": ["*"], "studioFlows": ["*"], "verifyServices": ["*"]}
}
CRD_ESTABLISH_TIMEOUT = 60.0


def default_crd_dir() -> Path | None:
    """The repository's ``crds/``, if the checkout has them (otherwise the playground generates the CRDs
    from the models)."""
    candidate = REPOSITORY / "crds"
    return candidate if any(candidate.glob("*.yaml")) else None


def _established(crd: dict[str, Any] | None) -> bool:
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that readers see either no file or the whole file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o600)
    os.replace(temporary, path)


@dataclass(frozen=True)
class AppliedObject:
    """One object applied from a manifest."""

    resource: Resource
    kind: str
    namespace: str | None
    name: str
    action: str  # "created" or "updated"

    @property
    def display(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


class ManifestError(Exception):
    """A manifest cannot be applied (unknown kind, missing name, rejected by the API)."""


def load_manifests(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every object in the ``*.yaml`` files directly in ``directory`` (multi-document; ``List`` unpacked)."""
    if not directory.is_dir():
        raise ManifestError(f"{directory} is not a directory")
    found = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as exc:
            raise ManifestError(f"{path.name}: not valid YAML: {exc}") from None
        for document in documents:
            if not document:
                continue
            if not isinstance(document, dict):
                raise ManifestError(f"{path.name}: a document is not a mapping")
            items = (document.get("items") or []) if document.get("kind") == "List" else [document]
            found += [(path, item) for item in items]
    return found


class ManifestApplier:
    """Create-or-update of manifests through the Kubernetes API (what ``kubectl apply`` does, minus the
    three-way merge: an existing object gets the manifest merge-patched onto it)."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._discovery: dict[str, list[dict[str, Any]]] = {}

    async def resource_for(self, api_version: str, kind: str) -> Resource:
        if api_version not in self._discovery:
            path = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                found = await self._client.request("GET", path)
            except KubeApiError as exc:
                raise ManifestError(f"API version {api_version} is not served: {exc}") from None
            self._discovery[api_version] = list(found.get("resources") or [])
        for entry in self._discovery[api_version]:
            if entry.get("kind") == kind and "/" not in str(entry.get("name", "")):
                group, _, version = api_version.rpartition("/")
                return Resource(group, version, str(entry["name"]), bool(entry.get("namespaced", True)))
        raise ManifestError(f"kind {kind} is not served in {api_version}")

    async def apply(self, manifest: dict[str, Any], *, default_namespace: str = "default") -> AppliedObject:
        kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
        metadata = manifest.get("metadata") or {}
        name = metadata.get("name")
        if not kind or not api_version or not name:
            raise ManifestError("a manifest needs apiVersion, kind and metadata.name")
        resource = await self.resource_for(str(api_version), str(kind))
        namespace = (metadata.get("namespace") or default_namespace) if resource.namespaced else None
        body = {key: value for key, value in manifest.items() if key != "status"}
        body["metadata"] = {**metadata, **({"namespace": namespace} if namespace else {})}
        try:
            await self._client.create(resource, namespace, body)
            action = "created"
        except KubeApiError as exc:
            if not exc.conflict:
                raise ManifestError(f"{kind} {name}: {exc}") from None
            body["metadata"] = {
                key: value for key, value in body["metadata"].items() if key != "resourceVersion"
            }
            try:
                await self._client.patch(resource, namespace, str(name), body)
            except KubeApiError as patch_error:
                raise ManifestError(f"{kind} {name}: {patch_error}") from None
            action = "updated"
        return AppliedObject(resource, str(kind), namespace, str(name), action)

    async def apply_directory(self, directory: Path) -> list[AppliedObject]:
        applied = []
        for path, manifest in await asyncio.to_thread(load_manifests, directory):
            try:
                applied.append(await self.apply(manifest))
            except ManifestError as exc:
                raise ManifestError(f"{path.name}: {exc}") from None
        return applied


def _bind_http_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def tenant_services() -> dict[str, Any]:
    """The playground's ``TENANT_TWILIO_SERVICES`` setting, unless the environment sets its own (which the
    operator then reads, and refuses with one line when malformed)."""
    if "TENANT_TWILIO_SERVICES" in os.environ:
        return {}
    return {"TENANT_TWILIO_SERVICES": PLAYGROUND_TENANT_SERVICES}


class Playground:
    """Starts the embedded Kubernetes API, the Twilio emulator and the operator, in that order, and stops
    them in reverse order. Use as ``async with Playground(state_dir) as playground: ...``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        crd_dir: Path | None = None,
        http_port: int = 0,
        registry: kopf.OperatorRegistry | None = None,
        replicas: int = 1,
        kube: str = "embedded",
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        if kube not in KUBE_BACKENDS:
            raise ValueError(f"kube must be one of {', '.join(KUBE_BACKENDS)}")
        self.kube_backend = kube
        if replicas > 1 and registry is not None:
            raise ValueError("replica processes run the operator's own handlers; no registry can be given")
        self.replica_count = replicas
        self.replica_set: ReplicaSet | None = None
        self.balancer: Balancer | None = None
        self.state_dir = state_dir
        self.registry = registry  # None: the operator's handlers
        self.crd_dir = crd_dir if crd_dir is not None else default_crd_dir()
        self.http_port = http_port
        self.kubeconfig_path = state_dir / KUBECONFIG_FILE
        self.emulator_path = state_dir / EMULATOR_FILE
        self.operator_path = state_dir / OPERATOR_FILE
        self.operator_url: str | None = None
        self.credentials: dict[str, str] = {}
        self._kube: EmbeddedKubernetes | None = None
        self._real_kube: RealKubeApiServer | None = None
        self._emulator: Emulator | None = None
        self._client: KubeClient | None = None
        self._stop_operator = asyncio.Event()
        self._operator_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Playground:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def client(self) -> KubeClient:
        """A Kubernetes API client logged in with the playground's kubeconfig."""
        if self._client is None:
            raise RuntimeError("the playground is not started")
        return self._client

    @property
    def kube(self) -> EmbeddedKubernetes:
        """The embedded Kubernetes API, e.g. to accept bearer tokens (``kube.allow_tokens``) and grant
        access (``kube.rbac_rules``) for TokenReview and SubjectAccessReview."""
        if self._kube is None:
            raise RuntimeError(f"the playground runs no embedded Kubernetes API (kube={self.kube_backend})")
        return self._kube

    @property
    def operator_task(self) -> asyncio.Task[None]:
        if self._operator_task is None:
            raise RuntimeError("the playground is not started")
        return self._operator_task

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._remove_state_files()
        await self._start_kube()
        await self._start_emulator()
        await self._start_operator()

    async def _start_kube(self) -> None:
        if self.kube_backend == "real":
            await self._start_real_kube()
            return
        self._kube = EmbeddedKubernetes(self.crd_dir)
        if self.crd_dir is None:  # an installed package without the repository: generate the CRDs
            for crd in build_crds():
                self._kube.register_crd(crd)
        await self._kube.start(host="127.0.0.1", port=0)
        staging = self.state_dir / f".{KUBECONFIG_FILE}.staging"
        self._kube.write_kubeconfig(staging, namespace="default")
        self._client = KubeClient(connection_from_kubeconfig(staging), user_agent=PLAYGROUND_USER_AGENT)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
        try:
            await self._client.create(NAMESPACES, None, namespace)
        except KubeApiError as exc:
            if not exc.conflict:
                raise
        staging.chmod(0o600)
        os.replace(staging, self.kubeconfig_path)
        logger.info("embedded Kubernetes API is ready", extra={"url": str(self._kube.url)})

    async def _start_real_kube(self) -> None:
        """kube-apiserver and etcd, then the CRDs, Established; the kubeconfig is the admin's."""
        staging = self.state_dir / f".{KUBECONFIG_FILE}.staging"
        self._real_kube = RealKubeApiServer(locate_binary(), staging, self.state_dir / "kube-apiserver.log")
        await self._real_kube.start()
        self._client = KubeClient(connection_from_kubeconfig(staging), user_agent=PLAYGROUND_USER_AGENT)
        crds = load_crd_manifests(self.crd_dir) if self.crd_dir is not None else build_crds()
        for crd in crds:
            await self._client.create(CRDS, None, crd)
        async with asyncio.timeout(CRD_ESTABLISH_TIMEOUT):
            for crd in crds:
                await self._wait_established(crd["metadata"]["name"])
        staging.chmod(0o600)
        os.replace(staging, self.kubeconfig_path)
        logger.info("kube-apiserver is ready", extra={"url": str(self._real_kube.url)})

    async def _wait_established(self, name: str) -> None:
        """Poll the CRD until the server serves its kind (a fresh server needs well under a second)."""
        while True:
            if _established(await self.client.get(CRDS, None, name)):
                return
            await asyncio.sleep(0.1)

    async def _start_emulator(self) -> None:
        self._emulator = await start_emulator(host="127.0.0.1", port=0, state_file=None)
        self.credentials = dict(self._emulator.credentials)
        for key in ("auth_token", "api_secret", "sendgrid_api_key"):
            register_secret(self.credentials.get(key))
        write_atomically(self.emulator_path, json.dumps(self.credentials, indent=2) + "\n")
        logger.info("Twilio emulator is ready", extra={"url": self.credentials.get("url")})

    def operator_settings(self, public_base_url: str, port: int) -> Settings:
        """Operator settings pointing at the emulator; other settings still come from the environment."""
        return load_settings(
            TWILIO_ACCOUNT_SID=self.credentials["account_sid"],
            TWILIO_AUTH_TOKEN=self.credentials["auth_token"],
            TWILIO_API_KEY=self.credentials["api_key"],
            TWILIO_API_SECRET=self.credentials["api_secret"],
            TWILIO_BASE_URL=self.credentials["url"],
            SENDGRID_BASE_URL=self.credentials["url"],
            PUBLIC_BASE_URL=public_base_url,
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=port,
            **tenant_services(),
        )

    async def _start_replicas(self) -> None:
        """N operator processes behind a balancer whose URL is the operator's PUBLIC_BASE_URL."""
        self.balancer = Balancer(lambda: self.replica_set.urls() if self.replica_set else [])
        url = await self.balancer.start(self.http_port)
        environment = {
            "TWILIO_ACCOUNT_SID": self.credentials["account_sid"],
            "TWILIO_AUTH_TOKEN": self.credentials["auth_token"],
            "TWILIO_API_KEY": self.credentials["api_key"],
            "TWILIO_API_SECRET": self.credentials["api_secret"],
            "TWILIO_BASE_URL": self.credentials["url"],
            "SENDGRID_BASE_URL": self.credentials["url"],
            **{name: json.dumps(value) for name, value in tenant_services().items()},
            "PUBLIC_BASE_URL": url,
            "KUBECONFIG": str(self.kubeconfig_path.resolve()),
            "SHUTDOWN_DRAIN_SECONDS": "1",
        }
        self.replica_set = ReplicaSet(self.replica_count, environment, self.state_dir)
        await self.replica_set.start_all()
        await self.balancer.probe()
        self._operator_task = asyncio.create_task(self._until_stopped(), name="operator replicas")
        self.operator_url = url
        self.write_operator_file()
        logger.info("operator replicas are ready", extra={"url": url, "replicas": self.replica_count})

    async def _until_stopped(self) -> None:
        await self._stop_operator.wait()

    def write_operator_file(self) -> None:
        """``operator.json`` as things are now (the replica set rewrites it when a replica restarts)."""
        replicas: list[dict[str, object]] = [{"url": self.operator_url, "pid": os.getpid()}]
        if self.replica_set is not None:
            replicas = self.replica_set.describe()
        write_atomically(
            self.operator_path, json.dumps({"url": self.operator_url, "replicas": replicas}) + "\n"
        )

    async def _start_operator(self) -> None:
        if self.replica_count > 1:
            await self._start_replicas()
            return
        # Bind first: the operator's URL is also the PUBLIC_BASE_URL the emulator calls back.
        sock = _bind_http_socket(self.http_port)
        port = int(sock.getsockname()[1])
        url = f"http://127.0.0.1:{port}"
        try:
            settings = self.operator_settings(url, port)
        except SettingsError:
            sock.close()
            raise
        ready = asyncio.Event()
        self._operator_task = asyncio.create_task(
            run_operator(
                settings,
                kubeconfig=self.kubeconfig_path,
                stop_flag=self._stop_operator,
                ready_flag=ready,
                registry=self.registry,
                http_socket=sock,
            ),
            name="operator",
        )
        ready_wait = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {ready_wait, self._operator_task},
            timeout=OPERATOR_START_TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        ready_wait.cancel()
        if self._operator_task in done:
            self._operator_task.result()  # raises what the operator failed with
            raise RuntimeError("the operator exited during startup")
        if ready_wait not in done:
            raise RuntimeError(f"the operator did not start within {OPERATOR_START_TIMEOUT:.0f}s")
        self.operator_url = url
        self.write_operator_file()
        logger.info("operator is ready", extra={"url": url})

    async def apply(self, directory: Path) -> list[AppliedObject]:
        """Create or update every object of the ``*.yaml`` manifests directly in ``directory``."""
        return await ManifestApplier(self.client).apply_directory(directory)

    async def stop(self) -> None:
        """Stop the operator, the emulator and the Kubernetes API, removing each one's file first."""
        self.operator_path.unlink(missing_ok=True)
        if self.replica_set is not None:
            await self.replica_set.stop_all()
            self.replica_set = None
        if self.balancer is not None:
            await self.balancer.stop()
            self.balancer = None
        task = self._operator_task
        if task is not None:
            self._stop_operator.set()
            done, _ = await asyncio.wait({task}, timeout=OPERATOR_STOP_TIMEOUT)
            if not done:
                logger.warning("the operator did not stop in time; cancelling it")
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                logger.error("the operator failed", exc_info=task.exception())
        self.emulator_path.unlink(missing_ok=True)
        if self._emulator is not None:
            await self._emulator.stop()
            self._emulator = None
        self.kubeconfig_path.unlink(missing_ok=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._kube is not None:
            await self._kube.stop()
            self._kube = None
        if self._real_kube is not None:
            await self._real_kube.stop()
            self._real_kube = None

    def _remove_state_files(self) -> None:
        for path in (self.operator_path, self.emulator_path, self.kubeconfig_path):
            path.unlink(missing_ok=True)

    def usage(self) -> str:
        """How to reach the playground from a shell."""
        kubectl = Path(sys.executable).parent / "kubectl"
        kubectl_command = str(kubectl) if kubectl.exists() else "kubectl"
        kubeconfig = self.kubeconfig_path.resolve()
        return "\n".join(
            [
                "The playground is running. In another shell:",
                f"  export KUBECONFIG={kubeconfig}",
                f"  {kubectl_command} get twilio -A",
                f"  {kubectl_command} apply -f examples/",
                f"Twilio emulator: {self.credentials.get('url')}",
                f"  credentials: {self.emulator_path.resolve()}",
                f"Operator HTTP server: {self.operator_url} (/healthz, /metrics)",
                "Press Ctrl+C to stop.",
            ]
        )


async def run_playground(
    *,
    state_dir: Path,
    apply_dir: Path | None = None,
    http_port: int = 0,
    crd_dir: Path | None = None,
    replicas: int = 1,
    kube: str = "embedded",
) -> int:
    """``twilio-video-operator dev``: run the playground until SIGINT/SIGTERM; the process exit code."""
    setup_logging(os.environ.get("LOG_LEVEL", "INFO"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with Playground(
            state_dir, crd_dir=crd_dir, http_port=http_port, replicas=replicas, kube=kube
        ) as playground:
            if apply_dir is not None:
                for applied in await playground.apply(apply_dir):
                    print(f"{applied.display} {applied.action}", flush=True)
            print(playground.usage(), flush=True)
            # kopf replaces the signal handlers while it runs and stops on the same signals:
            # either way, the playground ends when the operator does.
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({stopper, playground.operator_task}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)  # a second Ctrl+C during shutdown is harmless
            task = playground.operator_task
            crashed = task.done() and not task.cancelled() and task.exception() is not None
            print("Stopping the playground.", flush=True)
    except (SettingsError, RealKubeUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 2
    except ManifestError as exc:
        print(f"cannot apply manifests: {exc}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, KubeApiError) as exc:
        print(f"the playground failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 1 if crashed else 0
