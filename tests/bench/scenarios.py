"""The benchmark's scenarios. Each starts a fresh stack, runs one operator process and returns a JSON-able
dict; a scenario whose operator part does not exist yet returns ``{"available": False, "reason": ...}``."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audited_real_kube import AuditedRealKube
from measure import measure_completion, measure_convergence, measure_idle, metric_sum, scrape_metrics
from operator_stack import REPO_ROOT, Flavor, OperatorProcess, Stack
from report import scale_name
from twilio_setup import recorded_rooms, ticking_clock
from workloads import composition_workload, room_workload

from kube_backends import KubeBackend

HANDLERS_DIR = REPO_ROOT / "operator" / "twilio_video_operator" / "handlers"
NAMESPACE = "bench"


@dataclass(frozen=True)
class BenchOptions:
    idle_seconds: float = 60.0
    resync_interval: str = "10m"
    max_concurrency: int = 10
    baseline_timeout: float = 300.0
    """The naive baseline may never converge (at 10,000 rooms its pollers starve its creates): its wait is
    capped, and the figure says how many rooms it got done by then."""
    work_dir: Path = field(default_factory=lambda: Path("bench-results") / "work")
    kube: str = "embedded"
    """The Kubernetes API of the VideoRoom scale scenario: ``embedded`` or ``real``."""
    kube_apiserver: Path | None = None
    """The real server's binary (``tests/real_kube.py``), for ``kube="real"``."""
    operator_source: Path | None = None
    """Another checkout whose operator runs instead of this one (``--operator-source``)."""

    def backend(self, work_dir: Path) -> KubeBackend | None:
        """The scenario's Kubernetes API: None for the stack's own embedded one, else a real server of its
        own that counts the operator's requests in its audit log."""
        if self.kube == "embedded":
            return None
        if self.kube_apiserver is None:
            raise ValueError("the real Kubernetes API needs the kube-apiserver binary")
        return AuditedRealKube(self.kube_apiserver, work_dir / "kube-apiserver")

    def timeout_for(self, count: int) -> float:
        """How long convergence may take before the scenario gives up (generous, but bounded)."""
        return max(90.0, count * 0.3)


def handler_available(module: str) -> str | None:
    """None when ``handlers/<module>.py`` exists, else why the scenario cannot run."""
    if (HANDLERS_DIR / f"{module}.py").exists():
        return None
    return f"the {module} handler (operator/twilio_video_operator/handlers/{module}.py) is not available"


def operator_env(options: BenchOptions, **extra: str) -> dict[str, str]:
    source = {}
    if options.operator_source is not None:
        source["PYTHONPATH"] = str((options.operator_source / "operator").resolve())
    return {
        "TWILIO_MAX_CONCURRENCY": str(options.max_concurrency),
        "RESYNC_INTERVAL": options.resync_interval,
        "LOG_LEVEL": "INFO",
        **source,
        **extra,
    }


def _settings(flavor: Flavor, options: BenchOptions, env: dict[str, str]) -> dict[str, Any]:
    if flavor == "naive":
        return {"poll_interval_seconds": 2.0, "twilio_client": "sync twilio.rest.Client"}
    return {
        key: env[key] for key in ("TWILIO_MAX_CONCURRENCY", "RESYNC_INTERVAL", "PYTHONPATH") if key in env
    }


