"""What the API server checks and fills in on writes: names, built-in specifics, CRDs, schemas, finalizers."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

from twilio_video_operator.dev.kube import errors
from twilio_video_operator.dev.kube.errors import FieldError
from twilio_video_operator.dev.kube.rbac import admit_rbac, is_rbac
from twilio_video_operator.dev.kube.registry import (
    CRD_CLEANUP_FINALIZER,
    Registry,
    ResourceType,
    validate_crd,
)

SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def now_timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_crd(resource_type: ResourceType) -> bool:
    return (resource_type.group, resource_type.plural) == (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    )


def is_namespace(resource_type: ResourceType) -> bool:
    return (resource_type.group, resource_type.plural) == ("", "namespaces")


def check_name(rt: ResourceType, name: str) -> None:
    """Names are DNS subdomains; namespace names are DNS labels."""
    if is_namespace(rt):
        ok, message = bool(_DNS_LABEL.match(name)) and len(name) <= 63, _LABEL_MESSAGE
    else:
        ok, message = bool(_DNS_SUBDOMAIN.match(name)) and len(name) <= 253, _SUBDOMAIN_MESSAGE
    if not ok:
        error = FieldError("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {message}')
        raise errors.invalid(rt.kind, rt.group, name, [error])


def check_no_new_finalizers(
    rt: ResourceType, name: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> None:
    """An object being deleted may lose finalizers but not gain any."""
    added = [item for item in new.get("finalizers") or [] if item not in (old.get("finalizers") or [])]
    if added:
        listed = ", ".join(json.dumps(item) for item in added)
        detail = (
            "Forbidden: no new finalizers can be added if the object is being deleted, "
            f"found new finalizers []string{{{listed}}}"
        )
        raise errors.invalid(
            rt.kind, rt.group, name, [FieldError("metadata.finalizers", "FieldValueForbidden", detail)]
        )


def prepare_builtin(
    registry: Registry, rt: ResourceType, current: Mapping[str, Any] | None, obj: dict[str, Any]
) -> None:
    """Fill in what the server owns for Namespaces, Secrets and CRDs, and default and validate RBAC objects
    (``current`` is None on create)."""
    if is_namespace(rt):
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        if current is None:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        else:
            obj["spec"] = copy.deepcopy(current.get("spec") or {})
    elif (rt.group, rt.plural) == ("", "secrets"):
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.get("data") or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        obj.setdefault("type", "Opaque")
    elif is_crd(rt):
        prepare_crd(registry, current, obj)
    elif is_rbac(rt):
        admit_rbac(rt, current, obj)


def prepare_crd(registry: Registry, current: Mapping[str, Any] | None, crd: dict[str, Any]) -> None:
    """Validate a CRD and set its status (accepted names, conditions, stored versions) and finalizer."""
    name = str(crd["metadata"]["name"])
    problems = validate_crd(crd)
    spec = crd.get("spec") or {}
    group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
    owner = registry.owner_of(str(group), str(plural)) if not problems else None
    if owner is not None and owner != name:
        detail = f'Invalid value: "{plural}": the resource {plural}.{group} is already served'
        problems.append(FieldError("spec.names.plural", "FieldValueInvalid", detail))
    if problems:
        raise errors.invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, problems)
    for version in spec["versions"]:
        version.setdefault("served", True)
    if current is None:
        crd["metadata"].setdefault("finalizers", [])
        if CRD_CLEANUP_FINALIZER not in crd["metadata"]["finalizers"]:
            crd["metadata"]["finalizers"].append(CRD_CLEANUP_FINALIZER)
    old_status = (current or {}).get("status") or {}
    storage = next(v["name"] for v in spec["versions"] if v.get("storage"))
    stored_versions = list(old_status.get("storedVersions") or [])
    if storage not in stored_versions:
        stored_versions.append(storage)
    since = now_timestamp()
    crd["status"] = {
        "acceptedNames": copy.deepcopy(spec["names"]),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": since,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": since,
            },
        ],
        "storedVersions": stored_versions,
    }
    if old_status.get("conditions"):
        crd["status"]["conditions"] = copy.deepcopy(old_status["conditions"])


def admit_custom(rt: ResourceType, obj: dict[str, Any], name: str, *, strict: bool) -> list[str]:
    """Prune unknown fields, apply defaults and validate a custom object against its schema."""
    validator = rt.validator
    if validator is None:
        return []
    dropped = validator.prune(obj)
    if dropped and strict:
        unknown = ", ".join(f'unknown field "{path}"' for path in dropped)
        raise errors.bad_request(f"strict decoding error: {unknown}")
    validator.default(obj)
    problems = validator.validate(obj)
    if problems:
        raise errors.invalid(rt.kind, rt.group, name, problems)
    return dropped


def holders(rt: ResourceType, obj: Mapping[str, Any]) -> bool:
    """Whether finalizers (or a namespace's spec.finalizers) keep the object from being removed."""
    if obj["metadata"].get("finalizers"):
        return True
    return is_namespace(rt) and bool((obj.get("spec") or {}).get("finalizers"))


def spec_view(rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What counts for ``generation``: everything but metadata (and status, if it is a subresource)."""
    skipped = {"metadata", "apiVersion", "kind"} | ({"status"} if "status" in rt.subresources else set())
    return {key: value for key, value in obj.items() if key not in skipped}
