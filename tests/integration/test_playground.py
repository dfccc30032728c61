"""The operator process end to end: `twilio-video-operator dev` and `run` as users run them, the
in-process :class:`Playground` and `make demo`, and the HTTP server's ``/healthz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import aiohttp
import kopf
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from twilio_video_emulator.server import start_emulator
from twilio_video_operator import API_GROUP, API_VERSION
from twilio_video_operator.handlers import base_registry
from twilio_video_operator.http_server import SETTINGS_KEY, HealthState, build_app
from twilio_video_operator.kube import EVENTS
from twilio_video_operator.logs import redact, register_secret
from twilio_video_operator.settings import Settings, load_settings
from twilio_video_playground import playground as playground_module
from twilio_video_playground.demo import STEPS, joining, run_demo, wait_converged
from twilio_video_playground.demo.waiting import StepFailed, wait_for
from twilio_video_playground.kube import EmbeddedKubernetes
from twilio_video_playground.playground import (
    EMULATOR_FILE,
    KUBECONFIG_FILE,
    OPERATOR_FILE,
    AppliedObject,
    ManifestError,
    Playground,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
BIN = Path(sys.executable).parent
KUBECTL = BIN / "kubectl"
STATE_FILES = (KUBECONFIG_FILE, EMULATOR_FILE, OPERATOR_FILE)
CREDENTIAL_KEYS = {"url", "account_sid", "auth_token", "api_key", "api_secret", "sendgrid_api_key"}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def example_objects() -> list[tuple[str, str, str]]:
    """``(kind, namespace, name)`` of every object in the top-level example manifests."""
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append(
                    (doc["kind"], doc["metadata"].get("namespace", "default"), doc["metadata"]["name"])
                )
    return found


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- twilio-video-operator dev, as a subprocess ---------------------------------------------------------


def test_dev_command_serves_kubectl_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    state = tmp_path / "state"
    environment = {**os.environ, "LOG_LEVEL": "INFO"}
    environment.pop("KUBECONFIG", None)
    process = subprocess.Popen(
        [str(BIN / "twilio-video-operator"), "dev", "--state-dir", str(state), "--apply", str(EXAMPLES)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all((state / name).exists() for name in STATE_FILES):
            assert process.poll() is None, f"dev exited early:\n{process.communicate()[1][-4000:]}"
            assert time.monotonic() < deadline, "the playground files did not appear in time"
            time.sleep(0.1)

        credentials = json.loads((state / EMULATOR_FILE).read_text())
        assert set(credentials) == CREDENTIAL_KEYS
        operator_url = json.loads((state / OPERATOR_FILE).read_text())["url"]
        assert operator_url.startswith("http://127.0.0.1:")

        for kind, namespace, name in example_objects():
            result = kubectl(
                state / KUBECONFIG_FILE, "get", kind.lower(), name, "-n", namespace, "-o", "json"
            )
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout)["metadata"]["name"] == name
        listed = kubectl(state / KUBECONFIG_FILE, "get", "twilio", "-A", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        listed_names = {line.rpartition("/")[2] for line in listed.stdout.split()}
        assert {name for _, _, name in example_objects()} <= listed_names

        with urllib.request.urlopen(f"{operator_url}/healthz", timeout=10) as answer:
            assert json.loads(answer.read()) == {"status": "ok", "reason": "ok", "leader": True}

        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=STOP_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr[-4000:]
    assert "export KUBECONFIG=" in stdout
    assert "kubectl get twilio -A" in stdout
    assert not any((state / name).exists() for name in STATE_FILES)


# --- twilio-video-operator run, as a subprocess ---------------------------------------------------------


async def test_run_command_serves_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with EmbeddedKubernetes(REPO / "crds") as kube:
        kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
        emulator = await start_emulator(host="127.0.0.1", port=0)
        try:
            credentials = emulator.credentials
            environment = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(tmp_path),
                "KUBECONFIG": str(kubeconfig),
                "TWILIO_ACCOUNT_SID": credentials["account_sid"],
                "TWILIO_AUTH_TOKEN": credentials["auth_token"],
                "TWILIO_API_KEY": credentials["api_key"],
                "TWILIO_API_SECRET": credentials["api_secret"],
                "TWILIO_BASE_URL": credentials["url"],
                "PUBLIC_BASE_URL": "http://127.0.0.1:9",
                "HTTP_PORT": "0",
                "LOG_LEVEL": "DEBUG",
            }
            process = await asyncio.create_subprocess_exec(
                str(BIN / "twilio-video-operator"),
                "run",
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            log_lines: list[str] = []
            listening = asyncio.get_running_loop().create_future()

            async def read_logs() -> None:
                assert process.stderr is not None
                async for raw in process.stderr:
                    line = raw.decode()
                    log_lines.append(line)
                    entry = json.loads(line) if line.startswith("{") else {}
                    if entry.get("message") == "operator HTTP server is listening" and not listening.done():
                        listening.set_result(entry["url"])

            reader = asyncio.create_task(read_logs())
            try:
                exited = asyncio.ensure_future(process.wait())
                await asyncio.wait(
                    {listening, exited}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
                )
                assert listening.done(), "".join(log_lines)[-4000:]
                url = listening.result()
                async with aiohttp.ClientSession() as session, asyncio.timeout(START_TIMEOUT):
                    while True:
                        async with session.get(f"{url}/healthz") as answer:
                            if answer.status == 200:
                                break
                        await asyncio.sleep(0.1)
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(exited, STOP_TIMEOUT) == 0
                await asyncio.wait_for(reader, STOP_TIMEOUT)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                reader.cancel()
        finally:
            await emulator.stop()
    output = "".join(log_lines)
    assert all(line.startswith("{") for line in log_lines), output[-2000:]
    assert "operator stopped" in output
    assert credentials["auth_token"] not in output
    assert credentials["api_secret"] not in output


# --- the Playground, in process ------------------------------------------------------------------------


@pytest.fixture
async def playground(tmp_path: Path) -> AsyncIterator[Playground]:
    async with asyncio.timeout(START_TIMEOUT), Playground(tmp_path / "state") as started:
        yield started


async def test_playground_writes_its_files_and_serves_health_and_metrics(playground: Playground) -> None:
    state = playground.state_dir
    assert all((state / name).exists() for name in STATE_FILES)
    written = json.loads((state / OPERATOR_FILE).read_text())
    assert written == {
        "url": playground.operator_url,
        "replicas": [{"url": playground.operator_url, "pid": ANY}],
    }
    assert isinstance(written["replicas"][0]["pid"], int)
    assert (state / KUBECONFIG_FILE).stat().st_mode & 0o077 == 0
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{playground.operator_url}/healthz") as answer:
            assert answer.status == 200
            assert await answer.json() == {"status": "ok", "reason": "ok", "leader": True}
        async with session.get(f"{playground.operator_url}/metrics") as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/plain")
            assert "python_info" in await answer.text()


async def test_apply_creates_then_updates(playground: Playground) -> None:
    first = await playground.apply(EXAMPLES)
    assert {(obj.kind, obj.namespace, obj.name) for obj in first} == set(example_objects())
    assert {obj.action for obj in first} == {"created"}
    for obj in first:
        body = await playground.client.get(obj.resource, obj.namespace, obj.name)
        assert body is not None
        assert body["kind"] == obj.kind
    again = await playground.apply(EXAMPLES)
    assert {obj.action for obj in again} == {"updated"}


async def test_without_the_repository_crds_the_playground_generates_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(playground_module, "default_crd_dir", lambda: None)  # as in an installed wheel
    async with asyncio.timeout(START_TIMEOUT), Playground(tmp_path / "state") as started:
        assert started.crd_dir is None
        applied = await started.apply(EXAMPLES)
    assert {obj.kind for obj in applied} == {"VideoRoom", "Composition", "SigningKeyRotation"}


async def test_apply_reports_an_unknown_kind(playground: Playground, tmp_path: Path) -> None:
    manifests = tmp_path / "bad"
    manifests.mkdir()
    (manifests / "thing.yaml").write_text(
        "apiVersion: video.openclaw.io/v1alpha1\nkind: Gizmo\nmetadata:\n  name: x\n"
    )
    with pytest.raises(ManifestError, match=r"thing\.yaml: kind Gizmo is not served"):
        await playground.apply(manifests)


async def test_handler_warnings_become_redacted_events_and_infos_do_not(tmp_path: Path) -> None:
    registry = base_registry()
    secret = "sk-test-8f2d6c1e9b7a4d3f"

    # Compositions: kopf's on.create never fires for VideoRooms, whose controller compares generations
    # instead of keeping kopf's handled-spec annotation.
    @kopf.on.create(API_GROUP, API_VERSION, "compositions", registry=registry)
    def log_both(logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
        register_secret(secret)
        logger.info("an ordinary step")
        logger.warning(f"Twilio refused {secret}; Authorization: Basic QUMxMjM6c2VjcmV0")

    async with asyncio.timeout(START_TIMEOUT), Playground(tmp_path / "state", registry=registry) as started:
        names = {obj.name for obj in await started.apply(EXAMPLES) if obj.kind == "Composition"}
        assert names
        while True:
            events = [
                event
                for event in await started.client.list(EVENTS, "default")
                if event["involvedObject"].get("kind") == "Composition"
            ]
            if {event["involvedObject"]["name"] for event in events} == names:
                break
            await asyncio.sleep(0.1)
    assert {event["type"] for event in events} == {"Warning"}
    assert {event["message"] for event in events} == {
        "Twilio refused [REDACTED]; Authorization: Basic [REDACTED]"
    }


async def test_replicas_run_as_processes_that_elect_one_leader(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with asyncio.timeout(START_TIMEOUT), Playground(state, replicas=2) as started:
        document = json.loads((state / OPERATOR_FILE).read_text())
        assert document["url"] == started.operator_url
        replicas = document["replicas"]
        assert len(replicas) == 2 and len({r["pid"] for r in replicas}) == 2
        assert all(isinstance(r["pid"], int) and r["url"].startswith("http://127.0.0.1:") for r in replicas)
        async with aiohttp.ClientSession() as session:
            leaders = []
            for replica in replicas:
                async with session.get(replica["url"] + "/readyz") as answer:
                    assert answer.status == 200
                    leaders.append((await answer.json())["leader"])
            assert sorted(leaders) == [False, True]
            # The playground's url serves the operator's routes through a ready replica.
            async with session.get(document["url"] + "/healthz") as answer:
                assert answer.status == 200
        pids = [r["pid"] for r in replicas]
    for pid in pids:  # every replica process has exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_stopping_removes_the_files_and_the_servers(tmp_path: Path) -> None:
    async with asyncio.timeout(START_TIMEOUT):
        async with Playground(tmp_path / "state") as started:
            url = started.operator_url
        assert not any((tmp_path / "state" / name).exists() for name in STATE_FILES)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(f"{url}/healthz")


# --- make demo --------------------------------------------------------------------------------------------


async def test_waiting_distinguishes_processed_pending_and_unhandled_kinds(tmp_path: Path) -> None:
    registry = base_registry()

    @kopf.on.event(API_GROUP, API_VERSION, "videorooms", registry=registry)  # no on.create for VideoRooms
    def report_processed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        if body.get("status", {}).get("observedGeneration") != body.metadata.get("generation", 1):
            patch.status["observedGeneration"] = body.metadata.get("generation", 1)

    @kopf.on.create(API_GROUP, API_VERSION, "compositions", registry=registry)
    def never_reports(**_: Any) -> None:
        pass

    async with asyncio.timeout(START_TIMEOUT), Playground(tmp_path / "state", registry=registry) as started:
        applied = [obj for obj in await started.apply(EXAMPLES) if obj.resource.group == API_GROUP]

        def handled(obj: AppliedObject) -> bool:
            return obj.kind in ("VideoRoom", "Composition")  # what the registry above handles

        result = await wait_converged(started.client, applied, handled=handled, wait_seconds=3)
    assert sorted(obj.name for obj in result.converged) == ["standup", "town-hall"]
    assert [obj.kind for obj in result.pending] == ["Composition"]
    assert [obj.kind for obj in result.unhandled] == ["SigningKeyRotation"]


def story_steps(output: str) -> dict[str, str]:
    """The demo's output by step title (``==> N. Title`` headers)."""
    parts = re.split(r"^==> \d+\. (.+)$", output, flags=re.MULTILINE)
    return {title: text.split("\n==> ", 1)[0] for title, text in zip(parts[1::2], parts[2::2], strict=True)}


