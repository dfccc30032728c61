"""Step 2: an application running as a ServiceAccount asks the operator's token service for an Access
Token, and its user joins the room with it (the emulator verifies the token as Twilio does)."""

from __future__ import annotations

import secrets
from typing import Any

from twilio_video_operator import API_GROUP
from twilio_video_operator.kube import VIDEOROOMS, Resource
from twilio_video_operator.logs import register_secret
from twilio_video_playground.demo.clients import join_or_fail, mint
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.objects import NAMESPACE, Body, status_of, wait_object
from twilio_video_playground.kube import AccessRule
from twilio_video_playground.playground import ManifestApplier

ROOM = "standup"  # examples/videoroom.yaml
IDENTITY = "alice"
SERVICE_ACCOUNT = "video-app"  # as in examples/rbac/token-role.yaml
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")


def grant_token_access(demo: Demo) -> str:
    """Make the embedded Kubernetes API accept a bearer token of the ServiceAccount (TokenReview) and
    let it create ``videorooms/token`` in the namespace (SubjectAccessReview); the user name."""
    username = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
    demo.bearer = secrets.token_urlsafe(32)
    register_secret(demo.bearer)
    kube = demo.playground.kube
    kube.allow_tokens[demo.bearer] = {
        "username": username,
        "uid": secrets.token_hex(8),
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", "system:authenticated"],
    }
    kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=(API_GROUP,),
            resources=("videorooms/token",),
            namespaces=(NAMESPACE,),
            users=(username,),
        )
    )
    return username


async def grant_through_rbac(demo: Demo) -> str:
    """On a real API server: the ServiceAccount, a Role letting it create ``videorooms/token`` in the
    namespace and its RoleBinding (as ``examples/rbac/token-role.yaml``, for every room), and a token of
    the ServiceAccount from the TokenRequest API; the user name."""
    rbac = "rbac.authorization.k8s.io/v1"
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT}},
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "video-token-minter"},
            "rules": [{"apiGroups": [API_GROUP], "resources": ["videorooms/token"], "verbs": ["create"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": f"{SERVICE_ACCOUNT}-token-minter"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "video-token-minter",
            },
            "subjects": [subject],
        },
    ]
    applier = ManifestApplier(demo.playground.client)
    for manifest in manifests:
        await applier.apply(manifest, default_namespace=NAMESPACE)
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    path = SERVICE_ACCOUNTS.path(NAMESPACE, SERVICE_ACCOUNT, "token")
    answer = await demo.playground.client.request("POST", path, body=request)
    demo.bearer = str(answer["status"]["token"])
    register_secret(demo.bearer)
    return f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"


async def participant_joins(demo: Demo) -> None:
    if demo.playground.kube_backend == "real":
        username = await grant_through_rbac(demo)
    else:
        username = grant_token_access(demo)
    print(f"The app authenticates as {username} (a bearer token of {len(demo.bearer)} characters);")
    print(f"  RBAC lets it create videorooms/token in namespace {NAMESPACE}")
    minted = await mint(demo, ROOM, IDENTITY)
    print(f"POST /v1/token {{room: {ROOM}, identity: {IDENTITY}}} -> 200, {minted.describe()}")
    participant = await join_or_fail(demo, minted)
    print(f"{IDENTITY} joins {minted.room_name} through the emulator -> 201, participant {participant}")

    def connected(body: Body) -> bool:
        return int((status_of(body).get("participants") or {}).get("connected") or 0) >= 1

    what = f"VideoRoom {NAMESPACE}/{ROOM} to count the participant"
    body = await wait_object(demo, VIDEOROOMS, ROOM, what, connected, shown="Synced")
    counts = status_of(body).get("participants") or {}
    connected_now = counts.get("connected")
    print(f"VideoRoom {NAMESPACE}/{ROOM}: participants.connected={connected_now} (from Twilio's callback)")
