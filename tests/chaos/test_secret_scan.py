"""The secret scan itself: it must find what it is meant to find (a scan that cannot fail proves nothing)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from secret_scan import SecretScanner, install_collectors
from twilio_video_emulator.server import start_emulator
from twilio_video_operator.kube import EVENTS, KubeClient
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_playground.kube import EmbeddedKubernetes

pytestmark = pytest.mark.no_secret_scan  # these tests plant secrets on purpose

SECRET = "s3cr3t-value-that-must-not-leak"


def test_finds_a_registered_secret_without_showing_it() -> None:
    scanner = SecretScanner()
    scanner.add_secret(SECRET, "the test secret")
    scanner.add_text("a log line", f"connecting with password={SECRET} now")
    hits = scanner.scan()
    assert [(hit.source, hit.what) for hit in hits] == [("a log line", "the test secret")]
    assert SECRET not in str(hits[0])


def test_finds_any_jwt() -> None:
    token = AccessToken("AC" + "0" * 32, "SK" + "0" * 32, "x" * 32, identity="alice")
    token.add_grant(VideoGrant(room="standup"))
    scanner = SecretScanner()
    scanner.add_text("an Event", f"minted {token.to_jwt()} for alice")
    assert [hit.what for hit in scanner.scan()] == ["a JWT (Access Token)"]


def test_clean_evidence_has_no_hit(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    log.write_text('{"message": "room RM0123 created", "key": "SK0123456789abcdef0123456789abcdef"}\n')
    scanner = SecretScanner()
    scanner.add_secret(SECRET, "the test secret")
    scanner.add_file("operator log", log)
    scanner.add_objects("API", [{"kind": "Secret", "metadata": {"name": "keys"}, "data": {"K": SECRET}}])
    assert scanner.scan() == []


def test_skips_secrets_but_reads_events_and_statuses() -> None:
    scanner = SecretScanner()
    scanner.add_secret(SECRET, "the test secret")
    scanner.add_objects(
        "API",
        [
            {"kind": "Secret", "metadata": {"name": "keys"}, "stringData": {"K": SECRET}},
            {"kind": "Event", "metadata": {"name": "e1", "namespace": "ns"}, "message": f"oops {SECRET}"},
            {"kind": "VideoRoom", "metadata": {"name": "r"}, "status": {"conditions": [{"message": SECRET}]}},
        ],
    )
    assert sorted(hit.source for hit in scanner.scan()) == ["API: Event ns/e1", "API: VideoRoom /r"]


async def test_collectors_catch_logs_events_and_emulator_secrets(tmp_path: Path) -> None:
    """With the collectors installed, a leak in a log record or an Event is found at teardown."""
    scanner = SecretScanner()
    patcher = pytest.MonkeyPatch()
    collector = install_collectors(scanner, patcher)
    try:
        emulator = await start_emulator(host="127.0.0.1", port=0)
        auth_token = emulator.state.auth_token
        kube = EmbeddedKubernetes()
        await kube.start()
        client = KubeClient(connection_from_kubeconfig(kube.write_kubeconfig(tmp_path / "kubeconfig")))
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "leak", "namespace": "default"},
            "message": f"auth failed with {auth_token}",
            "involvedObject": {"kind": "VideoRoom"},
        }
        await client.create(EVENTS, "default", event)
        await client.close()
        logging.getLogger("twilio_video_operator.gateway").warning("token is %s", auth_token)
        await kube.stop()
        await emulator.stop()
    finally:
        logging.getLogger().removeHandler(collector)
        patcher.undo()
    sources = sorted({hit.source for hit in scanner.scan()})
    assert sources == ["Kubernetes API: Event default/leak", "log record of twilio_video_operator.gateway"]
