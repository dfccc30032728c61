"""Turn a pydantic model's JSON schema into a structural OpenAPI v3 schema, as CRDs require.

``$ref`` is inlined, ``anyOf [X, null]`` becomes ``X`` with ``nullable: true``, titles are dropped, free-form
objects get ``x-kubernetes-preserve-unknown-fields``, and keywords Kubernetes cannot take are refused
rather than silently dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

Schema = dict[str, Any]

#: Output order of schema keywords (anything else is refused).
KEY_ORDER = (
    "description",
    "type",
    "format",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "default",
    "nullable",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
)
_NULL = {"type": "null"}


class SchemaConversionError(ValueError):
    """The pydantic JSON schema uses something a structural CRD schema cannot express."""


class _StructuralConverter:
    """Turns a pydantic JSON schema into a structural OpenAPI v3 schema for a CRD."""

    def __init__(self, definitions: Mapping[str, Schema], keep_defaults: bool) -> None:
        self._definitions = definitions
        self._keep_defaults = keep_defaults

    def convert(self, schema: Mapping[str, Any], path: str) -> Schema:
        flat = self._flatten(schema, path)
        result: Schema = {}
        for key, value in flat.items():
            if key == "title":
                continue
            if key == "properties":
                result[key] = {name: self.convert(sub, f"{path}.{name}") for name, sub in value.items()}
            elif key == "items":
                result[key] = self.convert(value, f"{path}[]")
            elif key == "additionalProperties":
                if value is True:
                    result["x-kubernetes-preserve-unknown-fields"] = True
                elif isinstance(value, Mapping):
                    result[key] = self.convert(value, f"{path}.*")
            elif key == "const":
                result["enum"] = [value]
            elif key == "default":
                if value is not None and self._keep_defaults:
                    result[key] = value
            elif key == "x-kubernetes-validations":
                result[key] = [_ordered_rule(rule) for rule in value]
            elif key in KEY_ORDER:
                result[key] = copy.deepcopy(value)
            else:
                raise SchemaConversionError(f"{path}: unsupported JSON schema keyword {key!r}")
        if result.get("nullable") and "enum" in result and None not in result["enum"]:
            result["enum"] = [*result["enum"], None]
        if "type" not in result and not result.get("x-kubernetes-preserve-unknown-fields"):
            raise SchemaConversionError(f"{path}: no type")
        return {key: result[key] for key in KEY_ORDER if key in result}

    def _flatten(self, schema: Mapping[str, Any], path: str) -> Schema:
        """Inline ``$ref`` and fold ``anyOf [X, null]`` into ``X`` + ``nullable``; siblings win."""
        skipped = ("$ref", "anyOf", "allOf", "$defs")
        siblings = {key: value for key, value in schema.items() if key not in skipped}
        if "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            return {**self._flatten(self._definitions[name], path), **siblings}
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return {**self._flatten(schema["allOf"][0], path), **siblings}
        if "anyOf" in schema:
            options = [option for option in schema["anyOf"] if option != _NULL]
            if len(options) != 1:
                raise SchemaConversionError(f"{path}: unions other than X-or-null are not structural")
            nullable = len(options) < len(schema["anyOf"])
            merged = {**self._flatten(options[0], path), **siblings}
            if nullable:
                merged["nullable"] = True
            return merged
        if "allOf" in schema or "oneOf" in schema:
            raise SchemaConversionError(f"{path}: allOf/oneOf are not supported")
        return siblings


def _ordered_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    order = ("rule", "message", "messageExpression", "reason", "fieldPath", "optionalOldSelf")
    unknown = set(rule) - set(order)
    if unknown:
        raise SchemaConversionError(f"unsupported keys {sorted(unknown)} in a validation rule")
    return {key: rule[key] for key in order if key in rule}


def model_schema(model: type[BaseModel], *, keep_defaults: bool, path: str) -> Schema:
    """Structural schema of ``model`` (camelCase names, ``$ref`` inlined, ``title`` dropped)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _StructuralConverter(raw.get("$defs", {}), keep_defaults).convert(raw, path)
