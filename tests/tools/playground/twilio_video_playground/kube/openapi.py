"""OpenAPI v2 and v3 documents of what the embedded API serves, built as kube-apiserver builds them.

Custom resources get their schema from the CRD (as ``apiextensions-apiserver``'s OpenAPI builder makes
it: ``apiVersion``, ``kind`` and an ``ObjectMeta`` reference for ``metadata``,
``x-kubernetes-group-version-kind``, a ``<Kind>List``); built-in kinds and the meta types take the real
server's schemas from ``openapi_builtins.json``. The v3 index gives each group-version's document with the
SHA-512 of its content, as kubectl expects. Documents are rebuilt only when the served resource types change.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twilio_video_playground.kube.openapi_data import builtin_schema_names, builtins
from twilio_video_playground.kube.openapi_paths import META, PathBuilder, schema_ref
from twilio_video_playground.kube.registry import Registry, ResourceType, version_priority

V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"
KUBERNETES_VERSION = "v1.37.0"
API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
LIST_METADATA_DESCRIPTION = (
    "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)


@dataclass(frozen=True)
class Document:
    body: bytes
    hash: str  # upper-case hex SHA-512 of body, as in the v3 index's serverRelativeURL


def _document(content: dict[str, Any]) -> Document:
    body = json.dumps(content, separators=(",", ":"), sort_keys=True).encode()
    return Document(body, hashlib.sha512(body).hexdigest().upper())


def gv_path(group: str, version: str) -> str:
    """The v3 index key of a group-version: ``api/v1`` or ``apis/<group>/<version>``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def custom_schema_name(group: str, version: str, kind: str) -> str:
    """``io.openclaw.video.v1alpha1.VideoRoom`` for ``video.openclaw.io/v1alpha1`` VideoRoom."""
    return ".".join([*reversed(group.split(".")), version, kind])


def schema_refs(node: Any, prefix: str) -> set[str]:
    """The names of the schemas ``node`` refers to (``$ref`` values starting with ``prefix``)."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            found.add(ref[len(prefix) :])
        for value in node.values():
            found |= schema_refs(value, prefix)
    elif isinstance(node, list):
        for value in node:
            found |= schema_refs(value, prefix)
    return found


def schema_closure(roots: Iterable[str], schemas: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The named schemas and every schema they refer to."""
    kept: dict[str, Any] = {}
    pending = [name for name in roots if name in schemas]
    while pending:
        name = pending.pop()
        if name not in kept:
            kept[name] = schemas[name]
            pending.extend(sorted(schema_refs(schemas[name], prefix) - kept.keys()))
    return kept


def _gvk(rt: ResourceType, kind: str) -> list[dict[str, str]]:
    return [{"group": rt.group, "kind": kind, "version": rt.version}]


def custom_kind_schema(rt: ResourceType) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(rt.schema) if rt.schema else {"type": "object"}
    properties: dict[str, Any] = schema.setdefault("properties", {})
    properties["apiVersion"] = {"description": API_VERSION_DESCRIPTION, "type": "string"}
    properties["kind"] = {"description": KIND_DESCRIPTION, "type": "string"}
    properties["metadata"] = {
        "description": METADATA_DESCRIPTION,
        "allOf": [schema_ref(f"{META}.ObjectMeta")],
    }
    schema["x-kubernetes-group-version-kind"] = _gvk(rt, rt.kind)
    return schema


def custom_list_schema(rt: ResourceType, kind_schema: str) -> dict[str, Any]:
    return {
        "description": f"{rt.kind}List is a list of {rt.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": f"List of {rt.plural}. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "type": "array",
                "items": schema_ref(kind_schema),
            },
            "kind": {"description": KIND_DESCRIPTION, "type": "string"},
            "metadata": {"description": LIST_METADATA_DESCRIPTION, "allOf": [schema_ref(f"{META}.ListMeta")]},
        },
        "x-kubernetes-group-version-kind": _gvk(rt, f"{rt.kind}List"),
    }


