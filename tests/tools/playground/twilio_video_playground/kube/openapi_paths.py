"""The OpenAPI v3 paths of one served resource, shaped as kube-apiserver's endpoint installer shapes them.

Each operation carries ``x-kubernetes-action`` and ``x-kubernetes-group-version-kind``, and PATCH lists
``fieldValidation``: kubectl looks for exactly that to decide that the server validates fields itself
(``kubectl apply`` then sends ``fieldValidation=Strict`` instead of validating on the client).
"""

from __future__ import annotations

import copy
from typing import Any

from twilio_video_playground.kube.openapi_data import builtin_schema_names, builtins
from twilio_video_playground.kube.registry import ResourceType

LIST_PARAMETERS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "shardSelector",
    "timeoutSeconds",
    "watch",
)
WRITE_PARAMETERS = ("dryRun", "fieldManager", "fieldValidation")
DELETE_PARAMETERS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
CUSTOM_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
)
BUILTIN_PATCH_TYPES = (*CUSTOM_PATCH_TYPES, "application/strategic-merge-patch+json")
META = "io.k8s.apimachinery.pkg.apis.meta.v1"


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _parameter(name: str) -> dict[str, Any]:
    parameter: dict[str, Any] = copy.deepcopy(builtins()["v3"]["parameters"][name])
    return parameter


