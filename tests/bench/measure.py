"""Measurements on a running stack: apply a workload and time its convergence, then watch an idle window.

Every loop here is bounded by a deadline; nothing asserts on timing. Figures come from the emulator's
request counters (Twilio calls by operationId and status), the Kubernetes API's request counts (the embedded
API's counters minus this process's own requests, or the real server's audit log of the operator's requests)
and ``/proc`` of the operator process.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from operator_stack import Key, KubeSnapshot, OperatorProcess, Stack, count_requests
from procstat import ProcessSample, mib
from workloads import Workload, room_completed

CREATE_CONCURRENCY = 32
RSS_SAMPLE_SECONDS = 5.0
COMPLETE_PATCH = {"spec": {"state": "Completed"}}


def _per(count: float, unit: float) -> float:
    return round(count / unit, 3) if unit else 0.0


def twilio_figures(operations: Mapping[str, Mapping[str, int]], objects: int) -> dict[str, Any]:
    """Twilio calls in total, per object, by operation, and the error answers by status."""
    by_operation = count_requests(operations)
    total = sum(by_operation.values())
    errors: Counter[str] = Counter()
    for statuses in operations.values():
        for status, count in statuses.items():
            if not str(status).startswith(("2", "3")):
                errors[str(status)] += count
    return {
        "total": total,
        "per_object": _per(total, objects),
        "by_operation": {
            op: {"count": count, "per_object": _per(count, objects)}
            for op, count in sorted(by_operation.items())
        },
        "errors_by_status": dict(sorted(errors.items())),
    }


READ_VERBS = frozenset({"get", "list", "watch"})


def kube_figures(requests: Mapping[Key, int], objects: int) -> dict[str, Any]:
    total = sum(requests.values())
    writes = sum(count for (verb, _), count in requests.items() if verb not in READ_VERBS)
    return {
        "total": total,
        "per_object": _per(total, objects),
        "writes_per_object": _per(writes, objects),
        "by_request": {f"{verb} {resource}": count for (verb, resource), count in sorted(requests.items())},
    }


async def for_each_object(
    workload: Workload, action: Callable[[dict[str, Any]], Awaitable[object]]
) -> list[str]:
    """``action`` on every manifest, at most :data:`CREATE_CONCURRENCY` at a time; the errors, if any."""
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)
    errors: list[str] = []

    async def run(manifest: dict[str, Any]) -> None:
        async with gate:
            try:
                await action(manifest)
            except Exception as exc:
                errors.append(f"{manifest['metadata']['name']}: {exc}")

    await asyncio.gather(*(run(manifest) for manifest in workload.manifests))
    return errors


async def apply_workload(stack: Stack, workload: Workload) -> list[str]:
    """Create every manifest at once (bounded); the errors, if any."""
    return await for_each_object(
        workload, lambda manifest: stack.client.create(workload.resource, workload.namespace, manifest)
    )


async def wait_converged(
    stack: Stack, workload: Workload, *, within: float, operator: OperatorProcess | None = None
) -> dict[str, Any]:
    """Poll the stored objects until every one is done (or failed), or ``within`` seconds have passed."""
    pending = set(workload.names)
    failed: set[str] = set()
    interval = max(0.25, workload.count / 4000)
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        objects = await stack.objects_by_name(workload.resource.plural, workload.namespace)
        for name in list(pending):
            obj = objects.get(name)
            if obj is None:
                continue
            if workload.done(obj):
                pending.discard(name)
            elif workload.failed(obj):
                pending.discard(name)
                failed.add(name)
        if operator is not None and not operator.running:
            break
        if pending:
            await asyncio.sleep(interval)
    return {
        "converged": not pending and not failed,
        "done": workload.count - len(pending) - len(failed),
        "failed": sorted(failed)[:20],
        "failed_count": len(failed),
        "pending_count": len(pending),
        "pending_sample": sorted(pending)[:10],
    }


async def measure_convergence(
    stack: Stack,
    operator: OperatorProcess,
    workload: Workload,
    *,
    within: float,
    kube_since: KubeSnapshot | None = None,
) -> dict[str, Any]:
    """Apply ``workload`` at once; time until all are done; Twilio and Kubernetes calls; RSS and CPU.

    Kubernetes requests count from ``kube_since`` (taken before the operator started, its start-up lists and
    watches count too, however far they got before the workload was applied), else from now."""
    await stack.control.reset_requests()
    snapshot = kube_since if kube_since is not None else stack.kube_snapshot()
    before = operator.sample()
    started = time.monotonic()
    apply_errors = await apply_workload(stack, workload)
    applied = time.monotonic()
    outcome = await wait_converged(stack, workload, within=within, operator=operator)
    finished = time.monotonic()
    after = operator.sample() if operator.running else before
    seconds = finished - started
    operations = await stack.control.requests()
    return {
        **outcome,
        "objects": workload.count,
        "apply_seconds": round(applied - started, 3),
        "seconds_to_done": round(seconds, 3),
        "objects_per_second": round(workload.count / seconds, 2) if outcome["converged"] else None,
        "apply_errors": apply_errors[:10],
        "twilio_calls": twilio_figures(operations, workload.count),
        "kube_requests": kube_figures(stack.operator_requests_since(snapshot), workload.count),
        "operator_process": process_figures(before, after),
    }


async def measure_completion(
    stack: Stack, operator: OperatorProcess, workload: Workload, *, within: float
) -> dict[str, Any]:
    """Set ``spec.state: Completed`` on every object of ``workload`` at once; time until every room is
    ``completed`` and count the Twilio calls it took (the second half of a room's lifecycle)."""
    await stack.control.reset_requests()

    def complete(manifest: dict[str, Any]) -> Awaitable[object]:
        name = manifest["metadata"]["name"]
        return stack.client.patch(workload.resource, workload.namespace, name, COMPLETE_PATCH)

    started = time.monotonic()
    errors = await for_each_object(workload, complete)
    completed = Workload(
        kind=workload.kind,
        resource=workload.resource,
        namespace=workload.namespace,
        manifests=workload.manifests,
        done=room_completed,
        failed=workload.failed,
    )
    outcome = await wait_converged(stack, completed, within=within, operator=operator)
    seconds = time.monotonic() - started
    operations = await stack.control.requests()
    return {
        **outcome,
        "seconds_to_done": round(seconds, 3),
        "patch_errors": errors[:10],
        "twilio_calls": twilio_figures(operations, workload.count),
    }


def process_figures(before: ProcessSample, after: ProcessSample) -> dict[str, Any]:
    return {
        "peak_rss_mib": mib(after.peak_rss_bytes),
        "rss_mib": mib(after.rss_bytes),
        "cpu_seconds": round(after.cpu_seconds - before.cpu_seconds, 2),
        "cpu_seconds_total": round(after.cpu_seconds, 2),
    }


async def measure_idle(
    stack: Stack, operator: OperatorProcess, objects: int, *, seconds: float
) -> dict[str, Any]:
    """Leave everything alone for ``seconds``: Twilio and Kubernetes calls per object-minute, RSS growth."""
    await stack.control.reset_requests()
    snapshot = stack.kube_snapshot()
    first = operator.sample()
    rss_samples = [first.rss_bytes]
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and operator.running:
        await asyncio.sleep(min(RSS_SAMPLE_SECONDS, left))
        if operator.running:
            rss_samples.append(operator.sample().rss_bytes)
    last = operator.sample() if operator.running else first
    operations = await stack.control.requests()
    minutes = seconds / 60
    twilio = twilio_figures(operations, objects)
    kube = kube_figures(stack.operator_requests_since(snapshot), objects)
    return {
        "seconds": seconds,
        "operator_alive": operator.running,
        "twilio_calls": twilio["total"],
        "twilio_calls_per_object_minute": _per(twilio["total"], objects * minutes),
        "twilio_by_operation": {op: entry["count"] for op, entry in twilio["by_operation"].items()},
        "kube_requests": kube["total"],
        "kube_requests_per_object_minute": _per(kube["total"], objects * minutes),
        "kube_by_request": kube["by_request"],
        "rss_start_mib": mib(first.rss_bytes),
        "rss_end_mib": mib(last.rss_bytes),
        "rss_max_mib": mib(max(rss_samples)),
        "rss_growth_mib": round(mib(last.rss_bytes) - mib(first.rss_bytes), 1),
        "cpu_seconds": round(last.cpu_seconds - first.cpu_seconds, 2),
    }


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)$")


async def scrape_metrics(url: str) -> dict[str, float]:
    """``/metrics`` of the operator as ``{"name{labels}": value}``; empty if it does not answer."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(f"{url}/metrics") as answer,
        ):
            if answer.status != 200:
                return {}
            text = await answer.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def metric_sum(samples: Mapping[str, float], name: str, label_filter: str = "") -> float:
    """Sum of the samples of metric ``name`` whose label text contains ``label_filter``."""
    total = 0.0
    for key, value in samples.items():
        metric, _, labels = key.partition("{")
        if metric == name and label_filter in labels:
            total += value
    return total
