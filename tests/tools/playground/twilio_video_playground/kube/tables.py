"""Server-side ``Table`` rendering (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``).

kubectl prints whatever columns the server returns: a CRD's ``additionalPrinterColumns`` (evaluated with
a JSONPath subset) or a built-in resource's own columns. ``date`` columns are rendered as ages.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_NAME_DESCRIPTION = "Name must be unique within a namespace. Is required when creating resources."
_AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # string, integer, number, boolean, date
    value: Callable[[Mapping[str, Any]], Any]
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def human_duration(seconds: float) -> str:
    """An age like kubectl shows it (k8s.io/apimachinery/pkg/util/duration.HumanDuration)."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = total // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def parse_timestamp(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- JSONPath (the subset printer columns use) ------------------------------------------------------------

_FILTER = re.compile(r"^\?\(@((?:\.[\w-]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


@dataclass(frozen=True)
class _Step:
    kind: str  # "field", "index", "all", "filter"
    key: str = ""
    index: int = 0
    path: tuple[str, ...] = ()
    op: str = ""
    literal: Any = None


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parse_jsonpath(expression: str) -> list[_Step]:
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    text = text.removeprefix("$")
    steps: list[_Step] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char == ".":
            match = re.match(r"\.([^.\[]*)", text[position:])
            assert match is not None
            key = match.group(1)
            position += match.end()
            if key == "*":
                steps.append(_Step("all"))
            elif key:
                steps.append(_Step("field", key=key))
        elif char == "[":
            end = text.find("]", position)
            if end < 0:
                raise ValueError(f"unclosed bracket in JSONPath {expression!r}")
            inner = text[position + 1 : end].strip()
            position = end + 1
            if inner == "*":
                steps.append(_Step("all"))
            elif inner.lstrip("-").isdigit():
                steps.append(_Step("index", index=int(inner)))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                steps.append(_Step("field", key=inner[1:-1]))
            else:
                match = _FILTER.match(inner)
                if match is None:
                    raise ValueError(f"unsupported JSONPath expression {expression!r}")
                path = tuple(part for part in (match.group(1) or "").split(".") if part)
                literal = _literal(match.group(3)) if match.group(3) is not None else None
                steps.append(_Step("filter", path=path, op=match.group(2) or "", literal=literal))
        else:
            raise ValueError(f"unsupported JSONPath expression {expression!r}")
    return steps


def _compare(actual: Any, op: str, literal: Any) -> bool:
    if op == "==":
        return bool(actual == literal)
    if op == "!=":
        return bool(actual != literal)
    try:
        return bool(
            {"<": actual < literal, ">": actual > literal, "<=": actual <= literal, ">=": actual >= literal}[
                op
            ]
        )
    except TypeError:
        return False


def _filter_matches(item: Any, step: _Step) -> bool:
    current = item
    for key in step.path:
        if not isinstance(current, Mapping) or key not in current:
            return False
        current = current[key]
    return True if not step.op else _compare(current, step.op, step.literal)


def evaluate_jsonpath(expression: str, obj: Any) -> list[Any]:
    """All values the expression selects, in order (empty when nothing matches)."""
    current: list[Any] = [obj]
    for step in _parse_jsonpath(expression):
        selected: list[Any] = []
        for item in current:
            if step.kind == "field" and isinstance(item, Mapping) and step.key in item:
                selected.append(item[step.key])
            elif step.kind == "index" and isinstance(item, list) and -len(item) <= step.index < len(item):
                selected.append(item[step.index])
            elif step.kind == "all":
                selected.extend(
                    item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else []
                )
            elif step.kind == "filter":
                candidates = (
                    item if isinstance(item, list) else item.values() if isinstance(item, Mapping) else []
                )
                selected.extend(candidate for candidate in candidates if _filter_matches(candidate, step))
        current = selected
    return current


# --- Columns and cells ----------------------------------------------------------------------------------


def name_column() -> Column:
    return Column(
        "Name", "string", lambda obj: (obj.get("metadata") or {}).get("name"), "name", _NAME_DESCRIPTION
    )


def age_column(name: str = "Age") -> Column:
    return Column(
        name, "date", lambda obj: (obj.get("metadata") or {}).get("creationTimestamp"), "", _AGE_DESCRIPTION
    )


def jsonpath_column(spec: Mapping[str, Any]) -> Column:
    """A column from a CRD's ``additionalPrinterColumns`` entry."""
    expression = str(spec.get("jsonPath", ""))

    def value(obj: Mapping[str, Any]) -> Any:
        try:
            results = evaluate_jsonpath(expression, obj)
        except ValueError:
            return None
        return results[0] if results else None

    return Column(
        name=str(spec.get("name", "")),
        type=str(spec.get("type", "string")),
        value=value,
        format=str(spec.get("format", "")),
        description=str(spec.get("description", "")),
        priority=int(spec.get("priority", 0)),
    )


def _string_cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def cell(column_type: str, value: Any, now: datetime.datetime) -> Any:
    """A cell as the API server converts a JSON value for a column type (cellForJSONValue)."""
    if value is None:
        return None
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        return None
    if column_type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        try:
            return human_duration((now - parse_timestamp(value)).total_seconds())
        except ValueError:
            return "<invalid>"
    return _string_cell(value)


def render_table(
    columns: Sequence[Column],
    objects: Iterable[Mapping[str, Any]],
    *,
    include_object: str,
    resource_version: str,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1`` Table; ``include_object`` is ``None``, ``Metadata`` (default) or ``Object``."""
    moment = now or datetime.datetime.now(datetime.UTC)
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [cell(column.type, column.value(obj), moment) for column in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [column.definition() for column in columns],
        "rows": rows,
    }