def _name_parameter(kind: str) -> dict[str, Any]:
    return {
        "name": "name",
        "in": "path",
        "description": f"name of the {kind}",
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


def group_tag(group: str, version: str) -> str:
    """``core_v1``, ``rbacAuthorization_v1``, ``videoOpenclawIo_v1alpha1``."""
    words = (group.removesuffix(".k8s.io") or "core").replace("-", ".").split(".")
    return words[0] + "".join(word[:1].upper() + word[1:] for word in words[1:]) + f"_{version}"


def _operation_prefix(group: str, version: str) -> str:
    tag = group_tag(group, version).split("_")[0]
    return tag[:1].upper() + tag[1:] + version[:1].upper() + version[1:]


class PathBuilder:
    """The paths of ``rt`` whose bodies are the schema components ``kind_schema`` and ``list_schema``."""

    def __init__(self, rt: ResourceType, kind_schema: str, list_schema: str) -> None:
        self.rt = rt
        self.kind_schema = kind_schema
        self.list_schema = list_schema
        self.media = ["application/json", "application/yaml"]
        if not rt.custom:
            self.media.append("application/vnd.kubernetes.protobuf")

    def _content(self, schema: str) -> dict[str, Any]:
        return {media: {"schema": schema_ref(schema)} for media in self.media}

    def _responses(self, codes: tuple[str, ...], schema: str, *, streams: bool = False) -> dict[str, Any]:
        names = {"200": "OK", "201": "Created", "202": "Accepted"}
        responses: dict[str, Any] = {
            code: {"description": names[code], "content": self._content(schema)} for code in codes
        }
        if streams:  # built-in lists also document their watch encodings
            for media in (
                "application/json;stream=watch",
                "application/vnd.kubernetes.protobuf;stream=watch",
            ):
                responses["200"]["content"][media] = {"schema": schema_ref(schema)}
        responses["401"] = {"description": "Unauthorized"}
        return responses

    def _operation(
        self,
        action: str,
        operation_id: str,
        description: str,
        parameters: tuple[str, ...],
        *,
        responses: dict[str, Any],
        body: dict[str, Any] | None = None,
        gvk: tuple[str, str, str] | None = None,
    ) -> dict[str, Any]:
        group, version, kind = gvk or (self.rt.group, self.rt.version, self.rt.kind)
        operation: dict[str, Any] = {
            "tags": [group_tag(self.rt.group, self.rt.version)],
            "description": description,
            "operationId": operation_id,
            "parameters": [_parameter(name) for name in parameters],
        }
        if not operation["parameters"]:
            del operation["parameters"]
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = responses
        operation["x-kubernetes-action"] = action
        operation["x-kubernetes-group-version-kind"] = {"group": group, "version": version, "kind": kind}
        return operation

    def _body(self, schema: str, media: tuple[str, ...] | None = None) -> dict[str, Any]:
        types = media or (tuple(self.media[:2]) if self.rt.custom else ("*/*",))
        return {"content": {m: {"schema": schema_ref(schema)} for m in types}, "required": True}

    def paths(self, base: str) -> dict[str, Any]:
        rt = self.rt
        verbs = set(rt.verbs)
        scope = "Namespaced" if rt.namespaced else ""
        prefix = _operation_prefix(rt.group, rt.version)
        kind = rt.kind
        scoped_base = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
        scope_parameters = [_parameter("namespace")] if rt.namespaced else []
        paths: dict[str, Any] = {}

        collection: dict[str, Any] = {}
        if "list" in verbs:
            collection["get"] = self._operation(
                "list",
                f"list{prefix}{scope}{kind}",
                f"list or watch objects of kind {kind}",
                LIST_PARAMETERS,
                responses=self._responses(("200",), self.list_schema, streams=not rt.custom),
            )
        if "create" in verbs:
            collection["post"] = self._operation(
                "post",
                f"create{prefix}{scope}{kind}",
                f"create {_article(kind)} {kind}",
                WRITE_PARAMETERS,
                body=self._body(self.kind_schema),
                responses=self._responses(("200", "201", "202"), self.kind_schema),
            )
        if "deletecollection" in verbs:
            collection["delete"] = self._operation(
                "deletecollection",
                f"delete{prefix}Collection{scope}{kind}",
                f"delete collection of {kind}",
                self._delete_collection_parameters(),
                body=None if rt.custom else self._body(f"{META}.DeleteOptions", ("*/*",)),
                responses=self._responses(("200",), f"{META}.Status"),
            )
        if collection:
            collection["parameters"] = [*scope_parameters, _parameter("pretty")]
            if set(collection) == {"post", "parameters"} and not rt.custom:  # create-only (reviews)
                collection["parameters"] = sorted(
                    [*collection["parameters"], *collection["post"].pop("parameters")],
                    key=lambda p: p["name"],
                )
            paths[f"{scoped_base}/{rt.plural}"] = collection

        item: dict[str, Any] = {}
        if "get" in verbs:
            item["get"] = self._operation(
                "get",
                f"read{prefix}{scope}{kind}",
                f"read the specified {kind}",
                ("resourceVersion",) if rt.custom else (),
                responses=self._responses(("200",), self.kind_schema),
            )
        if "update" in verbs:
            item["put"] = self._operation(
                "put",
                f"replace{prefix}{scope}{kind}",
                f"replace the specified {kind}",
                WRITE_PARAMETERS,
                body=self._body(self.kind_schema),
                responses=self._responses(("200", "201"), self.kind_schema),
            )
        if "delete" in verbs:
            item["delete"] = self._operation(
                "delete",
                f"delete{prefix}{scope}{kind}",
                f"delete {_article(kind)} {kind}",
                DELETE_PARAMETERS,
                body=self._body(f"{META}.DeleteOptions", tuple(self.media[:2]) if rt.custom else ("*/*",)),
                responses=self._responses(("200", "202"), self._deleted_schema()),
            )
        if "patch" in verbs:
            item["patch"] = self._patch(
                f"patch{prefix}{scope}{kind}", f"partially update the specified {kind}"
            )
        if item:
            item["parameters"] = [_name_parameter(kind), *scope_parameters, _parameter("pretty")]
            paths[f"{scoped_base}/{rt.plural}/{{name}}"] = item

        for name in sorted(rt.subresources):
            paths[f"{scoped_base}/{rt.plural}/{{name}}/{name}"] = self._subresource(name, prefix, scope)

        if rt.namespaced and "list" in verbs:
            everywhere = self._operation(
                "list",
                f"list{prefix}{kind}ForAllNamespaces",
                f"list or watch objects of kind {kind}",
                (),
                responses=self._responses(("200",), self.list_schema, streams=not rt.custom),
            )
            list_parameters = [_parameter(name) for name in LIST_PARAMETERS]
            paths[f"{base}/{rt.plural}"] = {
                "get": everywhere,
                "parameters": sorted([*list_parameters, _parameter("pretty")], key=lambda p: p["name"]),
            }
        return paths

    def _patch(self, operation_id: str, description: str) -> dict[str, Any]:
        types = CUSTOM_PATCH_TYPES if self.rt.custom else BUILTIN_PATCH_TYPES
        return self._operation(
            "patch",
            operation_id,
            description,
            (*WRITE_PARAMETERS, "force"),
            body=self._body(f"{META}.Patch", types),
            responses=self._responses(("200",) if self.rt.custom else ("200", "201"), self.kind_schema),
        )

    def _subresource(self, name: str, prefix: str, scope: str) -> dict[str, Any]:
        rt = self.rt
        info = rt.subresource(name)
        suffix = name[:1].upper() + name[1:]
        kind = rt.kind
        path: dict[str, Any] = {}
        if info.kind and info.group is not None and info.version is not None:  # serviceaccounts/token
            path["post"] = self._operation(
                "post",
                f"create{prefix}{scope}{kind}{suffix}",
                f"create {name} of {_article(kind)} {kind}",
                WRITE_PARAMETERS,
                body=self._body(self._foreign_schema(info.group, info.version, info.kind)),
                responses=self._responses(
                    ("200", "201", "202"), self._foreign_schema(info.group, info.version, info.kind)
                ),
                gvk=(info.group, info.version, info.kind),
            )
            path["parameters"] = sorted(
                [
                    _name_parameter(info.kind),
                    _parameter("namespace"),
                    _parameter("pretty"),
                    *path["post"].pop("parameters"),
                ],
                key=lambda p: p["name"],
            )
            return path
        if "get" in info.verbs:
            path["get"] = self._operation(
                "get",
                f"read{prefix}{scope}{kind}{suffix}",
                f"read {name} of the specified {kind}",
                ("resourceVersion",) if rt.custom else (),
                responses=self._responses(("200",), self.kind_schema),
            )
        if "update" in info.verbs:
            path["put"] = self._operation(
                "put",
                f"replace{prefix}{scope}{kind}{suffix}",
                f"replace {name} of the specified {kind}",
                WRITE_PARAMETERS,
                body=self._body(self.kind_schema),
                responses=self._responses(("200", "201"), self.kind_schema),
            )
        if "patch" in info.verbs:
            path["patch"] = self._patch(
                f"patch{prefix}{scope}{kind}{suffix}", f"partially update {name} of the specified {kind}"
            )
        scope_parameters = [_parameter("namespace")] if rt.namespaced else []
        path["parameters"] = [_name_parameter(kind), *scope_parameters, _parameter("pretty")]
        return path

    def _delete_collection_parameters(self) -> tuple[str, ...]:
        """Custom resources document only the list options; built-ins the delete options too, no watch."""
        if self.rt.custom:
            return LIST_PARAMETERS
        return (
            *DELETE_PARAMETERS,
            *(p for p in LIST_PARAMETERS if p not in ("allowWatchBookmarks", "watch")),
        )

    def _deleted_schema(self) -> str:
        """What DELETE documents: the object for ServiceAccounts, else a Status (as the real documents)."""
        if (self.rt.group, self.rt.plural) == ("", "serviceaccounts"):
            return self.kind_schema
        return f"{META}.Status"

    def _foreign_schema(self, group: str, version: str, kind: str) -> str:
        return builtin_schema_names()[(group, version, kind)]


def _article(kind: str) -> str:
    return "an" if kind[:1] in "AEIOU" else "a"
