"""The Kubernetes API under an end-to-end test bed: the embedded API or the real kube-apiserver.

The test beds (``tests/integration/operator_harness.py``, ``tests/integration/rotation_harness.py``,
``tests/bench/operator_stack.py``) take a :class:`KubeBackend` and run the same scenarios on either:

- :class:`EmbeddedBackend`: a fresh embedded API (``twilio_video_playground.kube``) per test bed, in the
  test's process, with the project's CRDs registered.
- :class:`RealBackend`: the real kube-apiserver and etcd of ``tests/real_kube.py``, shared by the whole
  session, with ``crds/*.yaml`` applied once. A shared server keeps what a test leaves behind, and it runs no
  controllers (no namespace deletion, no garbage collection), so the backend gives each test bed a clean
  slate: no object of the operator's kinds anywhere when it starts and when it stops, and each namespace the
  bed asks for by name (:meth:`KubeBackend.fresh_namespace`) emptied of Secrets, ConfigMaps, Events,
  Leases, ServiceAccounts, Roles and RoleBindings. Test beds make namespaces of unique names or ask for them
  fresh; none deletes one.

Tests choose with the ``kube_backend`` fixture and the ``both_backends`` marker (``tests/backend_plugin.py``).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from real_api import RealApi
from real_kube import RealKube
from twilio_video_playground.kube import EmbeddedKubernetes
from twilio_video_playground.kube.selectors import Selection

REPO_ROOT = Path(__file__).resolve().parents[1]
CRD_DIR = REPO_ROOT / "crds"
BACKENDS = ("embedded", "real")
RequestKey = tuple[str, str]
"""``(verb, resource)``, counted as the embedded API counts: ``("patch", "videorooms.video.openclaw.io")``."""
GROUP_VERSION = "video.openclaw.io/v1alpha1"
CUSTOM_PLURALS = ("videorooms", "compositions", "signingkeyrotations")


class KubeBackend(ABC):
    """One Kubernetes API for one test bed, between :meth:`start` and :meth:`stop`."""

    name: str
    kubeconfig: Path
    counts_own_requests = True
    """Whether :meth:`served_requests` includes the test bed's own requests (which it then subtracts)."""

    @property
    def operator_kubeconfig(self) -> Path:
        """The kubeconfig operator processes connect with (the admin's unless a backend says otherwise)."""
        return self.kubeconfig

    def served_requests(self) -> Counter[RequestKey]:
        """Requests served so far, by ``(verb, resource)``."""
        raise TypeError(f"the {self.name} backend does not count the requests it serves")

    @abstractmethod
    async def start(self, kubeconfig: Path, namespace: str = "default") -> None:
        """Serve (or connect), and write an admin kubeconfig whose context namespace is ``namespace``."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def fresh_namespace(self, name: str) -> None:
        """Namespace ``name`` exists and holds nothing a previous test left."""

    @abstractmethod
    def object(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object as the API serves it now, or None."""

    @abstractmethod
    def objects(
        self, api_version: str, plural: str, namespaces: Sequence[str], *, cached: bool = False
    ) -> list[dict[str, Any]]:
        """Every object of the kind (cluster-scoped kinds: pass no namespaces) in the test bed's namespaces:
        all of them on a fresh embedded API, those of ``namespaces`` on the shared real one. ``cached``
        lets the real server answer from its watch cache (``resourceVersion=0``: cheaper, milliseconds
        behind) and the embedded one hand out its stored objects uncopied (read them, never change them),
        for polling many objects."""

    @property
    def embedded(self) -> EmbeddedKubernetes:
        """The embedded API itself, for tests of what only it offers (its request log, configured grants)."""
        raise TypeError(f"this test needs the embedded API, not the {self.name} backend")


