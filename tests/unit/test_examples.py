"""The example manifests under ``examples/``: every file parses, every object of the operator's kinds is
valid against the CRD schemas in ``crds/`` and the models, all examples can be applied together, the
references between them resolve, and each scenario folder shows what ``docs/examples.md`` says it does."""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from crd_validation import manifest_problems
from twilio_video_operator.models import kind_info
from twilio_video_operator.models.duration import parse_duration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DOC = REPO / "docs" / "examples.md"
API_GROUP = "video.openclaw.io"
SCENARIOS = ("quota", "webinar", "classroom", "recording", "key-rotation", "paid-room")
# Folders whose objects are applied to a cluster (argocd/ holds Argo CD's own objects and scripts).
CLUSTER_FOLDERS = (*SCENARIOS, "rbac")
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
# What real cloud credentials look like; the examples' placeholders must not.
AWS_ACCESS_KEY_ID = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
AWS_SECRET_ACCESS_KEY = re.compile(r"^[A-Za-z0-9/+]{40}$")

Document = dict[str, Any]


def load(path: Path) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def documents_in(folder: Path) -> list[Document]:
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in load(path)]


def applied_together() -> list[Document]:
    """The top-level examples and every cluster folder, as someone trying all of them would apply them."""
    return [
        *documents_in(EXAMPLES),
        *(doc for folder in CLUSTER_FOLDERS for doc in documents_in(EXAMPLES / folder)),
    ]


def ours(doc: Document) -> bool:
    return str(doc.get("apiVersion", "")).startswith(f"{API_GROUP}/")


def namespace_of(doc: Document) -> str | None:
    if doc["kind"] in CLUSTER_SCOPED_KINDS:
        return None
    return str(doc["metadata"].get("namespace", "default"))


def find(docs: list[Document], kind: str, namespace: str | None = None) -> list[Document]:
    return [
        doc for doc in docs if doc["kind"] == kind and (namespace is None or namespace_of(doc) == namespace)
    ]


def one(docs: list[Document], kind: str) -> Document:
    found = find(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def crds() -> list[Document]:
    return [doc for path in sorted((REPO / "crds").glob("*.yaml")) for doc in load(path)]


# --- every file, every object -----------------------------------------------------------------------------

ALL_FILES = sorted(EXAMPLES.rglob("*.yaml"))
OUR_OBJECTS = [
    pytest.param(doc, id=f"{path.relative_to(EXAMPLES)}:{doc['metadata']['name']}")
    for path in ALL_FILES
    for doc in load(path)
    if isinstance(doc, dict) and ours(doc)
]


@pytest.mark.parametrize("path", ALL_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in ALL_FILES])
def test_every_manifest_parses_into_named_objects(path: Path) -> None:
    docs = load(path)
    assert docs, f"{path} has no object"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping"
        assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion and kind are required"
        assert (doc.get("metadata") or {}).get("name"), f"{path}: metadata.name is required"


@pytest.mark.parametrize("doc", OUR_OBJECTS)
def test_objects_of_our_kinds_are_valid(doc: Document, crds: list[Document]) -> None:
    assert manifest_problems(doc, crds) == []
    assert kind_info(doc["kind"]).validate_spec(doc["spec"]) == []


def test_every_scenario_has_manifests_and_a_section_in_the_docs() -> None:
    text = DOC.read_text(encoding="utf-8")
    for scenario in SCENARIOS:
        assert documents_in(EXAMPLES / scenario), f"examples/{scenario}/ has no manifest"
        assert f"examples/{scenario}/" in text, f"docs/examples.md does not describe examples/{scenario}/"
        for path in sorted((EXAMPLES / scenario).glob("*.yaml")):
            assert f"{scenario}/{path.name}" in text, f"docs/examples.md does not mention {path.name}"


# --- all examples in one cluster --------------------------------------------------------------------------


