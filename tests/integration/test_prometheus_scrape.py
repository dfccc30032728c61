"""A real Prometheus scrapes the operator's ``/metrics`` and evaluates the chart's alert rules over it.

The playground runs in-process with the top-level examples applied (so the operator calls the Twilio
emulator), plus one VideoRoom whose credentials Twilio refuses. Debian's ``prometheus`` binary runs on
127.0.0.1 with scrape and evaluation intervals of one second and, as its rule file, the groups of the
PrometheusRule the Helm chart renders (``files/alerts/*.yaml``, as ``tests/unit/test_alert_rules.py``
extracts them). The target carries the ``job`` and ``namespace`` labels a ServiceMonitor would give it, so
the rules' selectors match. The test waits, bounded, until Prometheus's HTTP API shows the target up,
every shipped rule evaluated without error, the availability alerts quiet, and the alert on refused
credentials firing.

Without the binary (or Helm's Python SDK) the test is skipped, unless the ``CI`` environment variable is
set: then it fails, as the machine is expected to have them (``make test`` installs them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from dashboard_story import Story
from s3_server import SeaweedS3, s3_server_fixture  # noqa: F401 - the s3_server fixture

from chart_rules import JOB, NAMESPACE, rendered_rule_spec
from twilio_video_operator.kube import SECRETS, VIDEOROOMS
from twilio_video_playground.playground import Playground

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PROMETHEUS_START_ATTEMPTS = 3
PROMETHEUS_READY_TIMEOUT = 15.0
CONVERGE_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.25
SCRAPE_INTERVAL_SECONDS = 1


def chart_rule_groups() -> list[dict[str, Any]]:
    """The rule groups of the PrometheusRule the chart renders for release ``tvo`` in ``video-system``."""
    try:
        groups: list[dict[str, Any]] = rendered_rule_spec()["groups"]
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("helm-python-sdk is not installed")
        pytest.skip("helm-python-sdk is not installed")
    return groups


def chart_alert_names() -> set[str]:
    return {rule["alert"] for group in chart_rule_groups() for rule in group["rules"] if "alert" in rule}


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        message = "prometheus is not installed (Debian package 'prometheus'; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, target: str, groups: list[dict[str, Any]] | None = None) -> Path:
    """Prometheus's configuration: the target, and as rules ``groups`` (default: the chart's)."""
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "rules.yaml"
    groups = chart_rule_groups() if groups is None else groups
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    # The labels a ServiceMonitor gives the target in the release's namespace.
    static = {"targets": [target], "labels": {"namespace": NAMESPACE}}
    interval = f"{SCRAPE_INTERVAL_SECONDS}s"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics", "static_configs": [static]}],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


class PrometheusServer:
    """One ``prometheus`` process on 127.0.0.1 with its TSDB in a temporary directory."""

    def __init__(self, binary: str, config: Path, workdir: Path) -> None:
        self.binary = binary
        self.config = config
        self.workdir = workdir
        self.log_path = workdir / "prometheus.log"
        self.url = ""
        self.process: asyncio.subprocess.Process | None = None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    async def start(self, http: aiohttp.ClientSession) -> None:
        """Start and wait for ``/-/ready``; a port taken in the meantime means another attempt."""
        for attempt in range(PROMETHEUS_START_ATTEMPTS):
            port = free_port()
            storage = self.workdir / f"tsdb-{attempt}"
            with self.log_path.open("ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={storage}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            self.url = f"http://127.0.0.1:{port}"
            if await self._ready(http):
                return
            await self.stop()
        raise AssertionError(f"prometheus did not start:\n{self.log_tail()}")

    async def _ready(self, http: aiohttp.ClientSession) -> bool:
        assert self.process is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PROMETHEUS_READY_TIMEOUT):
                while self.process.returncode is None:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{self.url}/-/ready") as answer:
                            if answer.status == 200:
                                return True
                    await asyncio.sleep(POLL_SECONDS)
        return False

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def api(self, http: aiohttp.ClientSession, path: str, **params: str) -> Any:
        async with http.get(f"{self.url}/api/v1/{path}", params=params) as answer:
            body = await answer.json()
        assert body.get("status") == "success", body
        return body["data"]

    async def query(self, http: aiohttp.ClientSession, expression: str) -> list[dict[str, Any]]:
        data = await self.api(http, "query", query=expression)
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    async def peak(self, http: aiohttp.ClientSession, expression: str, since: float) -> float | None:
        """The highest finite value ``expression`` took, evaluated once per scrape interval from ``since``
        (Unix time) to now, as a Grafana graph of the time range would draw it; None when it never had one."""
        data = await self.api(
            http,
            "query_range",
            query=expression,
            start=f"{since:.3f}",
            end=f"{time.time():.3f}",
            step=str(SCRAPE_INTERVAL_SECONDS),
        )
        assert data["resultType"] == "matrix", data
        values = [float(value) for series in data["result"] for _, value in series["values"]]
        return max((value for value in values if math.isfinite(value)), default=None)


@contextlib.asynccontextmanager
async def running_prometheus(
    binary: str,
    target: str,
    workdir: Path,
    http: aiohttp.ClientSession,
    groups: list[dict[str, Any]] | None = None,
) -> AsyncIterator[PrometheusServer]:
    server = PrometheusServer(binary, write_config(workdir, target, groups), workdir)
    try:
        await server.start(http)
        yield server
    finally:
        await server.stop()


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], server: PrometheusServer) -> None:
    """Poll until ``check()`` holds; fail naming ``what`` (with Prometheus's log) after the timeout."""
    try:
        async with asyncio.timeout(CONVERGE_TIMEOUT):
            while True:
                if await check():
                    return
                await asyncio.sleep(POLL_SECONDS)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; prometheus log:\n{server.log_tail()}") from None


def single_value(result: list[dict[str, Any]]) -> float | None:
    """The value of a one-sample query result, or None when there is no sample."""
    if len(result) != 1:
        return None
    return float(result[0]["value"][1])


async def operator_scraped(prometheus: PrometheusServer, http: aiohttp.ClientSession) -> bool:
    """Whether Prometheus has scraped the operator (its first scrape comes a few seconds after start)."""
    release = f'job="{JOB}", namespace="{NAMESPACE}"'
    return single_value(await prometheus.query(http, f"up{{{release}}}")) == 1.0


async def refuse_credentials(playground: Playground) -> None:
    """A VideoRoom whose credentials Secret holds a tenant account's API key with a wrong secret: Twilio
    answers 401 (20003). (A Secret naming the operator's own account is refused before any call.)"""
    url = playground.credentials["url"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/_emulator/accounts", json={"friendlyName": "tenant"}) as answer,
    ):
        assert answer.status < 400, await answer.text()
        tenant = await answer.json()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "wrong-credentials", "namespace": "default"},
        "stringData": {
            "TWILIO_ACCOUNT_SID": tenant["accountSid"],
            "TWILIO_API_KEY": tenant["apiKey"],
            "TWILIO_API_SECRET": "not-the-secret",
        },
    }
    room = {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "VideoRoom",
        "metadata": {"name": "refused", "namespace": "default"},
        "spec": {"credentialsRef": {"name": "wrong-credentials"}},
    }
    await playground.client.create(SECRETS, "default", secret)
    await playground.client.create(VIDEOROOMS, "default", room)


