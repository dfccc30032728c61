"""One Kubernetes client and one Twilio gateway per operator process, closed by the last user."""

from __future__ import annotations

from pathlib import Path

import kopf

from twilio_video_operator.handlers.shared import release_shared, shared_gateway, shared_kube
from twilio_video_operator.settings import Settings

SETTINGS = Settings(
    TWILIO_ACCOUNT_SID="AC" + "0" * 32,
    TWILIO_AUTH_TOKEN="token",
    PUBLIC_BASE_URL="http://127.0.0.1:8080",
    TWILIO_MAX_CONCURRENCY=3,
)


def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    return path


async def test_kinds_share_one_gateway_and_client_until_the_last_release(tmp_path: Path) -> None:
    memo = kopf.Memo(settings=SETTINGS, kubeconfig=kubeconfig(tmp_path))
    kopf_settings = kopf.OperatorSettings()
    rooms = (shared_kube(memo, kopf_settings), shared_gateway(memo))
    keys = (shared_kube(memo, kopf_settings), shared_gateway(memo, {"max_concurrency": 99}))
    assert rooms[0] is keys[0] and rooms[1] is keys[1]
    assert rooms[0].connection.server == "http://127.0.0.1:1"
    assert rooms[1].config.max_concurrency == 3  # built once, from the settings
    await release_shared(memo, 2)
    assert shared_gateway(memo) is rooms[1]  # one kind still running: nothing closed
    await release_shared(memo, 3)
    assert "shared_twilio_gateway" not in memo and "shared_kube_client" not in memo
    assert shared_gateway(memo) is not rooms[1]
    await release_shared(memo, 1)