async def scale_rooms(flavor: Flavor, count: int, options: BenchOptions) -> dict[str, Any]:
    """``count`` VideoRooms applied at once, then an idle window."""
    result: dict[str, Any] = {
        "scenario": "scale",
        "kind": "VideoRoom",
        "flavor": flavor,
        "objects": count,
        "kube": options.kube,
    }
    if flavor == "operator" and (reason := handler_available("videoroom")):
        return {**result, "available": False, "reason": reason}
    env = operator_env(options)
    work_dir = options.work_dir / scale_name(flavor, count, options.kube)
    backend = options.backend(work_dir)
    async with Stack(work_dir, namespaces=(NAMESPACE,), separate_emulator=True, backend=backend) as stack:
        operator = stack.new_operator(flavor, env=env)
        # From a cold start: whether the operator's first watches begin before or after the rooms are
        # applied depends on the machine's load, so they count either way.
        started = stack.kube_snapshot()
        await operator.start()
        workload = room_workload(NAMESPACE, count, naive=flavor == "naive")
        within = options.timeout_for(count)
        if flavor == "naive":
            within = min(within, options.baseline_timeout)
        convergence = await measure_convergence(stack, operator, workload, within=within, kube_since=started)
        idle = await measure_idle(stack, operator, count, seconds=options.idle_seconds)
        completion = None
        if flavor == "operator":  # the naive baseline has no way to end a room
            completion = await measure_completion(stack, operator, workload, within=within)
        failures = count_failed_reconciles(operator)
    lifecycle = None
    if completion is not None:
        calls = convergence["twilio_calls"]["total"] + completion["twilio_calls"]["total"]
        lifecycle = {"twilio_calls_per_room": round(calls / count, 3), "completion": completion}
    return {
        **result,
        "available": True,
        "settings": _settings(flavor, options, env),
        **convergence,
        "idle": idle,
        "lifecycle": lifecycle,
        "failed_reconciles": failures,
    }


async def twilio_limits(
    flavor: Flavor, count: int, options: BenchOptions, *, limit: int, latency_ms: int
) -> dict[str, Any]:
    """Rooms created while the emulator admits at most ``limit`` concurrent requests, each ``latency_ms``
    slow: achieved Twilio throughput against the allowed ceiling, and reconciles failed by 429s."""
    result: dict[str, Any] = {
        "scenario": "twilio-limits",
        "kind": "VideoRoom",
        "flavor": flavor,
        "objects": count,
        "emulator_faults": {"concurrencyLimit": limit, "latencyMs": latency_ms},
    }
    if flavor == "operator" and (reason := handler_available("videoroom")):
        return {**result, "available": False, "reason": reason}
    allowed = limit / (latency_ms / 1000)
    env = operator_env(options)
    work_dir = options.work_dir / f"limits-{flavor}-{count}"
    async with Stack(work_dir, namespaces=(NAMESPACE,), separate_emulator=True) as stack:
        operator = stack.new_operator(flavor, env=env)
        await operator.start()
        await stack.control.set_faults(concurrencyLimit=limit, latencyMs=latency_ms)
        workload = room_workload(NAMESPACE, count, naive=flavor == "naive")
        # Three times what the allowance needs: enough for the operator, a bound for the baseline.
        within = min(options.timeout_for(count), max(60.0, 3 * count / allowed))
        if flavor == "naive":
            within = min(within, options.baseline_timeout)
        convergence = await measure_convergence(stack, operator, workload, within=within)
        await stack.control.clear_faults()
        metrics = await scrape_metrics(operator.http_url) if flavor == "operator" else {}
        failures = count_failed_reconciles(operator)
    twilio = convergence["twilio_calls"]
    throttled = int(twilio["errors_by_status"].get("429", 0))
    succeeded = twilio["total"] - sum(twilio["errors_by_status"].values())
    seconds = convergence["seconds_to_done"]
    achieved = succeeded / seconds if seconds else 0.0
    return {
        **result,
        "available": True,
        "settings": _settings(flavor, options, env),
        **convergence,
        "throughput": {
            "allowed_requests_per_second": round(allowed, 1),
            "achieved_requests_per_second": round(achieved, 1),
            "achieved_over_allowed": round(achieved / allowed, 3),
            "successful_requests": succeeded,
            "throttled_requests": throttled,
        },
        "failed_reconciles": failures,
        "operator_metrics": {
            "twilio_throttled_requests_total": metric_sum(metrics, "twilio_throttled_requests_total"),
            "twilio_outbound_api_retries_total": metric_sum(metrics, "twilio_outbound_api_retries_total"),
            "reconcile_errors": {key: value for key, value in metrics.items() if "reconcile_errors" in key},
        },
    }


