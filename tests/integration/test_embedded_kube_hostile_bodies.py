"""Hostile request bodies get the real API server's 4xx ``Status`` from the embedded API, never a 500.

Every case goes through real HTTP. The expected answers are those of kube-apiserver: its JSON decoder
refuses documents nested deeper than 10 000 levels, the typed decoding of built-in kinds refuses wrong JSON
types and bad base64 with a 400 ``BadRequest`` (``<Kind> in version "v1" cannot be handled as a <Kind>:
...``), a patch that is not JSON is a 400 ``invalid JSON patch``, and a patch whose result does not decode
is a 422 ``Invalid`` on the field ``patch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from test_embedded_kube_support import GROUP, JSON_PATCH, MERGE, STRATEGIC, WIDGETS, widget, widget_crd

from twilio_video_playground.kube import EmbeddedKubernetes

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
SECRETS = "/api/v1/namespaces/default/secrets"
NAMESPACES = "/api/v1/namespaces"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
SELF_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
ROLES = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles"
ROLE_BINDINGS = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
EVENTS = "/api/v1/namespaces/default/events"
NEW_EVENTS = "/apis/events.k8s.io/v1/namespaces/default/events"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
SERVICE_ACCOUNTS = "/api/v1/namespaces/default/serviceaccounts"
YAML = "application/yaml"
TOO_DEEP = "invalid character '[' exceeded max depth"
META_TYPE = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)


class Raw:
    """Sends bodies as given (bytes), and returns the code and the decoded answer."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def send(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = b"",
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        async with self.session.request(method, path, data=data, headers=headers, params=params) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text


