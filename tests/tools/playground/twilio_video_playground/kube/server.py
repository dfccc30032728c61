"""``EmbeddedKubernetes``: the embedded API server on 127.0.0.1 for the playground and the tests."""

from __future__ import annotations

import copy
import secrets
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp.web
import aiohttp.web_server
import kmock
import yaml

from twilio_video_playground.kube.emulator import KubernetesApiEmulator
from twilio_video_playground.kube.reviews import AccessRule, UserInfo

ADMIN_USER: UserInfo = {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}


def load_crd_manifests(crd_dir: Path) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions in ``crd_dir/*.yaml`` (or in ``crd_dir/crds/*.yaml``), by file name."""
    folders = [crd_dir, crd_dir / "crds"]
    files = sorted(
        path
        for folder in folders
        if folder.is_dir()
        for path in folder.iterdir()
        if path.suffix in (".yaml", ".yml")
    )
    crds: list[dict[str, Any]] = []
    for path in files:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                crds.append(document)
    return crds


class EmbeddedKubernetes:
    """An in-process Kubernetes API built on kmock's ``KubernetesEmulator``, served over plain HTTP.

    Usage::

        async with EmbeddedKubernetes(Path("crds")) as kube:
            kube.write_kubeconfig(tmp_path / "kubeconfig")
            ...
    """

    def __init__(self, crd_dir: Path | None = None, *, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.emulator = KubernetesApiEmulator()
        self.emulator.allow_tokens[self.token] = copy.deepcopy(ADMIN_USER)
        self._runner: aiohttp.web.ServerRunner | None = None
        self._url: str | None = None
        if crd_dir is not None:
            for crd in load_crd_manifests(Path(crd_dir)):
                self.register_crd(crd)

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("the embedded Kubernetes API is already started")
        await self.emulator.__aenter__()
        self.emulator.open_watches()
        server = aiohttp.web_server.Server(self.emulator, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        self._runner = runner
        self._url = f"http://{bound_host}:{bound_port}"
        self.emulator.server_address = f"{bound_host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.emulator.stop_watches()
        runner, self._runner = self._runner, None
        try:
            await runner.cleanup()
        finally:
            self._url = None
            await self.emulator.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the embedded Kubernetes API is not started")
        return self._url

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig for kubectl and kopf: bearer-token auth over plain HTTP, one context."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "embedded", "cluster": {"server": self.url}}],
            "users": [{"name": "embedded-admin", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "embedded",
                    "context": {"cluster": "embedded", "user": "embedded-admin", "namespace": namespace},
                }
            ],
            "current-context": "embedded",
            "preferences": {},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        path.chmod(0o600)
        return path

    # --- state --------------------------------------------------------------------------------------------

    @property
    def objects(self) -> kmock.ObjectsArray:
        """kmock's objects array: ``kube.objects['video.openclaw.io/v1alpha1/videorooms', 'ns', 'name']``."""
        return self.emulator.objects

    def get(
        self, api_version: str, kind_plural: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The object as the API serves it, or None: ``get("v1", "secrets", "ns", "x")``."""
        resource_type = self.emulator.registry.find(api_version, kind_plural)
        if resource_type is None:
            return None
        return self.emulator.store.get(resource_type, namespace, name)

    def register_crd(self, crd: dict[str, Any]) -> None:
        """Create or update a CRD as if applied: its resources are then served, discovered and validated."""
        self.emulator.store.apply_crd(crd)

    @property
    def request_counts(self) -> Counter[tuple[str, str]]:
        """Served requests by ``(verb, resource)``: ``("patch", "videorooms.video.openclaw.io/status")``."""
        return self.emulator.request_counts

    @property
    def allow_tokens(self) -> dict[str, UserInfo]:
        """Bearer tokens TokenReview accepts, mapped to their user info (``username``, ``groups``...), besides
        the ServiceAccount tokens the server issued (``POST .../serviceaccounts/NAME/token``)."""
        return self.emulator.allow_tokens

    @property
    def rbac_rules(self) -> list[AccessRule]:
        """Grants SubjectAccessReview consults besides the RBAC objects (Roles, ClusterRoles and their
        bindings) stored in the server."""
        return self.emulator.rbac_rules
