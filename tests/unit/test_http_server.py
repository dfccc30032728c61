"""The operator's HTTP server as built by ``build_app``: ``/healthz``, ``/metrics``, unknown paths, and
routes added by installers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from twilio_video_operator import metrics as operator_metrics
from twilio_video_operator.http_server import HEALTH_KEY, SETTINGS_KEY, HealthState, build_app
from twilio_video_operator.reconcilers.reconcile_tracking import ReconcileProgress, Result, track_reconcile
from twilio_video_operator.settings import Settings, load_settings

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
MAX_AGE = 60.0

Client = TestClient[web.Request, web.Application]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN="auth-token-for-tests",
        PUBLIC_BASE_URL="https://video.example.com",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> HealthState:
    return HealthState(heartbeat_max_age=MAX_AGE, clock=clock)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[Client]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(settings: Settings, health: HealthState) -> AsyncIterator[Client]:
    async with serving(build_app(settings, health)) as started:
        yield started


async def healthz(client: Client, path: str = "/healthz") -> tuple[int, dict[str, str]]:
    """The status and body of a probe; the ``leader`` field is checked apart (False here)."""
    answer = await client.get(path)
    assert answer.content_type == "application/json"
    body: dict[str, str] = await answer.json()
    assert body.pop("leader") is False
    return answer.status, body


# --- /readyz and the leader flag --------------------------------------------------------------------------


async def test_readyz_waits_for_the_replica_and_follows_health(client: Client, health: HealthState) -> None:
    starting = {"status": "unready", "reason": "the replica is starting"}
    assert await healthz(client, "/readyz") == (503, starting)
    health.mark_running()
    health.mark_ready()
    assert await healthz(client, "/readyz") == (200, {"status": "ready", "reason": "ok"})
    health.mark_ready(False)
    health.mark_stopped("the operator is stopping")
    assert await healthz(client, "/readyz") == (
        503,
        {"status": "unready", "reason": "the operator is stopping"},
    )


async def test_both_probes_say_whether_this_replica_leads(settings: Settings, health: HealthState) -> None:
    leading = [False]
    health.leader = lambda: leading[0]
    health.mark_running()
    health.mark_ready()
    async with serving(build_app(settings, health)) as client:
        for path in ("/healthz", "/readyz"):
            assert (await (await client.get(path)).json())["leader"] is False
        leading[0] = True
        for path in ("/healthz", "/readyz"):
            assert (await (await client.get(path)).json())["leader"] is True


# --- /healthz ---------------------------------------------------------------------------------------------


async def test_healthz_is_ok_while_the_loop_runs_and_beats(client: Client, health: HealthState) -> None:
    health.mark_running()
    assert await healthz(client) == (200, {"status": "ok", "reason": "ok"})


async def test_healthz_is_unavailable_before_the_loop_starts(client: Client) -> None:
    assert await healthz(client) == (503, {"status": "unhealthy", "reason": "operator loop has not started"})


async def test_healthz_stays_ok_up_to_the_heartbeat_limit(
    client: Client, health: HealthState, clock: FakeClock
) -> None:
    health.mark_running()
    clock.now += MAX_AGE
    assert (await healthz(client))[0] == 200


async def test_a_stale_heartbeat_makes_healthz_unavailable_until_the_next_beat(
    client: Client, health: HealthState, clock: FakeClock
) -> None:
    health.mark_running()
    clock.now += MAX_AGE + 30
    status, body = await healthz(client)
    assert status == 503
    assert body == {"status": "unhealthy", "reason": "heartbeat is stale (90s old, limit 60s)"}
    health.beat()
    assert (await healthz(client))[0] == 200


async def test_healthz_reports_why_the_loop_stopped(client: Client, health: HealthState) -> None:
    health.mark_running()
    health.mark_stopped("operator loop has exited")
    assert await healthz(client) == (503, {"status": "unhealthy", "reason": "operator loop has exited"})


async def test_healthz_fails_while_an_added_check_reports_a_problem(
    client: Client, health: HealthState
) -> None:
    problems: list[str | None] = [None]
    health.add_check(lambda: problems[-1])
    health.mark_running()
    assert (await healthz(client))[0] == 200
    problems.append("no VideoRoom reconcile has finished for 912s while 1 object is overdue")
    assert await healthz(client) == (
        503,
        {
            "status": "unhealthy",
            "reason": "no VideoRoom reconcile has finished for 912s while 1 object is overdue",
        },
    )
    problems.append(None)
    assert (await healthz(client))[0] == 200


async def test_healthz_follows_the_reconcile_progress(
    client: Client, health: HealthState, clock: FakeClock
) -> None:
    progress = ReconcileProgress(grace=300, clock=clock)
    health.add_check(progress.problem)
    health.mark_running()
    with track_reconcile("ExampleKind", "ns", "a", progress) as run:
        run.finish(Result.SUCCESS, due_in=600)
    clock.now += 600 + 300
    health.beat()
    assert (await healthz(client))[0] == 200  # due, and late by exactly the grace
    clock.now += 1
    health.beat()
    status, body = await healthz(client)
    assert status == 503
    assert body["reason"] == (
        "no ExampleKind reconcile has finished for 901s while 1 object is overdue (ns/a by 301s, limit 300s)"
    )


# --- /metrics ---------------------------------------------------------------------------------------------


async def test_metrics_serve_the_given_registry_in_prometheus_text_format(
    settings: Settings, health: HealthState
) -> None:
    registry = CollectorRegistry()
    served = Counter("video_test_answers", "Answers given in this test.", ["outcome"], registry=registry)
    served.labels(outcome="ok").inc(3)
    async with serving(build_app(settings, health, metrics_registry=registry)) as client:
        answer = await client.get("/metrics")
        text = await answer.text()
    assert answer.status == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert answer.content_type == "text/plain"
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["video_test_answers"].type == "counter"
    [sample] = [s for s in families["video_test_answers"].samples if s.name == "video_test_answers_total"]
    assert (sample.labels, sample.value) == ({"outcome": "ok"}, 3.0)


async def test_metrics_default_to_the_process_registry_with_the_operator_metrics(client: Client) -> None:
    operator_metrics.TWILIO_OUTBOUND_API_REQUESTS.labels(
        service="video", op_type="read", op_id="FetchRoom"
    ).inc()
    answer = await client.get("/metrics")
    assert answer.status == 200
    families = {family.name: family for family in text_string_to_metric_families(await answer.text())}
    assert families["twilio_outbound_api_requests"].type == "counter"
    values = [
        sample.value
        for sample in families["twilio_outbound_api_requests"].samples
        if sample.name == "twilio_outbound_api_requests_total" and sample.labels.get("op_id") == "FetchRoom"
    ]
    assert values and values[0] >= 1


# --- routing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/health", "/metrics/extra", "/v1/unknown"])
async def test_unknown_paths_are_not_found(client: Client, path: str) -> None:
    answer = await client.get(path)
    assert answer.status == 404


async def test_other_methods_on_the_builtin_routes_are_not_allowed(client: Client) -> None:
    for path in ("/healthz", "/metrics"):
        answer = await client.post(path, data=b"{}")
        assert answer.status == 405, path


async def test_installers_add_routes_that_see_settings_and_health(
    settings: Settings, health: HealthState
) -> None:
    seen: list[tuple[Settings, HealthState]] = []

    def install(app: web.Application) -> None:
        seen.append((app[SETTINGS_KEY], app[HEALTH_KEY]))

        async def hello(_: web.Request) -> web.Response:
            return web.json_response({"hello": "world"})

        app.router.add_get("/hello", hello)

    installers: list[Callable[[web.Application], None]] = [install]
    async with serving(build_app(settings, health, installers=installers)) as client:
        answer = await client.get("/hello")
        assert (answer.status, await answer.json()) == (200, {"hello": "world"})
        assert (await client.get("/healthz")).status == 503  # the built-in routes are still there
    assert seen == [(settings, health)]
