"""CRD generation: files in sync with the models, structural schemas, manifests validated against them."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import re2
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from crd_validation import manifest_problems, to_jsonschema
from twilio_video_operator import crdgen
from twilio_video_operator.crdgen import build_crds, stale_crd_files, update_reference
from twilio_video_operator.models.structural import SchemaConversionError, model_schema

ROOT = Path(__file__).resolve().parents[2]
CRDS = build_crds()
BY_KIND = {crd["spec"]["names"]["kind"]: crd for crd in CRDS}
ROOM_SID = "RM" + "0123456789abcdef" * 2
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
ALLOWED_KEYWORDS = {
    "description", "type", "format", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
    "minItems", "maxItems", "maxProperties", "default", "nullable", "items", "properties", "required",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
}  # fmt: skip


def openapi(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = BY_KIND[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path or "(root)", node
    for name, sub in node.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from nodes(node["additionalProperties"], f"{path}.*")


# --- the generated files ---


def test_crd_files_are_up_to_date() -> None:
    stale = stale_crd_files(ROOT / "crds")

    assert stale == [], f"crds/ is out of date with the models ({', '.join(stale)}): run `make crds`"


def test_crds_directory_holds_only_generated_files() -> None:
    present = {path.name for path in (ROOT / "crds").glob("*.yaml")}

    assert present == {f"{crd['metadata']['name']}.yaml" for crd in CRDS}, (
        "run `make crds` and remove stale files"
    )


def test_generation_is_deterministic() -> None:
    assert crdgen.expected_files() == crdgen.expected_files()
    assert yaml.safe_load(crdgen.render_crd(CRDS[0])) == CRDS[0]


def test_reference_doc_is_up_to_date() -> None:
    path = ROOT / "docs" / "crd-reference.md"
    text = path.read_text(encoding="utf-8")

    assert update_reference(text) == text, (
        "docs/crd-reference.md is out of date: run "
        "`python -m twilio_video_operator.crdgen crds --reference docs/crd-reference.md`"
    )


# --- CRD shape ---


@pytest.mark.parametrize(
    ("kind", "plural", "short", "columns"),
    [
        ("VideoRoom", "videorooms", "vroom", ["SID", "STATUS", "PARTICIPANTS", "READY", "AGE"]),
        ("Composition", "compositions", "vcomp", ["SID", "STATUS", "PROGRESS", "READY", "AGE"]),
        (
            "SigningKeyRotation",
            "signingkeyrotations",
            "skr",
            ["ACTIVE KEY", "REVISION", "NEXT ROTATION", "READY", "AGE"],
        ),
    ],
)
def test_crd_names_version_and_columns(kind: str, plural: str, short: str, columns: list[str]) -> None:
    crd = BY_KIND[kind]

    assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{plural}.video.openclaw.io"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"]) == ("video.openclaw.io", "Namespaced")
    assert spec["names"] == {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": plural,
        "singular": plural[:-1],
        "shortNames": [short],
        "categories": ["twilio"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    printed = version["additionalPrinterColumns"]
    default = [column for column in printed if column.get("priority", 0) == 0]
    assert [column["name"] for column in default] == columns
    assert default[-2]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert default[-1] == {
        "name": "AGE",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since creation.",
    }
    for column in printed:
        path = column["jsonPath"]
        if path.startswith((".status.", ".spec.")) and "[" not in path:
            node: Mapping[str, Any] = openapi(kind)
            for part in path.split(".")[1:]:
                node = node["properties"][part]
            assert node["type"] == column["type"], column


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_schema_is_structural(kind: str) -> None:
    root = openapi(kind)
    assert root["properties"]["metadata"] == {"type": "object"}
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    for path, node in nodes(root):
        assert set(node) <= ALLOWED_KEYWORDS, f"{path}: {set(node) - ALLOWED_KEYWORDS}"
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") in TYPES, f"{path}: every node needs a type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("type") == "array":
            assert isinstance(node.get("items"), Mapping), path
        if "properties" in node:
            assert node["type"] == "object", path
        assert set(node.get("required", [])) <= set(node.get("properties", {})), path
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            assert set(node["x-kubernetes-list-map-keys"]) <= set(items.get("required", [])), path
        if "pattern" in node:
            re2.compile(node["pattern"])  # Kubernetes evaluates patterns with Go's RE2
        if "enum" in node:
            assert len(node["enum"]) == len(set(map(str, node["enum"]))), path


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_schema_passes_the_json_schema_meta_checks(kind: str) -> None:
    root = openapi(kind)

    jsonschema.Draft4Validator.check_schema(root)  # OpenAPI v3 schema objects are a Draft 4 dialect
    jsonschema.Draft7Validator.check_schema(to_jsonschema(root))


@pytest.mark.parametrize("kind", sorted(BY_KIND))
def test_defaults_validate_against_their_own_schema(kind: str) -> None:
    defaults = [(path, node) for path, node in nodes(openapi(kind)) if "default" in node]

    assert defaults
    for path, node in defaults:
        assert not list(jsonschema.Draft7Validator(to_jsonschema(node)).iter_errors(node["default"])), path


def test_status_has_conditions_map_and_kopf_and_no_defaults() -> None:
    for kind in BY_KIND:
        status = openapi(kind)["properties"]["status"]
        assert status["properties"]["kopf"] == {
            "description": "Bookkeeping of the kopf framework.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        conditions = status["properties"]["conditions"]
        assert (conditions["x-kubernetes-list-type"], conditions["x-kubernetes-list-map-keys"]) == (
            "map",
            ["type"],
        )
        assert set(conditions["items"]["properties"]) == {
            "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration",
        }  # fmt: skip
        assert not [path for path, node in nodes(status) if "default" in node]


def test_every_field_has_a_description() -> None:
    for kind in BY_KIND:
        for part in ("spec", "status"):
            for path, node in nodes(openapi(kind)["properties"][part], part):
                scalar_item = path.endswith("[]") and node.get("type") != "object"  # the list describes it
                assert scalar_item or node.get("description"), f"{kind} {path} lacks a description"


def test_contract_details_in_the_schema() -> None:
    room = openapi("VideoRoom")["properties"]["spec"]
    assert (
        room["properties"]["maxParticipants"]["minimum"] == 1
        and room["properties"]["maxParticipants"]["maximum"] == 50
    )
    assert (
        "default" not in room["properties"]["type"] and "default" not in room["properties"]["maxParticipants"]
    )
    assert room["properties"]["schedule"]["properties"]["startTime"]["format"] == "date-time"
    assert room["properties"]["clientProfile"]["properties"]["bandwidthProfile"][
        "x-kubernetes-preserve-unknown-fields"
    ]
    assert room["default"] == {}
    comp = openapi("Composition")
    assert comp["required"] == ["spec"]
    spec = comp["properties"]["spec"]
    assert spec["properties"]["roomSid"]["pattern"] == "^RM[0-9a-f]{32}$"
    assert spec["properties"]["resolution"]["pattern"] == "^[0-9]+x[0-9]+$"
    assert spec["properties"]["videoLayout"]["x-kubernetes-preserve-unknown-fields"]
    assert {
        "rule": "self == oldSelf",
        "message": "spec is immutable; create a new Composition instead",
    } in spec["x-kubernetes-validations"]
    skr = openapi("SigningKeyRotation")["properties"]["spec"]["properties"]
    assert {
        name: skr[name]["default"]
        for name in ("rotationInterval", "stagePeriod", "overlap", "deletionPolicy")
    } == {
        "rotationInterval": "720h",
        "stagePeriod": "2m",
        "overlap": "2h",
        "deletionPolicy": "Retain",
    }


# --- converter ---


class _Part(BaseModel):
    """A part."""

    size: int = Field(default=3, ge=1, description="Size.")


class _Whole(BaseModel):
    """A whole."""

    part: _Part | None = Field(default=None, description="The part.")
    parts: list[_Part] = Field(default_factory=list, description="More parts.")
    extra: dict[str, Any] | None = Field(default=None, description="Free-form.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")


def test_converter_inlines_refs_and_folds_nullable() -> None:
    schema = model_schema(_Whole, keep_defaults=True, path="x")

    assert schema == {
        "description": "A whole.",
        "type": "object",
        "properties": {
            "part": {
                "description": "The part.",
                "type": "object",
                "nullable": True,
                "properties": {
                    "size": {"description": "Size.", "type": "integer", "minimum": 1, "default": 3}
                },
            },
            "parts": {
                "description": "More parts.",
                "type": "array",
                "items": {
                    "description": "A part.",
                    "type": "object",
                    "properties": {
                        "size": {"description": "Size.", "type": "integer", "minimum": 1, "default": 3}
                    },
                },
            },
            "extra": {
                "description": "Free-form.",
                "type": "object",
                "nullable": True,
                "x-kubernetes-preserve-unknown-fields": True,
            },
            "labels": {
                "description": "Labels.",
                "type": "object",
                "additionalProperties": {"type": "string"},
            },
        },
    }
    assert "default" not in str(model_schema(_Whole, keep_defaults=False, path="x"))


class _Union(BaseModel):
    value: int | str = Field(description="Either.")


class _Exclusive(BaseModel):
    value: int = Field(gt=0, description="Positive.")


@pytest.mark.parametrize(
    ("model", "message"), [(_Union, "x.value: unions"), (_Exclusive, "'exclusiveMinimum'")]
)
def test_converter_refuses_what_it_cannot_express(model: type[BaseModel], message: str) -> None:
    with pytest.raises(SchemaConversionError, match=message.replace("(", r"\(")):
        model_schema(model, keep_defaults=True, path="x")


# --- manifests against the generated schema ---


def example_documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, document)
        for path in sorted((ROOT / "examples").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    ]


def test_there_is_an_example_per_kind() -> None:
    names = {name for name, _ in example_documents()}
    kinds = {document["kind"] for _, document in example_documents()}

    assert {
        "videoroom.yaml",
        "videoroom-scheduled.yaml",
        "composition.yaml",
        "signingkeyrotation.yaml",
    } <= names
    assert kinds == set(BY_KIND)


@pytest.mark.parametrize(
    ("name", "document"), example_documents(), ids=[name for name, _ in example_documents()]
)
def test_example_validates_against_schema_and_model(name: str, document: dict[str, Any]) -> None:
    from twilio_video_operator.models import kind_info

    assert document["metadata"]["namespace"] == "default"
    assert manifest_problems(document, CRDS) == []
    assert kind_info(document["kind"]).validate_spec(document["spec"]) == []


def test_composition_example_references_the_example_room() -> None:
    documents = dict(example_documents())
    room_names = {doc["metadata"]["name"] for _, doc in example_documents() if doc["kind"] == "VideoRoom"}

    assert documents["composition.yaml"]["spec"]["roomRef"]["name"] in room_names


def base_room(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "VideoRoom",
        "metadata": {"name": "r"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"maxParticipants": 51}, "spec.maxParticipants: 51 is greater than the maximum of 50"),
        ({"maxParticipants": "ten"}, "spec.maxParticipants: 'ten' is not of type 'integer', 'null'"),
        (
            {"type": "huge"},
            "spec.type: 'huge' is not one of ['group', 'group-small', 'peer-to-peer', 'go', None]",
        ),
        ({"keepAlive": "yes"}, "spec.keepAlive: 'yes' is not of type 'boolean'"),
        ({"colour": "blue"}, "spec: Additional properties are not allowed ('colour' was unexpected)"),
        (
            {"schedule": {"startTime": "2027-01-01 at ten"}},
            "spec.schedule.startTime: '2027-01-01 at ten' is not a 'date-time'",
        ),
        (
            {"schedule": {"startTime": "2027-01-01T10:00:00"}},
            "spec.schedule.startTime: '2027-01-01T10:00:00' is not a 'date-time'",
        ),
        (
            {"schedule": {"endTime": "2027-02-30T10:00:00Z"}},
            "spec.schedule.endTime: '2027-02-30T10:00:00Z' is not a 'date-time'",
        ),
        (
            {"recording": {"rules": [{"type": "include", "kind": "data"}]}},
            "spec.recording.rules[0].kind: 'data' is not one of",
        ),
        ({"videoCodecs": []}, "spec.videoCodecs: [] should be non-empty"),
        ({"videoCodecs": ["VP8", "VP8"]}, "spec.videoCodecs: ['VP8', 'VP8'] has non-unique elements"),
        ({"tokens": {"maxTtlSeconds": 30}}, "spec.tokens.maxTtlSeconds: 30 is less than the minimum of 60"),
        ({"credentialsRef": {"name": "UPPER"}}, "spec.credentialsRef.name: 'UPPER' does not match"),
    ],
)
def test_invalid_room_is_rejected_naming_the_field(spec: dict[str, Any], expected: str) -> None:
    problems = manifest_problems(base_room(**spec), CRDS)

    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_valid_room_variants_are_accepted() -> None:
    assert manifest_problems(base_room(), CRDS) == []
    assert (
        manifest_problems(
            base_room(maxParticipants=None, schedule={"startTime": "2027-01-01T10:00:00.5+01:00"}), CRDS
        )
        == []
    )
    free_form = {"bandwidthProfile": {"video": {"anything": {"goes": [1, "two"]}}}}
    assert manifest_problems(base_room(clientProfile=free_form), CRDS) == []


def test_other_kinds_are_checked_too() -> None:
    comp = {"apiVersion": "video.openclaw.io/v1alpha1", "kind": "Composition", "metadata": {"name": "c"}}
    assert manifest_problems(comp, CRDS) == ["(root): 'spec' is a required property"]
    assert manifest_problems({**comp, "spec": {"roomSid": "RM1"}}, CRDS) == [
        "spec.roomSid: 'RM1' does not match '^RM[0-9a-f]{32}$'"
    ]
    skr = {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "SigningKeyRotation",
        "metadata": {"name": "k"},
    }
    assert manifest_problems({**skr, "spec": {"secretName": "k", "overlap": "2 hours"}}, CRDS)[0].startswith(
        "spec.overlap: '2 hours' does not match"
    )
    assert manifest_problems({**skr, "apiVersion": "video.openclaw.io/v1"}, CRDS) == [
        "(root): no served CRD for apiVersion 'video.openclaw.io/v1', kind 'SigningKeyRotation'"
    ]


def test_status_is_validated_as_the_operator_writes_it() -> None:
    room = base_room()
    room["status"] = {
        "sid": ROOM_SID,
        "roomStatus": "in-progress",
        "participants": {"connected": 2, "peak": 2},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "message": "",
                "lastTransitionTime": "2026-03-01T12:00:00Z",
            }
        ],
        "kopf": {"progress": {"anything": True}},
    }
    assert manifest_problems(room, CRDS) == []

    broken = copy.deepcopy(room)
    broken["status"]["conditions"][0]["status"] = "Yes"
    assert manifest_problems(broken, CRDS) == [
        "status.conditions[0].status: 'Yes' is not one of ['True', 'False', 'Unknown']"
    ]


# --- command line ---


def test_cli_writes_checks_and_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crds"

    assert crdgen.main([str(out)]) == 0
    assert crdgen.main(["--check", str(out)]) == 0
    target = out / "videorooms.video.openclaw.io.yaml"
    target.write_text(target.read_text().replace("maximum: 50", "maximum: 60"))
    assert crdgen.main(["--check", str(out)]) == 1
    assert "stale:" in capsys.readouterr().err


def test_cli_refreshes_the_reference_tables(tmp_path: Path) -> None:
    doc = tmp_path / "reference.md"
    doc.write_text(
        "intro\n"
        + "".join(f"<!-- BEGIN GENERATED: {k} -->\nold\n<!-- END GENERATED: {k} -->\n" for k in BY_KIND)
        + "outro\n"
    )

    assert crdgen.main(["--check", str(tmp_path / "none"), "--reference", str(doc)]) == 1
    assert crdgen.main([str(tmp_path / "crds"), "--reference", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "\nold\n" not in text
    assert "| `maxParticipants` | integer |  | 1..50 |" in text
    assert crdgen.main(["--check", str(tmp_path / "crds"), "--reference", str(doc)]) == 0


def test_reference_without_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="BEGIN GENERATED: VideoRoom"):
        update_reference("no markers here")


# --- the model and the generated schema agree ---

_ROOM_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "maxParticipants": st.one_of(st.integers(-5, 60), st.none(), st.text(max_size=3)),
        "type": st.sampled_from(["group", "group-small", "peer-to-peer", "go", "huge", ""]),
        "emptyRoomTimeout": st.integers(-1, 70),
        "maxParticipantDuration": st.integers(500, 90000),
        "state": st.sampled_from(["Active", "Completed", "active"]),
        "videoCodecs": st.lists(st.sampled_from(["VP8", "H264", "VP9"]), max_size=3),
        "mediaRegion": st.sampled_from(["us1", "ie1", "gll", "mars", "US1"]),
        "tokens": st.fixed_dictionaries({}, optional={"maxTtlSeconds": st.integers(0, 90000)}),
        "schedule": st.fixed_dictionaries(
            {"startTime": st.sampled_from(["2027-01-01T10:00:00Z", "2027-01-01T10:00:00", "soon"])},
            optional={"provisionAhead": st.sampled_from(["5m", "1h30m", "5 min", "0.5h"])},
        ),
    },
)


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(spec=_ROOM_FIELDS)
def test_model_and_schema_accept_the_same_room_fields(spec: dict[str, Any]) -> None:
    from twilio_video_operator.models import validate_videoroom_spec

    by_model = validate_videoroom_spec(spec)
    by_schema = manifest_problems(base_room(**spec), CRDS)

    assert bool(by_model) == bool(by_schema), (by_model, by_schema)
