"""Request bodies read into objects, patches and delete options, refused as kube-apiserver refuses them.

The create and update handlers answer an undecodable body with a 400 ``BadRequest``: ``the object
provided is unrecognized (must be of type K): <error> (<summary>)`` when not even the apiVersion and kind
could be read, ``K in version "v" cannot be handled as a K: <error>`` when the typed decoding failed. The
patch handler first requires JSON (``invalid JSON patch``), then a document of the patch type's shape (400),
and answers a result that does not decode with a 422 on the field ``patch``. Delete options are a 400 with
the decoder's error as it is.
"""

from __future__ import annotations

from typing import Any

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.decoding import (
    EMBEDDED_MAX_DEPTH,
    DecodeError,
    compact_json,
    depth_of,
    go_quote,
    go_value,
    parse_json,
    parse_yaml,
    summarize,
)
from twilio_video_playground.kube.errors import ApiError, FieldError
from twilio_video_playground.kube.gotypes import (
    DELETE_OPTIONS,
    JSON_PATCH_OPERATIONS,
    OBJECT_META,
    PATCH_MAP,
    STRING,
    Struct,
    decode_error,
    json_kind,
    kind_type,
)
from twilio_video_playground.kube.patching import JSON_PATCH, MERGE_PATCH
from twilio_video_playground.kube.protobuf import PROTOBUF, ProtobufError, decode_protobuf_object

MAX_JSON_PATCH_OPERATIONS = 10000
# what SimpleMetaFactory decodes first, to learn the apiVersion and kind
TYPE_META = Struct(
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }',
    "",
    {"apiVersion": STRING, "kind": STRING},
)
_INTERPRET = "couldn't get version/kind; json parse error: "


def unrecognized(kind: str, why: str, data: bytes) -> ApiError:
    return errors.bad_request(
        f"the object provided is unrecognized (must be of type {kind}): {why} ({summarize(data)})"
    )


def cannot_handle(kind: str, version: str, expected: str, why: str) -> ApiError:
    return errors.bad_request(f'{kind} in version "{version}" cannot be handled as a {expected}: {why}')


def parse_body(data: bytes, content_type: str) -> Any:
    """JSON data from a JSON, YAML or (kubectl's) protobuf body; DecodeError or ProtobufError otherwise."""
    if content_type.startswith(PROTOBUF):
        return decode_protobuf_object(data)
    if "yaml" in content_type:
        return parse_yaml(data)
    return parse_json(data)


def _interpret(value: Any) -> str | None:
    """The error reading apiVersion and kind gives (SimpleMetaFactory.Interpret), or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"json: cannot unmarshal {json_kind(value)} into Go value of type {TYPE_META.go}"
    problem = decode_error(value, TYPE_META)
    if problem is not None:
        return problem
    api_version = value.get("apiVersion") or ""
    if api_version.count("/") > 1:
        return f"unexpected GroupVersion string: {api_version}"
    return None


def read_object(
    data: bytes, content_type: str, *, group: str, version: str, kind: str, custom: bool
) -> dict[str, Any]:
    """The object a create or update body carries, checked as the API server's decoders check it."""
    try:
        value = parse_body(data, content_type)
    except ProtobufError as exc:
        if exc.unsupported:
            raise ApiError(415, f"the body of the request was in an unsupported format: {exc}") from exc
        raise unrecognized(kind, str(exc), data) from exc
    except DecodeError as exc:
        why = str(exc) if "yaml" in content_type else _INTERPRET + str(exc)
        raise unrecognized(kind, why, data) from exc
    problem = _interpret(value)
    if problem is not None:
        raise unrecognized(kind, problem if problem.startswith("unexpected") else _INTERPRET + problem, data)
    obj: dict[str, Any] = value if isinstance(value, dict) else {}
    api_version = str(obj.get("apiVersion") or "")
    body_version = api_version.rpartition("/")[2]
    served = f"{group}/{version}" if group else version
    if custom:
        meta_problem = decode_error(obj["metadata"], OBJECT_META) if "metadata" in obj else None
        if meta_problem is not None:
            raise cannot_handle(str(obj.get("kind") or kind), body_version or version, kind, meta_problem)
    if api_version and api_version != served:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({served})"
        )
    body_kind = str(obj.get("kind") or "")
    if body_kind and body_kind != kind:
        if custom:
            name = str((obj.get("metadata") or {}).get("name") or "")
            detail = f'Invalid value: "{body_kind}": must be {kind}'
            raise errors.invalid(kind, group, name, [FieldError("kind", "FieldValueInvalid", detail)])
        raise errors.bad_request(
            f"the kind in the data ({body_kind}) does not match the expected kind ({kind})"
        )
    typed = None if custom else kind_type(group, kind)
    if typed is not None:
        problem = decode_error(obj, typed)
        if problem is not None:
            raise cannot_handle(kind, body_version or version, kind, problem)
    return obj


