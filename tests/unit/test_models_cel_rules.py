"""The CRDs' CEL rules (x-kubernetes-validations), evaluated as an API server would.

The objects are first defaulted from the schema and typed the Kubernetes way (``format: date-time``
strings become timestamps), then every rule on every node present is evaluated with cel-python.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes

from twilio_video_operator.crdgen import build_crds

ROOT = Path(__file__).resolve().parents[2]
ROOM_SID = "RM" + "0123456789abcdef" * 2
SCHEMAS = {
    crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for crd in build_crds()
}
ENV = celpy.Environment()


def apply_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """Structural defaulting: fill absent properties that declare a default, recursively."""
    if isinstance(value, dict):
        result = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in result and "default" in sub:
                result[name] = copy.deepcopy(sub["default"])
            if name in result:
                result[name] = apply_defaults(result[name], sub)
        return result
    if isinstance(value, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def to_cel(value: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(v, properties.get(k, {})) for k, v in value.items()}
        )
    if isinstance(value, list):
        return celtypes.ListType([to_cel(item, schema.get("items", {})) for item in value])
    if schema.get("format") == "date-time" and isinstance(value, str):
        return celtypes.TimestampType(value)
    return celpy.json_to_cel(value)


def rules_at(
    value: Any, schema: Mapping[str, Any], path: str
) -> Iterator[tuple[str, dict[str, str], Any, Mapping[str, Any]]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule, value, schema
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value and value[name] is not None:
                yield from rules_at(value[name], sub, f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from rules_at(item, schema["items"], f"{path}[{index}]")


def rule_failures(obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[str]:
    """``path: message`` for every rule that does not hold (transition rules only when ``old`` is given)."""
    schema = SCHEMAS[obj["kind"]]
    new_obj = apply_defaults(dict(obj), schema)
    old_obj = apply_defaults(dict(old), schema) if old is not None else None
    failures = []
    for path, rule, value, node in rules_at(new_obj, schema, ""):
        activation = {"self": to_cel(value, node)}
        if "oldSelf" in rule["rule"]:
            old_value = _walk(old_obj, path) if old_obj is not None else None
            if old_value is None:
                continue
            activation["oldSelf"] = to_cel(old_value, node)
        try:
            result = ENV.program(ENV.compile(rule["rule"])).evaluate(activation)
        except celpy.CELEvalError as error:
            failures.append(f"{path.lstrip('.')}: error {error}")
            continue
        if result is not True and result != celtypes.BoolType(True):
            failures.append(f"{path.lstrip('.')}: {rule['message']}")
    return failures


def _walk(obj: Any, path: str) -> Any:
    for part in path.lstrip(".").split("."):
        if not part:
            continue
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def room(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "VideoRoom",
        "metadata": {"name": "r"},
        "spec": spec,
    }


def composition(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "Composition",
        "metadata": {"name": "c"},
        "spec": spec,
    }


def rotation(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "SigningKeyRotation",
        "metadata": {"name": "k"},
        "spec": spec,
    }


def test_every_rule_compiles() -> None:
    rules = [rule["rule"] for schema in SCHEMAS.values() for _, rule, _, _ in _all_rules(schema)]

    assert len(rules) >= 9
    for source in rules:
        ENV.compile(source)


def _all_rules(schema: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, str], None, Mapping[str, Any]]]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield "", rule, None, schema
    for sub in schema.get("properties", {}).values():
        yield from _all_rules(sub)
    if "items" in schema:
        yield from _all_rules(schema["items"])


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_pass_every_rule(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        assert rule_failures(document) == []


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            room(schedule={"startTime": "2027-01-01T10:00:00Z", "endTime": "2027-01-01T09:00:00Z"}),
            "spec.schedule: schedule.endTime must be after schedule.startTime",
        ),
        (
            room(schedule={"startTime": "2027-01-01T10:00:00+02:00", "endTime": "2027-01-01T08:00:00Z"}),
            "spec.schedule: schedule.endTime must be after schedule.startTime",
        ),
        (room(schedule={"provisionAhead": "1m"}), "spec.schedule: schedule needs startTime, endTime or both"),
        (
            room(type="go", recording={"participantsOnConnect": True}),
            "spec: recording needs a group or group-small room",
        ),
        (
            room(recording={"rules": [{"type": "include"}]}),
            "spec.recording.rules[0]: a recording rule needs all, publisher, track or kind",
        ),
        (
            room(recording={"rules": [{"type": "include", "all": True, "kind": "audio"}]}),
            "spec.recording.rules[0]: all must be true and is the only filter allowed next to type",
        ),
        (
            room(clientProfile={"degradation": {"audioOnlyBelowLevel": 4}}),
            "spec.clientProfile.degradation: restoreAtLevel must be at least audioOnlyBelowLevel",
        ),
        (
            room(recording={"compose": {"audioSources": []}}),
            "spec.recording.compose: set videoLayout or at least one entry in audioSources",
        ),
        (composition(), "spec: set exactly one of roomRef and roomSid"),
        (
            composition(roomRef={"name": "r"}, roomSid=ROOM_SID),
            "spec: set exactly one of roomRef and roomSid",
        ),
        (
            composition(roomSid=ROOM_SID, audioSources=[]),
            "spec: set videoLayout or at least one entry in audioSources",
        ),
        (
            rotation(secretName="k", rotationInterval="2h2m"),
            "spec: rotationInterval must be longer than stagePeriod + overlap",
        ),
        (
            rotation(secretName="k", rotationInterval="90m", overlap="1.5h"),
            "spec: rotationInterval must be longer than stagePeriod + overlap",
        ),
    ],
)
def test_invalid_objects_fail_the_named_rule(obj: dict[str, Any], expected: str) -> None:
    assert rule_failures(obj) == [expected]


@pytest.mark.parametrize(
    "obj",
    [
        room(),
        room(schedule={"endTime": "2027-01-01T09:00:00Z"}),
        room(
            type="group-small",
            recording={"rules": [{"type": "exclude", "publisher": "bot", "kind": "video"}]},
        ),
        room(recording={"participantsOnConnect": True}),
        room(clientProfile={"degradation": {}}),
        composition(roomSid=ROOM_SID, audioSources=[], videoLayout={"grid": {"video_sources": ["*"]}}),
        rotation(secretName="k", rotationInterval="2h2m1s"),
        rotation(secretName="k", rotationInterval="1h30m", overlap="1h", stagePeriod="500ms"),
    ],
)
def test_valid_objects_pass(obj: dict[str, Any]) -> None:
    assert rule_failures(obj) == []


def test_composition_spec_is_immutable() -> None:
    old = composition(roomRef={"name": "standup"})

    assert rule_failures(composition(roomRef={"name": "standup"}, format="mp4"), old=old) == []
    assert rule_failures(composition(roomRef={"name": "standup"}, format="webm"), old=old) == [
        "spec: spec is immutable; create a new Composition instead"
    ]


def test_rules_agree_with_the_model_validators() -> None:
    from twilio_video_operator.models import kind_info

    cases = [
        room(schedule={"startTime": "2027-01-01T10:00:00Z", "endTime": "2027-01-01T09:00:00Z"}),
        room(type="peer-to-peer", recording={"participantsOnConnect": True}),
        composition(),
        rotation(secretName="k", rotationInterval="1h"),
        room(schedule={"startTime": "2027-01-01T10:00:00Z"}),
        composition(roomSid=ROOM_SID),
    ]
    for obj in cases:
        assert bool(rule_failures(obj)) == bool(kind_info(obj["kind"]).validate_spec(obj["spec"])), obj
