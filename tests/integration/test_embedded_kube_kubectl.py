"""kubectl 1.37 against the embedded Kubernetes API, with a kubeconfig file (runs as a subprocess)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_embedded_kube_support import GROUP, WIDGETS, api, widget, widget_crd

from twilio_video_playground.kube import AccessRule, EmbeddedKubernetes

KUBECTL = Path(sys.executable).parent / "kubectl"
REPO = Path(__file__).resolve().parents[2]
HAVE_VIDEOROOMS = (REPO / "crds" / "videorooms.video.openclaw.io.yaml").exists()

pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed in the virtualenv")


class Kubectl:
    def __init__(self, kubeconfig: Path, cache_dir: Path) -> None:
        self.base = [
            str(KUBECTL),
            "--kubeconfig",
            str(kubeconfig),
            "--cache-dir",
            str(cache_dir),
            "--request-timeout=10s",
        ]

    async def run(
        self, *args: str, stdin: str | None = None, seconds: float = 30, env: dict[str, str] | None = None
    ) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *self.base,
            *args,
            env=env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), seconds)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = await self.run(*args, stdin=stdin)
        assert code == 0, f"kubectl {' '.join(args)} failed: {err}"
        return out


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    return Kubectl(kubeconfig, tmp_path / "kubectl-cache")


def manifest(*documents: dict[str, Any]) -> str:
    return yaml.safe_dump_all(documents)


async def test_apply_creates_then_patches(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    out = await kubectl.ok("apply", "-f", "-", stdin=manifest(widget_crd()))
    assert "created" in out
    out = await kubectl.ok("apply", "-f", "-", stdin=manifest(widget("w1", size=2)))
    assert "widget.test.openclaw.io/w1 created" in out
    obj = kube.get(f"{GROUP}/v1", "widgets", "default", "w1")
    assert (
        obj is not None
        and "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]
    )
    out = await kubectl.ok("apply", "-f", "-", stdin=manifest(widget("w1", size=3)))
    assert "configured" in out
    obj = kube.get(f"{GROUP}/v1", "widgets", "default", "w1")
    assert obj is not None and obj["spec"]["size"] == 3 and obj["metadata"]["generation"] == 2
    out = await kubectl.ok("apply", "-f", "-", stdin=manifest(widget("w1", size=3)))
    assert "unchanged" in out
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    await kubectl.ok("apply", "-f", "-", stdin=manifest(configmap))
    configmap["data"] = {"b": "2"}
    await kubectl.ok("apply", "-f", "-", stdin=manifest(configmap))
    assert kube.get("v1", "configmaps", "default", "c")["data"] == {"b": "2"}  # type: ignore[index]


async def test_get_uses_printer_columns_short_names_and_categories(
    kube: EmbeddedKubernetes, kubectl: Kubectl
) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1", size=7))
        await http.patch(
            f"{WIDGETS}/w1/status", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        )
    for resource in ("wdg", "widgets", "widget", f"widgets.{GROUP}", "testing"):
        out = await kubectl.ok("get", resource)
        header, row = out.splitlines()[:2]
        assert header.split() == ["NAME", "SIZE", "MODE", "READY", "AGE"], resource
        assert row.split()[:4] == ["w1", "7", "small", "True"], resource
    out = await kubectl.ok("get", "namespaces")
    assert out.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    out = await kubectl.ok("get", "wdg", "-l", "app=none")
    assert "No resources found" in out or out == ""


@pytest.mark.skipif(not HAVE_VIDEOROOMS, reason="crds/videorooms.video.openclaw.io.yaml is not generated")
async def test_get_videorooms_by_short_name_and_category(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    room = {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "VideoRoom",
        "metadata": {"name": "standup"},
        "spec": {},
    }
    await kubectl.ok("apply", "-f", "-", stdin=manifest(room))
    for resource in ("vroom", "videorooms", "twilio"):
        out = await kubectl.ok("get", resource)
        assert "standup" in out and "SID" in out.splitlines()[0], resource
    invalid = {**room, "spec": {"maxParticipants": 51}}
    code, _, err = await kubectl.run("apply", "-f", "-", stdin=manifest(invalid))
    assert code != 0 and "spec.maxParticipants" in err and "less than or equal to 50" in err


async def test_get_as_yaml_and_json_and_describe(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1", size=4))
        uid = kube.get(f"{GROUP}/v1", "widgets", "default", "w1")["metadata"]["uid"]  # type: ignore[index]
        event = {
            "metadata": {"name": "w1.1"},
            "involvedObject": {
                "kind": "Widget",
                "name": "w1",
                "namespace": "default",
                "uid": uid,
                "apiVersion": f"{GROUP}/v1",
            },
            "reason": "Tested",
            "message": "described",
            "type": "Normal",
        }
        await http.post("/api/v1/namespaces/default/events", event)
    as_yaml = yaml.safe_load(await kubectl.ok("get", "wdg", "w1", "-o", "yaml"))
    assert as_yaml["spec"]["size"] == 4 and as_yaml["metadata"]["uid"] == uid
    as_json = json.loads(await kubectl.ok("get", "widgets", "-o", "json"))
    assert as_json["kind"] == "List" and as_json["items"][0]["metadata"]["name"] == "w1"
    described = await kubectl.ok("describe", "widget", "w1")
    assert "Name:" in described and "w1" in described and "Size:" in described
    assert "Tested" in described and "described" in described  # the event found by its involvedObject


async def test_create_namespace(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    out = await kubectl.ok("create", "namespace", "team-x")
    assert "namespace/team-x created" in out
    assert kube.get("v1", "namespaces", None, "team-x") is not None
    out = await kubectl.ok("get", "namespace", "team-x", "-o", "jsonpath={.status.phase}")
    assert out == "Active"


async def test_imperative_creates_of_builtins(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    """kubectl's typed clients send protobuf bodies for these; the server understands them."""
    await kubectl.ok("create", "configmap", "settings", "--from-literal=mode=fast", "--from-literal=size=3")
    assert kube.get("v1", "configmaps", "default", "settings")["data"] == {"mode": "fast", "size": "3"}  # type: ignore[index]
    await kubectl.ok("create", "secret", "generic", "creds", "--from-literal=token=s3cret")
    secret = kube.get("v1", "secrets", "default", "creds")
    assert secret is not None and secret["type"] == "Opaque" and secret["data"] == {"token": "czNjcmV0"}
    await kubectl.ok("create", "serviceaccount", "robot", "-n", "kube-system")
    assert kube.get("v1", "serviceaccounts", "kube-system", "robot") is not None
    await kubectl.ok("label", "configmap", "settings", "tier=web")
    assert kube.get("v1", "configmaps", "default", "settings")["metadata"]["labels"] == {"tier": "web"}  # type: ignore[index]
    out = await kubectl.ok("get", "configmaps", "-l", "tier=web", "-o", "name")
    assert out.split() == ["configmap/settings"]


