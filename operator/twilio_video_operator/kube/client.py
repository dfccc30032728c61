"""Async Kubernetes API client over aiohttp, authenticated like kopf (kubeconfig or in-cluster)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import tempfile
import weakref
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from twilio_video_operator.kube.resources import Resource

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


# Who the operator is to the API server: its field manager in managedFields, and in audit logs.
USER_AGENT = "twilio-video-operator"


class KubeApiError(Exception):
    """A non-2xx answer from the Kubernetes API, with the ``reason`` of its Status body."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


def _api_error(status: int, text: str) -> KubeApiError:
    """The error of an answer with HTTP ``status`` and body ``text`` (a ``Status`` object, usually)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return KubeApiError(status, str(body.get("reason", "Unknown")), str(body.get("message", text)))


def _ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return False
    if info.insecure:
        return False
    context = ssl.create_default_context()
    if info.ca_path:
        context.load_verify_locations(cafile=str(info.ca_path))
    elif info.ca_data:
        data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        if "BEGIN CERTIFICATE" not in data:
            data = base64.b64decode(data).decode()
        context.load_verify_locations(cadata=data)
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert_file.write_bytes(_pem(info.certificate_data))
            key_file.write_bytes(_pem(info.private_key_data))
            context.load_cert_chain(cert_file, key_file)
    elif cert and key:
        context.load_cert_chain(str(cert), str(key))
    return context


def _pem(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if b"-----BEGIN" in raw else base64.b64decode(raw)


class KubeClient:
    """The few verbs the operator needs, on any :class:`Resource`."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        timeout: float = 30.0,
        max_connections: int = 32,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._info = info
        self._user_agent = user_agent
        self._base = info.server.rstrip("/")
        # ``timeout`` bounds connecting and each read, not the wait for a free connection of the pool: with
        # thousands of objects reconciling at once, requests queue for a connection, and that queue is the
        # backpressure, not a failure of the API server.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=timeout, sock_read=timeout
        )
        self._max_connections = max_connections
        # aiohttp sessions belong to the loop they were made on; the operator's HTTP side and its
        # reconciler run on different loops, and each gets a session of its own.
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def connection(self) -> kopf.ConnectionInfo:
        """The credentials and endpoint this client uses."""
        return self._info

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session of the running loop (each loop that used the client closes its own)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self._info), limit=self._max_connections)
            # The API server names this client's managedFields entries after its User-Agent (before "/").
            headers = {
                "Accept": "application/json",
                "User-Agent": self._user_agent,
                **self._info.as_http_headers(),
            }
            session = aiohttp.ClientSession(connector=connector, headers=headers, timeout=self._timeout)
            self._sessions[loop] = session
        return session

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        session = self._get_session()
        async with session.request(
            method, self._base + path, data=data, headers=headers, params=params
        ) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise _api_error(resp.status, text)
            return json.loads(text) if text else None

    async def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", resource.path(namespace, name))
        except KubeApiError as exc:
            if exc.not_found:
                return None
            raise
        return result

    async def list(
        self, resource: Resource, namespace: str | None = None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", resource.path(namespace), params=params)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def watch(
        self,
        resource: Resource,
        namespace: str | None,
        *,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The events of one watch request, ``(type, object)``, until the server ends the stream after
        ``timeout_seconds``. Without ``resource_version`` the objects that exist come first, as ADDED. An
        ``ERROR`` event (for example 410 Gone: the version is too old) is yielded like any other."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_seconds)}
        if field_selector:
            params["fieldSelector"] = field_selector
        if resource_version:
            params["resourceVersion"] = resource_version
        # Quiet streams are normal: reads may wait as long as the server keeps the stream open.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout.sock_connect, sock_read=timeout_seconds + 30
        )
        session = self._get_session()
        async with session.get(self._base + resource.path(namespace), params=params, timeout=timeout) as resp:
            if resp.status >= 400:
                raise _api_error(resp.status, await resp.text())
            async for line in resp.content:
                if line.strip():
                    event = json.loads(line)
                    yield str(event.get("type")), dict(event.get("object") or {})

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", resource.path(namespace), body=body)
        return result

    async def replace(
        self, resource: Resource, namespace: str | None, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT the whole object; its ``metadata.resourceVersion`` makes it a compare-and-swap (409)."""
        result: dict[str, Any] = await self.request("PUT", resource.path(namespace, name), body=body)
        return result

    async def patch(
        self,
        resource: Resource,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> dict[str, Any]:
        path = resource.path(namespace, name, subresource)
        result: dict[str, Any] = await self.request("PATCH", path, body=patch, content_type=content_type)
        return result

    async def patch_status(
        self, resource: Resource, namespace: str | None, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.patch(resource, namespace, name, {"status": dict(status)}, subresource="status")

    async def delete(self, resource: Resource, namespace: str | None, name: str) -> bool:
        """Delete an object; ``False`` when it was already gone."""
        try:
            await self.request("DELETE", resource.path(namespace, name))
        except KubeApiError as exc:
            if exc.not_found:
                return False
            raise
        return True