def to_v2_schema(schema: Any) -> Any:
    """A CRD's v3 schema as the v2 document carries it (apiextensions' ``ToStructuralOpenAPIV2``): no
    ``allOf``/``anyOf``/``oneOf``/``not`` and no ``default``; ``nullable`` and preserve-unknown-fields nodes
    lose ``type``, ``properties`` and ``items``; arrays without ``items`` lose ``type``; ``$ref`` under
    ``allOf`` becomes a plain ``$ref``."""
    if isinstance(schema, list):
        return [to_v2_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: to_v2_schema(value) for key, value in schema.items()}
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        result["$ref"] = all_of[0]["$ref"].replace(V3_PREFIX, V2_PREFIX)
    for keyword in ("allOf", "anyOf", "oneOf", "not"):
        result.pop(keyword, None)
    if result.pop("nullable", False):
        result.pop("type", None)
        result.pop("properties", None)
        result.pop("items", None)
    if result.get("x-kubernetes-preserve-unknown-fields"):
        result.pop("type", None)
        result.pop("properties", None)
        result.pop("items", None)
    result.pop("default", None)
    if result.get("type") == "array" and "items" not in result:
        del result["type"]
    properties = schema.get("properties")
    if isinstance(properties, dict) and isinstance(result.get("required"), list):
        nullable = {name for name, sub in properties.items() if isinstance(sub, dict) and sub.get("nullable")}
        result["required"] = [name for name in result["required"] if name not in nullable]
        if not result["required"]:
            del result["required"]
    if isinstance(result.get("items"), dict) and "$ref" in result["items"]:
        result["items"]["$ref"] = result["items"]["$ref"].replace(V3_PREFIX, V2_PREFIX)
    return result


def _v2_operation(operation: dict[str, Any]) -> dict[str, Any]:
    parameters = []
    body = operation.get("requestBody")
    if body is not None:
        media = next(iter(body["content"].values()))
        parameters.append(
            {"name": "body", "in": "body", "required": True, "schema": _v2_ref(media["schema"])}
        )
    for parameter in operation.get("parameters") or []:
        parameters.append(_v2_parameter(parameter))
    responses: dict[str, Any] = {}
    produces: list[str] = []
    for code, response in operation["responses"].items():
        entry = {"description": response["description"]}
        content = response.get("content")
        if content:
            produces = produces or list(content)
            entry["schema"] = _v2_ref(next(iter(content.values()))["schema"])
        responses[code] = entry
    result: dict[str, Any] = {
        "description": operation["description"],
        "consumes": list(body["content"]) if body is not None else ["*/*"],
        "produces": produces,
        "schemes": ["https"],
        "tags": operation["tags"],
        "operationId": operation["operationId"],
        "responses": responses,
        "x-kubernetes-action": operation["x-kubernetes-action"],
        "x-kubernetes-group-version-kind": operation["x-kubernetes-group-version-kind"],
    }
    if parameters:
        result["parameters"] = parameters
    return result


