"""Structural-schema handling of custom objects: pruning, defaulting and validation.

A CRD's ``openAPIV3Schema`` is OpenAPI 3.0 with Kubernetes extensions. It is turned into a JSON Schema
(draft 4 semantics: boolean ``exclusiveMaximum``) for jsonschema, with ``nullable`` and
``x-kubernetes-int-or-string`` expressed as types; ``x-kubernetes-validations`` (CEL) and ``format`` are
not enforced. Errors are worded like the API server's, e.g.
``spec.size: Invalid value: 51: spec.size in body should be less than or equal to 50``.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import ValidationError

from twilio_video_playground.kube.errors import FieldError

_ROOT_SKIPPED = ("apiVersion", "kind", "metadata")
_IGNORED_KEYWORDS = {"nullable", "format", "default", "description", "example", "externalDocs", "title"}
_NESTED_SCHEMA_KEYWORDS = {"items", "additionalProperties", "not"}
_SCHEMA_LIST_KEYWORDS = {"allOf", "anyOf", "oneOf"}


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Translate one OpenAPI v3 (Kubernetes-flavoured) schema node into a JSON Schema node."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _IGNORED_KEYWORDS or key.startswith("x-kubernetes-"):
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in _NESTED_SCHEMA_KEYWORDS and isinstance(value, Mapping):
            out[key] = to_json_schema(value)
        elif key in _SCHEMA_LIST_KEYWORDS and isinstance(value, list):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if schema.get("nullable"):
        declared = out.get("type")
        if isinstance(declared, str):
            out["type"] = [declared, "null"]
        elif isinstance(declared, list):
            out["type"] = [*declared, "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_value(value: Any) -> str:
    """A value as the API server quotes it in messages (``51``, ``"huge"``, ``true``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return f'"{_json_type(value)}"'
    return json.dumps(value)


def _field_path(parts: Iterable[Any]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _child(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _describe(error: ValidationError) -> list[FieldError]:
    """Turn one jsonschema error into the API server's field errors."""
    field = _field_path(error.absolute_path)
    where = field or "body"
    keyword: Any = error.validator
    limit: Any = error.validator_value
    value: Any = error.instance
    invalid = f"Invalid value: {_go_value(value)}: {where} in body"
    if keyword == "required":
        missing = [name for name in limit if isinstance(value, dict) and name not in value]
        return [FieldError(_child(field, name), "FieldValueRequired", "Required value") for name in missing]
    if keyword == "type":
        expected = [limit] if isinstance(limit, str) else [t for t in limit if t != "null"]
        actual = _json_type(value)
        detail = (
            f'Invalid value: "{actual}": {where} in body must be of type {",".join(expected)}: "{actual}"'
        )
        return [FieldError(field, "FieldValueTypeInvalid", detail)]
    if keyword == "enum":
        supported = ", ".join(_go_value(option) for option in limit if option is not None)
        detail = f"Unsupported value: {_go_value(value)}: supported values: {supported}"
        return [FieldError(field, "FieldValueNotSupported", detail)]
    schema: Any = error.schema
    exclusive = bool(schema.get("exclusiveMaximum" if keyword == "maximum" else "exclusiveMinimum"))
    simple: dict[str, tuple[str, str]] = {
        "maximum": (
            "FieldValueInvalid",
            f"{invalid} should be less than {'' if exclusive else 'or equal to '}",
        ),
        "minimum": (
            "FieldValueInvalid",
            f"{invalid} should be greater than {'' if exclusive else 'or equal to '}",
        ),
        "pattern": ("FieldValueInvalid", f"{invalid} should match "),
        "minLength": ("FieldValueInvalid", f"{invalid} should be at least "),
        "minItems": ("FieldValueInvalid", f"{invalid} should have at least "),
        "minProperties": ("FieldValueInvalid", f"{invalid} should have at least "),
        "maxProperties": ("FieldValueInvalid", f"{invalid} should have at most "),
        "multipleOf": ("FieldValueInvalid", f"{invalid} should be a multiple of "),
    }
    suffix = {"pattern": "'{}'", "minLength": "{} chars long", "minItems": "{} items"}
    suffix |= {"minProperties": "{} properties", "maxProperties": "{} properties"}
    if keyword in simple:
        reason, text = simple[keyword]
        bound = _go_value(limit) if not isinstance(limit, str) else limit
        return [FieldError(field, reason, text + suffix.get(keyword, "{}").format(bound))]
    if keyword == "maxLength":
        return [FieldError(field, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")]
    if keyword == "maxItems":
        detail = f"Too many: {len(value)}: must have at most {limit} items"
        return [FieldError(field, "FieldValueTooMany", detail)]
    if keyword == "uniqueItems":
        return [FieldError(field, "FieldValueDuplicate", f"Duplicate value: {_go_value(value)}")]
    combinators = {
        "anyOf": "must validate at least one schema (anyOf)",
        "oneOf": "must validate one and only one schema (oneOf)",
        "not": "must not validate the schema (not)",
    }
    detail = f"{invalid} {combinators.get(str(keyword), error.message)}"
    return [FieldError(field, "FieldValueInvalid", detail)]


def _pattern(validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    try:
        found = re.search(pattern, instance)
    except (re.error, TypeError):  # RE2 syntax Python does not know (``\\z``...): not enforced here
        return
    if not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _multiple_of(validator: Any, factor: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "number"):
        return
    try:
        quotient = instance / factor
        failed = math.isfinite(quotient) and quotient != math.trunc(quotient)
    except (ArithmeticError, TypeError):  # Go's float division gives ±Inf here, which passes
        return
    if failed:
        yield ValidationError(f"{instance!r} is not a multiple of {factor}")


# Draft 4 with the API server's float arithmetic and without patterns Python cannot compile
_Validator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft4Validator, {"pattern": _pattern, "multipleOf": _multiple_of}
)


class SchemaValidator:
    """Prune, default and validate objects of one custom resource version against its schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema: dict[str, Any] = copy.deepcopy(dict(schema))
        root = to_json_schema(self.schema)
        properties = root.get("properties")
        if isinstance(properties, dict) and "metadata" in properties:
            properties["metadata"] = {"type": "object"}  # ObjectMeta is validated by the server itself
        self._validator = _Validator(root)

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop fields the schema does not know (in place); returns the dropped field paths."""
        dropped: list[str] = []
        _prune(obj, self.schema, "", dropped, root=True)
        return dropped

    def default(self, obj: dict[str, Any]) -> None:
        """Apply schema defaults (in place); non-nullable nulls get the default or are dropped."""
        _default(obj, self.schema, root=True)

    def validate(self, obj: Mapping[str, Any]) -> list[FieldError]:
        errors: dict[tuple[str, str, str], FieldError] = {}
        for error in self._validator.iter_errors(obj):
            for field_error in _describe(error):
                errors.setdefault((field_error.field, field_error.reason, field_error.detail), field_error)
        return sorted(errors.values(), key=lambda e: e.field)


def _prune(
    value: Any, schema: Mapping[str, Any], path: str, dropped: list[str], *, root: bool = False
) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        for key in list(value):
            if (root or embedded) and key in _ROOT_SKIPPED:
                continue
            child = _child(path, key)
            if key in properties:
                _prune(value[key], properties[key], child, dropped)
            elif isinstance(additional, Mapping):
                _prune(value[key], additional, child, dropped)
            elif not (additional is True or preserve):
                del value[key]
                dropped.append(child)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                _prune(item, items, f"{path}[{index}]", dropped)


def _default(value: Any, schema: Mapping[str, Any], *, root: bool = False) -> None:
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        for key, sub in properties.items():
            if root and key in _ROOT_SKIPPED:
                continue
            if key in value and value[key] is None and not sub.get("nullable"):
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                else:
                    del value[key]
            elif key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if root and key in _ROOT_SKIPPED:
                continue
            if key in properties:
                _default(item, properties[key])
            elif isinstance(additional, Mapping):
                _default(item, additional)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for item in value:
                _default(item, items)
