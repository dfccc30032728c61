"""Decoding of the protobuf request bodies kubectl's typed clients send (``kubectl create namespace``...).

kubectl sends ``application/vnd.kubernetes.protobuf`` for built-in types and does not fall back to JSON.
The body is the ``k8s\\0`` magic and a ``runtime.Unknown`` envelope (TypeMeta + the raw message). Only the
messages kubectl creates imperatively for the served built-ins are understood: Namespace, ConfigMap,
Secret and ServiceAccount (ObjectMeta's name, generateName, namespace, labels, annotations, finalizers,
and their own simple fields), Role, ClusterRole, RoleBinding and ClusterRoleBinding (``kubectl create
role|clusterrole|rolebinding|clusterrolebinding``), the TokenRequest spec (``kubectl create token``), and
the TokenReview, SubjectAccessReview and SelfSubjectAccessReview specs (``kubectl auth can-i`` and typed
clients of the review APIs).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body that is not a decodable Kubernetes protobuf message (a 400), or one of a kind this server does
    not decode (``unsupported``: a 415)."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 64:
            raise ProtobufError("proto: integer overflow")


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
            yield number, value
        elif wire_type == 2:
            length, position = _varint(data, position)
            if position + length > len(data):
                raise ProtobufError("truncated field")
            yield number, data[position : position + length]
            position += length
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode("utf-8", "replace")


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map<string, T> entry: key (1) and raw value (2)."""
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    key, raw = "", b""
    for number, item in _fields(value):
        if number == 1:
            key = _text(item)
        elif number == 2 and isinstance(item, bytes):
            raw = item
    return key, raw


def _object_meta(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace"}
    for number, value in _fields(data):
        if number in names and _text(value):
            meta[names[number]] = _text(value)
        elif number in (11, 12):
            key, raw = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = raw.decode(
                "utf-8", "replace"
            )
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _namespace(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            finalizers = [_text(item) for sub, item in _fields(value) if sub == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}


def _config_map(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2:
            key, raw = _entry(value)
            obj.setdefault("data", {})[key] = raw.decode("utf-8", "replace")
        elif number == 3:
            key, raw = _entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(raw).decode()
        elif number == 4:
            obj["immutable"] = bool(value)


def _secret(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2:
            key, raw = _entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(raw).decode()
        elif number == 3 and _text(value):
            obj["type"] = _text(value)
        elif number == 4:
            key, raw = _entry(value)
            obj.setdefault("stringData", {})[key] = raw.decode("utf-8", "replace")
        elif number == 5:
            obj["immutable"] = bool(value)


def _service_account(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 3:
            obj["automountServiceAccountToken"] = bool(value)


_RESOURCE_ATTRIBUTES = {
    1: "namespace",
    2: "verb",
    3: "group",
    4: "version",
    5: "resource",
    6: "subresource",
    7: "name",
}


def _attributes(data: bytes, names: dict[int, str]) -> dict[str, str]:
    return {
        names[number]: _text(value) for number, value in _fields(data) if number in names and _text(value)
    }


def _access_spec(data: bytes, *, with_subject: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for number, value in _fields(data):
        if number == 1 and isinstance(value, bytes):
            spec["resourceAttributes"] = _attributes(value, _RESOURCE_ATTRIBUTES)
        elif number == 2 and isinstance(value, bytes):
            spec["nonResourceAttributes"] = _attributes(value, {1: "path", 2: "verb"})
        elif with_subject and number == 3:
            spec["user"] = _text(value)
        elif with_subject and number == 4:
            spec.setdefault("groups", []).append(_text(value))
        elif with_subject and number == 6:
            spec["uid"] = _text(value)
    return spec


def _subject_access_review(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            obj["spec"] = _access_spec(value, with_subject=True)


def _self_subject_access_review(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            obj["spec"] = _access_spec(value, with_subject=False)


def _token_review(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            spec: dict[str, Any] = {}
            for sub, item in _fields(value):
                if sub == 1:
                    spec["token"] = _text(item)
                elif sub == 2:
                    spec.setdefault("audiences", []).append(_text(item))
            obj["spec"] = spec


def _bound_object_ref(data: bytes) -> dict[str, str]:
    return _attributes(data, {1: "kind", 2: "apiVersion", 3: "name", 4: "uid"})


def _token_request(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            spec: dict[str, Any] = {}
            for sub, item in _fields(value):
                if sub == 1:
                    spec.setdefault("audiences", []).append(_text(item))
                elif sub == 3 and isinstance(item, bytes):
                    spec["boundObjectRef"] = _bound_object_ref(item)
                elif sub == 4 and isinstance(item, int):
                    spec["expirationSeconds"] = item
            obj["spec"] = spec


def _policy_rule(data: bytes) -> dict[str, list[str]]:
    names = {1: "verbs", 2: "apiGroups", 3: "resources", 4: "resourceNames", 5: "nonResourceURLs"}
    rule: dict[str, list[str]] = {}
    for number, value in _fields(data):
        if number in names:
            rule.setdefault(names[number], []).append(_text(value))
    rule.setdefault("verbs", [])
    return rule


def _role(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            obj.setdefault("rules", []).append(_policy_rule(value))
    obj.setdefault("rules", [])


def _role_binding(fields: list[tuple[int, int | bytes]], obj: dict[str, Any]) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            subject = _attributes(value, {1: "kind", 2: "apiGroup", 3: "name", 4: "namespace"})
            obj.setdefault("subjects", []).append(subject)
        elif number == 3 and isinstance(value, bytes):
            obj["roleRef"] = _attributes(value, {1: "apiGroup", 2: "kind", 3: "name"})


_DECODERS: dict[tuple[str, str], Callable[[list[tuple[int, int | bytes]], dict[str, Any]], None]] = {
    ("v1", "Namespace"): _namespace,
    ("v1", "ConfigMap"): _config_map,
    ("v1", "Secret"): _secret,
    ("v1", "ServiceAccount"): _service_account,
    ("rbac.authorization.k8s.io/v1", "Role"): _role,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): _role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): _role_binding,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): _role_binding,
    ("authentication.k8s.io/v1", "TokenRequest"): _token_request,
    ("authentication.k8s.io/v1", "TokenReview"): _token_review,
    ("authorization.k8s.io/v1", "SubjectAccessReview"): _subject_access_review,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): _self_subject_access_review,
}


def decode_protobuf_object(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded Namespace, ConfigMap, Secret or ServiceAccount."""
    if not body:
        raise ProtobufError("empty data")
    if not body.startswith(_MAGIC):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix "
            f"[{' '.join(str(b) for b in _MAGIC)}]"
        )
    if body == _MAGIC:
        raise ProtobufError("empty body")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(_MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for sub, item in _fields(value):
                if sub == 1:
                    api_version = _text(item)
                elif sub == 2:
                    kind = _text(item)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    decoder = _DECODERS.get((api_version, kind))
    if decoder is None:
        raise ProtobufError(
            f"protobuf bodies of {api_version} {kind} are not supported; send JSON", unsupported=True
        )
    fields = list(_fields(raw))
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    for number, value in fields:
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _object_meta(value)
    decoder(fields, obj)
    return obj
