"""The OpenAPI schemas of the built-in kinds, as kube-apiserver publishes them.

``openapi_builtins.json`` holds, for the built-in kinds the embedded API serves (and the meta types they
refer to), the component schemas of the real server's OpenAPI v3 documents, its v2 definitions, and the
descriptions of its query and path parameters. ``tests/realkube/refresh_openapi_builtins.py`` writes it
from the kube-apiserver of ``tests/kube-apiserver``; the embedded API only builds documents from it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from twilio_video_playground.kube.registry import builtin_types

BUILTINS_FILE = Path(__file__).with_name("openapi_builtins.json")


def builtin_kinds() -> list[tuple[str, str, str]]:
    """(group, version, kind) of every built-in kind served, including subresource kinds (TokenRequest)."""
    kinds: set[tuple[str, str, str]] = set()
    for resource_type in builtin_types():
        kinds.add((resource_type.group, resource_type.version, resource_type.kind))
        for name in resource_type.subresources:
            info = resource_type.subresource(name)
            if info.kind and info.group is not None and info.version is not None:
                kinds.add((info.group, info.version, info.kind))
    return sorted(kinds)


@cache
def builtins() -> dict[str, Any]:
    """The file's content: ``{"v3": {"schemas", "parameters"}, "v2": {"definitions"}, "source"}``."""
    data: dict[str, Any] = json.loads(BUILTINS_FILE.read_text(encoding="utf-8"))
    return data


@cache
def builtin_schema_names() -> dict[tuple[str, str, str], str]:
    """The component name of each built-in (group, version, kind), e.g. ``io.k8s.api.core.v1.Secret``."""
    names: dict[tuple[str, str, str], str] = {}
    for name, schema in builtins()["v3"]["schemas"].items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            names[(gvk["group"], gvk["version"], gvk["kind"])] = name
    return names