_FAILURE = re.compile(r"failed (temporarily|with an exception|permanently)|Handler .* failed", re.IGNORECASE)
_THROTTLED = re.compile(r"\b429\b|20429|too many requests|throttl", re.IGNORECASE)
_RECORD_START = re.compile(r"^(\{|\[\d{4}-\d\d-\d\d )")


def count_failed_reconciles(operator: OperatorProcess) -> dict[str, int]:
    """Handler runs the operator's log reports as failed, and how many of them mention a 429."""
    try:
        text = operator.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {"failed": 0, "failed_by_429": 0}
    records: list[str] = []
    for line in text.splitlines():
        if _RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line  # a traceback belongs to the record before it
    failed = [record for record in records if _FAILURE.search(_message(record))]
    return {"failed": len(failed), "failed_by_429": sum(1 for record in failed if _THROTTLED.search(record))}


def _message(record: str) -> str:
    if record.startswith("{"):
        try:
            return str(json.loads(record.splitlines()[0]).get("message", ""))
        except ValueError:
            return record
    return record.splitlines()[0]


async def scale_compositions(count: int, options: BenchOptions, *, rooms: int = 10) -> dict[str, Any]:
    """``count`` Compositions of ``rooms`` completed, recorded rooms, applied at once, until completed."""
    result: dict[str, Any] = {
        "scenario": "scale",
        "kind": "Composition",
        "flavor": "operator",
        "objects": count,
    }
    if reason := handler_available("composition"):
        return {**result, "available": False, "reason": reason}
    env = operator_env(options)
    work_dir = options.work_dir / f"scale-composition-operator-{count}"
    async with Stack(work_dir, namespaces=(NAMESPACE,), separate_emulator=True) as stack:
        operator = stack.new_operator("operator", env=env)
        await operator.start()
        room_sids = await recorded_rooms(stack, rooms, namespace=NAMESPACE)
        await stack.control.reset_requests()
        async with ticking_clock(stack):
            workload = composition_workload(NAMESPACE, count, room_sids)
            convergence = await measure_convergence(
                stack, operator, workload, within=options.timeout_for(count)
            )
        idle = await measure_idle(stack, operator, count, seconds=options.idle_seconds)
    return {
        **result,
        "available": True,
        "settings": {**_settings("operator", options, env), "source_rooms": rooms},
        **convergence,
        "idle": idle,
    }


def last_json_object(output: str) -> dict[str, Any] | None:
    """The last JSON object printed in ``output``, on one line or indented over several; None if none."""
    lines = output.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if not lines[index].startswith("{"):
            continue
        try:
            parsed = json.loads("\n".join(lines[index:]))
        except ValueError:
            try:
                parsed = json.loads(lines[index])
            except ValueError:
                continue
        if isinstance(parsed, dict):
            return parsed
    return None


async def run_script(path: Path, *, within: float) -> dict[str, Any]:
    """Another benchmark script of the project, run as it is; the last JSON object it prints is the
    result."""
    if not await asyncio.to_thread(path.exists):
        return {"scenario": path.stem, "available": False, "reason": f"{path.name} is not available"}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=within)
    except TimeoutError:
        process.kill()
        await process.wait()
        return {"scenario": path.stem, "available": True, "error": f"timed out after {within:.0f}s"}
    result: dict[str, Any] = {
        "scenario": path.stem,
        "available": True,
        "exit_code": process.returncode,
        "seconds": round(time.monotonic() - started, 1),
    }
    parsed = last_json_object(stdout.decode(errors="replace"))
    if parsed is not None:
        return {**result, "result": parsed}
    return {
        **result,
        "output_tail": stdout.decode(errors="replace")[-2000:],
        "stderr_tail": stderr.decode(errors="replace")[-2000:],
    }
