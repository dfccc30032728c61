"""``metadata.managedFields`` and server-side apply, as the API server's field manager keeps them.

Every write records which manager owns which fields. A create, update or non-apply patch (operation
``Update``) gives its manager the fields it added or changed and takes them from the other managers. An
apply (operation ``Apply``) gives its manager exactly the fields of its configuration; a field it changes
that another manager owns is a conflict (409) unless ``force`` takes it over; fields it applied before and
no longer applies are removed from the object unless another manager owns them. Entries are keyed by
manager, operation and subresource (and API version for ``Update``), sorted as the API server sorts them,
and an entry's ``time`` moves only when its manager changed something.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twilio_video_playground.kube.errors import ApiError
from twilio_video_playground.kube.structured import MISSING, Path, Structure, path_text

APPLY = "Apply"
UPDATE = "Update"
# Fields nobody owns: type and object metadata the server sets (the field manager's "strip meta" set).
STRIPPED: frozenset[Path] = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        *(
            ("f:metadata", f"f:{name}")
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    }
)


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    fields: set[Path]
    time: str | None = None
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """How conflicts name the manager: ``"kubectl"`` or ``"kopf" using v1``."""
        if self.operation == UPDATE:
            return f'"{self.manager}" using {self.api_version}'
        return f'"{self.manager}"'


class ConflictError(Exception):
    def __init__(self, conflicts: list[tuple[Entry, Path]]) -> None:
        self.conflicts = conflicts
        super().__init__(conflict_message(conflicts))


def conflict_message(conflicts: list[tuple[Entry, Path]]) -> str:
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_text(path)}"
    by_manager: dict[str, list[str]] = {}
    for entry, path in conflicts:
        by_manager.setdefault(entry.describe(), []).append(path_text(path))
    parts = [
        f"conflicts with {manager}:\n- " + "\n- ".join(sorted(paths))
        for manager, paths in sorted(by_manager.items())
    ]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(parts)


# --- fieldsV1 ----------------------------------------------------------------------------------------------


def encode_fields(paths: set[Path]) -> dict[str, Any]:
    """The ``fieldsV1`` tree of a set of paths (a member with children carries ``".": {}``)."""
    tree: dict[str, Any] = {}
    members: set[Path] = set(paths)
    for path in sorted(paths):
        node = tree
        for element in path:
            node = node.setdefault(element, {})

    def mark(node: dict[str, Any], prefix: Path) -> None:
        for element, child in node.items():
            if element == ".":
                continue
            path = (*prefix, element)
            if child and path in members:
                child["."] = {}
            mark(child, path)

    mark(tree, ())
    return _sorted_tree(tree)


def _sorted_tree(node: dict[str, Any]) -> dict[str, Any]:
    return {key: _sorted_tree(node[key]) for key in sorted(node)}


def decode_fields(tree: Any, prefix: Path = ()) -> set[Path]:
    found: set[Path] = set()
    if not isinstance(tree, Mapping):
        raise ValueError("fieldsV1 must be an object")
    for element, child in tree.items():
        if element == ".":
            found.add(prefix)
            continue
        if not isinstance(element, str) or element[:2] not in ("f:", "k:", "v:", "i:"):
            raise ValueError(f"invalid path element {element!r}")
        path = (*prefix, element)
        if not child:
            found.add(path)
        else:
            found |= decode_fields(child, path)
    return found


def decode_entries(raw: Any) -> list[Entry] | None:
    """The entries of ``metadata.managedFields``, or None when they are absent or do not decode."""
    if not isinstance(raw, list) or not raw:
        return None
    entries = []
    try:
        for item in raw:
            entries.append(
                Entry(
                    manager=str(item.get("manager", "")),
                    operation=str(item.get("operation", "")),
                    api_version=str(item.get("apiVersion", "")),
                    fields=decode_fields(item.get("fieldsV1") or {}),
                    time=item.get("time"),
                    subresource=str(item.get("subresource") or ""),
                )
            )
    except (AttributeError, ValueError, json.JSONDecodeError):
        return None
    return entries


def encode_entries(entries: list[Entry]) -> list[dict[str, Any]]:
    kept = [entry for entry in entries if entry.fields]
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    encoded = []
    for entry in kept:
        item: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
        }
        if entry.time is not None:
            item["time"] = entry.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = encode_fields(entry.fields)
        if entry.subresource:
            item["subresource"] = entry.subresource
        encoded.append(item)
    return encoded


# --- ownership ---------------------------------------------------------------------------------------------


def _owned(paths: set[Path], subresource: str | None, status_separate: bool) -> set[Path]:
    """What a write may own: no stripped metadata, and on an object with a status subresource, only
    ``status`` through ``/status`` and everything else through the object."""
    kept = {path for path in paths if path and path not in STRIPPED}
    if not status_separate:
        return kept
    if subresource == "status":
        return {path for path in kept if path[0] == "f:status"}
    return {path for path in kept if path[0] != "f:status"}


class FieldManager:
    """Ownership bookkeeping for the objects of one schema."""

    def __init__(self, structure: Structure, *, status_separate: bool) -> None:
        self.structure = structure
        self.status_separate = status_separate

    def update(
        self,
        entries: list[Entry],
        old: Any,
        new: Mapping[str, Any],
        *,
        manager: str,
        api_version: str,
        subresource: str | None,
        now: str,
    ) -> list[Entry]:
        """After a create (``old`` MISSING), update or patch by ``manager``."""
        added, modified, removed = self.structure.compare({} if old is MISSING else _bare(old), _bare(new))
        changed = _owned(added | modified, subresource, self.status_separate)
        gone = _owned(removed, subresource, self.status_separate)
        result = [copy.copy(entry) for entry in entries]
        for entry in result:
            entry.fields = entry.fields - changed - gone
        mine = Entry(manager, UPDATE, api_version, set(), now, subresource or "")
        current = next((e for e in result if e.identity == mine.identity), None)
        if current is None:
            result.append(mine)
            current = mine
        if changed:
            current.fields |= changed
            current.time = now
        return [entry for entry in result if entry.fields]

    def apply(
        self,
        entries: list[Entry],
        live: Any,
        config: Mapping[str, Any],
        *,
        manager: str,
        api_version: str,
        subresource: str | None,
        force: bool,
        now: str,
    ) -> tuple[dict[str, Any], list[Entry]]:
        """The object after ``manager`` applies ``config``, and the new entries; ConflictError otherwise."""
        base = {} if live is MISSING else _bare(live)
        config = _bare(config)
        applied = _owned(self.structure.field_set(config), subresource, self.status_separate)
        merged = self.structure.merge(base, _only(config, applied, self.structure))
        added, modified, removed = self.structure.compare(base, merged)
        changed = added | modified
        identity = Entry(manager, APPLY, api_version, set(), None, subresource or "").identity
        result = [copy.copy(entry) for entry in entries]
        conflicts = [
            (entry, path)
            for entry in result
            if entry.identity != identity
            for path in sorted(entry.fields & changed)
        ]
        if conflicts and not force:
            raise ConflictError(conflicts)
        previous = next((e for e in result if e.identity == identity), None)
        last_applied = previous.fields if previous is not None else set()
        for entry in result:
            if entry.identity != identity:
                entry.fields = entry.fields - changed - removed
        others = set().union(*(e.fields for e in result if e.identity != identity))
        self._prune(merged, last_applied - applied - others, applied | others)
        if previous is None:
            previous = Entry(manager, APPLY, api_version, set(), None, subresource or "")
            result.append(previous)
        object_changed = merged != base
        if object_changed or previous.fields != applied:
            previous.time = now if object_changed or previous.time is None else previous.time
        previous.api_version = api_version
        previous.fields = applied
        return merged, [entry for entry in result if entry.fields]

    def _prune(self, obj: dict[str, Any], candidates: set[Path], owned: set[Path]) -> None:
        """Remove what the applier gave up and nobody else owns, with any container emptied by it."""
        removed: list[Path] = []
        for path in sorted(candidates, key=len):  # a list item goes whole, before its keys could go
            if any(path[: len(done)] == done for done in removed):
                continue
            if any(other[: len(path)] == path for other in owned):
                continue
            if self.structure.remove(obj, path):
                removed.append(path)
            for depth in range(len(path) - 1, 0, -1):
                parent = path[:depth]
                if parent in owned or any(other[:depth] == parent for other in owned):
                    break
                value = _at(obj, parent)
                if value in ({}, []):
                    self.structure.remove(obj, parent)
                else:
                    break


def _at(obj: Any, path: Path) -> Any:
    current = obj
    for element in path:
        if not element.startswith("f:") or not isinstance(current, Mapping):
            return MISSING
        current = current.get(element[2:], MISSING)
    return current


def _bare(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without its managedFields (never part of a comparison)."""
    copied = copy.deepcopy(dict(obj))
    metadata = copied.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return copied


def _only(config: dict[str, Any], applied: set[Path], structure: Structure) -> dict[str, Any]:
    """``config`` without what the write may not own (``status`` through the object, say)."""
    kept = copy.deepcopy(config)
    for path in structure.field_set(config) - applied:
        if path and not any(other[: len(path)] == path for other in applied) and path not in STRIPPED:
            structure.remove(kept, path)
    return kept


def apply_conflict(error: ConflictError) -> ApiError:
    """The 409 of an apply that would take fields from other managers, worded as the API server words it."""
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f"conflict with {entry.describe()}",
            "field": path_text(path),
        }
        for entry, path in error.conflicts
    ]
    return ApiError(409, str(error), reason="Conflict", details={"causes": causes})
