"""The Argo CD health checks, run under Lua 5.1 (gopher-lua's dialect) the way Argo CD calls them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "argocd"
SCRIPTS = {
    "VideoRoom": EXAMPLES / "health" / "videoroom.lua",
    "Composition": EXAMPLES / "health" / "composition.lua",
    "SigningKeyRotation": EXAMPLES / "health" / "signingkeyrotation.lua",
}


def run_health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run the kind's script the way Argo CD does: ``obj`` is a global, the chunk returns ``hs``."""
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    assert runtime.lua_version == (5, 1)
    # Argo CD's sandbox offers no OS, IO or module loading: the scripts must not need them.
    runtime.execute(
        "os = nil; io = nil; require = nil; dofile = nil; loadfile = nil; package = nil; debug = nil"
    )
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    hs = runtime.execute(SCRIPTS[kind].read_text())
    assert hs is not None, "the script must return the hs table"
    keys = set(hs.keys())
    assert keys == {"status", "message"}, f"hs must carry exactly status and message, got {keys}"
    return str(hs["status"]), str(hs["message"])


def resource(
    kind: str,
    *,
    generation: int | None = 3,
    observed: int | None = 3,
    conditions: list[dict[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
    no_status: bool = False,
    **status: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "demo", "namespace": "team-a"}
    if generation is not None:
        metadata["generation"] = generation
    if annotations is not None:
        metadata["annotations"] = annotations
    obj: dict[str, Any] = {"apiVersion": "video.openclaw.io/v1alpha1", "kind": kind, "metadata": metadata}
    if no_status:
        return obj
    body: dict[str, Any] = dict(status)
    if observed is not None:
        body["observedGeneration"] = observed
    if conditions is not None:
        body["conditions"] = conditions
    obj["status"] = body
    return obj


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    found = {"type": type_, "status": status, "lastTransitionTime": "2026-11-01T10:00:00Z"}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


PAUSED = {"video.openclaw.io/paused": "true"}
READY = cond("Ready", "True", "Available", "room RM123 is in progress")
STALLED = cond("Stalled", "True", "InvalidSpec", "schedule.endTime must be after schedule.startTime")

# Branches every kind shares: (object builder arguments, expected status, expected message).
COMMON_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "paused-wins-over-everything",
        {"annotations": PAUSED, "conditions": [STALLED]},
        "Suspended",
        "reconciliation is paused (annotation video.openclaw.io/paused)",
    ),
    (
        "paused-annotation-false-is-ignored",
        {"annotations": {"video.openclaw.io/paused": "false"}, "conditions": [READY]},
        "Healthy",
        "Available: room RM123 is in progress",
    ),
    ("no-status", {"no_status": True}, "Progressing", "waiting for the operator to observe generation 3"),
    (
        "no-status-no-generation",
        {"no_status": True, "generation": None},
        "Progressing",
        "waiting for the operator to report a status",
    ),
    (
        "observed-generation-missing",
        {"observed": None, "conditions": [READY]},
        "Progressing",
        "waiting for the operator to observe generation 3",
    ),
    (
        "observed-generation-stale",
        {"generation": 5, "observed": 4, "conditions": [READY]},
        "Progressing",
        "waiting for the operator to observe generation 5",
    ),
    (
        "status-without-generation-is-judged-on-conditions",
        {"generation": None, "observed": None, "conditions": [READY]},
        "Healthy",
        "Available: room RM123 is in progress",
    ),
    (
        "stalled-is-degraded-even-if-ready",
        {"conditions": [READY, STALLED]},
        "Degraded",
        "InvalidSpec: schedule.endTime must be after schedule.startTime",
    ),
    (
        "stalled-false-is-ignored",
        {"conditions": [cond("Stalled", "False", "NotStalled"), READY]},
        "Healthy",
        "Available: room RM123 is in progress",
    ),
    ("ready-true-reason-only", {"conditions": [cond("Ready", "True", "Available")]}, "Healthy", "Available"),
    (
        "ready-false-transient",
        {"conditions": [cond("Ready", "False", "Creating", "creating the room at Twilio")]},
        "Progressing",
        "Creating: creating the room at Twilio",
    ),
    (
        "ready-false-without-reason",
        {"conditions": [cond("Ready", "False", message="no reason given")]},
        "Progressing",
        "no reason given",
    ),
    (
        "ready-false-terminal",
        {"conditions": [cond("Ready", "False", "AuthFailed", "Twilio refused the credentials (20003)")]},
        "Degraded",
        "AuthFailed: Twilio refused the credentials (20003)",
    ),
    (
        "ready-false-rejected",
        {"conditions": [cond("Ready", "False", "RejectedByTwilio", "53105")]},
        "Degraded",
        "RejectedByTwilio: 53105",
    ),
    (
        "ready-unknown",
        {"conditions": [cond("Ready", "Unknown", "Creating")]},
        "Progressing",
        "waiting for the Ready condition",
    ),
    ("no-conditions", {}, "Progressing", "waiting for the Ready condition"),
    ("empty-conditions", {"conditions": []}, "Progressing", "waiting for the Ready condition"),
    (
        "only-synced-false",
        {"conditions": [cond("Synced", "False", "RateLimited", "Twilio answered 429")]},
        "Progressing",
        "waiting for the Ready condition",
    ),
]

