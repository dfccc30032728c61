"""Structured merge over OpenAPI schemas: the subset of sigs.k8s.io/structured-merge-diff that server-side
apply and ``managedFields`` need, on plain JSON values.

A field path is a tuple of path elements spelled as in ``fieldsV1``: ``f:<field>`` for a field or map key,
``k:{"name":"x"}`` for an item of an associative list (``x-kubernetes-list-type: map``), ``v:"x"`` for an
item of a set, ``i:<n>`` for a list item without keys. Schemas are read as structured-merge-diff reads
them: ``properties`` are a struct, ``additionalProperties`` a granular map, lists are atomic unless their
``x-kubernetes-list-type`` (or, in built-in schemas, a ``merge`` patch strategy) says otherwise, and
``x-kubernetes-map-type: atomic``, int-or-string and scalars are leaves. Where the schema says nothing,
the value decides (maps are granular, lists atomic), as for ``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]
SchemaLookup = Callable[[str], Mapping[str, Any] | None]  # a component by name, for ``$ref``
MISSING: Any = object()  # absent, as opposed to null


@dataclass(frozen=True)
class Shape:
    """How a position of an object merges: ``leaf``, ``struct``/``map`` (granular) or ``list``."""

    kind: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    element: Any = None  # schema of map values or list items (None: untyped)
    list_type: str = "atomic"
    keys: tuple[str, ...] = ()


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class Structure:
    """Merges, compares and lists the fields of objects of one schema (``root``)."""

    def __init__(self, root: Mapping[str, Any] | None, lookup: SchemaLookup, *, builtin: bool) -> None:
        self.root = root
        self._lookup = lookup
        self._builtin = builtin  # built-in schemas say "merge" patch strategy where CRDs say list-type

    # --- schemas ----------------------------------------------------------------------------------------

    def resolve(self, schema: Any) -> Mapping[str, Any] | None:
        for _ in range(32):
            if not isinstance(schema, Mapping):
                return None
            ref = schema.get("$ref")
            if ref is None:
                all_of = schema.get("allOf")
                if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
                    ref = all_of[0].get("$ref")
            if not isinstance(ref, str):
                return schema
            schema = self._lookup(ref.rsplit("/", 1)[-1])
        return None

    def shape(self, schema: Any, value: Any) -> Shape:
        resolved = self.resolve(schema)
        if not resolved:
            return self._deduced(value)
        if resolved.get("x-kubernetes-int-or-string") or resolved.get("x-kubernetes-map-type") == "atomic":
            return Shape("leaf")
        kind = resolved.get("type")
        properties = resolved.get("properties")
        if kind == "array" or (kind is None and "items" in resolved):
            return self._list_shape(resolved)
        if kind == "object" or isinstance(properties, Mapping) or "additionalProperties" in resolved:
            additional = resolved.get("additionalProperties")
            element = additional if isinstance(additional, Mapping) else None
            if isinstance(properties, Mapping) and properties:
                return Shape("struct", fields=properties, element=element)
            return Shape("map", element=element)
        if kind in ("string", "integer", "number", "boolean"):
            return Shape("leaf")
        return self._deduced(value)

    def _deduced(self, value: Any) -> Shape:
        return Shape("map") if isinstance(value, Mapping) else Shape("leaf")

    def _list_shape(self, schema: Mapping[str, Any]) -> Shape:
        element = schema.get("items")
        list_type = schema.get("x-kubernetes-list-type")
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        if (
            list_type is None
            and self._builtin
            and "merge" in str(schema.get("x-kubernetes-patch-strategy", ""))
        ):
            merge_key = schema.get("x-kubernetes-patch-merge-key")
            list_type, keys = ("map", (str(merge_key),)) if merge_key else ("set", ())
        if list_type in ("set", "map"):
            return Shape("list", element=element, list_type=str(list_type), keys=keys)
        return Shape("leaf")

    def child(self, shape: Shape, key: str) -> Any:
        return shape.fields.get(key, shape.element)

    def item_element(self, shape: Shape, item: Any, index: int) -> str:
        if shape.list_type == "set":
            return "v:" + _compact(item)
        if isinstance(item, Mapping) and shape.keys and all(key in item for key in shape.keys):
            return "k:" + _compact({key: item[key] for key in shape.keys})
        return f"i:{index}"

    def _items(self, shape: Shape, value: Any) -> dict[str, Any]:
        return {self.item_element(shape, item, i): item for i, item in enumerate(value or [])}

    # --- field sets -------------------------------------------------------------------------------------

    def field_set(self, value: Any) -> set[Path]:
        """The fields a value sets (structured-merge-diff's ``ToFieldSet``): leaves, list items, map entries,
        and struct fields that are null or empty; not the structs that merely hold other fields."""
        found: set[Path] = set()
        self._walk_set(value, self.root, (), found)
        return found

    def _walk_set(self, value: Any, schema: Any, path: Path, found: set[Path]) -> None:
        shape = self.shape(schema, value)
        if shape.kind == "leaf":
            found.add(path)
        elif shape.kind == "list":
            if not isinstance(value, list):
                found.add(path)
                return
            for element, item in self._items(shape, value).items():
                self._walk_set(item, shape.element, (*path, element), found)
                found.add((*path, element))
        elif not isinstance(value, Mapping):
            found.add(path)
        else:
            for key, child_value in value.items():
                child_path = (*path, f"f:{key}")
                self._walk_set(child_value, self.child(shape, key), child_path, found)
                if child_value is None or child_value == {} or key not in shape.fields:
                    found.add(child_path)

    # --- merging ----------------------------------------------------------------------------------------

    def merge(self, live: Any, config: Any) -> Any:
        """``config`` applied over ``live``: maps and keyed lists merged, leaves and atomic lists replaced."""
        return self._merge(live, config, self.root)

    def _merge(self, live: Any, config: Any, schema: Any) -> Any:
        if live is MISSING or live is None:
            return copy.deepcopy(config)
        shape = self.shape(schema, config)
        if shape.kind == "list" and isinstance(live, list) and isinstance(config, list):
            merged = self._items(shape, live)
            for element, item in self._items(shape, config).items():
                merged[element] = self._merge(merged.get(element, MISSING), item, shape.element)
            return list(merged.values())
        if shape.kind in ("struct", "map") and isinstance(live, Mapping) and isinstance(config, Mapping):
            result = dict(copy.deepcopy(live))
            for key, value in config.items():
                result[key] = self._merge(live.get(key, MISSING), value, self.child(shape, key))
            return result
        return copy.deepcopy(config)

    # --- comparing --------------------------------------------------------------------------------------

    def compare(self, old: Any, new: Any) -> tuple[set[Path], set[Path], set[Path]]:
        """(added, modified, removed) between two objects (structured-merge-diff's ``Compare``): leaves
        that appear, change or go, and the maps, list items and structs that appear or go."""
        added: set[Path] = set()
        modified: set[Path] = set()
        removed: set[Path] = set()
        self._compare(old, new, self.root, (), added, modified, removed)
        return added, modified, removed

    def _compare(
        self,
        old: Any,
        new: Any,
        schema: Any,
        path: Path,
        added: set[Path],
        modified: set[Path],
        removed: set[Path],
    ) -> None:
        shape = self.shape(schema, new if new is not MISSING else old)
        empty = all(side in (MISSING, None) or side in ({}, []) for side in (old, new))
        containers = (
            shape.kind == "list" and all(isinstance(s, list) for s in (old, new) if s is not MISSING)
        ) or (
            shape.kind in ("struct", "map")
            and all(isinstance(s, Mapping) for s in (old, new) if s is not MISSING)
        )
        if shape.kind == "leaf" or empty or not containers:
            if old is MISSING:
                added.add(path)
            elif new is MISSING:
                removed.add(path)
            elif old != new:
                modified.add(path)
            return
        if shape.kind == "list":
            old_items = self._items(shape, old if old is not MISSING else [])
            new_items = self._items(shape, new if new is not MISSING else [])
            for element in {**old_items, **new_items}:
                self._compare(
                    old_items.get(element, MISSING),
                    new_items.get(element, MISSING),
                    shape.element,
                    (*path, element),
                    added,
                    modified,
                    removed,
                )
        else:
            old_map = old if old is not MISSING else {}
            new_map = new if new is not MISSING else {}
            for key in {**old_map, **new_map}:
                self._compare(
                    old_map.get(key, MISSING),
                    new_map.get(key, MISSING),
                    self.child(shape, key),
                    (*path, f"f:{key}"),
                    added,
                    modified,
                    removed,
                )
        if path and old is MISSING:
            added.add(path)
        elif path and new is MISSING:
            removed.add(path)

    # --- removing ---------------------------------------------------------------------------------------

    def remove(self, obj: dict[str, Any], path: Path) -> bool:
        """Remove the field or item at ``path`` from ``obj`` in place; whether it was there."""
        parents = list(self._descend(obj, path))
        if len(parents) != len(path):
            return False
        container, element = parents[-1]
        if element.startswith("f:") and isinstance(container, dict):
            return container.pop(element[2:], MISSING) is not MISSING
        if isinstance(container, list):
            shape = Shape(
                "list", list_type="set" if element.startswith("v:") else "map", keys=self._keys(element)
            )
            for index, item in enumerate(container):
                if self.item_element(shape, item, index) == element:
                    del container[index]
                    return True
        return False

    def _keys(self, element: str) -> tuple[str, ...]:
        if element.startswith("k:"):
            return tuple(sorted(json.loads(element[2:])))
        return ()

    def _descend(self, obj: Any, path: Path) -> Iterator[tuple[Any, str]]:
        """(container, element) for each element of ``path`` that exists."""
        current = obj
        for element in path:
            yield current, element
            if element.startswith("f:") and isinstance(current, Mapping):
                current = current.get(element[2:], MISSING)
            elif isinstance(current, list):
                shape = Shape(
                    "list", list_type="set" if element.startswith("v:") else "map", keys=self._keys(element)
                )
                current = next(
                    (item for i, item in enumerate(current) if self.item_element(shape, item, i) == element),
                    MISSING,
                )
            else:
                current = MISSING
            if current is MISSING:
                return


def path_text(path: Path) -> str:
    """A path as the API server prints it in conflicts: ``.spec.ports[name="http"].port``."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            keys = json.loads(rest)
            text += "[" + ",".join(f"{key}={json.dumps(value)}" for key, value in keys.items()) + "]"
        elif kind == "v":
            text += f"[={rest}]"
        else:
            text += f"[{rest}]"
    return text
