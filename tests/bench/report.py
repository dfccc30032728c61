"""``summary.json`` and ``SUMMARY.md`` from the scenario results: the operator's figures side by side with
the naive baseline's, and their ratios (operator / baseline), on each Kubernetes API the scale scenarios ran
on (the embedded one, the real kube-apiserver), side by side too."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Figure = Callable[[Mapping[str, Any]], float | None]


def _get(*path: str) -> Figure:
    def read(result: Mapping[str, Any]) -> float | None:
        value: Any = result
        for key in path:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None

    return read


# name, how to read it from a scale result, unit, whether lower is better
FIGURES: list[tuple[str, Figure, str, bool]] = [
    ("seconds_to_ready", _get("seconds_to_done"), "s", True),
    ("rooms_per_second", _get("objects_per_second"), "rooms/s", False),
    ("twilio_calls_per_room", _get("twilio_calls", "per_object"), "calls", True),
    ("kube_requests_per_room", _get("kube_requests", "per_object"), "requests", True),
    ("kube_writes_per_room", _get("kube_requests", "writes_per_object"), "writes", True),
    ("lifecycle_twilio_calls_per_room", _get("lifecycle", "twilio_calls_per_room"), "calls", True),
    ("peak_rss_mib", _get("operator_process", "peak_rss_mib"), "MiB", True),
    ("cpu_seconds_to_ready", _get("operator_process", "cpu_seconds"), "s", True),
    ("idle_twilio_calls_per_room_minute", _get("idle", "twilio_calls_per_object_minute"), "calls", True),
    ("idle_kube_requests_per_room_minute", _get("idle", "kube_requests_per_object_minute"), "requests", True),
    ("idle_rss_growth_mib", _get("idle", "rss_growth_mib"), "MiB", True),
    ("idle_cpu_seconds", _get("idle", "cpu_seconds"), "s", True),
]


def ratio(operator: float | None, baseline: float | None) -> float | None:
    if operator is None or baseline is None or baseline == 0:
        return None
    return round(operator / baseline, 3)


def _usable(result: Mapping[str, Any] | None) -> bool:
    return result is not None and bool(result.get("available", True)) and "error" not in result


def compare(operator: Mapping[str, Any] | None, baseline: Mapping[str, Any] | None) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name, read, unit, lower_is_better in FIGURES:
        mine = read(operator) if operator and _usable(operator) else None
        theirs = read(baseline) if baseline and _usable(baseline) else None
        rows[name] = {
            "operator": mine,
            "baseline": theirs,
            "ratio": ratio(mine, theirs),
            "unit": unit,
            "lower_is_better": lower_is_better,
        }
    return rows


def _status(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return "not run"
    if "error" in result:
        return f"error: {result['error']}"
    if not result.get("available", True):
        return f"not available: {result.get('reason')}"
    if not result.get("converged", True):
        return f"did not converge ({result.get('done')}/{result.get('objects')} done)"
    return "ok"


def scale_name(flavor: str, count: int, kube: str = "embedded") -> str:
    """The VideoRoom scale scenario's name: ``scale-videoroom-operator-1000`` (``-real`` on the real API)."""
    return f"scale-videoroom-{flavor}-{count}" + ("" if kube == "embedded" else f"-{kube}")