class EmbeddedBackend(KubeBackend):
    """A fresh embedded API per test bed, with ``crds/*.yaml`` (or the CRDs given) registered."""

    name = "embedded"

    def __init__(self, crds: Sequence[dict[str, Any]] | None = None, *, crd_dir: Path = CRD_DIR) -> None:
        self.kube = EmbeddedKubernetes(None if crds is not None else crd_dir)
        for crd in crds or ():
            self.kube.register_crd(crd)

    @property
    def embedded(self) -> EmbeddedKubernetes:
        return self.kube

    def served_requests(self) -> Counter[RequestKey]:
        return Counter(self.kube.request_counts)

    async def start(self, kubeconfig: Path, namespace: str = "default") -> None:
        await self.kube.start(host="127.0.0.1", port=0)
        self.kubeconfig = self.kube.write_kubeconfig(kubeconfig, namespace=namespace)

    async def stop(self) -> None:
        await self.kube.stop()

    async def fresh_namespace(self, name: str) -> None:
        """Created unless it exists (a fresh embedded API holds nothing else)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        headers = {"Authorization": f"Bearer {self.kube.token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(f"{self.kube.url}/api/v1/namespaces", json=body) as answer,
        ):
            if answer.status not in (201, 409):
                raise RuntimeError(f"creating namespace {name}: {answer.status} {await answer.text()}")

    def object(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return self.kube.get(api_version, plural, namespace, name)

    def objects(
        self, api_version: str, plural: str, namespaces: Sequence[str], *, cached: bool = False
    ) -> list[dict[str, Any]]:
        resource_type = self.kube.emulator.registry.find(api_version, plural)
        if resource_type is None:
            return []
        store = self.kube.emulator.store
        if cached:  # read-only, uncopied: never change what is returned
            return [dict(obj) for obj in store.peek_objects(resource_type, None)]
        return store.list_objects(resource_type, None, Selection())


class RealBackend(KubeBackend):
    """The session's real API server, cleaned for this test bed (see the module's docstring)."""

    name = "real"
    _crds_installed: set[str] = set()  # servers (by kubeconfig) the CRDs were applied to, once each

    def __init__(self, kube: RealKube) -> None:
        self.kube = kube
        self.api = RealApi(kube)

    async def start(self, kubeconfig: Path, namespace: str = "default") -> None:
        self.kubeconfig = kubeconfig
        await asyncio.to_thread(self._prepare, namespace)

    def _prepare(self, namespace: str) -> None:
        config = yaml.safe_load(self.kube.kubeconfig.read_text(encoding="utf-8"))
        for context in config["contexts"]:
            context["context"]["namespace"] = namespace
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.kubeconfig.chmod(0o600)
        if str(self.kube.kubeconfig) not in RealBackend._crds_installed:
            self.api.install_crds(CRD_DIR)
            RealBackend._crds_installed.add(str(self.kube.kubeconfig))
        self.delete_custom_objects()

    async def stop(self) -> None:
        try:
            await asyncio.to_thread(self.delete_custom_objects)
        finally:
            self.api.close()

    def delete_custom_objects(self) -> None:
        """No object of the operator's kinds left in any namespace (finalizers dropped: the operators of
        the test beds are stopped by now)."""
        for plural in CUSTOM_PLURALS:
            self.api.delete_objects(f"/apis/{GROUP_VERSION}/{plural}")

    async def fresh_namespace(self, name: str) -> None:
        def fresh() -> None:
            if not self.api.ensure_namespace(name):
                collections = [
                    f"/apis/{GROUP_VERSION}/namespaces/{{ns}}/{plural}" for plural in CUSTOM_PLURALS
                ]
                self.api.empty_namespace(name, collections)

        await asyncio.to_thread(fresh)

    def object(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return self.api.get(_path(api_version, plural, namespace) + f"/{name}")

    def objects(
        self, api_version: str, plural: str, namespaces: Sequence[str], *, cached: bool = False
    ) -> list[dict[str, Any]]:
        query = {"resourceVersion": "0"} if cached else {}
        found: list[dict[str, Any]] = []
        scopes: Sequence[str | None] = namespaces or [None]
        for namespace in scopes:
            found += self.api.items(_path(api_version, plural, namespace), **query)
        return found


def _path(api_version: str, plural: str, namespace: str | None) -> str:
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{plural}" if namespace else f"{root}/{plural}"