def _v2_ref(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$ref": str(schema["$ref"]).replace(V3_PREFIX, V2_PREFIX)}


def _v2_parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    converted = {key: value for key, value in parameter.items() if key != "schema"}
    converted.update(parameter.get("schema") or {})
    return converted


class OpenApiDocuments:
    """``/openapi/v2`` and ``/openapi/v3`` for a :class:`Registry`, cached until its types change."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._revision = -1
        self._v3: dict[str, tuple[dict[str, Any], Document]] = {}
        self._v2: Document | None = None

    def _current(self) -> None:
        if self._registry.revision != self._revision:
            self._revision = self._registry.revision
            self._v3 = {}
            self._v2 = None

    def _group_versions(self) -> list[tuple[str, str]]:
        found = {(rt.group, rt.version) for rt in self._registry.all()}
        return sorted(found, key=lambda gv: (gv[0], version_priority(gv[1])))

    def v3_index(self) -> dict[str, Any]:
        paths = {}
        for group, version in self._group_versions():
            key = gv_path(group, version)
            document = self.v3_document(key)
            assert document is not None
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={document.hash}"}
        return {"paths": paths}

    def v3_document(self, key: str) -> Document | None:
        found = self._v3_content(key)
        return None if found is None else found[1]

    def _v3_content(self, key: str) -> tuple[dict[str, Any], Document] | None:
        self._current()
        if key not in self._v3:
            for group, version in self._group_versions():
                if gv_path(group, version) == key:
                    content = self._build_v3(group, version)
                    self._v3[key] = (content, _document(content))
                    break
            else:
                return None
        return self._v3[key]

    def _build_v3(self, group: str, version: str) -> dict[str, Any]:
        types = sorted(
            (rt for rt in self._registry.all() if (rt.group, rt.version) == (group, version)),
            key=lambda rt: rt.plural,
        )
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        custom = any(rt.custom for rt in types)
        schemas: dict[str, Any] = {}
        roots: set[str] = set()
        paths: dict[str, Any] = {}
        names = builtin_schema_names()
        for rt in types:
            if rt.custom:
                kind_name = custom_schema_name(rt.group, rt.version, rt.kind)
                list_name = f"{kind_name}List"
                schemas[kind_name] = custom_kind_schema(rt)
                schemas[list_name] = custom_list_schema(rt, kind_name)
            else:
                kind_name = names[(rt.group, rt.version, rt.kind)]
                list_name = names.get((rt.group, rt.version, rt.list_kind), "")
                roots.update(name for name in (kind_name, list_name) if name)
            paths.update(PathBuilder(rt, kind_name, list_name).paths(base))
        roots |= schema_refs(paths, V3_PREFIX) | schema_refs(schemas, V3_PREFIX)
        schemas.update(schema_closure(roots - schemas.keys(), builtins()["v3"]["schemas"], V3_PREFIX))
        delete_options = f"{META}.DeleteOptions"
        if delete_options in schemas:
            schemas[delete_options] = self._delete_options(schemas[delete_options], group, version, custom)
        title = (
            {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"}
            if custom
            else {
                "title": "Kubernetes",
                "version": KUBERNETES_VERSION,
            }
        )
        return {
            "openapi": "3.0.0",
            "info": title,
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": dict(sorted(schemas.items()))},
        }

    def _delete_options(
        self, schema: dict[str, Any], group: str, version: str, custom: bool
    ) -> dict[str, Any]:
        """DeleteOptions names the group-versions that accept it: core and the document's own, or, in a
        CRD's document, every built-in group-version."""
        if custom:
            served = {(rt.group, rt.version) for rt in self._registry.all() if not rt.custom}
        else:
            served = {("", "v1"), (group, version)}
        gvks = [{"group": g, "kind": "DeleteOptions", "version": v} for g, v in sorted(served)]
        return {**schema, "x-kubernetes-group-version-kind": gvks}

    def v2_document(self) -> Document:
        """The single v2 document: every path and definition, refs to ``#/definitions/``."""
        self._current()
        if self._v2 is None:
            paths: dict[str, Any] = {}
            definitions: dict[str, Any] = {}
            builtin_definitions = builtins()["v2"]["definitions"]
            for group, version in self._group_versions():
                found = self._v3_content(gv_path(group, version))
                assert found is not None
                content = found[0]
                for path, item in content["paths"].items():
                    paths[path] = {
                        method: [_v2_parameter(p) for p in value]
                        if method == "parameters"
                        else _v2_operation(value)
                        for method, value in item.items()
                    }
                for name, schema in content["components"]["schemas"].items():
                    definitions[name] = builtin_definitions.get(name) or to_v2_schema(schema)
            self._v2 = _document(
                {
                    "swagger": "2.0",
                    "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
                    "paths": dict(sorted(paths.items())),
                    "definitions": dict(sorted(definitions.items())),
                }
            )
        return self._v2
