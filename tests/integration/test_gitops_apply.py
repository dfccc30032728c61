"""GitOps: the examples Argo CD syncs (``examples/*.yaml``, see ``examples/argocd/application.yaml``) applied
with server-side apply under Argo CD's field manager while the operator reconciles them and writes their
status, on the embedded API and on the real kube-apiserver.

Argo CD applies with ``--force-conflicts``; here every apply goes without it, so a field the operator had
taken over from Argo CD would fail the sync with a conflict instead of being silently taken back. The
operator's writes must stay within ``status`` and ``metadata`` (finalizers, its annotations): it owns no
field of a ``spec`` (``metadata.managedFields``), and applying the same manifests again changes nothing
(the ``resourceVersion`` stays).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from operator_harness import OperatorHarness, eventually
from test_composition_harness import composition_registrar

from kube_backends import KubeBackend
from twilio_video_operator.handlers.signingkeyrotation import register_handlers as register_rotations
from twilio_video_operator.kube.client import USER_AGENT

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))  # what the examples Application syncs
KUBECTL = Path(sys.executable).parent / "kubectl"
ARGOCD_MANAGER = "argocd-controller"
PLURALS = {
    "VideoRoom": "videorooms",
    "Composition": "compositions",
    "SigningKeyRotation": "signingkeyrotations",
}
SETTLE = 20.0

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed in the virtualenv")


def rotation_registrar(registry: kopf.OperatorRegistry, harness: OperatorHarness) -> None:
    register_rotations(registry, clock=harness.clock, tick_seconds=0.1)


@pytest.fixture
async def bed(tmp_path: Path, kube_backend: KubeBackend) -> AsyncIterator[OperatorHarness]:
    """The operator with the handlers of all three kinds."""
    registrars = [composition_registrar, rotation_registrar]
    async with OperatorHarness(tmp_path, registrars=registrars, backend=kube_backend) as harness:
        yield harness


def example_documents(namespace: str) -> Iterator[dict[str, Any]]:
    """The examples' objects, moved into ``namespace`` (they name ``default``; the test's own namespace
    keeps a shared API server's ``default`` out of it)."""
    for path in EXAMPLES:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                document["metadata"]["namespace"] = namespace
                yield document


class ArgoCd:
    """``kubectl apply --server-side`` under Argo CD's field manager, as its ServerSideApply sync does."""

    def __init__(self, harness: OperatorHarness, workdir: Path) -> None:
        self.harness = harness
        self.workdir = workdir

    async def sync(self, documents: list[dict[str, Any]]) -> str:
        """Apply ``documents``; kubectl runs on a thread, as the embedded API serves it from this loop."""
        return await asyncio.to_thread(self._apply, documents)

    def _apply(self, documents: list[dict[str, Any]]) -> str:
        manifest = self.workdir / "manifests.yaml"
        manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")
        result = subprocess.run(
            [
                str(KUBECTL),
                "--kubeconfig",
                str(self.harness.kubeconfig),
                "--cache-dir",
                str(self.workdir / "kubectl-cache"),
                "apply",
                "--server-side",
                f"--field-manager={ARGOCD_MANAGER}",
                "-f",
                str(manifest),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"the sync failed:\n{result.stdout}{result.stderr}"
        return result.stdout


async def current(harness: OperatorHarness, document: Mapping[str, Any]) -> dict[str, Any]:
    metadata = document["metadata"]
    found = await harness.kube_official.get(
        PLURALS[document["kind"]], metadata["namespace"], metadata["name"]
    )
    assert found is not None, f"{document['kind']} {metadata['name']} is missing"
    return found


def reconciled(obj: Mapping[str, Any]) -> bool:
    """The operator has looked at this generation and said so in the status."""
    status = obj.get("status") or {}
    return (
        bool(status.get("conditions")) and status.get("observedGeneration") == obj["metadata"]["generation"]
    )


async def wait_reconciled(harness: OperatorHarness, documents: list[dict[str, Any]]) -> None:
    """Until the operator has reconciled the current generation of every object."""
    for document in documents:

        async def done(document: Mapping[str, Any] = document) -> bool:
            return reconciled(await current(harness, document))

        try:
            await eventually(done, SETTLE)
        except TimeoutError:
            obj = await current(harness, document)
            message = f"not reconciled: {document['kind']} {obj['metadata']} {obj.get('status')}"
            raise AssertionError(message) from None


def spec_owners(obj: Mapping[str, Any]) -> list[str]:
    """The managers other than Argo CD that own a field of ``spec``."""
    return [
        f"{entry['manager']} ({entry['operation']} {entry.get('subresource') or ''})"
        for entry in obj["metadata"].get("managedFields") or []
        if entry["manager"] != ARGOCD_MANAGER and "f:spec" in (entry.get("fieldsV1") or {})
    ]


@pytest.mark.both_backends
async def test_argocd_server_side_apply_and_the_operator_share_objects_without_conflict(
    bed: OperatorHarness, tmp_path: Path
) -> None:
    namespace = await bed.namespace("gitops")
    documents = list(example_documents(namespace))
    assert {document["kind"] for document in documents} == set(PLURALS)
    argocd = ArgoCd(bed, tmp_path)

    await argocd.sync(documents)
    await wait_reconciled(bed, documents)
    await argocd.sync(documents)  # a sync while the operator has written every status: no conflict

    # A change in Git: Argo CD applies it and the operator reconciles the new generation.
    room = next(d for d in documents if d["kind"] == "VideoRoom" and d["metadata"]["name"] == "standup")
    room["spec"]["maxParticipants"] = 10
    await argocd.sync(documents)
    changed = await current(bed, room)
    assert changed["spec"]["maxParticipants"] == 10 and changed["metadata"]["generation"] == 2
    await wait_reconciled(bed, documents)

    for document in documents:
        obj = await current(bed, document)
        entries = obj["metadata"]["managedFields"]
        argo = [entry for entry in entries if entry["manager"] == ARGOCD_MANAGER]
        assert [entry["operation"] for entry in argo] == ["Apply"], entries
        assert "f:spec" in argo[0]["fieldsV1"], argo
        assert spec_owners(obj) == [], f"{document['kind']} {obj['metadata']['name']}: {entries}"
        # The operator did write, under its own name: its status entries are there (the check above is
        # not vacuous).
        assert any(
            entry.get("subresource") == "status" and entry["manager"] == USER_AGENT for entry in entries
        ), entries

    # With the operator stopped (nothing else writes), a sync of unchanged manifests is a no-op.
    await bed.stop_operator()
    before = {
        d["metadata"]["name"]: (await current(bed, d))["metadata"]["resourceVersion"] for d in documents
    }
    await argocd.sync(documents)
    after = {d["metadata"]["name"]: (await current(bed, d))["metadata"]["resourceVersion"] for d in documents}
    assert after == before
