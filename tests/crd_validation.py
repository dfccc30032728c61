"""Validate objects against the CRDs' ``openAPIV3Schema`` with jsonschema (Draft 7), for the tests.

The CRD dialect differs from plain JSON Schema in ``nullable`` and the ``x-kubernetes-*`` extensions; this
module bridges the two and mimics the API server's strict field validation (unknown fields are errors).
The operator never validates manifests itself (the API server does), so this lives with the tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jsonschema

from twilio_video_operator.crdgen import build_crds

Schema = dict[str, Any]


def to_jsonschema(schema: Mapping[str, Any], *, strict: bool = True) -> Schema:
    """A JSON Schema (Draft 7) equivalent of a CRD schema node: ``nullable`` becomes a null type.

    With ``strict``, objects that declare ``properties`` refuse unknown fields, as the API server's strict
    field validation does.
    """
    result: Schema = {}
    for key, value in schema.items():
        if key == "properties":
            result[key] = {name: to_jsonschema(sub, strict=strict) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, Mapping)):
            result[key] = to_jsonschema(value, strict=strict)
        elif key == "x-kubernetes-list-type" and value == "set":
            result["uniqueItems"] = True  # the API server refuses duplicates in a set
        elif key == "nullable" or key.startswith("x-kubernetes-"):
            continue
        else:
            result[key] = value
    if schema.get("nullable") and "type" in schema:
        result["type"] = [schema["type"], "null"]
    if strict and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        result["additionalProperties"] = False
    return result


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_rfc3339(value: object) -> bool:
    """RFC 3339 date-time with an explicit offset, as Kubernetes accepts for ``format: date-time``."""
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(re.sub(r"\.\d+", "", value).upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(_is_rfc3339)


def _format_path(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def schema_problems(schema: Mapping[str, Any], instance: Any) -> list[str]:
    """``path: message`` for everything in ``instance`` that the CRD schema refuses (empty when valid)."""
    validator = jsonschema.Draft7Validator(to_jsonschema(schema), format_checker=FORMAT_CHECKER)
    errors = sorted(
        validator.iter_errors(instance), key=lambda error: [str(part) for part in error.absolute_path]
    )
    return [f"{_format_path(list(error.absolute_path))}: {error.message}" for error in errors]


def manifest_problems(
    manifest: Mapping[str, Any], crds: Sequence[Mapping[str, Any]] | None = None
) -> list[str]:
    """Validate one object of our kinds against its CRD schema; return ``path: message`` lines."""
    api_version = str(manifest.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    for crd in crds if crds is not None else build_crds():
        if crd["spec"]["group"] != group or crd["spec"]["names"]["kind"] != manifest.get("kind"):
            continue
        for entry in crd["spec"]["versions"]:
            if entry["name"] == version and entry["served"]:
                return schema_problems(entry["schema"]["openAPIV3Schema"], dict(manifest))
    return [f"(root): no served CRD for apiVersion {api_version!r}, kind {manifest.get('kind')!r}"]