async def test_prometheus_evaluates_the_charts_alert_rules_against_the_operator(tmp_path: Path) -> None:
    binary = prometheus_binary()
    alerts = chart_alert_names()
    async with asyncio.timeout(120), Playground(tmp_path / "playground") as playground:
        applied = await playground.apply(EXAMPLES)
        assert any(obj.kind == "VideoRoom" for obj in applied)
        await refuse_credentials(playground)
        assert playground.operator_url is not None
        target = urlsplit(playground.operator_url).netloc
        release = f'job="{JOB}", namespace="{NAMESPACE}"'
        async with (
            aiohttp.ClientSession() as http,
            running_prometheus(binary, target, tmp_path / "prometheus", http) as prometheus,
        ):

            async def target_up() -> bool:
                return await operator_scraped(prometheus, http)

            async def twilio_requests_counted() -> bool:
                query = f"sum(twilio_outbound_api_requests_total{{{release}}})"
                total = single_value(await prometheus.query(http, query))
                return total is not None and total > 0

            async def rules_by_name() -> dict[str, dict[str, Any]]:
                groups = (await prometheus.api(http, "rules"))["groups"]
                return {rule["name"]: rule for group in groups for rule in group["rules"]}

            async def every_rule_evaluated() -> bool:
                rules = await rules_by_name()  # lastEvaluation is Go's zero time until the first run
                never = "0001-01-01"
                return set(rules) == alerts and all(
                    not rule.get("lastEvaluation", never).startswith(never) for rule in rules.values()
                )

            async def auth_alert_firing() -> bool:
                rule = (await rules_by_name())["TwilioVideoAuthFailures"]
                return bool(rule["state"] == "firing")

            async def availability_quiet() -> bool:
                # Before the first scrape `absent(up)` holds, so TwilioVideoOperatorDown may be pending
                # for an evaluation or two; once samples arrive both alerts must be inactive.
                rules = await rules_by_name()
                watched = ("TwilioVideoOperatorDown", "TwilioVideoOperatorNotReconciling")
                return all(rules[name]["state"] == "inactive" for name in watched)

            await wait_for("the operator target to be up", target_up, prometheus)
            await wait_for("a Twilio request counter above zero", twilio_requests_counted, prometheus)
            await wait_for("every rule of the chart to be evaluated", every_rule_evaluated, prometheus)
            await wait_for("TwilioVideoAuthFailures to fire", auth_alert_firing, prometheus)
            # The operator is up and reconciling: the availability alerts are quiet.
            await wait_for("the availability alerts to be inactive", availability_quiet, prometheus)

            targets = await prometheus.api(http, "targets", state="active")
            [scraped] = targets["activeTargets"]
            assert scraped["health"] == "up", scraped
            assert scraped["scrapeUrl"] == f"{playground.operator_url}/metrics"

            rules = await rules_by_name()
            for name, rule in rules.items():
                assert rule["health"] == "ok", (name, rule.get("lastError"))
            # The refused credentials fire the alert, labelled with the release and linked to its runbook.
            [firing] = [
                alert for alert in rules["TwilioVideoAuthFailures"]["alerts"] if alert["state"] == "firing"
            ]
            assert firing["labels"]["job"] == JOB and firing["labels"]["namespace"] == NAMESPACE
            assert firing["annotations"]["runbook_url"].endswith("#twilio-authentication-failed-20003")

            # The series the rules read come through with the release's labels.
            reconciles = await prometheus.query(
                http, f'twilio_video_operator_last_reconcile_timestamp_seconds{{{release}, kind="VideoRoom"}}'
            )
            assert reconciles and all(sample["metric"]["job"] == JOB for sample in reconciles)