@contextlib.asynccontextmanager
async def raw(kube: EmbeddedKubernetes) -> AsyncIterator[Raw]:
    kube.register_crd(widget_crd())
    headers = {"Authorization": f"Bearer {kube.token}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(kube.url, headers=headers, timeout=timeout) as session:
        client = Raw(session)
        code, _ = await client.send("POST", WIDGETS, widget("w1"))
        assert code == 201
        code, _ = await client.send("POST", SECRETS, {"metadata": {"name": "s1"}, "data": {"k": "YQ=="}})
        assert code == 201
        code, _ = await client.send("POST", CONFIGMAPS, {"metadata": {"name": "c1"}, "data": {"a": "1"}})
        assert code == 201
        code, _ = await client.send("POST", SERVICE_ACCOUNTS, {"metadata": {"name": "sa1"}})
        assert code == 201
        yield client


def assert_status(code: int, body: Any, expected_code: int, reason: str, message: str | None = None) -> None:
    assert isinstance(body, dict), (code, body)
    assert (code, body.get("kind"), body.get("status"), body.get("reason")) == (
        expected_code,
        "Status",
        "Failure",
        reason,
    ), body
    assert body.get("code") == expected_code and body.get("message"), body
    if message is not None:
        assert body["message"] == message, body["message"]


def assert_client_error(code: int, body: Any) -> None:
    """A 4xx answered with a Status: the least a hostile body gets."""
    assert 400 <= code < 500, (code, body)
    assert isinstance(body, dict) and body.get("kind") == "Status", body
    assert body.get("status") == "Failure" and body.get("reason") and body.get("message"), body
    assert body.get("code") == code


def nested(depth: int, leaf: Any = 1) -> str:
    """A JSON array ``depth`` levels deep, as text (too deep for Python's json to produce)."""
    return "[" * depth + json.dumps(leaf) + "]" * depth


def nested_in(depth: int) -> str:
    """A ConfigMap-like object body whose ``extra`` field holds arrays nested ``depth`` levels deep."""
    return '{"metadata": {"name": "deep"}, "extra": ' + nested(depth) + "}"


# --- nesting depth ----------------------------------------------------------------------------------------


async def test_bodies_nested_past_the_real_limit_get_the_decoders_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        code, body = await http.send("POST", CONFIGMAPS, nested_in(10001))
        summary = '{"metadata": {"name": "deep"}, ...'
        assert_status(
            code,
            body,
            400,
            "BadRequest",
            "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
            f"json parse error: {TOO_DEEP} ({summary})",
        )
        code, body = await http.send("PUT", f"{CONFIGMAPS}/c1", nested_in(10001))
        assert_status(code, body, 400, "BadRequest")
        assert TOO_DEEP in body["message"]
        for content_type in (MERGE, STRATEGIC):
            patch = '{"metadata": {"labels": ' + nested(10001) + "}}"
            code, body = await http.send("PATCH", f"{WIDGETS}/w1", patch, content_type)
            assert_status(code, body, 400, "BadRequest", "invalid JSON patch")
        patch = '[{"op": "add", "path": "/spec/extra", "value": ' + nested(10001) + "}]"
        code, body = await http.send("PATCH", f"{WIDGETS}/w1", patch, JSON_PATCH)
        assert_status(code, body, 400, "BadRequest", "invalid JSON patch")


@pytest.mark.parametrize("depth", [500, 1000, 5000, 10000, 10001, 200000])
async def test_deep_bodies_never_get_a_500(kube: EmbeddedKubernetes, depth: int) -> None:
    async with raw(kube) as http:
        deep = nested(depth)
        cases: list[tuple[str, str, str, str]] = [
            ("POST", CONFIGMAPS, nested_in(depth), "application/json"),
            (
                "POST",
                WIDGETS,
                '{"metadata": {"name": "d"}, "spec": {"size": 1, "extra": {"x": ' + deep + "}}}",
                "application/json",
            ),
            (
                "PUT",
                f"{WIDGETS}/w1",
                '{"metadata": {"name": "w1"}, "spec": ' + deep + "}",
                "application/json",
            ),
            (
                "PUT",
                f"{WIDGETS}/w1/status",
                '{"metadata": {"name": "w1"}, "status": ' + deep + "}",
                "application/json",
            ),
            ("PATCH", f"{WIDGETS}/w1", '{"spec": {"extra": {"x": ' + deep + "}}}", MERGE),
            ("PATCH", f"{WIDGETS}/w1/status", '{"status": {"phase": ' + deep + "}}", MERGE),
            ("PATCH", f"{WIDGETS}/w1", '{"spec": {"extra": {"x": ' + deep + "}}}", STRATEGIC),
            ("PATCH", f"{CONFIGMAPS}/c1", '{"data": ' + deep + "}", STRATEGIC),
            (
                "PATCH",
                f"{WIDGETS}/w1",
                '[{"op": "add", "path": "/spec/extra", "value": ' + deep + "}]",
                JSON_PATCH,
            ),
            (
                "POST",
                TOKEN_REVIEWS,
                '{"spec": {"token": "x", "audiences": ' + deep + "}}",
                "application/json",
            ),
            ("POST", f"{SERVICE_ACCOUNTS}/sa1/token", '{"spec": ' + deep + "}", "application/json"),
            ("DELETE", f"{CONFIGMAPS}/c1", '{"preconditions": ' + deep + "}", "application/json"),
            ("POST", CRDS, '{"metadata": {"name": "x"}, "spec": ' + deep + "}", "application/json"),
        ]
        for method, path, body, content_type in cases:
            code, answer = await http.send(method, path, body, content_type)
            assert code < 500, (method, path, content_type, code, answer)
            if code >= 400:
                assert_client_error(code, answer)
        # what was stored is still served, listed and watched
        for path in (WIDGETS, CONFIGMAPS, SECRETS):
            code, listing = await http.send("GET", path)
            assert code == 200, listing
        code, _ = await http.send("GET", WIDGETS, params={"watch": "true", "timeoutSeconds": "1"})
        assert code == 200


@pytest.mark.parametrize("depth", [300, 1000, 10001])
async def test_deep_yaml_bodies_never_get_a_500(kube: EmbeddedKubernetes, depth: int) -> None:
    async with raw(kube) as http:
        flow = "metadata: {name: deep}\nextra: " + "[" * depth + "1" + "]" * depth + "\n"
        bodies = [flow]
        if depth <= 1000:  # block style indents every level: deeper documents are mostly spaces
            bodies.append(
                "metadata:\n  name: deep2\nextra:\n" + "".join("  " * (i + 1) + "- \n" for i in range(depth))
            )
        for body in bodies:
            code, answer = await http.send("POST", CONFIGMAPS, body, YAML)
            assert code < 500, answer
            if code >= 400:
                assert_client_error(code, answer)


async def test_yaml_values_json_cannot_carry_never_get_a_500(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        body = "metadata:\n  name: dated\ndata:\n  when: 2024-01-01\n  at: 2024-01-01T10:00:00Z\n"
        code, answer = await http.send("POST", CONFIGMAPS, body, YAML)
        assert code == 201, answer
        assert answer["data"] == {"when": "2024-01-01", "at": "2024-01-01T10:00:00Z"}
        laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        for index in range(1, 10):
            laughs += (
                f"{'abcdefghij'[index]}: &{'abcdefghij'[index]} ["
                + ", ".join([f"*{'abcdefghij'[index - 1]}"] * 10)
                + "]\n"
            )
        code, answer = await http.send("POST", CONFIGMAPS, "metadata: {name: lol}\n" + laughs, YAML)
        assert_client_error(code, answer)
        for body in ("metadata: {name: inf}\ndata: {a: .inf}\n", "metadata: !!binary aGk=\n", "- a\n- b\n"):
            code, answer = await http.send("POST", CONFIGMAPS, body, YAML)
            assert_client_error(code, answer)


async def test_a_json_patch_cannot_grow_an_object_without_bound(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        doubling = [{"op": "add", "path": "/spec/extra", "value": {}}]
        doubling += [{"op": "copy", "from": "/spec", "path": f"/spec/extra/c{i}"} for i in range(40)]
        code, answer = await http.send("PATCH", f"{WIDGETS}/w1", doubling, JSON_PATCH)
        assert_status(code, answer, 422, "Invalid")
        # each patch adds 150 levels below the deepest point
        code, _ = await http.send("PATCH", f"{WIDGETS}/w1", {"spec": {"extra": {}}}, MERGE)
        assert code == 200
        path = "/spec/extra"
        for _ in range(10):
            value: Any = 1
            for _ in range(150):
                value = {"x": value}
            operations = [{"op": "add", "path": f"{path}/x", "value": value["x"]}]
            code, answer = await http.send("PATCH", f"{WIDGETS}/w1", operations, JSON_PATCH)
            assert code < 500, answer
            if code >= 400:
                assert_client_error(code, answer)
                break
            path += "/x" * 150
        code, _ = await http.send("GET", WIDGETS)
        assert code == 200


async def test_too_many_json_patch_operations_is_413(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        operations = [{"op": "test", "path": "/spec/size", "value": 1}] * 10001
        code, answer = await http.send("PATCH", f"{WIDGETS}/w1", operations, JSON_PATCH)
        assert_status(
            code,
            answer,
            413,
            "RequestEntityTooLarge",
            "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001",
        )


async def test_bodies_over_three_mebibytes_are_413(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        big = {"metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024)}}
        code, answer = await http.send("POST", CONFIGMAPS, big)
        assert_status(
            code, answer, 413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"
        )
        fits = {"metadata": {"name": "fits"}, "data": {"a": "x" * (2 * 1024 * 1024)}}
        code, answer = await http.send("POST", CONFIGMAPS, fits)
        assert code == 201, answer


# --- Secrets' base64 --------------------------------------------------------------------------------------


def unmarshal(value: str, where: str, go_type: str) -> str:
    return f"json: cannot unmarshal {value} into Go struct field {where} of type {go_type}"


def unmarshal_value(value: str, go_type: str) -> str:
    return f"json: cannot unmarshal {value} into Go value of type {go_type}"


def cannot_handle(kind: str, why: str, version: str = "v1") -> str:
    return f'{kind} in version "{version}" cannot be handled as a {kind}: {why}'


@pytest.mark.parametrize(
    ("value", "offset"),
    [("!!!!", 0), ("YWJj!", 4), ("YWJjZA=", 7), ("YQ", 0), ("YQ=a", 2), ("YQ==YQ==", 4), ("Y", 0)],
)
async def test_secret_data_that_is_not_base64_is_refused_like_the_real_decoder(
    kube: EmbeddedKubernetes, value: str, offset: int
) -> None:
    why = f"illegal base64 data at input byte {offset}"
    async with raw(kube) as http:
        code, answer = await http.send("POST", SECRETS, {"metadata": {"name": "bad"}, "data": {"k": value}})
        assert_status(code, answer, 400, "BadRequest", cannot_handle("Secret", why))
        put = {"metadata": {"name": "s1"}, "data": {"ok": "YQ==", "k": value}}
        code, answer = await http.send("PUT", f"{SECRETS}/s1", put)
        assert_status(code, answer, 400, "BadRequest", cannot_handle("Secret", why))
        for content_type in (MERGE, JSON_PATCH):
            patch: Any = {"data": {"k": value}}
            if content_type == JSON_PATCH:
                patch = [{"op": "add", "path": "/data/k", "value": value}]
            code, answer = await http.send("PATCH", f"{SECRETS}/s1", patch, content_type)
            assert_status(code, answer, 422, "Invalid")
            assert answer["message"].startswith(' "" is invalid: patch: Invalid value: "{'), answer
            assert answer["message"].endswith(f": {why}"), answer
            assert answer["details"]["causes"][0]["field"] == "patch"
        code, answer = await http.send("PATCH", f"{SECRETS}/s1", {"data": {"k": value}}, STRATEGIC)
        assert_status(code, answer, 422, "Invalid")
        assert answer["message"].startswith(' "" is invalid: patch: Invalid value: "map[data:map[k:')
        assert answer["message"].endswith(f": error decoding from json: {why}"), answer
        assert kube.get("v1", "secrets", "default", "s1")["data"] == {"k": "YQ=="}  # type: ignore[index]


async def test_secret_data_is_stored_in_canonical_base64(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        body = {"metadata": {"name": "lines"}, "data": {"k": "YWJj\nZA==\r\n", "empty": ""}}
        code, answer = await http.send("POST", SECRETS, body)
        assert code == 201, answer
        assert answer["data"] == {"k": "YWJjZA==", "empty": ""}


async def test_secret_fields_of_the_wrong_type_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        cases = [
            (
                {"data": {"k": 5}},
                unmarshal("number", "Secret.data", "[]uint8"),
            ),
            (
                {"data": ["x"]},
                unmarshal("array", "Secret.data", "map[string][]uint8"),
            ),
            (
                {"stringData": ["x"]},
                unmarshal("array", "Secret.stringData", "map[string]string"),
            ),
            (
                {"stringData": {"k": 1}},
                unmarshal("number", "Secret.stringData", "string"),
            ),
            (
                {"type": 5},
                unmarshal("number", "Secret.type", "v1.SecretType"),
            ),
        ]
        for fields, why in cases:
            code, answer = await http.send("POST", SECRETS, {"metadata": {"name": "typed"}, **fields})
            assert_status(code, answer, 400, "BadRequest", cannot_handle("Secret", why))


# --- malformed bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "value"), [("[]", "array"), ('"x"', "string"), ("5", "number"), ("true", "bool")]
)
async def test_bodies_that_are_not_objects_are_400(kube: EmbeddedKubernetes, body: str, value: str) -> None:
    async with raw(kube) as http:
        code, answer = await http.send("POST", CONFIGMAPS, body)
        summary = body.encode().hex()
        assert_status(
            code,
            answer,
            400,
            "BadRequest",
            "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
            f"json parse error: json: cannot unmarshal {value} into Go value of type {META_TYPE} ({summary})",
        )
        for path in (
            WIDGETS,
            TOKEN_REVIEWS,
            ACCESS_REVIEWS,
            SELF_REVIEWS,
            f"{SERVICE_ACCOUNTS}/sa1/token",
            CRDS,
            ROLES,
        ):
            code, answer = await http.send("POST", path, body)
            assert_status(code, answer, 400, "BadRequest")
        code, answer = await http.send("PUT", f"{CONFIGMAPS}/c1", body)
        assert_status(code, answer, 400, "BadRequest")
        code, answer = await http.send("DELETE", f"{CONFIGMAPS}/c1", body)
        assert_status(code, answer, 400, "BadRequest")


async def test_bodies_that_are_not_json_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        code, answer = await http.send("POST", CONFIGMAPS, "{")
        assert_status(
            code,
            answer,
            400,
            "BadRequest",
            "the object provided is unrecognized (must be of type ConfigMap): couldn't get version/kind; "
            "json parse error: unexpected end of JSON input ({)",
        )
        for body in (b"\xff\xfe", b"", b"{} {}", b'{"a": NaN}', b'{"a": 1e999}', b"{'a': 1}"):
            for method, path in (("POST", CONFIGMAPS), ("PUT", f"{CONFIGMAPS}/c1"), ("POST", WIDGETS)):
                code, answer = await http.send(method, path, body)
                assert_status(code, answer, 400, "BadRequest")
        for content_type in (MERGE, STRATEGIC, JSON_PATCH):
            for body in (b"{", b"", b"\xff", b'{"a": NaN}'):
                code, answer = await http.send("PATCH", f"{CONFIGMAPS}/c1", body, content_type)
                assert_status(code, answer, 400, "BadRequest", "invalid JSON patch")


async def test_invalid_utf8_in_strings_is_replaced_as_the_real_decoder_does(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        body = b'{"metadata": {"name": "utf"}, "data": {"k": "a\xffb", "s": "\\ud800"}}'
        code, answer = await http.send("POST", CONFIGMAPS, body)
        assert code == 201, answer
        assert answer["data"] == {"k": "a\ufffdb", "s": "\ufffd"}
        secret = {"metadata": {"name": "lone"}, "stringData": {"k": "\ud800"}}
        code, answer = await http.send("POST", SECRETS, json.dumps(secret))
        assert code == 201, answer


async def test_object_meta_of_the_wrong_type_is_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        cases: list[tuple[Any, str]] = [
            (
                ["x"],
                unmarshal("array", "ConfigMap.metadata", "v1.ObjectMeta"),
            ),
            (
                {"name": 5},
                unmarshal("number", "ObjectMeta.metadata.name", "string"),
            ),
            (
                {"name": {"a": 1}},
                unmarshal("object", "ObjectMeta.metadata.name", "string"),
            ),
            (
                {"name": "x", "labels": ["a"]},
                unmarshal("array", "ObjectMeta.metadata.labels", "map[string]string"),
            ),
            (
                {"name": "x", "labels": {"a": 1}},
                unmarshal("number", "ObjectMeta.metadata.labels", "string"),
            ),
            (
                {"name": "x", "annotations": "a"},
                unmarshal("string", "ObjectMeta.metadata.annotations", "map[string]string"),
            ),
            (
                {"name": "x", "finalizers": "a"},
                unmarshal("string", "ObjectMeta.metadata.finalizers", "[]string"),
            ),
            (
                {"name": "x", "generation": "1"},
                unmarshal("string", "ObjectMeta.metadata.generation", "int64"),
            ),
            (
                {"generateName": True},
                unmarshal("bool", "ObjectMeta.metadata.generateName", "string"),
            ),
        ]
        for metadata, why in cases:
            code, answer = await http.send("POST", CONFIGMAPS, {"metadata": metadata})
            assert_status(code, answer, 400, "BadRequest", cannot_handle("ConfigMap", why))
        code, answer = await http.send("POST", WIDGETS, {**widget("x"), "metadata": {"name": 5}})
        why = unmarshal("number", "ObjectMeta.name", "string")
        assert_status(code, answer, 400, "BadRequest", cannot_handle("Widget", why))
        code, answer = await http.send(
            "POST", WIDGETS, {**widget("x"), "metadata": {"name": "x", "labels": [1]}}
        )
        why = unmarshal("array", "ObjectMeta.labels", "map[string]string")
        assert_status(code, answer, 400, "BadRequest", cannot_handle("Widget", why))
        code, answer = await http.send("POST", WIDGETS, {**widget("x"), "metadata": ["x"]})
        assert_status(code, answer, 400, "BadRequest")
        code, answer = await http.send("POST", WIDGETS, {**widget("x"), "kind": 5})
        assert_status(code, answer, 400, "BadRequest")
        assert "cannot unmarshal number into Go struct field .kind of type string" in answer["message"]


async def test_null_metadata_fields_are_accepted_as_absent(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        code, answer = await http.send("POST", NAMESPACES, {"metadata": {"name": "nulls", "labels": None}})
        assert code == 201, answer
        assert answer["metadata"]["labels"] == {"kubernetes.io/metadata.name": "nulls"}
        body = {"metadata": {"name": "nulls", "annotations": None, "finalizers": None}, "data": None}
        code, answer = await http.send("POST", CONFIGMAPS, body)
        assert code == 201, answer


async def test_patches_that_leave_malformed_objects_are_422(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        code, answer = await http.send("PATCH", f"{CONFIGMAPS}/c1", {"metadata": {"labels": ["a"]}}, MERGE)
        assert_status(code, answer, 422, "Invalid")
        assert answer["message"].endswith(
            ": " + unmarshal("array", "ObjectMeta.metadata.labels", "map[string]string")
        )
        operations = [{"op": "replace", "path": "/metadata/name", "value": 5}]
        code, answer = await http.send("PATCH", f"{WIDGETS}/w1", operations, JSON_PATCH)
        assert_status(code, answer, 422, "Invalid")
        operations = [{"op": "add", "path": "/metadata/labels", "value": "x"}]
        code, answer = await http.send("PATCH", f"{NAMESPACES}/default", operations, JSON_PATCH)
        assert_status(code, answer, 422, "Invalid")
        code, answer = await http.send("PATCH", f"{SERVICE_ACCOUNTS}/sa1", {"secrets": "x"}, STRATEGIC)
        assert_status(code, answer, 422, "Invalid")
        code, answer = await http.send(
            "PATCH", f"{WIDGETS}/w1/status", {"metadata": {"finalizers": 5}}, MERGE
        )
        assert_status(code, answer, 422, "Invalid")


async def test_patch_documents_of_the_wrong_shape_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        cases: list[tuple[str, str, str]] = [
            (
                MERGE,
                "[1]",
                "error decoding patch: " + unmarshal_value("array", "map[string]interface {}"),
            ),
            (
                MERGE,
                '"x"',
                "error decoding patch: " + unmarshal_value("string", "map[string]interface {}"),
            ),
            (MERGE, "null", "Invalid JSON Patch"),
            (STRATEGIC, "[1]", unmarshal_value("array", "map[string]interface {}")),
            (STRATEGIC, "5", unmarshal_value("number", "map[string]interface {}")),
            (
                JSON_PATCH,
                "{}",
                "error decoding patch: " + unmarshal_value("object", "[]handlers.jsonPatchOp"),
            ),
            (
                JSON_PATCH,
                "[1]",
                "error decoding patch: " + unmarshal_value("number", "handlers.jsonPatchOp"),
            ),
            (
                JSON_PATCH,
                '[{"op": 1, "path": "/a"}]',
                "error decoding patch: " + unmarshal("number", "jsonPatchOp.op", "string"),
            ),
        ]
        for content_type, body, message in cases:
            code, answer = await http.send("PATCH", f"{CONFIGMAPS}/c1", body, content_type)
            assert_status(code, answer, 400, "BadRequest", message)
        for operation in (
            {"op": "bogus", "path": "/data/a"},
            {"op": "add", "path": "data"},
            {"op": "add", "path": "/data/a"},
            {"op": "remove", "path": "/data/zzz"},
            {"op": "replace", "path": "/data/a/b/c", "value": 1},
            {"op": "add", "path": "/metadata/finalizers/\u00b2", "value": "x"},
            {"op": "add", "path": "/metadata/finalizers/99999999999999999999999", "value": "x"},
            {"op": "move", "from": "/data", "path": "/data/x"},
            {"op": "copy", "path": "/data/x"},
        ):
            code, answer = await http.send("PATCH", f"{CONFIGMAPS}/c1", [operation], JSON_PATCH)
            assert_client_error(code, answer)
        code, answer = await http.send("PATCH", f"{CONFIGMAPS}/c1", "null", JSON_PATCH)
        assert code == 200, answer
        code, answer = await http.send("PATCH", f"{CONFIGMAPS}/c1", b"{}", "application/apply-patch+yaml")
        assert_client_error(code, answer)


async def test_names_are_validated_like_the_real_server(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        long_name = "a" * 254
        code, answer = await http.send("POST", CONFIGMAPS, {"metadata": {"name": long_name}})
        assert_status(
            code,
            answer,
            422,
            "Invalid",
            f'ConfigMap "{long_name}" is invalid: metadata.name: Invalid value: "{long_name}": '
            "must be no more than 253 characters",
        )
        long_label = "a" * 64
        code, answer = await http.send("POST", NAMESPACES, {"metadata": {"name": long_label}})
        assert_status(
            code,
            answer,
            422,
            "Invalid",
            f'Namespace "{long_label}" is invalid: metadata.name: Invalid value: "{long_label}": '
            "must be no more than 63 characters",
        )
        for name in ("Bad_Name", "-x", "x" * 100000, "a/b", "..", "\u00e9t\u00e9"):
            code, answer = await http.send("POST", CONFIGMAPS, {"metadata": {"name": name}})
            assert_status(code, answer, 422, "Invalid")
            code, answer = await http.send("POST", WIDGETS, {**widget("x"), "metadata": {"name": name}})
            assert_status(code, answer, 422, "Invalid")
        code, answer = await http.send("POST", CONFIGMAPS, {"metadata": {"generateName": "x" * 300}})
        assert_status(code, answer, 422, "Invalid")


async def test_kind_and_api_version_mismatches_are_4xx(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        for fields in (
            {"kind": "Secret"},
            {"apiVersion": "v2"},
            {"apiVersion": "a/b/c"},
            {"apiVersion": 5},
            {"kind": ["x"]},
        ):
            code, answer = await http.send("POST", CONFIGMAPS, {"metadata": {"name": "k"}, **fields})
            assert_status(code, answer, 400, "BadRequest")
            code, answer = await http.send("POST", WIDGETS, {**widget("k"), **fields})
            assert_client_error(code, answer)
        code, answer = await http.send("POST", CONFIGMAPS, {"metadata": {"name": "k"}, "apiVersion": "a/b/c"})
        assert "unexpected GroupVersion string: a/b/c" in answer["message"]


async def test_built_in_fields_of_the_wrong_type_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        cases: list[tuple[str, Any]] = [
            (CONFIGMAPS, {"data": {"a": 1}}),
            (CONFIGMAPS, {"binaryData": {"a": "!!"}}),
            (NAMESPACES, {"spec": {"finalizers": "x"}}),
            (EVENTS, {"involvedObject": "x"}),
            (EVENTS, {"count": "x"}),
            (EVENTS, {"lastTimestamp": 5}),
            (EVENTS, {"lastTimestamp": "yesterday"}),
            (NEW_EVENTS, {"regarding": []}),
            (NEW_EVENTS, {"eventTime": "soon"}),
            (LEASES, {"spec": {"leaseDurationSeconds": "x"}}),
            (LEASES, {"spec": "x"}),
            (SERVICE_ACCOUNTS, {"secrets": ["x"]}),
            (ROLES, {"rules": "x"}),
            (ROLES, {"rules": [{"verbs": "get"}]}),
            (ROLE_BINDINGS, {"subjects": [5], "roleRef": {"kind": "Role", "name": "r"}}),
            (ROLE_BINDINGS, {"roleRef": "r"}),
        ]
        for path, fields in cases:
            code, answer = await http.send("POST", path, {"metadata": {"name": "typed"}, **fields})
            assert_status(code, answer, 400, "BadRequest")
            assert " cannot be handled as a " in answer["message"], answer


async def test_review_and_token_bodies_of_the_wrong_shape_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        cases: list[tuple[str, Any]] = [
            (TOKEN_REVIEWS, {"spec": "x"}),
            (TOKEN_REVIEWS, {"spec": {"token": 5}}),
            (TOKEN_REVIEWS, {"spec": {"token": "t", "audiences": "x"}}),
            (TOKEN_REVIEWS, {"spec": {"token": "t", "audiences": [1]}}),
            (ACCESS_REVIEWS, {"spec": {"user": "u", "resourceAttributes": "x"}}),
            (ACCESS_REVIEWS, {"spec": {"user": "u", "groups": "g", "resourceAttributes": {"verb": "get"}}}),
            (ACCESS_REVIEWS, {"spec": {"user": ["u"], "nonResourceAttributes": {"path": "/"}}}),
            (SELF_REVIEWS, {"spec": []}),
            (SELF_REVIEWS, {"spec": {"resourceAttributes": {"verb": 5}}}),
            (f"{SERVICE_ACCOUNTS}/sa1/token", {"spec": {"audiences": 5}}),
            (f"{SERVICE_ACCOUNTS}/sa1/token", {"spec": {"boundObjectRef": "x"}}),
        ]
        for path, body in cases:
            code, answer = await http.send("POST", path, body)
            assert_status(code, answer, 400, "BadRequest")
            assert " cannot be handled as a " in answer["message"], answer
        code, answer = await http.send("POST", TOKEN_REVIEWS, {"spec": {"token": "\ud800"}})
        assert code == 201, answer


async def test_delete_options_of_the_wrong_shape_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        for body, message in (
            (
                {"dryRun": 5},
                unmarshal("number", "DeleteOptions.dryRun", "[]string"),
            ),
            (
                {"preconditions": "x"},
                unmarshal("string", "DeleteOptions.preconditions", "v1.Preconditions"),
            ),
            ({"gracePeriodSeconds": "x"}, None),
            ({"propagationPolicy": 1}, None),
        ):
            code, answer = await http.send("DELETE", f"{CONFIGMAPS}/c1", body)
            assert_status(code, answer, 400, "BadRequest", message)
        code, answer = await http.send("DELETE", f"{CONFIGMAPS}/c1", "{")
        assert_status(code, answer, 400, "BadRequest")
        assert kube.get("v1", "configmaps", "default", "c1") is not None
        code, answer = await http.send("DELETE", CONFIGMAPS, {"dryRun": 5})
        assert_status(code, answer, 400, "BadRequest")


async def test_crds_of_the_wrong_shape_never_get_a_500(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:

        def crd(**changes: Any) -> dict[str, Any]:
            body = widget_crd()
            body["metadata"]["name"] = f"gadgets.{GROUP}"
            body["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget"}
            version = body["spec"]["versions"][0]
            for key, value in changes.items():
                if key == "schema":
                    version["schema"] = {"openAPIV3Schema": value}
                elif key in ("additionalPrinterColumns", "subresources", "selectableFields"):
                    version[key] = value
                else:
                    body["spec"][key] = value
            return body

        cases = [
            crd(versions="x"),
            crd(versions=[5]),
            crd(names=["x"]),
            crd(names={"plural": "gadgets", "kind": "Gadget", "shortNames": "g"}),
            crd(scope=5),
            crd(
                additionalPrinterColumns=[{"name": "A", "type": "string", "jsonPath": ".a", "priority": "x"}]
            ),
            crd(additionalPrinterColumns="x"),
            crd(subresources=[]),
            crd(selectableFields=[5]),
            crd(schema={"type": 5}),
            crd(schema={"type": "object", "properties": []}),
            crd(schema={"type": "object", "properties": {"spec": 5}}),
            crd(schema={"type": "object", "properties": {"spec": {"type": "thing"}}}),
            crd(schema={"type": "object", "properties": {"spec": {"$ref": "http://127.0.0.1:9/x"}}}),
            crd(
                schema={
                    "type": "object",
                    "properties": {"spec": {"type": "object", "additionalProperties": 5}},
                }
            ),
            crd(
                schema={
                    "type": "object",
                    "properties": {"spec": {"type": "array", "items": [{"type": "string"}]}},
                }
            ),
            crd(schema={"type": "object", "required": "spec"}),
            crd(schema={"type": "object", "properties": {"spec": {"type": "integer", "maximum": "x"}}}),
            crd(schema="x"),
        ]
        for body in cases:
            code, answer = await http.send("POST", CRDS, body)
            assert_client_error(code, answer)
            assert (
                kube.get("apiextensions.k8s.io/v1", "customresourcedefinitions", None, f"gadgets.{GROUP}")
                is None
            )
        # schemas the server accepts but Python cannot evaluate as written never break writes
        accepted = crd(
            schema={
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {
                            "re2": {"type": "string", "pattern": "^a\\z"},
                            "bad": {"type": "string", "pattern": "("},
                            "tiny": {"type": "number", "multipleOf": 1e-308},
                        },
                    }
                },
            }
        )
        code, answer = await http.send("POST", CRDS, accepted)
        assert code == 201, answer
        gadgets = f"/apis/{GROUP}/v1/namespaces/default/gadgets"
        gadget = {
            "metadata": {"name": "g1"},
            "spec": {"re2": "a", "bad": "x", "tiny": 1e308},
        }
        code, answer = await http.send("POST", gadgets, gadget)
        assert code < 500, answer


async def test_query_parameters_of_the_wrong_shape_are_400(kube: EmbeddedKubernetes) -> None:
    async with raw(kube) as http:
        for params in (
            {"watch": "true", "timeoutSeconds": "nan"},
            {"watch": "true", "timeoutSeconds": "x"},
            {"watch": "true", "resourceVersion": "x"},
            {"limit": "x"},
            {"continue": "!!"},
            {"labelSelector": "a in (b"},
            {"fieldSelector": "spec.x=y"},
        ):
            code, answer = await asyncio.wait_for(http.send("GET", CONFIGMAPS, params=params), 30)
            assert_status(code, answer, 400, "BadRequest")


async def test_protobuf_bodies_of_the_wrong_shape_never_get_a_500(kube: EmbeddedKubernetes) -> None:
    def field(number: int, value: bytes) -> bytes:
        return bytes([number << 3 | 2, len(value)]) + value

    type_meta = field(1, field(1, b"v1") + field(2, b"ConfigMap"))
    bad_name = field(2, field(1, field(1, b"\xff\xfe")))
    async with raw(kube) as http:
        protobuf = "application/vnd.kubernetes.protobuf"
        for body in (
            b"k8s\x00" + type_meta + bad_name,
            b"k8s\x00\x0a\xff",
            b"nope",
            b"k8s\x00",
            b"k8s\x00\x0f",
        ):
            code, answer = await http.send("POST", CONFIGMAPS, body, protobuf)
            assert_client_error(code, answer)
