"""The chart's ClusterRole against the Kubernetes API calls the operator really makes.

One playground run (embedded Kubernetes API, Twilio emulator, the operator with all its handlers and its
HTTP routes) goes through what the operator does in production: every example applied, a room opened,
an Access Token minted through ``POST /v1/token`` (TokenReview, SubjectAccessReview), a signing key
rotated, a recorded room completed (the operator creates its Composition), then every object deleted
(finalizers, key revocation, Secret release).

The embedded API logs every request with its headers. The test's own requests carry a bearer token of
their own; the operator (kopf and the operator's own client) uses the kubeconfig's token. The operator's
requests are mapped to RBAC terms (verb, API group, resource[/subresource]) and checked both ways against
the ClusterRole the Helm chart renders in its default, cluster-wide mode:

- every call the operator made is granted (discovery paths excepted: every authenticated user may read
  them through the default ``system:discovery`` role);
- every grant was used, or is listed in :data:`NOT_EXERCISED` with the reason it is needed anyway.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import kopf
import pytest
import yaml

from twilio_video_operator.kube import COMPOSITIONS, SIGNINGKEYROTATIONS, VIDEOROOMS, KubeClient, Resource
from twilio_video_operator.runner import run_operator
from twilio_video_playground import playground as playground_module
from twilio_video_playground.kube import AccessRule, EmbeddedKubernetes
from twilio_video_playground.kube.emulator import request_verb
from twilio_video_playground.kube.paths import ApiPath, parse_api_path
from twilio_video_playground.playground import ManifestApplier, ManifestError, Playground

helm = pytest.importorskip("helm_python")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "twilio-video-operator"
EXAMPLES = REPO / "examples"
# Example folders applied besides the top-level examples (argocd/ holds Argo CD objects, not cluster ones).
EXAMPLE_FOLDERS = ("quota", "webinar", "classroom", "recording", "key-rotation", "rbac")
API_GROUP = "video.openclaw.io"
CHART_VALUES: dict[str, Any] = {
    "publicBaseUrl": "https://video.example.com",
    "credentials": {"existingSecret": "twilio-credentials"},
}

TEST_CLIENT_TOKEN = "rbac-usage-test-client"  # the bearer token of the test's own requests
APP_TOKEN = "rbac-usage-video-app"  # a ServiceAccount token the embedded TokenReview accepts
APP_USER = "system:serviceaccount:default:video-app"
ROTATE_ANNOTATION = f"{API_GROUP}/rotate-requested-at"

SCENARIO_TIMEOUT = 90.0
STEP_TIMEOUT = 20.0
POLL_SECONDS = 0.05

# Paths every authenticated user may GET through the default ClusterRole ``system:discovery``.
DISCOVERY_PATHS = ("/api", "/api/*", "/apis", "/apis/*", "/version", "/version/")


class Call(NamedTuple):
    """One Kubernetes API call in RBAC terms; ``resource`` is ``plural`` or ``plural/subresource``."""

    verb: str
    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.verb} {self.group or 'core'}/{self.resource}"


#: Grants of the chart's ClusterRole that this run does not exercise, each with the reason the operator
#: needs it anyway (a code path the scenario cannot reach). Empty: the scenario reaches every needed
#: grant. Keep it small; an entry the run does exercise, or that the chart does not grant, fails the test.
NOT_EXERCISED: dict[Call, str] = {}


# --- what the operator asked the API --------------------------------------------------------------------


@dataclass
class ObservedApi:
    """The playground's embedded API, with its whole request log kept, and where the operator's part of
    that log begins (the playground itself creates the ``default`` namespace before the operator starts)."""

    kube: EmbeddedKubernetes | None = None
    operator_first_request: int | None = None

    def create(self, crd_dir: Path | None = None) -> EmbeddedKubernetes:
        kube = EmbeddedKubernetes(crd_dir)
        kube.emulator.requests_kept = 10**9  # keep the whole log: the test reads all of it
        self.kube = kube
        return kube

    def log(self) -> list[Any]:
        assert self.kube is not None
        requests = list(self.kube.emulator)
        assert [request.id for request in requests] == list(range(len(requests))), "the log was truncated"
        return requests

    def wrap_operator(self, run_operator: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
        async def run_observed(*args: Any, **kwargs: Any) -> None:
            self.operator_first_request = len(self.log())
            await run_operator(*args, **kwargs)

        return run_observed


@dataclass
class ServedRequest:
    """A logged request, reduced to what RBAC looks at and who sent it."""

    method: str
    path: str
    params: dict[str, str]
    bearer: str

    def as_call(self) -> Call | None:
        """The resource call, or None for a non-resource path (discovery, /version...)."""
        parsed = parse_api_path(self.path)
        if not isinstance(parsed, ApiPath) or parsed.plural is None:
            return None
        verb = request_verb(self.method, parsed.name, self.params)
        resource = parsed.plural + (f"/{parsed.subresource}" if parsed.subresource else "")
        return Call(verb, parsed.group, resource)


def bearer_of(headers: Mapping[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "authorization":
            return str(value).removeprefix("Bearer ").strip()
    return ""


def served_requests(observed: ObservedApi) -> list[ServedRequest]:
    return [
        ServedRequest(
            method=str(request.method.value),
            path=request.url.path,
            params=dict(request.params),
            bearer=bearer_of(request.headers),
        )
        for request in observed.log()
    ]


@dataclass
class RunRecord:
    """What one scenario run leaves for the assertions."""

    operator_calls: set[Call] = field(default_factory=set)
    operator_paths: set[str] = field(default_factory=set)
    test_calls: set[Call] = field(default_factory=set)
    foreign_bearers: set[str] = field(default_factory=set)
    token_status: int | None = None
    applied_kinds: set[str] = field(default_factory=set)


# --- the scenario -----------------------------------------------------------------------------------------


def example_manifests() -> list[dict[str, Any]]:
    """Every object of the top-level examples and of the example folders, in apply order."""
    files = sorted(EXAMPLES.glob("*.yaml"))
    for folder in EXAMPLE_FOLDERS:
        files += sorted((EXAMPLES / folder).glob("*.yaml"))
    return [doc for path in files for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


async def eventually(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check()`` until it holds; fail naming ``what`` after :data:`STEP_TIMEOUT`."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                if await check():
                    return
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


class Scenario:
    """The flows run against the playground, through a client of the test's own."""

    def __init__(self, playground: Playground, kube: EmbeddedKubernetes, record: RunRecord) -> None:
        connection = kopf.ConnectionInfo(server=kube.url, scheme="Bearer", token=TEST_CLIENT_TOKEN)
        self.client = KubeClient(connection)
        self.playground = playground
        self.kube = kube
        self.record = record
        self.custom_objects: list[tuple[Resource, str, str]] = []

    async def run(self) -> None:
        try:
            await self.apply_examples()
            await self.wait_reconciled()
            await self.mint_token()
            await self.rotate_key()
            await self.complete_recorded_room()
            await self.delete_everything()
        finally:
            await self.client.close()

    async def apply_examples(self) -> None:
        applier = ManifestApplier(self.client)
        for manifest in example_manifests():
            try:
                await applier.resource_for(str(manifest["apiVersion"]), str(manifest["kind"]))
            except ManifestError:
                # Kinds the embedded API does not serve (Deployment, ResourceQuota) play no part in what
                # the operator calls; none of them is ours.
                assert not str(manifest["apiVersion"]).startswith(API_GROUP), manifest["kind"]
                continue
            applied = await applier.apply(manifest)
            self.record.applied_kinds.add(applied.kind)
            if applied.resource.group == API_GROUP:
                assert applied.namespace is not None
                self.custom_objects.append((applied.resource, applied.namespace, applied.name))

    async def wait_reconciled(self) -> None:
        async def all_have_status() -> bool:
            for resource, namespace, name in self.custom_objects:
                found = await self.client.get(resource, namespace, name)
                if not found or not (found.get("status") or {}).get("conditions"):
                    return False
            return True

        await eventually("a status on every example object", all_have_status)

    async def room(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return await self.client.get(VIDEOROOMS, namespace, name) or {}

    async def rotation(self, name: str, namespace: str = "default") -> dict[str, Any]:
        return await self.client.get(SIGNINGKEYROTATIONS, namespace, name) or {}

    async def mint_token(self) -> None:
        """``POST /v1/token`` for the standup room (signed by the ``video-keys`` rotation's key), as a
        ServiceAccount granted what examples/rbac/token-role.yaml grants."""
        self.kube.allow_tokens[APP_TOKEN] = {
            "username": APP_USER,
            "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
        }
        self.kube.rbac_rules.append(
            AccessRule(
                verbs=("create",),
                api_groups=(API_GROUP,),
                resources=("videorooms/token",),
                namespaces=("default",),
                names=("standup",),
                users=(APP_USER,),
            )
        )

        async def room_open() -> bool:
            return bool((await self.room("standup")).get("status", {}).get("roomStatus") == "in-progress")

        async def key_active() -> bool:
            return bool((await self.rotation("video-keys")).get("status", {}).get("activeKeySid"))

        await eventually("the standup room to be in progress", room_open)
        await eventually("an active key of the video-keys rotation", key_active)
        url = f"{self.playground.operator_url}/v1/token"
        body = {"namespace": "default", "room": "standup", "identity": "alice"}
        headers = {"Authorization": f"Bearer {APP_TOKEN}"}
        async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as answer:
            self.record.token_status = answer.status
            text = await answer.text()
        assert self.record.token_status == 200, text

    async def rotate_key(self) -> None:
        """A manual rotation of ``video-keys``: a new key is created and staged in the Secret."""
        before = (await self.rotation("video-keys")).get("status", {})
        patch = {"metadata": {"annotations": {ROTATE_ANNOTATION: "rbac-usage-test"}}}
        await self.client.patch(SIGNINGKEYROTATIONS, "default", "video-keys", patch)

        async def staged() -> bool:
            status = (await self.rotation("video-keys")).get("status", {})
            return bool(status.get("nextKeySid")) and status.get("nextKeySid") != before.get("nextKeySid")

        await eventually("a staged next key of the video-keys rotation", staged)

    async def complete_recorded_room(self) -> None:
        """Ending the standup room (it records and composes) makes the operator create its Composition."""
        await self.client.patch(VIDEOROOMS, "default", "standup", {"spec": {"state": "Completed"}})

        async def composition_created() -> bool:
            return await self.client.get(COMPOSITIONS, "default", "standup-recording") is not None

        await eventually("the Composition standup-recording", composition_created)
        self.custom_objects.append((COMPOSITIONS, "default", "standup-recording"))

    async def delete_everything(self) -> None:
        for resource, namespace, name in self.custom_objects:
            await self.client.delete(resource, namespace, name)

        async def all_gone() -> bool:
            for resource, namespace, name in self.custom_objects:
                if await self.client.get(resource, namespace, name) is not None:
                    return False
            return True

        await eventually("every example object to be deleted (finalizers released)", all_gone)


async def run_scenario(state_dir: Path, observed: ObservedApi) -> RunRecord:
    record = RunRecord()
    async with asyncio.timeout(SCENARIO_TIMEOUT):
        async with Playground(state_dir) as playground:
            assert observed.kube is not None
            await Scenario(playground, observed.kube, record).run()
    assert observed.kube is not None and observed.operator_first_request is not None
    operator_token = observed.kube.token
    for index, request in enumerate(served_requests(observed)):
        call = request.as_call()
        if request.bearer == TEST_CLIENT_TOKEN:
            if call is not None:
                record.test_calls.add(call)
        elif request.bearer == operator_token and index >= observed.operator_first_request:
            if call is None:
                record.operator_paths.add(request.path)
            else:
                record.operator_calls.add(call)
        elif request.bearer != operator_token:
            record.foreign_bearers.add(request.bearer[:8] + "...")
    return record


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunRecord]:
    observed = ObservedApi()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(playground_module, "EmbeddedKubernetes", observed.create)
        patch.setattr(playground_module, "run_operator", observed.wrap_operator(run_operator))
        yield asyncio.run(run_scenario(tmp_path_factory.mktemp("rbac-usage"), observed))


