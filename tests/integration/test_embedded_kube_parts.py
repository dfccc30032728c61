"""The pure building blocks of the embedded Kubernetes API: paths, selectors, patches, JSONPath, ages."""

from __future__ import annotations

import pytest

from twilio_video_playground.kube.patching import (
    PatchApplyError,
    PatchFormatError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from twilio_video_playground.kube.paths import ApiPath, GroupPath, parse_api_path
from twilio_video_playground.kube.selectors import SelectorError, parse_field_selector, parse_label_selector
from twilio_video_playground.kube.tables import evaluate_jsonpath, human_duration


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v1/namespaces", ApiPath("", "v1", "namespaces")),
        ("/api/v1/namespaces/team", ApiPath("", "v1", "namespaces", None, "team")),
        ("/api/v1/namespaces/team/status", ApiPath("", "v1", "namespaces", None, "team", "status")),
        ("/api/v1/namespaces/team/configmaps", ApiPath("", "v1", "configmaps", "team")),
        ("/api/v1/namespaces/team/configmaps/c", ApiPath("", "v1", "configmaps", "team", "c")),
        ("/apis/g.io/v1/namespaces/n/things/x/status", ApiPath("g.io", "v1", "things", "n", "x", "status")),
        ("/apis/g.io/v1/things", ApiPath("g.io", "v1", "things")),
        ("/apis/g.io/v1", ApiPath("g.io", "v1")),
        ("/apis/g.io", GroupPath("g.io")),
        ("/version", None),
        ("/openapi/v2", None),
    ],
)
def test_paths(path: str, expected: object) -> None:
    assert parse_api_path(path) == expected


def test_label_selector_parsing() -> None:
    requirements = parse_label_selector("a=1, b!=2,c in (x, y),d notin (z),e,!f,example.com/g==3")
    assert [(r.key, r.operator, sorted(r.values)) for r in requirements] == [
        ("a", "=", ["1"]),
        ("b", "!=", ["2"]),
        ("c", "in", ["x", "y"]),
        ("d", "notin", ["z"]),
        ("e", "exists", []),
        ("f", "!", []),
        ("example.com/g", "=", ["3"]),
    ]
    labels = {"a": "1", "c": "y", "e": "", "example.com/g": "3"}
    assert all(r.matches(labels) for r in requirements)
    for bad in ("a b", "x=in valid", "=1"):
        with pytest.raises(SelectorError):
            parse_label_selector(bad)


def test_field_selector_parsing() -> None:
    requirements = parse_field_selector(
        "metadata.name=a,metadata.namespace!=b", ["metadata.name", "metadata.namespace"]
    )
    assert requirements[0].matches({"metadata": {"name": "a", "namespace": "c"}})
    assert not requirements[1].matches({"metadata": {"name": "a", "namespace": "b"}})
    with pytest.raises(SelectorError, match="field label not supported"):
        parse_field_selector("spec.x=1", ["metadata.name"])


def test_merge_and_strategic_merge_patches() -> None:
    target = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "p": [1, 2, 3]}
    assert apply_merge_patch(target, {"a": {"b": None, "c": [3]}, "e": 2}) == {
        "a": {"c": [3]},
        "d": 1,
        "e": 2,
        "p": [1, 2, 3],
    }
    patch = {
        "a": {"$retainKeys": ["c"], "x": 1},
        "d": {"$patch": "delete"},
        "$deleteFromPrimitiveList/p": [2],
    }
    assert apply_strategic_merge_patch(target, patch) == {"a": {"c": [1, 2]}, "p": [1, 3]}
    assert target == {"a": {"b": 1, "c": [1, 2]}, "d": 1, "p": [1, 2, 3]}  # not mutated


def test_json_patch_operations_and_failures() -> None:
    doc = {"a": [1, 2], "b": {"c~d": 1, "e/f": 2}, "t": True}
    ops = [
        {"op": "add", "path": "/a/0", "value": 0},
        {"op": "move", "from": "/b/c~0d", "path": "/moved"},
        {"op": "remove", "path": "/b/e~1f"},
        {"op": "test", "path": "/t", "value": True},
    ]
    assert apply_json_patch(doc, ops) == {"a": [0, 1, 2], "b": {}, "t": True, "moved": 1}
    with pytest.raises(PatchApplyError, match="test failed"):
        apply_json_patch(doc, [{"op": "test", "path": "/t", "value": 1}])  # true is not 1 in JSON
    with pytest.raises(PatchApplyError):
        apply_json_patch(doc, [{"op": "remove", "path": "/missing"}])
    with pytest.raises(PatchApplyError):
        apply_json_patch(doc, [{"op": "replace", "path": "/a/5", "value": 1}])
    with pytest.raises(PatchFormatError):
        apply_json_patch(doc, [{"op": "teleport", "path": "/a"}])


def test_jsonpath_subset() -> None:
    obj = {
        "status": {
            "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]
        },
        "spec": {"ports": [{"port": 80}, {"port": 443}], "odd.key": "v"},
    }
    assert evaluate_jsonpath('.status.conditions[?(@.type=="Ready")].status', obj) == ["True"]
    assert evaluate_jsonpath("{.spec.ports[*].port}", obj) == [80, 443]
    assert evaluate_jsonpath(".spec.ports[-1].port", obj) == [443]
    assert evaluate_jsonpath("$.spec['odd.key']", obj) == ["v"]
    assert evaluate_jsonpath(".spec.missing", obj) == []


@pytest.mark.parametrize(
    ("seconds", "age"),
    [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (150, "2m30s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 60, "5h1m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 3600, "3d1h"),
        (20 * 86400, "20d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_human_duration(seconds: int, age: str) -> None:
    assert human_duration(seconds) == age
