"""A real Prometheus scrapes the operator's ``/metrics`` and evaluates rules over its metrics.

The playground runs in-process with the top-level examples applied (so the operator calls the Twilio
emulator); Debian's ``prometheus`` binary runs on 127.0.0.1 with a scrape interval of one second and a
rules file with recording and alerting rules. The test waits, bounded, until Prometheus's HTTP API shows
the target up, the recording rules evaluated, and a Twilio request counter above zero.

Without the binary the test is skipped, unless the ``CI`` environment variable is set: then it fails, as
the machine is expected to have it (``make test`` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml

from twilio_video_operator.dev.playground import Playground

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
JOB = "twilio-video-operator"
PROMETHEUS_START_ATTEMPTS = 3
PROMETHEUS_READY_TIMEOUT = 15.0
CONVERGE_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.25

RATE_RULE = "job:twilio_outbound_api_requests:rate30s"
ERROR_RATIO_RULE = "job:twilio_outbound_api_errors:ratio_rate30s"
RULES: dict[str, Any] = {
    "groups": [
        {
            "name": "twilio-video-operator-scrape-test",
            "interval": "1s",
            "rules": [
                {
                    "record": RATE_RULE,
                    "expr": "sum by (job) (rate(twilio_outbound_api_requests_total[30s]))",
                },
                {
                    "record": ERROR_RATIO_RULE,
                    "expr": (
                        f"sum by (job) (rate(twilio_outbound_api_errors_total[30s])) / on (job) {RATE_RULE}"
                    ),
                },
                {
                    "alert": "TwilioVideoOperatorDown",
                    "expr": f'up{{job="{JOB}"}} == 0',
                    "for": "1m",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "Prometheus cannot scrape the operator."},
                },
                {
                    "alert": "TwilioVideoOperatorTwilioErrorsHigh",
                    "expr": f"{ERROR_RATIO_RULE} > 0.5",
                    "for": "5m",
                    "labels": {"severity": "warning"},
                    "annotations": {"summary": "Most Twilio API requests of the operator fail."},
                },
            ],
        }
    ]
}


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


def write_config(directory: Path, target: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "rules.yaml"
    rules.write_text(yaml.safe_dump(RULES, sort_keys=False), encoding="utf-8")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [target]}]}
        ],
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


@contextlib.asynccontextmanager
async def running_prometheus(
    binary: str, target: str, workdir: Path, http: aiohttp.ClientSession
) -> AsyncIterator[PrometheusServer]:
    server = PrometheusServer(binary, write_config(workdir, target), workdir)
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


async def test_prometheus_scrapes_the_operator_and_evaluates_rules(tmp_path: Path) -> None:
    binary = prometheus_binary()
    async with asyncio.timeout(120), Playground(tmp_path / "playground") as playground:
        applied = await playground.apply(EXAMPLES)
        assert any(obj.kind == "VideoRoom" for obj in applied)
        assert playground.operator_url is not None
        target = urlsplit(playground.operator_url).netloc
        async with (
            aiohttp.ClientSession() as http,
            running_prometheus(binary, target, tmp_path / "prometheus", http) as prometheus,
        ):

            async def target_up() -> bool:
                return single_value(await prometheus.query(http, f'up{{job="{JOB}"}}')) == 1.0

            async def rate_recorded() -> bool:
                return single_value(await prometheus.query(http, RATE_RULE)) is not None

            async def twilio_requests_counted() -> bool:
                total = single_value(await prometheus.query(http, "sum(twilio_outbound_api_requests_total)"))
                return total is not None and total > 0

            await wait_for("the operator target to be up", target_up, prometheus)
            await wait_for(f"the recording rule {RATE_RULE}", rate_recorded, prometheus)
            await wait_for("a Twilio request counter above zero", twilio_requests_counted, prometheus)

            targets = await prometheus.api(http, "targets", state="active")
            [scraped] = targets["activeTargets"]
            assert scraped["health"] == "up", scraped
            assert scraped["scrapeUrl"] == f"{playground.operator_url}/metrics"

            groups = (await prometheus.api(http, "rules"))["groups"]
            rules = {rule.get("name"): rule for group in groups for rule in group["rules"]}
            expected = {
                RATE_RULE,
                ERROR_RATIO_RULE,
                "TwilioVideoOperatorDown",
                "TwilioVideoOperatorTwilioErrorsHigh",
            }
            assert set(rules) == expected
            for name, rule in rules.items():
                assert rule["health"] == "ok", (name, rule.get("lastError"))
            assert rules["TwilioVideoOperatorDown"]["state"] == "inactive"

            # The operator's own series came through with their labels.
            by_operation = await prometheus.query(
                http, 'twilio_outbound_api_requests_total{op_id="CreateRoom"}'
            )
            assert by_operation and all(sample["metric"]["job"] == JOB for sample in by_operation)