# Branches specific to one kind.
KIND_CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    (
        "VideoRoom",
        "completed-and-ready",
        {"roomStatus": "completed", "conditions": [cond("Ready", "True", "Completed", "session ended")]},
        "Healthy",
        "the room session is completed",
    ),
    (
        "VideoRoom",
        "in-progress-and-ready",
        {"roomStatus": "in-progress", "conditions": [READY]},
        "Healthy",
        "Available: room RM123 is in progress",
    ),
    (
        "VideoRoom",
        "failed-room",
        {
            "roomStatus": "failed",
            "conditions": [cond("Ready", "False", "Failed", "Twilio reported the room failed")],
        },
        "Degraded",
        "the Twilio room failed: Failed: Twilio reported the room failed",
    ),
    (
        "VideoRoom",
        "failed-room-without-ready",
        {"roomStatus": "failed"},
        "Degraded",
        "the Twilio room failed",
    ),
    (
        # Waiting for the schedule window is the desired state: Healthy, or sync waves would hang.
        "VideoRoom",
        "scheduled",
        {
            "roomStatus": "Scheduled",
            "conditions": [
                cond("Ready", "True", "Scheduled", "The room opens at 2027-03-01T09:55:00+00:00."),
                cond("Synced", "True", "ReconcileSuccess"),
                cond("Stalled", "False", "NotStalled"),
            ],
        },
        "Healthy",
        "Scheduled: The room opens at 2027-03-01T09:55:00+00:00.",
    ),
    (
        # As operators before Scheduled became a reached state reported it.
        "VideoRoom",
        "scheduled-by-an-older-operator",
        {"roomStatus": "Scheduled", "conditions": [cond("Ready", "False", "Scheduled", "opens at 10:00")]},
        "Healthy",
        "Scheduled: opens at 10:00",
    ),
    (
        "VideoRoom",
        "scheduled-but-stalled",
        {
            "roomStatus": "Scheduled",
            "conditions": [cond("Ready", "True", "Scheduled", "opens at 10:00"), STALLED],
        },
        "Degraded",
        "InvalidSpec: schedule.endTime must be after schedule.startTime",
    ),
    (
        "VideoRoom",
        "scheduled-ready-unknown",
        {"roomStatus": "Scheduled", "conditions": [cond("Ready", "Unknown", "Scheduled", "checking")]},
        "Progressing",
        "waiting for the Ready condition",
    ),
    (
        "VideoRoom",
        "invalid-spec",
        {"conditions": [cond("Ready", "False", "InvalidSpec", "spec.maxParticipants: at most 50")]},
        "Degraded",
        "InvalidSpec: spec.maxParticipants: at most 50",
    ),
    (
        "Composition",
        "failed-composition",
        {"compositionStatus": "failed", "conditions": [cond("Ready", "False", "Failed", "no recordings")]},
        "Degraded",
        "the Twilio composition failed: Failed: no recordings",
    ),
    (
        "Composition",
        "failed-composition-without-ready",
        {"compositionStatus": "failed"},
        "Degraded",
        "the Twilio composition failed",
    ),
    (
        "Composition",
        "processing",
        {"compositionStatus": "processing", "conditions": [cond("Ready", "False", "Processing", "42% done")]},
        "Progressing",
        "Processing: 42% done",
    ),
    (
        "Composition",
        "completed",
        {"compositionStatus": "completed", "conditions": [cond("Ready", "True", "Completed", "media ready")]},
        "Healthy",
        "Completed: media ready",
    ),
    (
        "Composition",
        "media-deleted",
        {"compositionStatus": "deleted", "conditions": [cond("Ready", "False", "Deleted", "media deleted")]},
        "Degraded",
        "Deleted: media deleted",
    ),
    (
        "Composition",
        "processing-timeout",
        {"conditions": [cond("Stalled", "True", "ProcessingTimeout", "processing for over 2h")]},
        "Degraded",
        "ProcessingTimeout: processing for over 2h",
    ),
    (
        "SigningKeyRotation",
        "ready-while-rotating",
        {
            "conditions": [
                cond("Ready", "True", "KeyActive", "SK1 is active"),
                cond("Rotating", "True", "Staging", "SK2 is staged"),
            ]
        },
        "Healthy",
        "KeyActive: SK1 is active (rotation in progress: Staging: SK2 is staged)",
    ),
    (
        "SigningKeyRotation",
        "ready-idle",
        {
            "conditions": [
                cond("Ready", "True", "KeyActive", "SK1 is active"),
                cond("Rotating", "False", "Idle"),
            ]
        },
        "Healthy",
        "KeyActive: SK1 is active",
    ),
    (
        "SigningKeyRotation",
        "first-rotation-not-ready",
        {
            "conditions": [
                cond("Ready", "False", "Creating", "creating the first key"),
                cond("Rotating", "True", "Staging", "SK1 is staged"),
            ]
        },
        "Progressing",
        "rotation in progress: Staging: SK1 is staged",
    ),
    (
        "SigningKeyRotation",
        "rotating-without-ready",
        {"conditions": [cond("Rotating", "True", "RotationFailed", "attempt 2 failed, retrying")]},
        "Progressing",
        "rotation in progress: RotationFailed: attempt 2 failed, retrying",
    ),
    (
        "SigningKeyRotation",
        "terminal-not-rotating",
        {
            "conditions": [
                cond("Ready", "False", "AuthFailed", "cannot manage keys"),
                cond("Rotating", "False", "Idle"),
            ]
        },
        "Degraded",
        "AuthFailed: cannot manage keys",
    ),
]