# --- the dashboard after a scripted story -------------------------------------------------------------

DASHBOARD = REPO / "charts" / "twilio-video-operator" / "files" / "dashboards" / "twilio-video-operator.json"
DASHBOARD_WAIT = 60.0


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the dashboard, with Grafana's variables filled in as for
    this release: its namespace and job, a rate interval of 20 s (four scrapes) and a range of 5 minutes."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    values = {
        "$namespace": NAMESPACE,
        "$job": JOB,
        "$__rate_interval": "20s",
        "$__range": "5m",
        "$price_per_participant_minute": "0.004",
    }
    found = []
    for row in dashboard["panels"]:
        for panel in [row, *row.get("panels", [])]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in values.items():
                    expr = expr.replace(name, value)
                assert "$" not in expr, (panel["title"], expr)
                found.append((panel["title"], expr))
    return found


def test_dashboard_expressions_are_read_with_every_variable_filled_in() -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 50
    assert any("twilio_video_operator_participant_seconds_total" in expr for _, expr in expressions)


#: Series a quiet install leaves at zero that the story moves: every dashboard expression reading one must
#: rise above zero during the story, so a story or an operator that stops moving them fails here.
MOVED_BY_THE_STORY = (
    "twilio_video_operator_participant_seconds_total",
    "twilio_throttled_requests_total",
    "twilio_outbound_api_retries_total",
    "twilio_video_operator_webhooks_rejected_total",
    "twilio_video_operator_deliveries_total",
    "twilio_video_operator_delivery_bytes_total",
    "twilio_video_operator_delivery_duration_seconds",
    "twilio_video_operator_access_tokens_minted_total",
    "twilio_video_operator_access_token_requests_denied_total",
    "twilio_video_operator_access_token_request_duration_seconds",
)


