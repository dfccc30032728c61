"""``make bench``: scale benchmarks of the operator against a naive baseline, on 127.0.0.1 only.

    python tests/bench/run.py [--sizes 100,1000] [--with-10k] [--idle-seconds 60] [--output bench-results]
                              [--kube embedded|real|both]

Writes one JSON file per scenario, ``summary.json`` and ``SUMMARY.md`` under the output directory. Nothing
here asserts on timing: the figures are recorded, compared with the baseline and left to a reader. The exit
code is 1 only when a scenario crashed (an exception, not a slow result).

The VideoRoom scale scenarios run on the embedded Kubernetes API, on the real kube-apiserver of
``tests/real_kube.py`` (a server of their own per scenario), or on both, side by side (``--kube``; the
default is ``both`` where the real server can be had, else ``embedded``). The other scenarios run on the
embedded API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests/: the real Kubernetes tier

from operator_stack import REPO_ROOT, Flavor
from report import build_summary, render_markdown, scale_name
from scenarios import BenchOptions, run_script, scale_compositions, scale_rooms, twilio_limits

from real_kube import TierUnavailable, locate_binary

BENCH_DIR = Path(__file__).resolve().parent
OTHER_SCRIPTS = ("emulator_throughput.py", "bench_tokens.py", "bench_delivery.py")
SCRIPT_TIMEOUT = 300.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--sizes", default="100,1000", help="VideoRoom counts, comma-separated (default 100,1000)"
    )
    parser.add_argument("--with-10k", action="store_true", help="also run 10,000 VideoRooms (long)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="steady-state window (default 60)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "bench-results", help="results directory")
    parser.add_argument("--compositions", type=int, default=1000, help="Compositions to apply (0 skips)")
    parser.add_argument(
        "--limits-size", type=int, default=1000, help="VideoRooms of the Twilio-limits scenario"
    )
    parser.add_argument("--concurrency-limit", type=int, default=5, help="emulator concurrencyLimit")
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=200,
        help="emulator latency in the limits scenario (default 200, about a Twilio REST call from a cluster)",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=10, help="the operator's TWILIO_MAX_CONCURRENCY"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive operator")
    parser.add_argument(
        "--baseline-timeout",
        type=float,
        default=300.0,
        help="most seconds the naive operator gets to converge (default 300)",
    )
    parser.add_argument("--no-scripts", action="store_true", help=f"skip {', '.join(OTHER_SCRIPTS)}")
    parser.add_argument(
        "--kube",
        choices=("embedded", "real", "both"),
        default=None,
        help="Kubernetes API of the VideoRoom scale scenarios (default: both if the real one can be had)",
    )
    parser.add_argument(
        "--operator-source",
        type=Path,
        metavar="DIR",
        help="run the operator of another checkout (its operator/ folder first on PYTHONPATH), e.g. a git "
        "worktree of an earlier commit, to compare two versions on the same Kubernetes API and emulator",
    )
    args = parser.parse_args(argv)
    args.size_list = [int(size) for size in args.sizes.split(",") if size.strip()]
    if args.with_10k and 10_000 not in args.size_list:
        args.size_list.append(10_000)
    return args


class Recorder:
    """Runs scenarios one by one and writes each result as soon as it exists."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.results: dict[str, dict[str, Any]] = {}
        self.crashed = False

    async def run(self, name: str, scenario: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        started = time.monotonic()
        print(f"[bench] {name} ...", flush=True)
        try:
            result = await scenario()
        except Exception as exc:
            self.crashed = True
            result = {
                "scenario": name,
                "available": True,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:],
            }
        result["wall_seconds"] = round(time.monotonic() - started, 1)
        self.results[name] = result
        (self.output / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"[bench] {name}: {headline(result)}", flush=True)


def headline(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    if not result.get("available", True):
        return f"not available ({result.get('reason')})"
    if "objects_per_second" in result:
        rate = result["objects_per_second"]
        calls = result["twilio_calls"]["per_object"]
        return f"{result['done']}/{result['objects']} done, {rate} objects/s, {calls} Twilio calls per object"
    return "done"


def fresh_directory(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


async def main_async(args: argparse.Namespace) -> int:
    output = await asyncio.to_thread(fresh_directory, args.output)
    options = BenchOptions(
        idle_seconds=args.idle_seconds,
        max_concurrency=args.max_concurrency,
        baseline_timeout=args.baseline_timeout,
        work_dir=output / "work",
        operator_source=args.operator_source,
    )
    recorder = Recorder(output)
    flavors: list[Flavor] = ["operator"] if args.no_baseline else ["operator", "naive"]
    backends, real_binary = kube_backends(args.kube)
    for size in args.size_list:
        for kube in backends:
            on = replace(options, kube=kube, kube_apiserver=real_binary)
            for flavor in flavors:
                await recorder.run(scale_name(flavor, size, kube), partial(scale_rooms, flavor, size, on))
    if args.limits_size > 0:
        for flavor in flavors:
            limits = partial(
                twilio_limits,
                flavor,
                args.limits_size,
                options,
                limit=args.concurrency_limit,
                latency_ms=args.latency_ms,
            )
            await recorder.run(f"limits-{flavor}-{args.limits_size}", limits)
    if args.compositions > 0:
        await recorder.run(
            f"scale-composition-operator-{args.compositions}",
            partial(scale_compositions, args.compositions, options),
        )
    if not args.no_scripts:
        for script in OTHER_SCRIPTS:
            await recorder.run(
                Path(script).stem, partial(run_script, BENCH_DIR / script, within=SCRIPT_TIMEOUT)
            )
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python tests/bench/run.py " + " ".join(sys.argv[1:]),
    }
    summary = build_summary(recorder.results, machine=machine, sizes=args.size_list, backends=backends)
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (output / "SUMMARY.md").write_text(render_markdown(summary), encoding="utf-8")
    if not recorder.crashed:  # the processes' logs are kept only to investigate a crash
        shutil.rmtree(output / "work", ignore_errors=True)
    print(f"[bench] results in {output}/ (SUMMARY.md, summary.json)", flush=True)
    return 1 if recorder.crashed else 0


def kube_backends(choice: str | None) -> tuple[list[str], Path | None]:
    """The backends to run the scale scenarios on, and the real server's binary if one of them is real."""
    if choice == "embedded":
        return ["embedded"], None
    try:
        binary = locate_binary()
    except TierUnavailable as exc:
        if choice is not None:  # asked for explicitly
            raise SystemExit(f"--kube {choice}: the real Kubernetes API cannot be had: {exc}") from None
        print(f"[bench] the real Kubernetes API cannot be had, the embedded one only: {exc}", flush=True)
        return ["embedded"], None
    return (["real"] if choice == "real" else ["embedded", "real"]), binary


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    # Callbacks of the last rooms of a scenario reach an operator that has already been stopped.
    logging.getLogger("twilio_video_emulator.callbacks").setLevel(logging.ERROR)
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
