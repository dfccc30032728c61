"""TokenReview and SubjectAccessReview calls, and their short, bounded cache."""

from __future__ import annotations

from typing import Any

import pytest

from twilio_video_operator.kube import SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, KubeApiError, Resource
from twilio_video_operator.tokens.auth import Caller, KubeAuthorizer
from twilio_video_operator.tokens.cache import TtlCache
from twilio_video_operator.tokens.errors import TokenRequestError

APP = {"username": "system:serviceaccount:tenant:app", "uid": "u-1", "groups": ["system:serviceaccounts"]}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeKube:
    """Answers reviews like an API server: tokens map to users, grants are (user, namespace, room)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {"good-token": APP}
        self.grants: set[tuple[str, str, str]] = {(APP["username"], "tenant", "standup")}
        self.requests: list[tuple[Resource, dict[str, Any]]] = []
        self.failure: Exception | None = None

    async def create(self, resource: Resource, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        assert namespace is None
        self.requests.append((resource, body))
        if self.failure is not None:
            raise self.failure
        spec = body["spec"]
        if resource == TOKEN_REVIEWS:
            user = self.tokens.get(spec["token"])
            return {"status": {"authenticated": True, "user": user} if user else {"authenticated": False}}
        attributes = spec["resourceAttributes"]
        allowed = (spec["user"], attributes["namespace"], attributes["name"]) in self.grants
        return {"status": {"allowed": allowed}}


def authorizer(kube: FakeKube, clock: Clock) -> KubeAuthorizer:
    async def client() -> Any:
        return kube

    return KubeAuthorizer(client, clock, ttl=30, negative_ttl=5, max_entries=100)


async def test_a_known_token_is_the_caller_and_the_review_never_stores_the_token() -> None:
    kube, clock = FakeKube(), Clock()
    auth = authorizer(kube, clock)

    caller = await auth.authenticate("good-token")

    assert caller == Caller("system:serviceaccount:tenant:app", "u-1", ("system:serviceaccounts",))
    resource, body = kube.requests[0]
    assert (
        resource == TOKEN_REVIEWS
        and body["kind"] == "TokenReview"
        and body["spec"] == {"token": "good-token"}
    )
    assert "good-token" not in repr(vars(auth))


async def test_unknown_tokens_are_401_and_cached_briefly() -> None:
    kube, clock = FakeKube(), Clock()
    auth = authorizer(kube, clock)
    for _ in range(3):
        with pytest.raises(TokenRequestError) as caught:
            await auth.authenticate("bad-token")
        assert (caught.value.status, caught.value.reason) == (401, "Unauthorized")
    assert len(kube.requests) == 1
    clock.now += 5
    with pytest.raises(TokenRequestError):
        await auth.authenticate("bad-token")
    assert len(kube.requests) == 2


async def test_accepted_tokens_are_cached_for_the_ttl() -> None:
    kube, clock = FakeKube(), Clock()
    auth = authorizer(kube, clock)
    await auth.authenticate("good-token")
    clock.now += 29.9
    await auth.authenticate("good-token")
    assert len(kube.requests) == 1
    clock.now += 0.1
    del kube.tokens["good-token"]  # revoked meanwhile
    with pytest.raises(TokenRequestError):
        await auth.authenticate("good-token")


async def test_access_review_asks_for_create_on_the_token_subresource() -> None:
    kube, clock = FakeKube(), Clock()
    auth = authorizer(kube, clock)
    caller = Caller.from_user_info({**APP, "extra": {"authentication.kubernetes.io/pod-name": ["p-1"]}})

    await auth.authorize(caller, "tenant", "standup")

    resource, body = kube.requests[0]
    assert resource == SUBJECT_ACCESS_REVIEWS
    assert body["spec"] == {
        "user": APP["username"],
        "uid": "u-1",
        "groups": ["system:serviceaccounts"],
        "extra": {"authentication.kubernetes.io/pod-name": ["p-1"]},
        "resourceAttributes": {
            "namespace": "tenant",
            "verb": "create",
            "group": "video.openclaw.io",
            "resource": "videorooms",
            "subresource": "token",
            "name": "standup",
        },
    }


async def test_denials_are_403_and_decisions_are_cached_per_room() -> None:
    kube, clock = FakeKube(), Clock()
    auth = authorizer(kube, clock)
    caller = Caller.from_user_info(APP)
    await auth.authorize(caller, "tenant", "standup")
    await auth.authorize(caller, "tenant", "standup")
    with pytest.raises(TokenRequestError) as caught:
        await auth.authorize(caller, "tenant", "board")
    assert (caught.value.status, caught.value.reason) == (403, "Forbidden")
    assert len(kube.requests) == 2
    clock.now += 30
    kube.grants.clear()
    with pytest.raises(TokenRequestError):
        await auth.authorize(caller, "tenant", "standup")


async def test_an_unreachable_api_server_is_503() -> None:
    kube, clock = FakeKube(), Clock()
    kube.failure = KubeApiError(500, "InternalError", "boom")
    auth = authorizer(kube, clock)
    with pytest.raises(TokenRequestError) as caught:
        await auth.authenticate("good-token")
    assert (caught.value.status, caught.value.reason) == (503, "ReviewFailed")
    kube.failure = None
    await auth.authenticate("good-token")  # failures are not cached


def test_the_cache_is_bounded_and_expires() -> None:
    clock = Clock()
    cache: TtlCache[int] = TtlCache(clock, max_entries=3)
    for key in range(5):
        cache.put(key, key, ttl=10)
    assert len(cache) == 3
    assert cache.get(0) == (False, None) and cache.get(4) == (True, 4)
    clock.now += 10
    assert cache.get(4) == (False, None)
