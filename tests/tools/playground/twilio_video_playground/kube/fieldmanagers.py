"""The field manager of each served resource: its schema as structured merge reads it, and the manager
name of a request (``fieldManager``, else the User-Agent's product, as the API server derives it)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.bodies import read_object
from twilio_video_playground.kube.errors import FieldError
from twilio_video_playground.kube.managedfields import FieldManager
from twilio_video_playground.kube.openapi_data import builtin_schema_names, builtins
from twilio_video_playground.kube.patching import APPLY_PATCH
from twilio_video_playground.kube.registry import ResourceType
from twilio_video_playground.kube.structured import Structure

OBJECT_META = {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
MAX_MANAGER_LENGTH = 128


def _component(name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = builtins()["v3"]["schemas"].get(name)
    return found


@lru_cache(maxsize=256)
def field_manager_for(rt: ResourceType) -> FieldManager:
    """Ownership bookkeeping for ``rt``'s stored objects (events.k8s.io Events are stored as core ones)."""
    status_separate = "status" in rt.subresources
    if rt.custom:
        schema = dict(rt.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        schema["properties"] = {**(schema.get("properties") or {}), "metadata": OBJECT_META}
        return FieldManager(Structure(schema, _component, builtin=False), status_separate=status_separate)
    group = rt.group if rt.storage_group is None else rt.storage_group
    name = builtin_schema_names().get((group, rt.storage_version, rt.kind))
    root = {"$ref": f"#/components/schemas/{name}"} if name else None
    return FieldManager(Structure(root, _component, builtin=True), status_separate=status_separate)


def manager_name(field_manager: str | None, user_agent: str) -> str:
    """``fieldManager``, or the User-Agent up to its first ``/`` (``kopf/1.45`` is ``kopf``)."""
    if field_manager:
        if len(field_manager) > MAX_MANAGER_LENGTH or not field_manager.isprintable():
            detail = f'Invalid value: "{field_manager}": must be less than {MAX_MANAGER_LENGTH} characters'
            raise _patch_options_invalid("fieldManager", "FieldValueInvalid", detail)
        return field_manager
    return user_agent.split("/", 1)[0][:MAX_MANAGER_LENGTH] or "unknown"


def _patch_options_invalid(field: str, reason: str, detail: str) -> errors.ApiError:
    return errors.invalid("PatchOptions", "meta.k8s.io", "", [FieldError(field, reason, detail)])


def check_patch_options(patch_type: str, params: Mapping[str, str]) -> bool:
    """``force`` of a PATCH: only an apply may force, and an apply needs a ``fieldManager``."""
    force = params.get("force", "").lower() in ("true", "1")
    if patch_type != APPLY_PATCH:
        if force:
            raise _patch_options_invalid(
                "force", "FieldValueForbidden", "Forbidden: may not be specified for non-apply patch"
            )
        return False
    if not params.get("fieldManager"):
        raise _patch_options_invalid(
            "fieldManager", "FieldValueRequired", "Required value: is required for apply patch"
        )
    return force


def read_apply_configuration(data: bytes, rt: ResourceType, kind: str) -> dict[str, Any]:
    """An apply body (YAML or JSON), which must name its apiVersion and kind."""
    config = read_object(
        data, "application/yaml", group=rt.group, version=rt.version, kind=kind, custom=rt.custom
    )
    api_version = str(config.get("apiVersion") or "")
    body_kind = str(config.get("kind") or "")
    if not api_version or not body_kind:
        group, _, version = api_version.rpartition("/")
        raise errors.bad_request(f"invalid object type: {group}/{version}, Kind={body_kind}")
    return config
