"""The CRDs of ``crds/`` on a real kube-apiserver: they are accepted and Established with every CEL rule
compiled, the examples are accepted by ``kubectl apply`` with its default (strict) validation, ``kubectl
explain`` reads their schema, and the invalid manifests of the suite are refused by the server itself.

The invalid cases are those of ``tests/fixtures/hostile/`` (see ``tests/chaos/test_hostile_manifests.py``)
and of ``tests/unit/test_models_cel_rules.py``; on the real server every CEL rule is enforced, so the
hostile manifests that the embedded API accepts and the operator stalls are refused here with the rule's
message. ``docs/real-kubernetes.md`` records where the real server's words differ from the project's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from real_kube import REPO_ROOT, RealKube

GROUP = "video.openclaw.io"
VERSION = "v1alpha1"
PLURALS = {
    "VideoRoom": "videorooms",
    "Composition": "compositions",
    "SigningKeyRotation": "signingkeyrotations",
}
NAMESPACE = "realkube-crds"
ROOM_SID = "RM" + "0123456789abcdef" * 2
# The rules as docs/crd-reference.md lists them, "- `path`: message (`rule`)": the refusals must match.
CRD_REFERENCE = (REPO_ROOT / "docs" / "crd-reference.md").read_text(encoding="utf-8")
CRD_FILES = sorted((REPO_ROOT / "crds").glob("*.yaml"))
HOSTILE = sorted((REPO_ROOT / "tests" / "fixtures" / "hostile").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (rejected|stalled|rejected-or-stalled)(?: (\S+))?$", re.MULTILINE)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def ours(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        doc for doc in docs if doc.get("apiVersion", "").startswith(f"{GROUP}/") and doc["kind"] in PLURALS
    ]


EXAMPLES = [path for path in sorted((REPO_ROOT / "examples").rglob("*.yaml")) if ours(documents(path))]


def collection(kind: str, namespace: str = NAMESPACE) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURALS[kind]}"


@pytest.fixture(scope="module")
def crds(real_kube: RealKube) -> Iterator[dict[str, Any]]:
    """Every CRD of crds/, applied server-side and waited for until Established: the stored CRDs and what
    kubectl printed while applying them."""
    applied = real_kube.kubectl(
        "apply", "--server-side", "--field-manager=realkube-tests", *(f"--filename={p}" for p in CRD_FILES)
    )
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRD_FILES]
    real_kube.kubectl("wait", "--for=condition=Established", "--timeout=120s", *(f"crd/{n}" for n in names))
    real_kube.kubectl("create", "namespace", NAMESPACE)
    stored = {
        name: real_kube.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")[1]
        for name in names
    }
    yield {"stored": stored, "stderr": applied.stderr}


def rules(schema: dict[str, Any]) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield rule["rule"]
    for sub in schema.get("properties", {}).values():
        yield from rules(sub)
    if "items" in schema:
        yield from rules(schema["items"])


def test_every_crd_is_established_with_its_cel_rules(crds: dict[str, Any]) -> None:
    # A rule that does not compile, or whose estimated cost is over the budget, makes the server refuse
    # the CRD outright; one that is accepted is compiled and kept as written.
    assert "Warning" not in crds["stderr"], crds["stderr"]
    for path in CRD_FILES:
        local = yaml.safe_load(path.read_text())
        served = crds["stored"][local["metadata"]["name"]]
        conditions = {c["type"]: c for c in served["status"]["conditions"]}
        assert conditions["Established"]["status"] == "True", conditions
        assert conditions["NamesAccepted"]["status"] == "True", conditions
        assert "NonStructuralSchema" not in conditions, conditions
        assert set(conditions) <= {"Established", "NamesAccepted"}, conditions
        for local_version, served_version in zip(
            local["spec"]["versions"], served["spec"]["versions"], strict=True
        ):
            # The server stores properties as a map, sorted by name, so only the multiset of rules compares.
            local_rules = sorted(rules(local_version["schema"]["openAPIV3Schema"]))
            assert local_rules
            assert sorted(rules(served_version["schema"]["openAPIV3Schema"])) == local_rules


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO_ROOT / "examples")))
def test_example_is_accepted_by_kubectl_apply(real_kube: RealKube, crds: dict[str, Any], path: Path) -> None:
    docs = ours(documents(path))
    for namespace in {doc["metadata"].get("namespace", "default") for doc in docs} - {"default"}:
        if real_kube.kubectl("get", "namespace", namespace, check=False).returncode != 0:
            real_kube.kubectl("create", "namespace", namespace)
    applied = real_kube.kubectl("apply", "--filename=-", input=yaml.safe_dump_all(docs))

    assert "Warning" not in applied.stderr, applied.stderr
    for doc in docs:
        stored = real_kube.kubectl(
            "get",
            doc["kind"].lower(),
            doc["metadata"]["name"],
            f"--namespace={doc['metadata'].get('namespace', 'default')}",
            "--output=yaml",
        )
        assert yaml.safe_load(stored.stdout)["spec"]


@pytest.mark.parametrize("field", ["videoroom.spec", "composition.spec", "signingkeyrotation.spec"])
def test_kubectl_explain_reads_the_schema(real_kube: RealKube, crds: dict[str, Any], field: str) -> None:
    explained = real_kube.kubectl("explain", field)

    kind = field.split(".")[0]
    assert re.search(rf"^KIND:\s+{kind}$", explained.stdout, re.MULTILINE | re.IGNORECASE), explained.stdout
    assert re.search(rf"^GROUP:\s+{GROUP}$", explained.stdout, re.MULTILINE), explained.stdout
    assert "FIELDS:" in explained.stdout


# What the real server does with the hostile manifests that the embedded API accepts (`# expect: stalled`):
# a CEL rule refuses them with its message, or (the operator's own checks) it accepts them.
STALLED_ON_THE_EMBEDDED_API: dict[str, tuple[str, str] | None] = {
    "comp-no-room.yaml": ("spec", "set exactly one of roomRef and roomSid"),
    "comp-no-sources.yaml": ("spec", "set videoLayout or at least one entry in audioSources"),
    "comp-resolution-too-large.yaml": None,
    "comp-roomref-and-roomsid.yaml": ("spec", "set exactly one of roomRef and roomSid"),
    "skr-interval-shorter-than-cycle.yaml": (
        "spec",
        "rotationInterval must be longer than stagePeriod + overlap",
    ),
    "skr-zero-interval.yaml": ("spec", "rotationInterval must be longer than stagePeriod + overlap"),
    "vr-degradation-inverted.yaml": (
        "spec.clientProfile.degradation",
        "restoreAtLevel must be at least audioOnlyBelowLevel",
    ),
    "vr-recording-peer-to-peer.yaml": ("spec", "recording needs a group or group-small room"),
    "vr-recording-rule-conflict.yaml": (
        "spec.recording.rules[0]",
        "all must be true and is the only filter allowed next to type",
    ),
    "vr-schedule-empty.yaml": ("spec.schedule", "schedule needs startTime, endTime or both"),
    "vr-schedule-end-before-start.yaml": (
        "spec.schedule",
        "schedule.endTime must be after schedule.startTime",
    ),
    "vr-uniquename-slash.yaml": None,
}


def documented(field: str, message: str) -> bool:
    """Whether docs/crd-reference.md lists the rule: it names list items `rules[]` where the server says
    which one (`rules[0]`)."""
    listed = re.sub(r"\[\d+\]", "[]", field)
    return f"- `{listed}`: {message} (" in CRD_REFERENCE


def create(real_kube: RealKube, obj: dict[str, Any]) -> tuple[int, dict[str, Any], list[str]]:
    return real_kube.request("POST", collection(obj["kind"]), obj)


def causes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c.get("field", ""), c.get("message", "")) for c in body.get("details", {}).get("causes", [])]


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.stem)
def test_hostile_manifest_on_the_real_server(real_kube: RealKube, crds: dict[str, Any], path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expect = EXPECT.search(text)
    assert expect is not None, f"{path.name} has no '# expect:' line"
    manifest = yaml.safe_load(text)
    manifest["metadata"]["namespace"] = NAMESPACE

    status, body, _ = create(real_kube, manifest)

    if expect.group(1) == "stalled":
        outcome = STALLED_ON_THE_EMBEDDED_API[path.name]
        if outcome is None:
            assert status == 201, body
            return
        field, message = outcome
        assert status == 422, body
        assert (field, f"Invalid value: {message}") in causes(body), body
        assert documented(field, message), f"docs/crd-reference.md does not show {message!r}"
        return
    # rejected and rejected-or-stalled: the real server checks every one of them.
    field_path = expect.group(2)
    assert status == 422, body
    assert field_path in body["message"], body


def test_every_hostile_manifest_has_a_real_outcome() -> None:
    stalled = {p.name for p in HOSTILE if (m := EXPECT.search(p.read_text())) and m.group(1) == "stalled"}
    assert stalled == set(STALLED_ON_THE_EMBEDDED_API)


def room(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VideoRoom", "metadata": {"name": name}, "spec": spec}


def composition(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Composition",
        "metadata": {"name": name},
        "spec": spec,
    }


def rotation(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SigningKeyRotation",
        "metadata": {"name": name},
        "spec": spec,
    }


# The invalid objects of tests/unit/test_models_cel_rules.py with the "path: message" it expects of each.
CEL_REFUSALS = [
    (
        room(
            "end-before-start",
            schedule={"startTime": "2027-01-01T10:00:00Z", "endTime": "2027-01-01T09:00:00Z"},
        ),
        "spec.schedule: schedule.endTime must be after schedule.startTime",
    ),
    (
        room(
            "end-before-start-offsets",
            schedule={"startTime": "2027-01-01T10:00:00+02:00", "endTime": "2027-01-01T08:00:00Z"},
        ),
        "spec.schedule: schedule.endTime must be after schedule.startTime",
    ),
    (
        room("schedule-empty", schedule={"provisionAhead": "1m"}),
        "spec.schedule: schedule needs startTime, endTime or both",
    ),
    (
        room("recording-go", type="go", recording={"participantsOnConnect": True}),
        "spec: recording needs a group or group-small room",
    ),
    (
        room("rule-without-filter", recording={"rules": [{"type": "include"}]}),
        "spec.recording.rules[0]: a recording rule needs all, publisher, track or kind",
    ),
    (
        room("rule-all-and-kind", recording={"rules": [{"type": "include", "all": True, "kind": "audio"}]}),
        "spec.recording.rules[0]: all must be true and is the only filter allowed next to type",
    ),
    (
        room("degradation", clientProfile={"degradation": {"audioOnlyBelowLevel": 4}}),
        "spec.clientProfile.degradation: restoreAtLevel must be at least audioOnlyBelowLevel",
    ),
    (
        room("compose-nothing", recording={"compose": {"audioSources": []}}),
        "spec.recording.compose: set videoLayout or at least one entry in audioSources",
    ),
    (composition("no-room"), "spec: set exactly one of roomRef and roomSid"),
    (
        composition("both-rooms", roomRef={"name": "r"}, roomSid=ROOM_SID),
        "spec: set exactly one of roomRef and roomSid",
    ),
    (
        composition("no-sources", roomSid=ROOM_SID, audioSources=[]),
        "spec: set videoLayout or at least one entry in audioSources",
    ),
    (
        rotation("interval-too-short", secretName="k", rotationInterval="2h2m"),
        "spec: rotationInterval must be longer than stagePeriod + overlap",
    ),
    (
        rotation("interval-equal", secretName="k", rotationInterval="90m", overlap="1.5h"),
        "spec: rotationInterval must be longer than stagePeriod + overlap",
    ),
]

# The valid objects of the same unit test.
CEL_ACCEPTED = [
    room("plain"),
    room("end-only", schedule={"endTime": "2027-01-01T09:00:00Z"}),
    room(
        "exclude-rule",
        type="group-small",
        recording={"rules": [{"type": "exclude", "publisher": "bot", "kind": "video"}]},
    ),
    room("recording-default-type", recording={"participantsOnConnect": True}),
    room("degradation-defaults", clientProfile={"degradation": {}}),
    composition("layout", roomSid=ROOM_SID, audioSources=[], videoLayout={"grid": {"video_sources": ["*"]}}),
    rotation("interval-longer", secretName="k", rotationInterval="2h2m1s"),
    rotation("subsecond-stage", secretName="k", rotationInterval="1h30m", overlap="1h", stagePeriod="500ms"),
]


@pytest.mark.parametrize(
    ("obj", "expected"), CEL_REFUSALS, ids=[o["metadata"]["name"] for o, _ in CEL_REFUSALS]
)
def test_cel_rule_refuses_on_the_real_server(
    real_kube: RealKube, crds: dict[str, Any], obj: dict[str, Any], expected: str
) -> None:
    status, body, _ = create(real_kube, obj)

    field, message = expected.split(": ", 1)
    assert status == 422, body
    assert [(f, m) for f, m in causes(body) if message in m] == [(field, f"Invalid value: {message}")], body
    assert documented(field, message), f"docs/crd-reference.md does not show {expected!r}"


@pytest.mark.parametrize("obj", CEL_ACCEPTED, ids=[o["metadata"]["name"] for o in CEL_ACCEPTED])
def test_valid_object_is_accepted_on_the_real_server(
    real_kube: RealKube, crds: dict[str, Any], obj: dict[str, Any]
) -> None:
    status, body, warnings = create(real_kube, obj)

    assert status == 201, body
    assert warnings == []


def test_composition_spec_is_immutable_on_the_real_server(real_kube: RealKube, crds: dict[str, Any]) -> None:
    status, body, _ = create(real_kube, composition("immutable", roomRef={"name": "standup"}))
    assert status == 201, body
    path = f"{collection('Composition')}/immutable"

    relabelled = real_kube.request("PATCH", path, {"metadata": {"labels": {"team": "a"}}})
    changed = real_kube.request("PATCH", path, {"spec": {"format": "webm"}})

    assert relabelled[0] == 200, relabelled[1]
    assert changed[0] == 422, changed[1]
    assert causes(changed[1]) == [
        ("spec", "Invalid value: spec is immutable; create a new Composition instead")
    ]


def test_kubectl_diff_shows_only_what_would_change(real_kube: RealKube, crds: dict[str, Any]) -> None:
    manifest = room("diffed", type="group", maxParticipants=12)
    manifest["metadata"]["namespace"] = NAMESPACE
    real_kube.kubectl("apply", "--filename=-", input=yaml.safe_dump(manifest))

    same = real_kube.kubectl("diff", "--filename=-", input=yaml.safe_dump(manifest), check=False)
    manifest["spec"]["maxParticipants"] = 13
    changed = real_kube.kubectl("diff", "--filename=-", input=yaml.safe_dump(manifest), check=False)

    # kubectl diff asks the server for a dry-run apply: exit 0 and no output when nothing would change.
    assert (same.returncode, same.stdout, same.stderr) == (0, "", "")
    assert changed.returncode == 1, changed.stderr
    removed = [line for line in changed.stdout.splitlines() if line.startswith("-  ")]
    added = [line for line in changed.stdout.splitlines() if line.startswith("+  ")]
    # The spec change, and the generation the server would bump for it.
    assert [line.split() for line in removed] == [
        ["-", "generation:", "1"],
        ["-", "maxParticipants:", "12"],
    ], changed.stdout
    assert [line.split() for line in added] == [
        ["+", "generation:", "2"],
        ["+", "maxParticipants:", "13"],
    ], changed.stdout