# --- what the chart grants --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster_role() -> list[dict[str, Any]]:
    """The rules of the operator's ClusterRole, rendered in the chart's default (cluster-wide) mode, and of
    its Role for the leader Lease (in the release namespace, where the operator keeps its Lease)."""
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(CHART_VALUES, name="tvo", namespace="video-system")
    documents = [
        doc
        for path, text in rendered.items()
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    roles = [
        doc
        for doc in documents
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "tvo-twilio-video-operator"
    ]
    assert len(roles) == 1, [doc["metadata"]["name"] for doc in documents if doc["kind"] == "ClusterRole"]
    (lease_role,) = [
        doc
        for doc in documents
        if doc["kind"] == "Role" and doc["metadata"]["name"] == "tvo-twilio-video-operator-leader-election"
    ]
    rules: list[dict[str, Any]] = [*roles[0]["rules"], *lease_role["rules"]]
    return rules


def grants(rules: list[dict[str, Any]]) -> set[Call]:
    """Every (verb, group, resource) a list of rules names explicitly (no wildcards expected here)."""
    found: set[Call] = set()
    for rule in rules:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.update(Call(verb, group, resource) for verb in rule["verbs"])
    return found


def is_granted(call: Call, rules: list[dict[str, Any]]) -> bool:
    def matches(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    return any(
        matches(rule["apiGroups"], call.group)
        and matches(rule["resources"], call.resource)
        and matches(rule["verbs"], call.verb)
        for rule in rules
    )


def is_discovery(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in DISCOVERY_PATHS)


# --- the checks -------------------------------------------------------------------------------------------


def test_the_run_went_through_every_flow(run: RunRecord) -> None:
    assert run.applied_kinds >= {"VideoRoom", "Composition", "SigningKeyRotation", "Secret", "Namespace"}
    assert run.token_status == 200
    assert not run.foreign_bearers, "requests with an unexpected bearer token"
    assert run.test_calls, "the test's own requests were not told apart"
    expected = {
        Call("create", "", "events"),
        Call("create", API_GROUP, "compositions"),  # the recorded room's Composition
        Call("create", "authentication.k8s.io", "tokenreviews"),  # the token request
        Call("create", "authorization.k8s.io", "subjectaccessreviews"),
        Call("patch", API_GROUP, "videorooms/status"),
        Call("watch", API_GROUP, "videorooms"),
    }
    assert expected <= run.operator_calls, sorted(map(str, expected - run.operator_calls))


def test_every_call_of_the_operator_is_granted(run: RunRecord, cluster_role: list[dict[str, Any]]) -> None:
    missing = sorted(str(call) for call in run.operator_calls if not is_granted(call, cluster_role))
    assert not missing, f"the chart's ClusterRole does not grant: {missing}"


def test_the_operator_reads_only_discovery_paths_outside_resources(run: RunRecord) -> None:
    assert run.operator_paths, "kopf's discovery requests were expected"
    assert not [path for path in run.operator_paths if not is_discovery(path)]


def test_every_grant_is_used_or_explained(run: RunRecord, cluster_role: list[dict[str, Any]]) -> None:
    for call, reason in NOT_EXERCISED.items():
        assert reason and is_granted(call, cluster_role), f"{call} is explained but not granted"
        assert call not in run.operator_calls, f"{call} is exercised now: drop it from NOT_EXERCISED"
    unused = grants(cluster_role) - run.operator_calls - set(NOT_EXERCISED)
    assert not unused, f"the chart grants what the operator never used: {sorted(map(str, unused))}"