async def test_the_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_demo(EXAMPLES, wait_seconds=30) == 0
    output = capsys.readouterr().out
    assert output.rstrip().endswith("The demo finished successfully.")
    steps = story_steps(output)
    assert list(steps) == [title for title, _ in STEPS]
    rooms, joins, moderation, muting, recording, notifying, rotation, metrics = steps.values()

    assert "VideoRoom default/standup: Ready, Twilio room RM" in rooms
    assert "VideoRoom default/town-hall: Scheduled" in rooms
    assert "SigningKeyRotation default/video-keys: Ready, active key SK" in rooms
    listed = rooms.split("$ kubectl get twilio -A", 1)[1]
    for _, _, name in example_objects():
        assert name in listed

    assert "POST /v1/token {room: standup, identity: alice} -> 200, JWT of " in joins
    assert re.search(r"alice joins default:standup through the emulator -> 201, participant PA\w{32}", joins)
    assert "participants.connected=1" in joins

    assert "POST /v1/token for guest-mallory -> 403 IdentityBlocked" in moderation
    assert "guest-mallory joins anyway with her earlier token -> 201" in moderation
    assert re.search(r"Twilio reports participant PA\w{32} disconnected", moderation)
    assert "ParticipantRemoved on VideoRoom default/standup" in moderation

    assert "bob receives guest-eve's tracks: ['audio', 'video']" in muting
    assert "Twilio's subscriptions of bob now hold only guest-eve's ['video']" in muting
    assert "Muted on VideoRoom default/standup: Muted 'guest-eve' (audio)" in muting
    assert "reason: background noise; changed by twilio-video-playground" in muting
    assert "bob receives guest-eve's tracks again: ['audio', 'video']" in muting

    assert "Composition default/board-meeting-recording created, Twilio composition CJ" in recording
    delivered = re.search(r"bytes (\d+), sha256 ([0-9a-f]{64})", recording)
    assert delivered is not None and int(delivered[1]) > 0
    assert "acme-meeting-recordings/board/board-meeting-recording/CJ" in recording
    assert ": same size and sha256" in recording

    assert (
        "status.notifications: recordingAvailable to recipient 0 (sms), state Sent, message SM" in notifying
    )
    assert re.search(
        r"got: 'The recording of board-meeting is available: http\S+/CJ\w{32}\.mp4 \[ref n", notifying
    )

    switched = re.search(r"Switched: active key (SK\w{32}), previous key (SK\w{32})", rotation)
    assert switched is not None and switched[1] != switched[2]
    signers = re.findall(r"token signed by (SK\w{32}) -> joined", rotation)
    assert signers[0] == switched[2] and signers[-2] == switched[1] and signers[-1] == switched[2]
    summary = re.search(r"(\d+) joins, (\d+) accepted", rotation)
    assert summary is not None and int(summary[1]) == int(summary[2]) == len(signers)

    for title in ("reconciles", "Twilio API requests", "access tokens minted", "deliveries to S3"):
        moved = re.search(rf"^{title} +\+(\d+)", metrics, flags=re.MULTILINE)
        assert moved is not None and int(moved[1]) > 0, title

    assert redact(output) == output  # no registered secret, JWT or credential header was printed