async def test_delete_with_finalizers(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    async with api(kube) as http:
        held = widget("held")
        held["metadata"]["finalizers"] = ["example.com/hold"]
        await http.post(WIDGETS, held)
        await http.post(WIDGETS, widget("plain"))
        out = await kubectl.ok("delete", "wdg", "plain")
        assert 'widget.test.openclaw.io "plain" deleted' in out
        out = await kubectl.ok("delete", "wdg", "held", "--wait=false")
        assert "deleted" in out
        obj = kube.get(f"{GROUP}/v1", "widgets", "default", "held")
        assert obj is not None and obj["metadata"]["deletionTimestamp"]

        waiting = asyncio.create_task(kubectl.run("delete", "wdg", "held", "--timeout=20s"))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # kubectl waits for the finalizer to go
        await http.patch(f"{WIDGETS}/held", {"metadata": {"finalizers": None}})
        code, _, err = await asyncio.wait_for(waiting, timeout=20)
        assert code == 0, err
    assert kube.get(f"{GROUP}/v1", "widgets", "default", "held") is None


async def test_api_resources_lists_short_names(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    kube.register_crd(widget_crd())
    out = await kubectl.ok("api-resources", f"--api-group={GROUP}")
    row = next(line for line in out.splitlines() if line.startswith("widgets"))
    assert row.split() == ["widgets", "wdg", f"{GROUP}/v1", "true", "Widget"]


async def test_auth_can_i_uses_self_subject_access_review(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    """kubectl sends no token over plain HTTP: such callers are superusers, as on an insecure port."""
    kube.register_crd(widget_crd())
    assert (await kubectl.ok("auth", "can-i", "create", "widgets")).strip() == "yes"
    kube.allow_tokens["viewer-token"] = {"username": "viewer", "groups": ["readers"]}
    attributes = {"verb": "list", "group": GROUP, "resource": "widgets"}
    review = {"kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": attributes}}
    async with api(kube, with_widgets=False) as http:
        path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        viewer = {"Authorization": "Bearer viewer-token"}
        code, answer = await http.post(path, review, headers=viewer)
        assert code == 201 and answer["status"]["allowed"] is False
        kube.rbac_rules.append(AccessRule(verbs=("get", "list"), groups=("readers",)))
        _, answer = await http.post(path, review, headers=viewer)
        assert answer["status"]["allowed"] is True and answer["kind"] == "SelfSubjectAccessReview"


async def test_get_watch_prints_rows_with_printer_columns(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1", size=9))
        process = await asyncio.create_subprocess_exec(
            *kubectl.base,
            "get",
            "wdg",
            "--watch",
            "--output-watch-events",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            lines = [
                (await asyncio.wait_for(process.stdout.readline(), 10)).decode().split() for _ in range(2)
            ]
            assert lines[0] == ["EVENT", "NAME", "SIZE", "MODE", "READY", "AGE"]
            assert lines[1][:4] == ["ADDED", "w1", "9", "small"]  # from the initial list
            await http.patch(f"{WIDGETS}/w1", {"spec": {"size": 10}})  # arrives over the watch
            row = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().split()
            assert row[:4] == ["MODIFIED", "w1", "10", "small"]
        finally:
            process.kill()
            await process.wait()


async def test_create_token_for_a_service_account(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    """``kubectl create token`` (a protobuf TokenRequest) gets a token the server's TokenReview accepts."""
    await kubectl.ok("create", "serviceaccount", "video-app")
    token = (await kubectl.ok("create", "token", "video-app")).strip()
    found = kube.emulator.authenticate(token)
    assert isinstance(found, tuple)
    assert found[0]["username"] == "system:serviceaccount:default:video-app"
    assert found[0]["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]

    answer = json.loads(await kubectl.ok("create", "token", "video-app", "--duration=20m", "-o", "json"))
    assert answer["kind"] == "TokenRequest" and answer["spec"]["expirationSeconds"] == 1200
    issued = kube.emulator.authenticate(answer["status"]["token"])
    assert isinstance(issued, tuple)
    out = await kubectl.ok("create", "token", "video-app", "--audience=video-operator", "-o", "json")
    assert json.loads(out)["spec"]["audiences"] == ["video-operator"]

    code, _, err = await kubectl.run("create", "token", "nobody")
    assert code != 0 and 'serviceaccounts "nobody" not found' in err
    code, _, err = await kubectl.run("create", "token", "video-app", "--duration=5m")
    assert code != 0 and "may not specify a duration less than 10 minutes" in err


@pytest.mark.skipif(not HAVE_VIDEOROOMS, reason="crds/videorooms.video.openclaw.io.yaml is not generated")
async def test_rbac_objects_decide_auth_can_i(kube: EmbeddedKubernetes, kubectl: Kubectl) -> None:
    """The example Role and RoleBinding applied with kubectl, imperative RBAC commands (protobuf bodies),
    and ``kubectl auth can-i --as`` (impersonation by the superuser) answered from them."""
    example = REPO / "examples" / "rbac" / "token-role.yaml"
    out = await kubectl.ok("apply", "-f", str(example))
    assert "rolebinding.rbac.authorization.k8s.io/video-app-token-minter created" in out
    header, row = (await kubectl.ok("get", "rolebindings")).splitlines()[:2]
    assert header.split() == ["NAME", "ROLE", "AGE"]
    assert row.split()[:2] == ["video-app-token-minter", "Role/video-token-minter"]

    app = "--as=system:serviceaccount:default:video-app"
    can_i = ("auth", "can-i", "create", "--subresource=token", app)
    assert (await kubectl.ok(*can_i, "videorooms/standup")).strip() == "yes"
    code, out, _ = await kubectl.run(*can_i, "videorooms/board")
    assert (code, out.split()[0]) == (1, "no")
    code, out, _ = await kubectl.run(*can_i, "videorooms/standup", "-n", "kube-system")
    assert (code, out.split()[0]) == (1, "no")

    await kubectl.ok("create", "clusterrole", "room-reader", "--verb=get,list", "--resource=videorooms")
    await kubectl.ok(
        "create", "clusterrolebinding", "room-readers", "--clusterrole=room-reader", "--group=staff"
    )
    role = kube.get("rbac.authorization.k8s.io/v1", "clusterroles", None, "room-reader")
    assert role is not None
    assert role["rules"] == [
        {"verbs": ["get", "list"], "apiGroups": ["video.openclaw.io"], "resources": ["videorooms"]}
    ]
    assert (
        await kubectl.ok("auth", "can-i", "list", "videorooms", "--as=bob", "--as-group=staff")
    ).strip() == "yes"
    code, out, _ = await kubectl.run("auth", "can-i", "list", "videorooms", "--as=bob")
    assert (code, out.split()[0]) == (1, "no")
