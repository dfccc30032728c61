"""Helpers of the embedded Kubernetes API tests (no tests here): a small test CRD and an HTTP client."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from twilio_video_playground.kube import EmbeddedKubernetes

GROUP, VERSION, PLURAL, KIND = "test.openclaw.io", "v1", "widgets", "Widget"
API_VERSION = f"{GROUP}/{VERSION}"
WIDGETS = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 50},
                "mode": {"type": "string", "enum": ["small", "large"], "default": "small"},
                "note": {"type": "string", "nullable": True, "maxLength": 10},
                "color": {"type": "string", "pattern": "^[a-z]+$"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "limits": {
                    "type": "object",
                    "default": {},
                    "properties": {"cpu": {"type": "integer", "default": 2}},
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"type": {"type": "string"}, "status": {"type": "string"}},
                    },
                },
            },
        },
    },
}

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "widget",
            "kind": KIND,
            "shortNames": ["wdg"],
            "categories": ["testing"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
            }
        ],
    },
}


def widget_crd() -> dict[str, Any]:
    return copy.deepcopy(WIDGET_CRD)


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": {"size": 1, **spec}}


class Http:
    """A tiny JSON client of the embedded API for assertions on codes and bodies."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.last_headers: Any = None

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        all_headers = {"Content-Type": content_type, **(headers or {})}
        async with self.session.request(method, path, data=data, params=params, headers=all_headers) as resp:
            self.last_headers = resp.headers
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **kwargs)

    async def put(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body, **kwargs)

    async def patch(self, path: str, body: Any, content_type: str = MERGE, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, body, content_type=content_type, **kwargs)

    async def delete(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, body, **kwargs)


@contextlib.asynccontextmanager
async def api(kube: EmbeddedKubernetes, *, with_widgets: bool = True) -> AsyncIterator[Http]:
    """An authenticated HTTP client of ``kube``; registers the Widget CRD unless told otherwise."""
    if with_widgets:
        kube.register_crd(widget_crd())
    headers = {"Authorization": f"Bearer {kube.token}"}
    async with aiohttp.ClientSession(
        kube.url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        yield Http(session)
