"""Hostile manifests (``tests/fixtures/hostile/*.yaml``): each one is refused by the API's schema with a 422
that names the offending field, or accepted and then held by the operator as ``Stalled`` with reason
``InvalidSpec``, and in neither case does Twilio receive a single request.

Each file says what it expects in a comment line:

- ``# expect: rejected <field>``: a 422 whose message names ``<field>``;
- ``# expect: stalled``: accepted (the rule is one only CEL or the operator checks), then Stalled;
- ``# expect: rejected-or-stalled <field>``: either (a check that not every API server makes).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from chaos_support import NAMESPACE, observe_stack, require_handler, start_operator
from operator_stack import REPO_ROOT, Stack, count_requests, wait_until
from workloads import condition

from secret_scan import SecretScanner
from twilio_video_operator.kube import COMPOSITIONS, SIGNINGKEYROTATIONS, VIDEOROOMS, KubeApiError, Resource

pytestmark = pytest.mark.asyncio(loop_scope="module")

CORPUS = REPO_ROOT / "tests" / "fixtures" / "hostile"
RESOURCES = {"VideoRoom": VIDEOROOMS, "Composition": COMPOSITIONS, "SigningKeyRotation": SIGNINGKEYROTATIONS}
HANDLERS = {
    "VideoRoom": "videoroom",
    "Composition": "composition",
    "SigningKeyRotation": "signingkeyrotation",
}
EXPECT = re.compile(r"^# expect: (rejected|stalled|rejected-or-stalled)(?: (\S+))?$", re.MULTILINE)
STALL_TIMEOUT = 15.0


@dataclass
class Case:
    path: Path
    manifest: dict[str, Any]
    expect: str
    field_path: str | None

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def resource(self) -> Resource:
        return RESOURCES[self.kind]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def load_case(path: Path) -> Case:
    text = path.read_text(encoding="utf-8")
    found = EXPECT.search(text)
    if found is None:
        raise ValueError(f"{path.name} has no '# expect:' line")
    manifest = yaml.safe_load(text)
    manifest["metadata"]["namespace"] = NAMESPACE
    return Case(path, manifest, found.group(1), found.group(2))


CASES = [load_case(path) for path in sorted(CORPUS.glob("*.yaml"))]


@dataclass
class Outcome:
    status: int | None = None  # HTTP status of the create; None when it was accepted
    message: str = ""
    stored: dict[str, Any] | None = None
    twilio_requests: dict[str, int] = field(default_factory=dict)


@dataclass
class Run:
    stack: Stack
    outcomes: dict[str, Outcome] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    """The operator with the whole corpus applied, one manifest at a time so that every Twilio request
    can be attributed to the manifest that caused it; kept for every case of the module."""
    async with Stack(tmp_path_factory.mktemp("hostile"), namespaces=(NAMESPACE,)) as stack:
        await start_operator(stack)
        result = Run(stack)
        for case in CASES:
            await stack.control.reset_requests()
            outcome = result.outcomes[case.path.name] = Outcome()
            try:
                await stack.client.create(case.resource, NAMESPACE, case.manifest)
            except KubeApiError as exc:
                outcome.status, outcome.message = exc.status, f"{exc.reason}: {exc.message}"
                continue

            def settled(case: Case = case, outcome: Outcome = outcome) -> bool:
                outcome.stored = stack.object(case.resource.plural, NAMESPACE, case.name)
                return is_stalled_invalid(outcome.stored)

            await wait_until(settled, within=STALL_TIMEOUT, interval=0.1)
            outcome.twilio_requests = dict(count_requests(await stack.control.requests()))
        yield result


def is_stalled_invalid(obj: dict[str, Any] | None) -> bool:
    stalled = condition(obj or {}, "Stalled")
    return stalled is not None and stalled.get("status") == "True" and stalled.get("reason") == "InvalidSpec"


@pytest.mark.parametrize("case", CASES, ids=[case.path.stem for case in CASES])
async def test_hostile_manifest_is_refused(run: Run, case: Case, secret_scanner: SecretScanner) -> None:
    observe_stack(secret_scanner, run.stack)
    outcome = run.outcomes[case.path.name]
    if outcome.status is not None:
        assert case.expect in ("rejected", "rejected-or-stalled"), (
            f"refused by the API ({outcome.status} {outcome.message}), "
            "but it should have been accepted and stalled"
        )
        assert outcome.status == 422, f"expected 422, got {outcome.status}: {outcome.message}"
        assert case.field_path and case.field_path in outcome.message, (
            f"the 422 does not name {case.field_path}: {outcome.message}"
        )
        return
    assert case.expect in ("stalled", "rejected-or-stalled"), (
        f"accepted by the API although its schema should refuse {case.field_path}"
    )
    require_handler(HANDLERS[case.kind])
    stored = outcome.stored or {}
    assert is_stalled_invalid(stored), (
        f"not Stalled/InvalidSpec within {STALL_TIMEOUT:.0f}s: "
        f"{(stored.get('status') or {}).get('conditions')}"
    )
    assert outcome.twilio_requests == {}, f"Stalled, but only after calling Twilio: {outcome.twilio_requests}"