def read_delete_options(data: bytes, content_type: str) -> dict[str, Any]:
    """DeleteOptions from a DELETE body (empty: none); a 400 with the decoder's error otherwise."""
    if not data:
        return {}
    try:
        value = parse_body(data, content_type)
    except (DecodeError, ProtobufError) as exc:
        prefix = "" if "yaml" in content_type or content_type.startswith(PROTOBUF) else _INTERPRET
        raise errors.bad_request(prefix + str(exc)) from exc
    problem = _interpret(value)
    if problem is not None:
        raise errors.bad_request(problem if problem.startswith("unexpected") else _INTERPRET + problem)
    problem = decode_error(value, DELETE_OPTIONS)
    if problem is not None:
        raise errors.bad_request(problem)
    return value if isinstance(value, dict) else {}


def read_patch(data: bytes, patch_type: str) -> Any:
    """The patch document, refused as the patch handler refuses documents of the wrong shape."""
    try:
        patch = parse_json(data)
    except DecodeError as exc:
        raise errors.bad_request("invalid JSON patch") from exc
    if patch_type == JSON_PATCH:
        problem = decode_error(patch, JSON_PATCH_OPERATIONS)
        if problem is not None:
            raise errors.bad_request(f"error decoding patch: {problem}")
        if isinstance(patch, list) and len(patch) > MAX_JSON_PATCH_OPERATIONS:
            raise ApiError(
                413,
                "Request entity too large: The allowed maximum operations in a JSON patch is "
                f"{MAX_JSON_PATCH_OPERATIONS}, got {len(patch)}",
            )
        return patch or []
    problem = decode_error(patch, PATCH_MAP)
    if patch_type == MERGE_PATCH:
        if problem is not None:
            raise errors.bad_request(f"error decoding patch: {problem}")
        if patch is None:
            raise errors.bad_request("Invalid JSON Patch")
        return patch
    if problem is not None:
        raise errors.bad_request(problem)
    return patch or {}


def patched_object_problem(obj: Any, *, group: str, kind: str, custom: bool) -> str | None:
    """Why the result of a patch does not decode into the kind's type, or None."""
    if depth_of(obj, EMBEDDED_MAX_DEPTH) > EMBEDDED_MAX_DEPTH:
        return _INTERPRET + "invalid character '{' exceeded max depth"
    problem = _interpret(obj)
    if problem is not None:
        return problem if problem.startswith("unexpected") else _INTERPRET + problem
    if not isinstance(obj, dict):
        return None
    if custom:
        return decode_error(obj["metadata"], OBJECT_META) if "metadata" in obj else None
    typed = kind_type(group, kind)
    return decode_error(obj, typed) if typed is not None else None


def invalid_patch(shown: str, why: str) -> ApiError:
    """The 422 of a patch whose result cannot be decoded: ``"" is invalid: patch: Invalid value: ...``."""
    detail = f"Invalid value: {go_quote(shown)}: {why}"
    return errors.invalid("", "", "", [FieldError("patch", "FieldValueInvalid", detail)])


def shown_patch(patch_type: str, patch: Any, patched: Any) -> str:
    """What the 422 quotes: the patched object's JSON, or the decoded patch (``%+v``) for strategic merge."""
    if patch_type in (JSON_PATCH, MERGE_PATCH):
        if depth_of(patched, EMBEDDED_MAX_DEPTH) > EMBEDDED_MAX_DEPTH:
            return go_value(patched)
        return compact_json(patched)
    return go_value(patch)