def test_all_examples_can_be_applied_together() -> None:
    docs = applied_together()
    keys = Counter(
        (doc["apiVersion"], doc["kind"], namespace_of(doc), doc["metadata"]["name"]) for doc in docs
    )
    assert [key for key, count in keys.items() if count > 1] == []
    # Secrets that a SigningKeyRotation owns are not declared by another example.
    owned = {(namespace_of(doc), doc["spec"]["secretName"]) for doc in find(docs, "SigningKeyRotation")}
    declared = {(namespace_of(doc), doc["metadata"]["name"]) for doc in find(docs, "Secret")}
    assert owned & declared == set()


@pytest.mark.parametrize("scenario", CLUSTER_FOLDERS)
def test_objects_live_in_default_or_in_a_namespace_of_the_same_folder(scenario: str) -> None:
    docs = documents_in(EXAMPLES / scenario)
    namespaces = {"default"} | {doc["metadata"]["name"] for doc in find(docs, "Namespace")}
    for doc in docs:
        namespace = namespace_of(doc)
        assert namespace is None or namespace in namespaces, (doc["kind"], doc["metadata"]["name"], namespace)


def test_references_between_examples_resolve() -> None:
    docs = applied_together()

    def names(kind: str, namespace: str | None) -> set[str]:
        return {doc["metadata"]["name"] for doc in find(docs, kind, namespace)}

    for doc in docs:
        namespace, spec = namespace_of(doc), doc.get("spec") or {}
        where = f"{doc['kind']} {namespace}/{doc['metadata']['name']}"
        if doc["kind"] == "Composition" and "roomRef" in spec:
            assert spec["roomRef"]["name"] in names("VideoRoom", namespace), where
        if doc["kind"] == "VideoRoom":
            rotation = ((spec.get("tokens") or {}).get("signingKeyRotationRef") or {}).get("name")
            assert rotation is None or rotation in names("SigningKeyRotation", namespace), where
        for delivery in s3_deliveries(doc):
            secret = delivery["credentialsRef"]["name"]
            [declared] = [s for s in find(docs, "Secret", namespace) if s["metadata"]["name"] == secret]
            assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secret_values(declared)), where


def s3_deliveries(doc: Document) -> list[Document]:
    spec = doc.get("spec") or {}
    if doc["kind"] == "Composition":
        delivery = spec.get("delivery") or {}
    elif doc["kind"] == "VideoRoom":
        delivery = ((spec.get("recording") or {}).get("compose") or {}).get("delivery") or {}
    else:
        return []
    return [delivery["s3"]] if "s3" in delivery else []


def secret_values(secret: Document) -> dict[str, str]:
    return {**(secret.get("data") or {}), **(secret.get("stringData") or {})}


# --- what each scenario shows -----------------------------------------------------------------------------


def test_quota_caps_the_operator_kinds_in_a_tenant_namespace(crds: list[Document]) -> None:
    docs = documents_in(EXAMPLES / "quota")
    tenant = one(docs, "Namespace")["metadata"]["name"]
    quota = one(docs, "ResourceQuota")
    assert namespace_of(quota) == tenant
    served = {f"count/{crd['spec']['names']['plural']}.{crd['spec']['group']}" for crd in crds}
    hard = quota["spec"]["hard"]
    assert {f"count/videorooms.{API_GROUP}", f"count/compositions.{API_GROUP}"} <= set(hard)
    assert set(hard) <= served, "every quota entry counts one of the operator's kinds"
    assert all(str(value).isdigit() and int(value) > 0 for value in hard.values())
    rooms = find(docs, "VideoRoom")
    assert rooms and all(namespace_of(room) == tenant for room in rooms)


