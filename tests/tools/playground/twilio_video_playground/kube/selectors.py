"""Label and field selectors as the API server parses and applies them on list and watch."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector that cannot be parsed or uses an unsupported field (answered as 400)."""


_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(
    rf"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?{_LABEL_NAME}$"
)
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")
_SET_TERM = re.compile(r"^(?P<key>[^\s!=(),]+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        present = self.key in labels
        value = str(labels.get(self.key, ""))
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        return not present  # "!"


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` value lists."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term.strip() for term in terms if term.strip()]


def _check_key(key: str) -> str:
    if not _LABEL_KEY.match(key):
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r}")
    return key


def _check_values(values: Iterable[str]) -> frozenset[str]:
    checked = frozenset(value.strip() for value in values)
    for value in checked:
        if not _LABEL_VALUE.match(value):
            raise SelectorError(f"unable to parse requirement: invalid label value {value!r}")
    return checked


def parse_label_selector(text: str) -> list[LabelRequirement]:
    requirements: list[LabelRequirement] = []
    for term in _split_terms(text):
        set_term = _SET_TERM.match(term)
        if set_term:
            values = [value for value in set_term["values"].split(",") if value.strip()]
            requirements.append(
                LabelRequirement(_check_key(set_term["key"]), set_term["op"], _check_values(values))
            )
        elif term.startswith("!"):
            requirements.append(LabelRequirement(_check_key(term[1:].strip()), "!"))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            requirements.append(LabelRequirement(_check_key(key.strip()), "!=", _check_values([value])))
        elif "==" in term or "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            requirements.append(LabelRequirement(_check_key(key.strip()), "=", _check_values([value])))
        else:
            requirements.append(LabelRequirement(_check_key(term), "exists"))
    return requirements


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = field_value(obj, self.field)
        return actual == self.value if self.operator == "=" else actual != self.value


# Field selector names that are aliases of a longer path in the object (events' "source").
_FIELD_ALIASES = {"source": "source.component"}


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string form of a dotted field, as field selectors compare it (absent -> empty string)."""
    current: Any = obj
    for part in _FIELD_ALIASES.get(field, field).split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def parse_field_selector(
    text: str, supported: Iterable[str], *, custom: bool = True
) -> list[FieldRequirement]:
    """Field selector terms on ``supported`` fields; the refusal of another field is worded as the API
    server words it for custom resources, and for built-ins that select on metadata only."""
    allowed = set(supported)
    requirements: list[FieldRequirement] = []
    for term in _split_terms(text):
        if "!=" in term:
            field, value = term.split("!=", 1)
            operator = "!="
        elif "==" in term:
            field, value = term.split("==", 1)
            operator = "="
        elif "=" in term:
            field, value = term.split("=", 1)
            operator = "="
        else:
            raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")
        field = field.strip()
        if field not in allowed:
            if not custom and allowed == {"metadata.name", "metadata.namespace"}:
                raise SelectorError(
                    f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                )
            raise SelectorError(f"field label not supported: {field}")
        requirements.append(FieldRequirement(field, operator, value.strip()))
    return requirements


@dataclass(frozen=True)
class Selection:
    """Everything that narrows a list or watch: namespace, name, labels and fields."""

    namespace: str | None = None
    labels: tuple[LabelRequirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        labels = metadata.get("labels") or {}
        return all(req.matches(labels) for req in self.labels) and all(
            req.matches(obj) for req in self.fields
        )
