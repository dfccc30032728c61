"""The three PATCH formats: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
import json
from typing import Any

from twilio_video_playground.kube.decoding import EMBEDDED_MAX_DEPTH, depth_of

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
# what one JSON patch may copy in all (the API server's --json-patch-max-copy-bytes default)
MAX_COPY_BYTES = 3 * 1024 * 1024


class PatchFormatError(ValueError):
    """The patch document itself is malformed (answered as 400 BadRequest)."""


class PatchApplyError(ValueError):
    """The patch is well-formed but does not apply to the object, incl. a failed ``test`` (422)."""


class PatchTooDeepError(PatchApplyError):
    """An operation would nest the object deeper than the server decodes; ``doc`` is the object so far."""

    def __init__(self, doc: Any) -> None:
        super().__init__(
            "couldn't get version/kind; json parse error: invalid character '{' exceeded max depth"
        )
        self.doc = doc


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A merge patch that also honours the strategic-merge directives kubectl emits.

    Lists are replaced as a whole (no merge keys), like a merge patch; ``$patch: replace|delete``,
    ``$retainKeys`` and ``$deleteFromPrimitiveList/<field>`` are applied; ``$setElementOrder/<field>``
    is dropped.
    """
    if isinstance(patch, list):
        return [_strip_directives(item) for item in patch if not _is_delete_directive(item)]
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
        elif key.startswith("$"):
            continue
        elif value is None or _is_delete_directive(value):
            result.pop(key, None)
        else:
            result[key] = apply_strategic_merge_patch(result.get(key), value)
    if isinstance(retain, list):
        result = {key: value for key, value in result.items() if key in retain}
    return result


def _is_delete_directive(value: Any) -> bool:
    return isinstance(value, dict) and value.get("$patch") == "delete"


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value]
    return copy.deepcopy(value)


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchApplyError(f"invalid JSON pointer: {path!r}")
    if not path:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[Any], part: str, path: str, *, allow_end: bool) -> int:
    if part == "-" and allow_end:
        return len(container)
    if not (part.isascii() and part.isdigit()) or (len(part) > 1 and part.startswith("0")):
        raise PatchApplyError(f"invalid array index {part!r} in {path}")
    index = int(part)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchApplyError(f"array index out of bounds in {path}")
    return index


def _resolve(doc: Any, tokens: list[str], path: str, op: str) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict) and token in current:
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, path, allow_end=False)]
        else:
            raise PatchApplyError(f"{op} operation does not apply: doc is missing path: {path!r}")
    return current


def _json_equal(left: Any, right: Any) -> bool:
    """Equality without Python's ``True == 1`` and ``1 == 1.0`` conflations of booleans."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_json_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(type(left) is type(right) and left == right) or (
        isinstance(left, int | float) and isinstance(right, int | float) and left == right
    )


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], path, "add")
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchApplyError(f"add operation does not apply: doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, tokens: list[str], path: str, op: str = "remove") -> tuple[Any, Any]:
    if not tokens:
        raise PatchApplyError(f"{op} operation does not apply: cannot remove the document root")
    parent = _resolve(doc, tokens[:-1], path, op)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, allow_end=False))
    raise PatchApplyError(f"{op} operation does not apply: doc is missing path: {path!r}")


def _bounded(doc: Any, tokens: list[str], value: Any) -> Any:
    """``value`` if adding it at ``tokens`` keeps the object within the depth this server decodes."""
    if len(tokens) + depth_of(value, EMBEDDED_MAX_DEPTH) > EMBEDDED_MAX_DEPTH:
        raise PatchTooDeepError(doc)
    return value


def apply_json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 incl. ``test``, as evanphx/json-patch applies it for the API server: a malformed document is
    a PatchFormatError, an operation that does not apply a PatchApplyError; copies may add at most
    :data:`MAX_COPY_BYTES` in all."""
    if not isinstance(operations, list):
        raise PatchFormatError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    copied = 0
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchFormatError(f"invalid JSON patch operation: {operation!r}")
        op, path = operation.get("op"), operation.get("path")
        if path is None:
            raise PatchApplyError(f"{op} operation failed to decode path: missing value")
        tokens = _pointer(path)
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchApplyError(f"{op} operation requires a value: {operation!r}")
        if op == "add":
            doc = _add(doc, tokens, _bounded(doc, tokens, copy.deepcopy(operation["value"])), path)
        elif op == "remove":
            doc, _ = _remove(doc, tokens, path)
        elif op == "replace":
            _resolve(doc, tokens, path, "replace")
            value = _bounded(doc, tokens, copy.deepcopy(operation["value"]))
            if tokens:
                doc, _ = _remove(doc, tokens, path, "replace")
            doc = _add(doc, tokens, value, path)
        elif op in ("move", "copy"):
            source = operation.get("from")
            source_tokens = _pointer(source)
            if op == "move":
                if source_tokens != tokens and tokens[: len(source_tokens)] == source_tokens:
                    raise PatchApplyError(f"move operation does not apply: {path} is a child of {source}")
                _bounded(doc, tokens, _resolve(doc, source_tokens, str(source), "move"))
                doc, value = _remove(doc, source_tokens, str(source), "move")
            else:
                value = _bounded(doc, tokens, _resolve(doc, source_tokens, str(source), "copy"))
                copied += len(json.dumps(value, separators=(",", ":")))
                if copied > MAX_COPY_BYTES:
                    raise PatchApplyError(
                        "Unable to complete the copy, the accumulated size increase of copy is "
                        f"{copied}, exceeding the limit {MAX_COPY_BYTES}"
                    )
                value = copy.deepcopy(value)
            doc = _add(doc, tokens, value, path)
        elif op == "test":
            try:
                actual = _resolve(doc, tokens, path, "test")
            except PatchApplyError:
                actual = _MISSING
            if actual is _MISSING or not _json_equal(actual, operation["value"]):
                raise PatchApplyError(f"testing value {path} failed: test failed")
        else:
            raise PatchFormatError(f"Unexpected kind: {op}")
    return doc


_MISSING = object()
