"""``twilio-video-operator token --namespace NS --room ROOM --identity ID [--ttl SECONDS]`` (admin use).

Reads the VideoRoom and its signing key with the current kubeconfig (``$KUBECONFIG``, else
``~/.kube/config``, else the in-cluster service account) and prints the JWT, alone, on stdout. The room's
rules apply as for the token service (state, blocked and allowed identities, lifetime caps); the caller's
own Kubernetes permissions are what limits who can run it. Rooms signed by the operator's default key
need ``TWILIO_ACCOUNT_SID``, ``TWILIO_API_KEY`` and ``TWILIO_API_SECRET`` in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import kopf
from pydantic import SecretStr

from twilio_video_operator import metrics
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.kube.connection import connection_from_kubeconfig
from twilio_video_operator.tokens.errors import TokenRequestError
from twilio_video_operator.tokens.policy import validate_identity, validate_ttl
from twilio_video_operator.tokens.rooms import OperatorKey, RoomDirectory
from twilio_video_operator.tokens.service import TokenIssuer

EXIT_REFUSED = 1
EXIT_USAGE = 2
DEFAULT_SETTINGS_TTL = 3600


def kube_connection() -> kopf.ConnectionInfo:
    """The current kubeconfig context (first file of ``$KUBECONFIG``, else ``~/.kube/config``), else the
    in-cluster service account."""
    listed = [part for part in os.environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    candidates = [Path(part).expanduser() for part in listed] or [Path("~/.kube/config").expanduser()]
    for path in candidates:
        if path.exists():
            return connection_from_kubeconfig(path)
    found = kopf.login_with_service_account(settings=kopf.OperatorSettings())
    if found is None:
        raise kopf.LoginError("no kubeconfig ($KUBECONFIG, ~/.kube/config) and no in-cluster service account")
    return found


def operator_key_from_environment() -> OperatorKey:
    secret = os.environ.get("TWILIO_API_SECRET") or None
    return OperatorKey(
        account_sid=os.environ.get("TWILIO_ACCOUNT_SID", ""),
        key_sid=os.environ.get("TWILIO_API_KEY") or None,
        secret=SecretStr(secret) if secret else None,
    )


def settings_ttl_from_environment() -> int:
    text = os.environ.get("VIDEO_TOKEN_TTL_SECONDS", "")
    return int(text) if text.isdigit() else DEFAULT_SETTINGS_TTL


async def mint(namespace: str, room: str, identity: str, ttl: int | None, kube: KubeClient) -> str:
    """The JWT for ``identity`` in the VideoRoom ``namespace/room``; raises ``TokenRequestError``."""

    async def client() -> KubeClient:
        return kube

    rooms = RoomDirectory(client, operator_key_from_environment(), time.time, cache_ttl=0)
    issuer = TokenIssuer(rooms, settings_ttl_from_environment(), time.time)
    token, context = await issuer.issue(namespace, room, validate_identity(identity), validate_ttl(ttl))
    metrics.ACCESS_TOKENS_MINTED.labels("cli", context.key_source).inc()
    return token.jwt


def main(args: argparse.Namespace) -> int:
    """Entry point of the ``token`` subcommand; the exit code."""
    try:
        info = kube_connection()
    except kopf.LoginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> str:
        async with KubeClient(info) as kube:
            return await mint(args.namespace, args.room, args.identity, args.ttl, kube)

    try:
        jwt = asyncio.run(run())
    except TokenRequestError as exc:
        print(f"error: {exc.reason}: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    print(jwt)
    return 0
