"""Request bodies decoded as kube-apiserver's decoders do, with the errors they give.

The API server reads at most 3 MiB of a body (413 past that); its JSON scanner refuses documents nested
deeper than 10 000 levels (``invalid character '[' exceeded max depth``), replaces invalid UTF-8 and lone
surrogates in strings with U+FFFD, and knows no ``NaN`` or ``Infinity``. YAML bodies are turned into JSON
first (timestamps stay strings; excessive aliasing and values JSON cannot carry are errors).

Python's own decoders recurse once per level, so this server refuses bodies nested deeper than
:data:`EMBEDDED_MAX_DEPTH` with the answer the real server gives past its limit; no Kubernetes object
comes near either limit.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

import yaml

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's --max-request-body-bytes default
EMBEDDED_MAX_DEPTH = 200  # encoding/json's own limit (maxNestingDepth) is 10 000
# yaml.v2 refuses documents whose aliases expand them this much (decode operations)
MAX_YAML_NODES = 400_000

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"", b"")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_CONTEXTS = (
    ("Expecting value", "looking for beginning of value"),
    ("Expecting property name enclosed in double quotes", "looking for beginning of object key string"),
    ("Expecting ':' delimiter", "after object key"),
    ("Expecting ',' delimiter", "after object key:value pair"),
    ("Extra data", "after top-level value"),
    ("Invalid control character", "in string literal"),
    ("Invalid \\escape", "in string escape code"),
    ("Unterminated string", "in string literal"),
)


class DecodeError(ValueError):
    """A body the API server's decoder refuses; the text is the decoder's error."""


def go_quote_char(char: str) -> str:
    """A character as Go's encoding/json quotes it in syntax errors: ``'['``, ``'\\x00'``."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    text = json.dumps(char, ensure_ascii=False)[1:-1]
    return f"'{text}'"


def too_deep(data: bytes, limit: int) -> str | None:
    """The decoder's error when ``data`` (JSON text) nests deeper than ``limit``, else None; strings are
    skipped and nothing recurses."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return None
    depth = 0
    for bracket in _STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKETS):
        if bracket in b"[{":
            depth += 1
            if depth > limit:
                return f"invalid character {go_quote_char(chr(bracket))} exceeded max depth"
        else:
            depth -= 1
    return None


def depth_of(value: Any, limit: int) -> int:
    """How deeply ``value`` nests (a scalar: 0, ``{}``: 1), counted without recursion and stopping just past
    ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _no_constant(name: str) -> Any:
    raise DecodeError(f"invalid character {go_quote_char(name[0])} looking for beginning of value")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise DecodeError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return number


def _go_syntax_error(exc: json.JSONDecodeError) -> str:
    if exc.pos >= len(exc.doc):
        return "unexpected end of JSON input"
    char = go_quote_char(exc.doc[exc.pos])
    for python, go in _GO_CONTEXTS:
        if exc.msg.startswith(python):
            return f"invalid character {char} {go}"
    return f"invalid character {char} {exc.msg}"


def _clean_strings(value: Any) -> Any:
    """Lone surrogates become U+FFFD as Go's decoder makes them (in place, without recursion)."""

    def clean(text: str) -> str:
        return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text

    if isinstance(value, str):
        return clean(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in list(item):
                child = item[key]
                if isinstance(child, str):
                    child = clean(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
                fixed = clean(key)
                if fixed != key:
                    del item[key]
                item[fixed] = child
        elif isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    item[index] = clean(child)
                elif isinstance(child, dict | list):
                    stack.append(child)
    return value


def parse_json(data: bytes) -> Any:
    """Decode JSON text as the API server does, or raise DecodeError with its words."""
    if not data.strip():
        raise DecodeError("unexpected end of JSON input")
    deep = too_deep(data, EMBEDDED_MAX_DEPTH)
    if deep:
        raise DecodeError(deep)
    text = data.decode("utf-8", "replace")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise DecodeError(_go_syntax_error(exc)) from exc
    except (ValueError, RecursionError) as exc:  # e.g. integers of more digits than Python converts
        raise DecodeError(f"json: cannot unmarshal number: {exc}") from exc
    return _clean_strings(value)


class _JsonLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it for JSON: timestamps stay strings, keys become strings."""


def _timestamp_as_string(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_JsonLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)
_JsonLoader.add_constructor("tag:yaml.org,2002:binary", _timestamp_as_string)


def _yaml_events_within(text: str) -> None:
    """Walk the YAML events (PyYAML's parser does not recurse) to refuse deep or alias-heavy documents
    before anything recursive sees them."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > EMBEDDED_MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 0
                raise DecodeError(f"yaml: line {line}: exceeded max depth of {EMBEDDED_MAX_DEPTH}")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(value: Any, limit: int) -> int:
    """How many nodes ``value`` has once its aliased parts are copied out, stopping past ``limit``."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _json_compatible(value: Any) -> Any:
    """What YAMLToJSON makes of a loaded YAML value: string keys, finite numbers, no other types."""
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool):
                name = "true" if key else "false"
            elif key is None:
                name = "null"
            elif isinstance(key, str | int | float):
                name = str(key)
            else:
                raise DecodeError(f"error converting YAML to JSON: unsupported map key of type {type(key)}")
            result[name] = _json_compatible(item)
        return result
    if isinstance(value, list):
        return [_json_compatible(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        text = "+Inf" if value > 0 else ("-Inf" if value < 0 else "NaN")
        raise DecodeError(f"error converting YAML to JSON: json: unsupported value: {text}")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def parse_yaml(data: bytes) -> Any:
    """Decode a YAML body into JSON data as the API server does, or raise DecodeError."""
    if len(data) == 0:
        raise DecodeError("unexpected end of JSON input")
    text = data.decode("utf-8", "replace")
    try:
        _yaml_events_within(text)
        value = yaml.load(text, Loader=_JsonLoader)
    except yaml.YAMLError as exc:
        raise DecodeError(f"error converting YAML to JSON: yaml: {exc}") from exc
    if _expanded_size(value, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise DecodeError("error converting YAML to JSON: yaml: document contains excessive aliasing")
    return _clean_strings(_json_compatible(value))


def summarize(data: bytes, max_length: int = 30) -> str:
    """How the API server quotes an undecodable body: the text of an object, the hex of anything else."""
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        text = data[:max_length].decode("utf-8", "replace")
        return text + " ..." if len(data) > max_length else text
    if len(data) > max_length:
        return data[:max_length].hex() + " ..."
    return data.hex()


_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _base64_error_offset(src: bytes) -> int | None:
    """Where Go's base64.StdEncoding.Decode fails on ``src`` (None if it does not): the position of the
    first bad character or of missing padding; ``\\r`` and ``\\n`` are skipped."""
    position = 0
    while position < len(src):
        taken = 0
        while taken < 4:
            if position == len(src):
                if taken == 0:
                    return None
                return position - taken
            char = src[position]
            position += 1
            if char in _BASE64:
                taken += 1
                continue
            if char in b"\r\n":
                continue
            if char != ord("=") or taken < 2:
                return position - 1
            if taken == 2:  # "==" is expected
                while position < len(src) and src[position] in b"\r\n":
                    position += 1
                if position == len(src):
                    return len(src)
                if src[position] != ord("="):
                    return position - 1
                position += 1
            while position < len(src) and src[position] in b"\r\n":
                position += 1
            return position if position < len(src) else None
    return None


def go_base64_decode(text: str) -> bytes:
    """Decode like Go's base64.StdEncoding (padding required, newlines ignored); DecodeError otherwise."""
    src = text.encode("utf-8")
    offset = _base64_error_offset(src)
    if offset is not None:
        raise DecodeError(f"illegal base64 data at input byte {offset}")
    try:
        return base64.b64decode(src.replace(b"\r", b"").replace(b"\n", b""))
    except binascii.Error as exc:
        raise DecodeError(f"illegal base64 data at input byte 0: {exc}") from exc


def go_value(value: Any) -> str:
    """A decoded JSON value as Go's ``%+v`` prints the map an API server decoded it into."""
    parts: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Literal):
            parts.append(item.text)
        elif isinstance(item, dict):
            entries: list[Any] = [_Literal("map[")]
            for index, key in enumerate(sorted(item)):
                if index:
                    entries.append(_Literal(" "))
                entries += [_Literal(f"{key}:"), item[key]]
            entries.append(_Literal("]"))
            stack.extend(reversed(entries))
        elif isinstance(item, list):
            entries = [_Literal("[")]
            for index, element in enumerate(item):
                if index:
                    entries.append(_Literal(" "))
                entries.append(element)
            entries.append(_Literal("]"))
            stack.extend(reversed(entries))
        elif item is None:
            parts.append("<nil>")
        elif isinstance(item, bool):
            parts.append("true" if item else "false")
        elif isinstance(item, float):
            parts.append(_go_float(item))
        else:
            parts.append(str(item))
    return "".join(parts)


class _Literal:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _go_float(number: float) -> str:
    """``%v`` of a float64: shortest form, exponent from 1e21 (``1e+21``) and below 1e-4."""
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def go_quote(text: str) -> str:
    """A string as Go's ``%q`` quotes it."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def compact_json(value: Any) -> str:
    """JSON text without spaces, as the API server re-encodes a patched object."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
