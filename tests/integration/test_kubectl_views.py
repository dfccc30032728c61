"""What kubectl users see of the three kinds: `-o wide` columns, `kubectl wait` on a scheduled room (kubectl
1.37 as a subprocess), and what the docs tell them about the embedded API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from operator_harness import OperatorHarness
from test_embedded_kube_kubectl import KUBECTL, Kubectl, manifest

from twilio_video_operator.models.kinds import KINDS, KindInfo
from twilio_video_playground.kube import EmbeddedKubernetes

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed in the virtualenv")

API_VERSION = "video.openclaw.io/v1alpha1"


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path / "kubectl-cache")


def columns(line: str) -> list[str]:
    """The cells of one row of kubectl's table (cells are at least two spaces apart, names may hold one)."""
    return re.split(r"\s{2,}", line.strip())


def table(out: str) -> tuple[list[str], list[list[str]]]:
    header, *rows = out.strip().splitlines()
    return columns(header), [columns(row) for row in rows]


def objects() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """One object of each kind, with the status the wide columns show."""
    ready = {"type": "Ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    return {
        "VideoRoom": (
            {"spec": {"uniqueName": "default:standup"}},
            {
                "sid": "RM" + "a" * 32,
                "uniqueName": "default:standup",
                "roomStatus": "in-progress",
                "type": "group-small",
                "participants": {"connected": 2, "peak": 3},
                "roomSettings": {"maxParticipants": 4},
                "sessions": {"count": 2},
                "conditions": [{**ready, "status": "True", "reason": "InProgress"}],
            },
        ),
        "Composition": (
            {"spec": {"roomRef": {"name": "standup"}, "format": "webm"}},
            {
                "sid": "CJ" + "b" * 32,
                "roomSid": "RM" + "a" * 32,
                "compositionStatus": "completed",
                "progressPercent": 100,
                "durationSeconds": 61,
                "sizeBytes": 123456,
                "conditions": [
                    {**ready, "status": "False", "reason": "Delivering"},
                    {**ready, "type": "Delivered", "status": "False", "reason": "AwaitingMedia"},
                ],
            },
        ),
        "SigningKeyRotation": (
            {"spec": {"secretName": "video-keys"}},
            {
                "activeKeySid": "SK" + "c" * 32,
                "nextKeySid": "SK" + "d" * 32,
                "previousKeySid": "SK" + "e" * 32,
                "revision": 3,
                "nextRotationTime": "2026-02-01T00:00:00Z",
                "conditions": [
                    {**ready, "status": "True", "reason": "KeyActive"},
                    {**ready, "type": "Rotating", "status": "True", "reason": "Staging"},
                ],
            },
        ),
    }


EXPECTED_WIDE = {
    "VideoRoom": ["default:standup", "group-small", "4", "2", "InProgress"],
    "Composition": ["standup", "RM" + "a" * 32, "webm", "61", "123456", "False", "Delivering"],
    "SigningKeyRotation": ["video-keys", "SK" + "d" * 32, "SK" + "e" * 32, "True", "KeyActive"],
}


@pytest.mark.parametrize("info", KINDS, ids=lambda info: info.kind)
async def test_wide_output_adds_the_priority_one_columns(
    kube: EmbeddedKubernetes, kubectl: Kubectl, info: KindInfo
) -> None:
    spec, status = objects()[info.kind]
    body = {"apiVersion": API_VERSION, "kind": info.kind, "metadata": {"name": "standup"}, **spec}
    await kubectl.ok("create", "--validate=false", "-f", "-", stdin=manifest(body))
    url = f"{kube.url}/apis/{API_VERSION}/namespaces/default/{info.plural}/standup/status"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {kube.token}"}) as http:
        patch = {"status": status}
        headers = {"Content-Type": "application/merge-patch+json"}
        async with http.patch(url, json=patch, headers=headers) as answer:
            assert answer.status == 200, await answer.text()

    default = [column.name for column in info.printer_columns if column.priority == 0]
    wide = [column.name for column in info.printer_columns if column.priority == 1]
    header, rows = table(await kubectl.ok("get", info.short_names[0]))
    assert header == ["NAME", *default]
    header, rows = table(await kubectl.ok("get", info.short_names[0], "-o", "wide"))
    assert header == ["NAME", *default, *wide]
    [row] = rows
    assert row[0] == "standup" and row[len(default) + 1 :] == EXPECTED_WIDE[info.kind]


# --- kubectl wait on a scheduled room ----------------------------------------------------------------


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path) as bed:
        yield bed


async def test_kubectl_wait_for_ready_returns_for_a_scheduled_room(
    harness: OperatorHarness, tmp_path: Path
) -> None:
    """A room whose window opens in a month is where it should be: Ready, so `kubectl wait` returns."""
    ns = await harness.namespace()
    start = harness.clock() + timedelta(days=30)
    schedule = {
        "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await harness.create_room(ns, "later", {"schedule": schedule})
    kubectl = Kubectl(harness.kubeconfig, tmp_path / "kubectl-cache")
    out = await kubectl.ok("wait", "-n", ns, "--for=condition=Ready", "vroom", "--all", "--timeout=30s")
    assert out.strip() == "videoroom.video.openclaw.io/later condition met"
    room = await harness.get_room(ns, "later")
    assert room is not None and room["status"]["roomStatus"] == "Scheduled"
    [ready] = [c for c in room["status"]["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
    assert (start - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S") in ready["message"]
    assert not harness.twilio_rooms(f"{ns}:later")


# --- what the docs tell kubectl users ----------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


def test_docs_ask_for_no_validate_false() -> None:
    """The embedded API serves OpenAPI documents, so apply, create -f, replace -f and edit need no
    --validate=false (test_embedded_kube_openapi.py runs them): no doc or hint may ask for it, and
    operations.md no longer says there is no `kubectl get -w` (test_embedded_kube_kubectl.py watches)."""
    texts = {path.name: path.read_text(encoding="utf-8") for path in (REPO / "docs").glob("*.md")}
    texts["playground.py"] = (
        REPO / "tests/tools/playground/twilio_video_playground/playground.py"
    ).read_text(encoding="utf-8")
    asking = re.compile(r"kubectl[^\n`\"]* --validate=false|needs? `--validate=false`")
    assert [name for name, text in texts.items() if asking.search(text)] == []
    operations = " ".join(texts["operations.md"].split())
    assert "`kubectl get -w` streams rows" in operations and "no `kubectl get -w`" not in operations