def expressions_moved_by_the_story() -> list[tuple[str, str]]:
    moved = [
        (title, expr) for title, expr in dashboard_expressions() if any(m in expr for m in MOVED_BY_THE_STORY)
    ]
    unread = [name for name in MOVED_BY_THE_STORY if not any(name in expr for _, expr in moved)]
    assert not unread, f"no dashboard expression reads {unread}"
    return moved


def test_every_series_the_story_moves_has_a_dashboard_panel() -> None:
    assert len(expressions_moved_by_the_story()) >= len(MOVED_BY_THE_STORY)


async def test_every_dashboard_expression_returns_data_after_a_scripted_story(
    tmp_path: Path, s3_server: SeaweedS3
) -> None:
    binary = prometheus_binary()
    async with asyncio.timeout(240), Playground(tmp_path / "playground") as playground:
        await playground.apply(EXAMPLES)
        await refuse_credentials(playground)
        assert playground.operator_url is not None
        target = urlsplit(playground.operator_url).netloc
        async with (
            aiohttp.ClientSession() as http,
            running_prometheus(binary, target, tmp_path / "prometheus", http, groups=[]) as prometheus,
        ):
            # The story relies on Prometheus scraping every interval from its first step on.
            await wait_for(
                "the operator target to be up", lambda: operator_scraped(prometheus, http), prometheus
            )
            began = time.time()
            story = Story(
                playground,
                http,
                EXAMPLES,
                tmp_path / "story",
                s3=s3_server,
                scrape_interval=SCRAPE_INTERVAL_SECONDS,
            )
            await story.tell()
            waiting = dict.fromkeys(dashboard_expressions())

            async def all_answered() -> bool:
                for key in list(waiting):
                    if await prometheus.query(http, key[1]):
                        del waiting[key]
                return not waiting

            try:
                async with asyncio.timeout(DASHBOARD_WAIT):
                    while not await all_answered():  # noqa: ASYNC110 - polling Prometheus
                        await asyncio.sleep(POLL_SECONDS * 4)
            except TimeoutError:
                empty = "\n".join(f"{title}: {expr}" for title, expr in waiting)
                raise AssertionError(f"dashboard expressions without data:\n{empty}") from None

            # Data is not enough: a counter scraped only once, or only at zero, answers zeros.
            peaks: dict[tuple[str, str], float | None] = dict.fromkeys(expressions_moved_by_the_story())

            async def all_above_zero() -> bool:
                for key, peak in peaks.items():
                    if peak is None or peak <= 0:
                        peaks[key] = await prometheus.peak(http, key[1], began)
                return all(peak is not None and peak > 0 for peak in peaks.values())

            try:
                async with asyncio.timeout(DASHBOARD_WAIT):
                    while not await all_above_zero():  # noqa: ASYNC110 - polling Prometheus
                        await asyncio.sleep(POLL_SECONDS * 4)
            except TimeoutError:
                flat = "\n".join(
                    f"{title}: {expr} (peak {peak})"
                    for (title, expr), peak in peaks.items()
                    if peak is None or peak <= 0
                )
                raise AssertionError(f"dashboard expressions that never rose above zero:\n{flat}") from None