def build_summary(
    results: Mapping[str, Mapping[str, Any]],
    *,
    machine: Mapping[str, Any],
    sizes: list[int],
    backends: Sequence[str] = ("embedded",),
) -> dict[str, Any]:
    scale = []
    for size in sizes:
        by_backend = {}
        for kube in backends:
            mine = results.get(scale_name("operator", size, kube))
            theirs = results.get(scale_name("naive", size, kube))
            by_backend[kube] = {
                "operator_status": _status(mine),
                "baseline_status": _status(theirs),
                "figures": compare(mine, theirs),
                "twilio_calls_by_operation": {
                    "operator": _operations(mine),
                    "baseline": _operations(theirs),
                },
            }
        scale.append({"rooms": size, "backends": by_backend})
    limits = {
        name: {
            "status": _status(result),
            "throughput": result.get("throughput"),
            "failed_reconciles": result.get("failed_reconciles"),
            "seconds_to_ready": result.get("seconds_to_done"),
            "emulator_faults": result.get("emulator_faults"),
        }
        for name, result in results.items()
        if name.startswith("limits-")
    }
    compositions = {
        name: {
            "status": _status(result),
            "compositions_per_second": result.get("objects_per_second"),
            "twilio_calls_per_composition": (result.get("twilio_calls") or {}).get("per_object"),
            "kube_requests_per_composition": (result.get("kube_requests") or {}).get("per_object"),
            "peak_rss_mib": (result.get("operator_process") or {}).get("peak_rss_mib"),
            "idle_twilio_calls_per_composition_minute": (result.get("idle") or {}).get(
                "twilio_calls_per_object_minute"
            ),
        }
        for name, result in results.items()
        if name.startswith("scale-composition-")
    }
    scripts = {
        name: {"status": _status(result), "result": result.get("result")}
        for name, result in results.items()
        if not name.startswith(("scale-", "limits-"))
    }
    return {
        "machine": dict(machine),
        "scale": scale,
        "limits": limits,
        "compositions": compositions,
        "other_benchmarks": scripts,
    }


def _operations(result: Mapping[str, Any] | None) -> dict[str, float]:
    if not result or not _usable(result):
        return {}
    by_operation = (result.get("twilio_calls") or {}).get("by_operation") or {}
    return {op: entry["per_object"] for op, entry in by_operation.items()}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render_markdown(summary: Mapping[str, Any]) -> str:
    machine = summary["machine"]
    lines = [
        "# Benchmark summary",
        "",
        f"`{machine.get('command')}` on {machine.get('cpus')} CPUs, Python {machine.get('python')}, "
        f"{machine.get('generated_at')}. Ratio = operator / naive baseline.",
        "",
    ]
    for entry in summary["scale"]:
        backends = entry["backends"]
        lines += [f"## {entry['rooms']} VideoRooms", ""]
        lines += [
            f"{kube} Kubernetes API: operator {run['operator_status']}; baseline {run['baseline_status']}"
            for kube, run in backends.items()
        ]
        columns = [f"{who} ({kube})" for kube in backends for who in ("operator", "baseline", "ratio")]
        lines += ["", "| figure | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        first = next(iter(backends.values()))
        for name, row in first["figures"].items():
            label = f"{name} ({row['unit']}, {'lower' if row['lower_is_better'] else 'higher'} is better)"
            cells = [
                _cell(run["figures"][name][key])
                for run in backends.values()
                for key in ("operator", "baseline", "ratio")
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    if summary["limits"]:
        lines += [
            "## Twilio concurrency limit",
            "",
            "| run | status | allowed req/s | achieved req/s | achieved/allowed | 429s "
            "| failed reconciles (by 429) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, entry in summary["limits"].items():
            throughput = entry.get("throughput") or {}
            failed = entry.get("failed_reconciles") or {}
            lines.append(
                f"| {name} | {entry['status']} | {_cell(throughput.get('allowed_requests_per_second'))} | "
                f"{_cell(throughput.get('achieved_requests_per_second'))} | "
                f"{_cell(throughput.get('achieved_over_allowed'))} | "
                f"{_cell(throughput.get('throttled_requests'))} | "
                f"{_cell(failed.get('failed'))} ({_cell(failed.get('failed_by_429'))}) |"
            )
        lines.append("")
    if summary["compositions"]:
        lines += ["## Compositions", ""]
        for name, entry in summary["compositions"].items():
            details = ", ".join(f"{key} {_cell(value)}" for key, value in entry.items() if key != "status")
            lines.append(f"- {name}: {entry['status']}; {details}")
        lines.append("")
    if summary["other_benchmarks"]:
        lines += ["## Other benchmarks", ""]
        for name, entry in summary["other_benchmarks"].items():
            lines.append(
                f"- {name}: {entry['status']}" + (f"; `{entry['result']}`" if entry.get("result") else "")
            )
        lines.append("")
    return "\n".join(lines)