async def test_a_failed_step_makes_the_demo_fail_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    grant = joining.grant_token_access

    def grant_without_rbac(demo: Any) -> str:  # the ServiceAccount is known, but RBAC allows it nothing
        username = grant(demo)
        demo.playground.kube.rbac_rules.clear()
        return username

    monkeypatch.setattr(joining, "grant_token_access", grant_without_rbac)
    assert await run_demo(EXAMPLES, wait_seconds=10) == 1
    output = capsys.readouterr().out
    assert "The demo FAILED" in output
    assert (
        "step 2 (A participant joins with a token from the operator's token service): "
        "POST /v1/token for alice in default/standup answered 403 Forbidden" in output
    )
    assert "==> 3." not in output


async def test_bounded_waits_say_what_they_waited_for() -> None:
    async def never() -> None:
        return None

    async def seen() -> str:
        return "Ready=False Creating"

    with pytest.raises(StepFailed, match=r"gave up after 1s waiting for the thing; Ready=False Creating"):
        await wait_for("the thing", never, within=1.0, interval=0.2, explain=seen)


async def test_the_demo_fails_when_there_is_nothing_to_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_demo(tmp_path, wait_seconds=1) == 1
    output = capsys.readouterr().out
    assert "The demo FAILED" in output
    assert "step 1 (Rooms from examples/ are applied and Ready)" in output


