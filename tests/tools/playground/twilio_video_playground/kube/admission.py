"""What the API server checks and fills in on writes: names, built-in specifics, CRDs, schemas, finalizers."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import re
from collections.abc import Mapping
from typing import Any

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.decoding import DecodeError, go_base64_decode, go_quote
from twilio_video_playground.kube.errors import FieldError
from twilio_video_playground.kube.rbac import admit_rbac, is_rbac
from twilio_video_playground.kube.registry import (
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


def _name_problems(rt: ResourceType, name: str, *, prefix: bool = False) -> list[str]:
    """What apimachinery's IsDNS1123Label/IsDNS1123Subdomain say of a name (of a generateName prefix when
    ``prefix``: a trailing dash is allowed there)."""
    if prefix and name.endswith("-"):
        name = name[:-1] + "a"
    label = is_namespace(rt)
    most, pattern, message = (
        (63, _DNS_LABEL, _LABEL_MESSAGE) if label else (253, _DNS_SUBDOMAIN, _SUBDOMAIN_MESSAGE)
    )
    problems = []
    if len(name) > most:
        problems.append(f"must be no more than {most} characters")
    if not pattern.match(name):
        problems.append(message)
    return problems


def check_name(rt: ResourceType, name: str, generate_name: str = "") -> None:
    """Names are DNS subdomains; namespace names are DNS labels; so are generateName prefixes. Core v1
    Events skip that validation (for old clients) and need only be usable in a URL path."""
    if (rt.group, rt.plural) == ("", "events"):
        problems = [f"may not be '{name}'"] if name in (".", "..") else []
        problems += [f"may not contain '{char}'" for char in "/%" if char in name]
        if problems:
            raise errors.bad_request(f"Name parameter invalid: {go_quote(name)}: {';'.join(problems)}")
        return
    found = [
        FieldError(
            "metadata.generateName", "FieldValueInvalid", f"Invalid value: {go_quote(generate_name)}: {text}"
        )
        for text in (_name_problems(rt, generate_name, prefix=True) if generate_name else [])
    ]
    found += [
        FieldError("metadata.name", "FieldValueInvalid", f"Invalid value: {go_quote(name)}: {text}")
        for text in _name_problems(rt, name)
    ]
    if found:
        raise errors.invalid(rt.kind, rt.group, name, found)


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
        labels = obj["metadata"].get("labels") or {}
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        obj["metadata"]["labels"] = labels
        if current is None:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
        else:
            obj["spec"] = copy.deepcopy(current.get("spec") or {})
    elif (rt.group, rt.plural) == ("", "secrets"):
        prepare_secret(obj)
    elif is_crd(rt):
        prepare_crd(registry, current, obj)
    elif is_rbac(rt):
        admit_rbac(rt, current, obj)


def prepare_secret(secret: dict[str, Any]) -> None:
    """Store ``data`` in canonical base64 (as the API server re-encodes the bytes it decoded) with
    ``stringData`` merged in, and default ``type``."""
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[key] = base64.b64encode(go_base64_decode(str(value or ""))).decode()
        except DecodeError:
            data[key] = str(value)  # refused earlier by the decoding of requests; kept as written here
    for key, value in (secret.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode("utf-8", "replace")).decode()
    if data or isinstance(secret.get("data"), dict):
        secret["data"] = data
    else:
        secret.pop("data", None)
    if not secret.get("type"):
        secret["type"] = "Opaque"


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