@pytest.mark.parametrize("kind", list(SCRIPTS))
@pytest.mark.parametrize(
    ("builder", "status", "message"), [case[1:] for case in COMMON_CASES], ids=[c[0] for c in COMMON_CASES]
)
def test_common_branches(kind: str, builder: dict[str, Any], status: str, message: str) -> None:
    assert run_health(kind, resource(kind, **builder)) == (status, message)


@pytest.mark.parametrize(
    ("kind", "builder", "status", "message"),
    [(case[0], *case[2:]) for case in KIND_CASES],
    ids=[f"{case[0]}-{case[1]}" for case in KIND_CASES],
)
def test_kind_specific_branches(kind: str, builder: dict[str, Any], status: str, message: str) -> None:
    assert run_health(kind, resource(kind, **builder)) == (status, message)


def test_status_fields_of_other_kinds_are_ignored() -> None:
    """A Composition's roomStatus or a VideoRoom's compositionStatus means nothing to their checks."""
    room = resource("VideoRoom", compositionStatus="failed", conditions=[READY])
    composition = resource("Composition", roomStatus="failed", conditions=[READY])
    assert run_health("VideoRoom", room)[0] == "Healthy"
    assert run_health("Composition", composition)[0] == "Healthy"


def terminal_reasons(script: str) -> set[str]:
    table = re.search(r"local TERMINAL_READY_REASONS = \{(.*?)\n\}", script, re.S)
    assert table is not None
    return set(re.findall(r"^\s*(\w+) = true,", table.group(1), re.M))