# --- /healthz and /metrics of the HTTP server ------------------------------------------------------------


def minimal_settings() -> Settings:
    return load_settings(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="auth-token-value",
        PUBLIC_BASE_URL="http://127.0.0.1:9",
        HTTP_PORT=0,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def client_for(app: web.Application) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_healthz_follows_the_operator_loop_and_its_heartbeat() -> None:
    clock = FakeClock()
    health = HealthState(heartbeat_max_age=30, clock=clock)
    client = await client_for(build_app(minimal_settings(), health))
    try:
        answer = await client.get("/healthz")
        assert answer.status == 503
        assert (await answer.json())["reason"] == "operator loop has not started"

        health.mark_running()
        answer = await client.get("/healthz")
        assert answer.status == 200

        clock.now += 31
        answer = await client.get("/healthz")
        assert answer.status == 503
        assert "heartbeat is stale" in (await answer.json())["reason"]

        health.beat()
        assert (await client.get("/healthz")).status == 200

        health.mark_stopped("operator loop has exited")
        answer = await client.get("/healthz")
        assert answer.status == 503
        assert await answer.json() == {
            "status": "unhealthy",
            "reason": "operator loop has exited",
            "leader": False,
        }
    finally:
        await client.close()


async def test_metrics_serve_the_prometheus_text_format() -> None:
    client = await client_for(build_app(minimal_settings(), HealthState()))
    try:
        answer = await client.get("/metrics")
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        assert "# TYPE python_info gauge" in await answer.text()
    finally:
        await client.close()


async def test_route_installers_extend_the_server_and_see_the_settings() -> None:
    settings = minimal_settings()

    def install(app: web.Application) -> None:
        async def echo(_: web.Request) -> web.Response:
            return web.json_response({"public": app[SETTINGS_KEY].PUBLIC_BASE_URL})

        app.router.add_post("/twilio/room-events", echo)

    client = await client_for(build_app(settings, HealthState(), installers=[install]))
    try:
        answer = await client.post("/twilio/room-events")
        assert await answer.json() == {"public": "http://127.0.0.1:9"}
        assert (await client.get("/twilio/room-events")).status == 405
    finally:
        await client.close()
