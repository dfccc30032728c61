"""The two backends of the API fidelity suite (``test_api_fidelity.py``), behind one small client: the
embedded API (served from a thread of its own) and the real kube-apiserver of ``tests/real_kube.py``."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from real_kube import KUBECTL
from twilio_video_playground.kube import EmbeddedKubernetes

GROUP = "fidelity.openclaw.io"
GADGETS = "gadgets"
GADGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "default": "small"},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    },
                },
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
    },
}
GADGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{GADGETS}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": GADGETS, "singular": "gadget", "kind": "Gadget", "shortNames": ["gdg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": GADGET_SCHEMA},
                "subresources": {"status": {}},
                "selectableFields": [{"jsonPath": ".spec.mode"}],
            }
        ],
    },
}


@dataclass
class Response:
    status: int
    body: Any  # decoded JSON, or the raw bytes when the answer is not JSON
    headers: Mapping[str, str]
    warnings: list[str] = field(default_factory=list)
    raw: bytes = b""


@dataclass
class Backend:
    """One API server as the suite talks to it: HTTP requests, watches and kubectl."""

    name: str
    server: str
    kubeconfig: Path
    cache_dir: Path
    context: ssl.SSLContext | None = None
    token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        query: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
        if content_type is None:
            content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        sent = {"Content-Type": content_type, "Accept": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        url = self.server + path + (f"?{query}" if query else "")
        request = urllib.request.Request(url, data=data, method=method, headers=sent)
        try:
            with _opener(self.context).open(request, timeout=60) as answer:
                return _response(answer.status, answer.read(), answer.headers)
        except urllib.error.HTTPError as error:
            with error:
                return _response(error.code, error.read(), error.headers)

    def watch(self, path: str, query: str, *, events: int, seconds: float = 10.0) -> list[dict[str, Any]]:
        """The first ``events`` events of a watch (fewer if it ends or ``seconds`` pass)."""
        sent = {"Accept": "application/json"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        url = f"{self.server}{path}?watch=true&{query}"
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + seconds
        request = urllib.request.Request(url, headers=sent)
        with _opener(self.context).open(request, timeout=seconds) as stream:
            while len(found) < events and time.monotonic() < deadline:
                line = stream.readline()
                if not line:
                    break
                if line.strip():
                    found.append(json.loads(line))
        return found

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def create_namespace(self, name: str) -> None:
        answer = self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        assert answer.status == 201, answer.body

    def install_crd(self) -> None:
        """The suite's CRD, created and waited for until its resource is served."""
        answer = self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", GADGET_CRD)
        assert answer.status in (201, 409), answer.body
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.request("GET", f"/apis/{GROUP}/v1/{GADGETS}").status == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"{GADGETS}.{GROUP} was never served by the {self.name} backend")


def _opener(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _response(status: int, data: bytes, headers: Any) -> Response:
    try:
        body: Any = json.loads(data) if data else None
    except ValueError:
        body = data
    flat = {key.lower(): value for key, value in headers.items()}
    return Response(status, body, flat, headers.get_all("Warning") or [], data)


@dataclass
class EmbeddedThread:
    """The embedded API running on an event loop of its own thread, for synchronous tests."""

    kube: EmbeddedKubernetes | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, name="embedded-kube", daemon=True)
        self.thread.start()

        async def start() -> EmbeddedKubernetes:
            kube = EmbeddedKubernetes()
            await kube.start()
            return kube

        self.kube = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)

    def stop(self) -> None:
        if self.kube is not None:
            asyncio.run_coroutine_threadsafe(self.kube.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def embedded_backend(workdir: Path) -> Iterator[Backend]:
    runner = EmbeddedThread()
    assert runner.kube is not None
    try:
        kubeconfig = runner.kube.write_kubeconfig(workdir / "kubeconfig")
        yield Backend(
            "embedded", runner.kube.url, kubeconfig, workdir / "kubectl-cache", token=runner.kube.token
        )
    finally:
        runner.stop()