def test_webinar_is_scheduled_recorded_and_composed() -> None:
    room = one(documents_in(EXAMPLES / "webinar"), "VideoRoom")
    spec = room["spec"]
    schedule = spec["schedule"]
    start = datetime.fromisoformat(schedule["startTime"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(schedule["endTime"].replace("Z", "+00:00"))
    assert start < end
    assert parse_duration(schedule["provisionAhead"]) < end - start
    assert spec["type"] == "group"
    assert spec["recording"]["participantsOnConnect"] is True
    assert spec["recording"]["rules"] and spec["recording"]["compose"]["videoLayout"]


def test_webinar_reminds_and_sends_the_recording_link_by_sms_and_email() -> None:
    docs = documents_in(EXAMPLES / "webinar")
    spec = one(docs, "VideoRoom")["spec"]
    notes = spec["notifications"]
    assert {"reminder", "recordingAvailable"} <= set(notes["events"])
    assert parse_duration(notes["reminderBefore"]) > parse_duration(spec["schedule"]["provisionAhead"])
    attendees = [r for r in notes["recipients"] if "events" not in r]
    assert {key for r in attendees for key in r if key in ("phone", "email")} == {"phone", "email"}
    assert any(r.get("phone", "").startswith("whatsapp:") for r in attendees)
    assert spec["recording"]["compose"]["delivery"]["s3"], "the link is the delivered object's URL"
    [secret] = find(docs, "Secret")
    assert secret["metadata"]["name"] == notes["email"]["apiKeySecretRef"]["name"]
    assert secret_values(secret) == {"SENDGRID_API_KEY": "REPLACE-WITH-SENDGRID-API-KEY"}


def test_classroom_is_moderated_with_identity_globs_and_degradation() -> None:
    spec = one(documents_in(EXAMPLES / "classroom"), "VideoRoom")["spec"]
    allowed = spec["access"]["allowedIdentities"]
    blocked = spec["moderation"]["blockedIdentities"]
    assert any("*" in pattern for pattern in allowed)
    assert blocked
    # A blocked identity must be one the globs would otherwise allow, or blocking it would change nothing.
    assert all(any(fnmatch.fnmatchcase(who, pattern) for pattern in allowed) for who in blocked)
    degradation = spec["clientProfile"]["degradation"]
    assert degradation["restoreAtLevel"] >= degradation["audioOnlyBelowLevel"]
    assert spec["maxParticipants"] > 1


def test_paid_room_needs_a_verify_check_and_mutes_by_identity() -> None:
    spec = one(documents_in(EXAMPLES / "paid-room"), "VideoRoom")["spec"]
    verification = spec["access"]["verification"]
    assert re.fullmatch(r"VA[0-9a-f]{32}", verification["serviceSid"])
    assert parse_duration(verification["ttl"]).total_seconds() <= 24 * 3600
    muted = [mute["identity"] for mute in spec["moderation"]["mutedIdentities"]]
    assert muted and set(spec["moderation"]["reasons"]) <= set(muted)
    assert spec["recording"]["participantsOnConnect"] is True


def test_recording_delivers_to_s3_with_placeholder_credentials() -> None:
    docs = documents_in(EXAMPLES / "recording")
    room = one(docs, "VideoRoom")
    composition = one(docs, "Composition")
    assert s3_deliveries(room) and s3_deliveries(composition)
    assert "roomSid" in composition["spec"] and "roomRef" not in composition["spec"]
    values = secret_values(one(docs, "Secret"))
    assert not AWS_ACCESS_KEY_ID.match(values["AWS_ACCESS_KEY_ID"])
    assert not AWS_SECRET_ACCESS_KEY.match(values["AWS_SECRET_ACCESS_KEY"])
    assert all("REPLACE" in value for value in values.values()), "placeholders must look like placeholders"


def test_key_rotation_feeds_an_app_and_signs_a_rooms_tokens() -> None:
    docs = documents_in(EXAMPLES / "key-rotation")
    rotation = one(docs, "SigningKeyRotation")
    room = one(docs, "VideoRoom")
    deployment = one(docs, "Deployment")
    assert room["spec"]["tokens"]["signingKeyRotationRef"]["name"] == rotation["metadata"]["name"]
    containers = deployment["spec"]["template"]["spec"]["containers"]
    sources = [source["secretRef"]["name"] for c in containers for source in c.get("envFrom") or []]
    assert rotation["spec"]["secretName"] in sources
    # Tokens must expire before the previous key is revoked.
    ttl = room["spec"]["tokens"]["maxTtlSeconds"]
    assert ttl <= parse_duration(rotation["spec"]["overlap"]).total_seconds()
