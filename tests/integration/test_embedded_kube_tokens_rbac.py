"""ServiceAccount tokens (TokenRequest, then TokenReview) and SubjectAccessReview over the RBAC objects
stored in the embedded Kubernetes API, through its HTTP interface."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from test_embedded_kube_support import Http, api

from twilio_video_playground.kube import AccessRule, EmbeddedKubernetes

RBAC = "/apis/rbac.authorization.k8s.io/v1"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
SELF_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
APP = "system:serviceaccount:team-a:app"
SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"]
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
VIDEO = "video.openclaw.io"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(kube: EmbeddedKubernetes) -> FakeClock:
    clock = FakeClock()
    kube.emulator.clock = clock
    return clock


async def namespace(http: Http, name: str) -> None:
    code, _ = await http.post("/api/v1/namespaces", {"metadata": {"name": name}})
    assert code == 201


async def service_account(http: Http, ns: str, name: str) -> dict[str, Any]:
    code, created = await http.post(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": name}})
    assert code == 201, created
    return dict(created)


async def request_token(http: Http, ns: str, name: str, **spec: Any) -> tuple[int, Any]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return await http.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", body)


async def token_for(http: Http, ns: str, name: str, **spec: Any) -> str:
    code, answer = await request_token(http, ns, name, **spec)
    assert code == 201, answer
    return str(answer["status"]["token"])


async def review(http: Http, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    code, answer = await http.post(TOKEN_REVIEWS, {"kind": "TokenReview", "spec": spec})
    assert code == 201, answer
    return dict(answer["status"])


def timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- TokenRequest and TokenReview ------------------------------------------------------------------------


async def test_token_request_issues_a_token_that_token_review_accepts(
    kube: EmbeddedKubernetes, clock: FakeClock
) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        account = await service_account(http, "team-a", "app")
        code, answer = await request_token(http, "team-a", "app")
        assert code == 201
        assert (answer["kind"], answer["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
        assert answer["metadata"]["name"] == "app" and answer["metadata"]["namespace"] == "team-a"
        assert answer["spec"]["expirationSeconds"] == 3600  # the default
        assert answer["spec"]["audiences"] == [API_AUDIENCE]
        assert answer["status"]["expirationTimestamp"] == timestamp(clock.now + 3600)
        token = answer["status"]["token"]
        assert token.count(".") == 2 and len(token) > 100  # shaped like a JWT

        status = await review(http, token)
        assert status["authenticated"] is True
        user = status["user"]
        assert user["username"] == APP
        assert user["uid"] == account["metadata"]["uid"]
        assert user["groups"] == SA_GROUPS
        assert user["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
        assert status["audiences"] == [API_AUDIENCE]
        # Each request issues a new token; the old one stays valid.
        assert await token_for(http, "team-a", "app") != token
        assert (await review(http, token))["authenticated"] is True


async def test_tokens_expire_after_the_requested_lifetime(kube: EmbeddedKubernetes, clock: FakeClock) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        await service_account(http, "team-a", "app")
        code, answer = await request_token(http, "team-a", "app", expirationSeconds=600)
        assert code == 201 and answer["spec"]["expirationSeconds"] == 600
        assert answer["status"]["expirationTimestamp"] == timestamp(clock.now + 600)
        short = answer["status"]["token"]
        default = await token_for(http, "team-a", "app")
        clock.now += 599
        assert (await review(http, short))["authenticated"] is True
        clock.now += 1
        status = await review(http, short)
        assert status["authenticated"] is False and "expired" in status["error"]
        assert status["user"] == {}
        assert (await review(http, default))["authenticated"] is True
        clock.now += 3000
        assert (await review(http, default))["authenticated"] is False


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (599, "may not specify a duration less than 10 minutes"),
        (2**32 + 1, "may not specify a duration larger than 2^32 seconds"),
        ("600", "must be a whole number of seconds"),
    ],
)
async def test_token_lifetimes_outside_the_limits_are_invalid(
    kube: EmbeddedKubernetes, seconds: Any, message: str
) -> None:
    async with api(kube, with_widgets=False) as http:
        await service_account(http, "default", "app")
        code, status = await request_token(http, "default", "app", expirationSeconds=seconds)
        assert (code, status["reason"]) == (422, "Invalid")
        assert status["message"].startswith('TokenRequest.authentication.k8s.io "app" is invalid: ')
        assert message in status["message"]
        assert status["details"]["causes"][0]["field"] == "spec.expirationSeconds"
    assert len(kube.emulator.service_account_tokens) == 0


async def test_token_request_for_a_missing_service_account_is_not_found(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        code, status = await request_token(http, "default", "ghost")
        assert (code, status["reason"]) == (404, "NotFound")
        assert status["message"] == 'serviceaccounts "ghost" not found'
        code, status = await request_token(http, "nowhere", "ghost")
        assert code == 404
        await service_account(http, "default", "app")
        code, _ = await http.get("/api/v1/namespaces/default/serviceaccounts/app/token")
        assert code == 405  # create only, as discovery says
        _, resources = await http.get("/api/v1")
        entry = next(item for item in resources["resources"] if item["name"] == "serviceaccounts/token")
        assert entry["verbs"] == ["create"]
        assert (entry["kind"], entry["group"], entry["version"]) == (
            "TokenRequest",
            "authentication.k8s.io",
            "v1",
        )


async def test_deleting_the_service_account_revokes_its_tokens(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await service_account(http, "default", "app")
        token = await token_for(http, "default", "app")
        assert (await review(http, token))["authenticated"] is True
        code, _ = await http.delete("/api/v1/namespaces/default/serviceaccounts/app")
        assert code == 200
        status = await review(http, token)
        assert status["authenticated"] is False and "deleted" in status["error"]
        await service_account(http, "default", "app")  # same name, new uid: the old token stays dead
        assert (await review(http, token))["authenticated"] is False
        assert (await review(http, await token_for(http, "default", "app")))["authenticated"] is True


async def test_audiences_are_respected(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await service_account(http, "default", "app")
        default = await token_for(http, "default", "app")
        custom = await token_for(http, "default", "app", audiences=["video-operator", "other"])
        # A review without audiences checks the API server's own audience.
        assert (await review(http, default))["authenticated"] is True
        status = await review(http, custom)
        assert status["authenticated"] is False and "invalid for the target audiences" in status["error"]
        # A review naming audiences accepts a token issued for any of them, and says which.
        status = await review(http, custom, ["video-operator", "elsewhere"])
        assert status["authenticated"] is True and status["audiences"] == ["video-operator"]
        assert (await review(http, default, ["video-operator"]))["authenticated"] is False


async def test_tokens_bound_to_a_secret_die_with_it(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await service_account(http, "default", "app")
        code, secret = await http.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}})
        assert code == 201
        ref = {"kind": "Secret", "apiVersion": "v1", "name": "s"}
        code, answer = await request_token(http, "default", "app", boundObjectRef=ref)
        assert code == 201 and answer["spec"]["boundObjectRef"] == ref
        token = answer["status"]["token"]
        assert (await review(http, token))["authenticated"] is True
        await http.delete("/api/v1/namespaces/default/secrets/s")
        assert (await review(http, token))["authenticated"] is False
        code, _ = await request_token(http, "default", "app", boundObjectRef=ref)
        assert code == 404
        pod = {"kind": "Pod", "apiVersion": "v1", "name": "p"}
        code, status = await request_token(http, "default", "app", boundObjectRef=pod)
        assert code == 400 and "Secrets only" in status["message"]
        assert secret["metadata"]["uid"]


async def test_configured_tokens_still_authenticate(kube: EmbeddedKubernetes) -> None:
    kube.allow_tokens["configured"] = {"username": "configured-user", "groups": ["g"]}
    async with api(kube, with_widgets=False) as http:
        status = await review(http, "configured")
        assert status["authenticated"] is True and status["user"]["username"] == "configured-user"
        status = await review(http, "made-up")
        assert status["authenticated"] is False and status["error"] == "invalid bearer token"


# --- SubjectAccessReview over RBAC objects ---------------------------------------------------------------


def role(name: str, *rules: dict[str, Any], cluster: bool = False) -> dict[str, Any]:
    kind = "ClusterRole" if cluster else "Role"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "rules": list(rules),
    }


def rule(
    verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names is not None:
        found["resourceNames"] = names
    return found


def binding(
    name: str, role_kind: str, role_name: str, *subjects: dict[str, Any], cluster: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding" if cluster else "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


def sa(name: str, ns: str | None = None) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": name, **({"namespace": ns} if ns else {})}


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name: str) -> dict[str, Any]:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


async def create(http: Http, plural: str, obj: dict[str, Any], ns: str | None = None) -> dict[str, Any]:
    path = f"{RBAC}/namespaces/{ns}/{plural}" if ns else f"{RBAC}/{plural}"
    code, created = await http.post(path, obj)
    assert code == 201, created
    return dict(created)


async def allowed(
    http: Http,
    subject: str,
    *,
    groups: list[str] | None = None,
    verb: str = "create",
    api_group: str = VIDEO,
    resource: str = "videorooms",
    subresource: str = "token",
    ns: str = "team-a",
    name: str = "standup",
) -> bool:
    attributes = {"verb": verb, "group": api_group, "resource": resource, "namespace": ns}
    if subresource:
        attributes["subresource"] = subresource
    if name:
        attributes["name"] = name
    spec: dict[str, Any] = {"user": subject, "resourceAttributes": attributes}
    if groups is not None:
        spec["groups"] = groups
    code, answer = await http.post(ACCESS_REVIEWS, {"kind": "SubjectAccessReview", "spec": spec})
    assert code == 201, answer
    return bool(answer["status"]["allowed"])


async def test_role_and_role_binding_grant_in_their_namespace_only(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        await namespace(http, "team-b")
        assert not await allowed(http, APP, groups=SA_GROUPS)
        await create(http, "roles", role("minter", rule(["create"], [VIDEO], ["videorooms/token"])), "team-a")
        assert not await allowed(http, APP, groups=SA_GROUPS)  # a Role alone grants nothing
        await create(
            http, "rolebindings", binding("app-minter", "Role", "minter", sa("app", "team-a")), "team-a"
        )

        attributes = {
            "verb": "create",
            "group": VIDEO,
            "resource": "videorooms",
            "subresource": "token",
            "namespace": "team-a",
            "name": "standup",
        }
        body = {"spec": {"user": APP, "groups": SA_GROUPS, "resourceAttributes": attributes}}
        _, answer = await http.post(ACCESS_REVIEWS, body)
        assert answer["status"] == {
            "allowed": True,
            "reason": 'RBAC: allowed by RoleBinding "app-minter/team-a" of Role "minter" to '
            'ServiceAccount "app/team-a"',
        }
        assert await allowed(http, APP, name="any-room")  # no resourceNames: every room
        assert not await allowed(http, APP, ns="team-b")  # another namespace
        assert not await allowed(http, APP, verb="get")  # another verb
        assert not await allowed(http, APP, subresource="")  # the room itself, not its tokens
        assert not await allowed(http, APP, api_group="")  # another group
        assert not await allowed(http, "system:serviceaccount:team-a:other")  # another account
        assert not await allowed(http, "system:serviceaccount:team-b:app")  # same name, other namespace
        # A binding's ServiceAccount subject without a namespace means the binding's namespace.
        await create(http, "rolebindings", binding("other-minter", "Role", "minter", sa("other")), "team-a")
        assert await allowed(http, "system:serviceaccount:team-a:other")
        # Deleting the binding takes the grant away.
        code, _ = await http.delete(f"{RBAC}/namespaces/team-a/rolebindings/app-minter")
        assert code == 200
        assert not await allowed(http, APP)


async def test_resource_names_limit_the_grant_to_those_objects(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        minter = role("minter", rule(["create"], [VIDEO], ["videorooms/token"], ["standup", "retro"]))
        await create(http, "roles", minter, "team-a")
        await create(http, "rolebindings", binding("b", "Role", "minter", sa("app", "team-a")), "team-a")
        assert await allowed(http, APP, name="standup")
        assert await allowed(http, APP, name="retro")
        assert not await allowed(http, APP, name="board")
        assert not await allowed(http, APP, name="")  # no name asked: resourceNames do not match


async def test_cluster_roles_through_role_bindings_and_cluster_role_bindings(
    kube: EmbeddedKubernetes,
) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        await namespace(http, "team-b")
        minter = role("video-minter", rule(["create"], [VIDEO], ["videorooms/token"]), cluster=True)
        await create(http, "clusterroles", minter)
        # Bound in one namespace by a RoleBinding: the ClusterRole's rules apply there only.
        await create(
            http, "rolebindings", binding("b", "ClusterRole", "video-minter", sa("app", "team-a")), "team-a"
        )
        assert await allowed(http, APP, ns="team-a")
        assert not await allowed(http, APP, ns="team-b")
        # Bound cluster-wide: every namespace.
        crb = binding("everywhere", "ClusterRole", "video-minter", user("alice"), cluster=True)
        await create(http, "clusterrolebindings", crb)
        assert await allowed(http, "alice", ns="team-b")
        assert await allowed(http, "alice", ns="team-a")
        assert not await allowed(http, "bob", ns="team-a")


async def test_wildcards_match_as_in_kubernetes(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await create(http, "clusterroles", role("admin", rule(["*"], ["*"], ["*"]), cluster=True))
        await create(
            http, "clusterroles", role("any-token", rule(["create"], [VIDEO], ["*/token"]), cluster=True)
        )
        await create(
            http, "clusterroles", role("rooms-only", rule(["*"], [VIDEO], ["videorooms"]), cluster=True)
        )
        await create(
            http, "clusterrolebindings", binding("a", "ClusterRole", "admin", user("root"), cluster=True)
        )
        await create(
            http, "clusterrolebindings", binding("t", "ClusterRole", "any-token", user("t"), cluster=True)
        )
        await create(
            http, "clusterrolebindings", binding("r", "ClusterRole", "rooms-only", user("r"), cluster=True)
        )
        assert await allowed(http, "root", verb="delete", api_group="", resource="secrets", subresource="")
        assert await allowed(http, "t")  # */token: the token subresource of any resource
        assert await allowed(http, "t", resource="compositions")
        assert not await allowed(http, "t", subresource="")
        assert await allowed(http, "r", verb="patch", subresource="", name="x")
        assert not await allowed(http, "r")  # "videorooms" does not cover videorooms/token


async def test_group_subjects_match_the_groups_of_the_review(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        await create(http, "roles", role("minter", rule(["create"], [VIDEO], ["videorooms/token"])), "team-a")
        every_sa = binding("all-accounts", "Role", "minter", group("system:serviceaccounts:team-a"))
        await create(http, "rolebindings", every_sa, "team-a")
        assert await allowed(http, "system:serviceaccount:team-a:anyone", groups=SA_GROUPS)
        assert not await allowed(http, "system:serviceaccount:team-a:anyone", groups=["system:authenticated"])
        assert not await allowed(http, "system:serviceaccount:team-a:anyone")


async def test_bindings_to_missing_or_wrong_roles_grant_nothing(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        await namespace(http, "team-b")
        await create(
            http, "rolebindings", binding("dangling", "Role", "missing", sa("app", "team-a")), "team-a"
        )
        assert not await allowed(http, APP)
        # A RoleBinding reaches Roles of its own namespace only.
        await create(http, "roles", role("minter", rule(["create"], [VIDEO], ["videorooms/token"])), "team-b")
        await create(http, "rolebindings", binding("cross", "Role", "minter", sa("app", "team-a")), "team-a")
        assert not await allowed(http, APP)
        code, answer = await http.post(
            ACCESS_REVIEWS,
            {
                "spec": {
                    "user": APP,
                    "resourceAttributes": {"verb": "create", "group": VIDEO, "resource": "videorooms"},
                }
            },
        )
        assert code == 201 and answer["status"]["allowed"] is False and answer["status"]["reason"]


async def test_non_resource_urls_come_from_cluster_role_bindings(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        metrics = {"verbs": ["get"], "nonResourceURLs": ["/metrics", "/debug/*"]}
        await create(http, "clusterroles", role("scraper", metrics, cluster=True))
        await create(
            http, "clusterrolebindings", binding("s", "ClusterRole", "scraper", user("prom"), cluster=True)
        )

        async def may_get(path: str, subject: str = "prom") -> bool:
            spec = {"user": subject, "nonResourceAttributes": {"path": path, "verb": "get"}}
            _, answer = await http.post(ACCESS_REVIEWS, {"spec": spec})
            return bool(answer["status"]["allowed"])

        assert await may_get("/metrics")
        assert await may_get("/debug/pprof")
        assert not await may_get("/healthz")
        assert not await may_get("/metrics", "someone")


async def test_configured_rules_and_rbac_objects_both_apply(kube: EmbeddedKubernetes) -> None:
    kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=(VIDEO,),
            resources=("videorooms/token",),
            namespaces=("team-a",),
            names=("configured",),
            users=(APP,),
        )
    )
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        minter = role("minter", rule(["create"], [VIDEO], ["videorooms/token"], ["applied"]))
        await create(http, "roles", minter, "team-a")
        await create(http, "rolebindings", binding("b", "Role", "minter", sa("app", "team-a")), "team-a")
        assert await allowed(http, APP, name="configured")
        assert await allowed(http, APP, name="applied")
        assert not await allowed(http, APP, name="neither")
        assert await allowed(http, "anyone", groups=["system:masters"], name="neither")


async def test_issued_tokens_and_rbac_in_self_subject_access_reviews(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        await namespace(http, "team-a")
        await service_account(http, "team-a", "app")
        await create(http, "roles", role("minter", rule(["create"], [VIDEO], ["videorooms/token"])), "team-a")
        await create(http, "rolebindings", binding("b", "Role", "minter", sa("app", "team-a")), "team-a")
        token = await token_for(http, "team-a", "app")
        attributes = {"verb": "create", "group": VIDEO, "resource": "videorooms", "subresource": "token"}
        body = {"spec": {"resourceAttributes": {**attributes, "namespace": "team-a"}}}
        code, answer = await http.post(SELF_REVIEWS, body, headers={"Authorization": f"Bearer {token}"})
        assert code == 201 and answer["status"]["allowed"] is True
        elsewhere = copy.deepcopy(body)
        elsewhere["spec"]["resourceAttributes"]["namespace"] = "default"
        _, answer = await http.post(SELF_REVIEWS, elsewhere, headers={"Authorization": f"Bearer {token}"})
        assert answer["status"]["allowed"] is False


# --- writes of RBAC objects ------------------------------------------------------------------------------


async def test_rbac_objects_are_defaulted_and_validated(kube: EmbeddedKubernetes) -> None:
    async with api(kube, with_widgets=False) as http:
        bare = binding("b", "ClusterRole", "view", {"kind": "Group", "name": "devs"}, sa("app", "default"))
        del bare["roleRef"]["apiGroup"]
        created = await create(http, "rolebindings", bare, "default")
        assert created["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
        assert created["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
        assert "apiGroup" not in created["subjects"][1]

        changed = copy.deepcopy(created)
        changed["roleRef"]["name"] = "edit"
        code, status = await http.put(f"{RBAC}/namespaces/default/rolebindings/b", changed)
        assert (code, status["reason"]) == (422, "Invalid") and "cannot change roleRef" in status["message"]
        changed = copy.deepcopy(created)
        changed["subjects"] = [user("carol")]
        code, _ = await http.put(f"{RBAC}/namespaces/default/rolebindings/b", changed)
        assert code == 200

        cases: list[tuple[str, dict[str, Any], str]] = [
            ("clusterrolebindings", binding("x", "Role", "r", user("u"), cluster=True), "roleRef.kind"),
            (
                "clusterrolebindings",
                binding("x", "ClusterRole", "r", sa("app"), cluster=True),
                "subjects[0].namespace",
            ),
            ("rolebindings", binding("x", "Role", "r", {"kind": "Robot", "name": "r2"}), "subjects[0].kind"),
            ("rolebindings", binding("x", "Role", "", user("u")), "roleRef.name"),
            ("roles", role("x", {"apiGroups": [""], "resources": ["pods"]}), "rules[0].verbs"),
            ("roles", role("x", {"verbs": ["get"], "resources": ["pods"]}), "rules[0].apiGroups"),
            (
                "roles",
                role("x", {"verbs": ["get"], "nonResourceURLs": ["/metrics"]}),
                "rules[0].nonResourceURLs",
            ),
        ]
        for plural, obj, field in cases:
            path = (
                f"{RBAC}/{plural}" if plural.startswith("cluster") else f"{RBAC}/namespaces/default/{plural}"
            )
            code, status = await http.post(path, obj)
            assert (code, status.get("reason")) == (422, "Invalid"), (plural, obj)
            assert field in [cause["field"] for cause in status["details"]["causes"]], status