@pytest.mark.parametrize("kind", list(SCRIPTS))
def test_terminal_reasons_are_operator_reasons(kind: str) -> None:
    from twilio_video_operator.models.conditions import Reason

    reasons = terminal_reasons(SCRIPTS[kind].read_text())
    assert reasons, "the script names no terminal reasons"
    assert reasons <= {reason.value for reason in Reason}
    for reason in reasons:
        obj = resource(kind, conditions=[cond("Ready", "False", reason, "x")])
        assert run_health(kind, obj) == ("Degraded", f"{reason}: x")


def test_scripts_use_lua_51_only() -> None:
    for path in SCRIPTS.values():
        text = path.read_text()
        assert "goto" not in text and "::" not in text, f"{path.name}: labels and goto are Lua 5.2+"
        assert "//" not in text, f"{path.name}: integer division is Lua 5.3+"
        assert "\t" not in text, f"{path.name}: indent with spaces (the text is embedded in YAML)"


def test_argocd_cm_embeds_the_same_scripts() -> None:
    config_map = yaml.safe_load((EXAMPLES / "argocd-cm.yaml").read_text())
    assert (config_map["kind"], config_map["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    data = config_map["data"]
    expected_keys = {f"resource.customizations.health.video.openclaw.io_{kind}" for kind in SCRIPTS}
    assert set(data) == expected_keys
    for kind, path in SCRIPTS.items():
        embedded = data[f"resource.customizations.health.video.openclaw.io_{kind}"]
        assert embedded == path.read_text(), (
            f"argocd-cm.yaml's {kind} script differs from {path.relative_to(EXAMPLES)}: copy the file into it"
        )


def test_application_installs_the_chart_and_the_examples() -> None:
    applications = list(yaml.safe_load_all((EXAMPLES / "application.yaml").read_text()))
    assert all(app["kind"] == "Application" for app in applications)
    operator, examples = applications
    assert operator["spec"]["source"]["path"] == "charts/twilio-video-operator"
    values = operator["spec"]["source"]["helm"]["valuesObject"]
    assert values["credentials"] == {"existingSecret": "twilio-credentials"}
    assert "ServerSideApply=true" in operator["spec"]["syncPolicy"]["syncOptions"]

    source = examples["spec"]["source"]
    assert source["directory"]["recurse"] is False, "must not sync examples/argocd/ itself"
    folder = EXAMPLES.parents[1] / source["path"]
    synced = [doc for path in folder.glob("*.yaml") for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert any(doc["apiVersion"].startswith("video.openclaw.io/") for doc in synced), (
        f"no examples in {folder}"
    )
    assert "prune" not in examples["spec"]["syncPolicy"]["automated"], "pruning would end Twilio rooms"
    waves = [int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for app in applications]
    assert waves[0] < waves[1]


def test_a_scheduled_room_as_the_operator_writes_it_is_healthy() -> None:
    """The status the planner writes for a room before its window, read by the Lua check as Argo CD does."""
    from test_videoroom_plan import answers, drive, make_input

    from twilio_video_operator.reconcilers.videoroom import Plan

    schedule = {"startTime": "2026-09-01T10:00:00Z", "endTime": "2026-09-01T11:00:00Z"}
    inp = make_input(spec={"schedule": schedule})
    final, actions, _ = drive(inp, answers())
    assert actions == [] and isinstance(final, Plan)
    obj = {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "VideoRoom",
        "metadata": {"name": inp.name, "namespace": inp.namespace, "generation": inp.generation},
        "status": final.status.to_dict(),
    }
    assert run_health("VideoRoom", obj) == (
        "Healthy",
        "Scheduled: The room opens at 2026-09-01T09:55:00+00:00.",
    )


# --- docs/readiness.md: every phase row, fed to the kind's check --------------------------------------

READINESS_DOC = EXAMPLES.parents[1] / "docs" / "readiness.md"
CELL_CONDITION = re.compile(r"`?(\w+)`?\s+(True|False|Unknown)/`(\w+)`")


def readiness_rows() -> list[tuple[str, list[str]]]:
    """``(kind, cells)`` of every phase row of docs/readiness.md, by the kind of its section."""
    rows: list[tuple[str, list[str]]] = []
    kind = ""
    for line in READINESS_DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            kind = line[3:].strip()
        elif kind in SCRIPTS and line.startswith("| ") and not line.startswith("| Phase"):
            rows.append((kind, [cell.strip() for cell in line.strip("|").split("|")]))
    return rows


def phase_object(kind: str, cells: list[str]) -> dict[str, Any]:
    _phase, status_cell, ready_cell, others, _health, _wait = cells
    status: dict[str, Any] = {}
    field = re.fullmatch(r"`(\w+): (\S+)`", status_cell)
    if field is not None:
        status[field.group(1)] = field.group(2)
    ready = re.match(r"(True|False)/`(\w+)`", ready_cell)
    assert ready is not None, ready_cell
    conditions = [cond("Ready", ready.group(1), ready.group(2), "as documented")]
    conditions += [
        cond(type_, value, reason, "as documented") for type_, value, reason in CELL_CONDITION.findall(others)
    ]
    return resource(kind, conditions=conditions, **status)


def test_readiness_doc_covers_every_kind() -> None:
    assert {kind for kind, _ in readiness_rows()} == set(SCRIPTS)


@pytest.mark.parametrize(("kind", "cells"), readiness_rows(), ids=lambda value: str(value)[:50])
def test_readiness_doc_says_what_the_checks_say(kind: str, cells: list[str]) -> None:
    health, wait = cells[4], cells[5]
    assert run_health(kind, phase_object(kind, cells))[0] == health, cells[0]
    ready_true = cells[2].startswith("True/")
    assert wait == ("returns" if ready_true else "waits"), "kubectl wait returns exactly when Ready is True"


def test_crds_fit_the_last_applied_annotation_of_client_side_apply() -> None:
    """docs/argocd.md: server-side apply is a choice, not a need. kubectl and Argo CD's client-side apply
    store the applied object as compact JSON in one annotation; all annotations share 256 KB."""
    import json

    crds = sorted(
        (EXAMPLES.parents[1] / "charts" / "twilio-video-operator" / "files" / "crds").glob("*.yaml")
    )
    assert len(crds) == 3
    sizes = {
        path.name: len(json.dumps(yaml.safe_load(path.read_text()), separators=(",", ":"))) for path in crds
    }
    assert max(sizes.values()) < 64 * 1024, sizes
    # The figure argocd.md gives for the largest CRD stays within 10% of what it measures.
    text = " ".join((EXAMPLES.parents[1] / "docs" / "argocd.md").read_text(encoding="utf-8").split())
    stated = re.search(r"makes an annotation of about (\d+) KB", text)
    assert stated is not None
    largest = max(sizes.values()) / 1024
    assert abs(int(stated.group(1)) - largest) <= 0.1 * largest, (stated.group(1), round(largest, 1))
