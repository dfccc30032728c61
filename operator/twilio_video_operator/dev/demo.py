"""``make demo``: the playground end to end, in a temporary state directory.

Starts the playground, applies the top-level ``examples/*.yaml``, waits (bounded) until the operator has
processed every object of a kind it has handlers for (``status.observedGeneration`` caught up with
``metadata.generation``), shows ``kubectl get twilio -A`` and each object's status conditions, then stops
everything. Exits non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twilio_video_operator import API_GROUP
from twilio_video_operator.dev.playground import AppliedObject, ManifestError, Playground
from twilio_video_operator.handlers import install_handlers
from twilio_video_operator.kube import KubeApiError, KubeClient
from twilio_video_operator.logs import setup_logging
from twilio_video_operator.runner import handles_resource
from twilio_video_operator.settings import SettingsError

DEFAULT_TIMEOUT = 60.0
POLL_INTERVAL = 0.5
KUBECTL_TIMEOUT = 30.0


def repository_examples() -> Path:
    return Path(__file__).resolve().parents[3] / "examples"


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def is_converged(body: dict[str, Any]) -> bool:
    """The operator has processed the object's current spec."""
    observed = (body.get("status") or {}).get("observedGeneration")
    generation = (body.get("metadata") or {}).get("generation")
    if observed is None:
        return False
    return generation is None or int(observed) >= int(generation)


@dataclass
class Convergence:
    converged: list[AppliedObject] = field(default_factory=list)
    pending: list[AppliedObject] = field(default_factory=list)  # handled, but not processed in time
    unhandled: list[AppliedObject] = field(default_factory=list)  # no handlers for the kind in this build


async def fetch(client: KubeClient, obj: AppliedObject) -> dict[str, Any] | None:
    return await client.get(obj.resource, obj.namespace, obj.name)


async def wait_converged(
    client: KubeClient,
    objects: Sequence[AppliedObject],
    *,
    handled: Callable[[AppliedObject], bool],
    wait_seconds: float,
) -> Convergence:
    """Poll until every handled object converged or ``wait_seconds`` passed (unhandled: not waited for)."""
    result = Convergence(unhandled=[obj for obj in objects if not handled(obj)])
    waiting = [obj for obj in objects if handled(obj)]
    deadline = time.monotonic() + wait_seconds
    while waiting:
        still: list[AppliedObject] = []
        for obj in waiting:
            body = await fetch(client, obj)
            (result.converged if body is not None and is_converged(body) else still).append(obj)
        waiting = still
        if not waiting or time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_INTERVAL)
    result.pending = waiting
    return result


def kubectl_path() -> Path | None:
    """The kubectl installed next to this interpreter (the project's virtualenv), if any."""
    candidate = Path(sys.executable).parent / "kubectl"
    return candidate if candidate.exists() else None


async def show_with_kubectl(kubectl: Path, kubeconfig: Path) -> bool:
    process = await asyncio.create_subprocess_exec(
        str(kubectl),
        "get",
        "twilio",
        "-A",
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), KUBECTL_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        print(f"kubectl did not answer within {KUBECTL_TIMEOUT:.0f}s", flush=True)
        return False
    print(stdout.decode(errors="replace").rstrip(), flush=True)
    if process.returncode != 0:
        print(f"kubectl failed ({process.returncode}): {stderr.decode(errors='replace').strip()}", flush=True)
        return False
    return True


def ready_status(body: dict[str, Any] | None) -> str:
    for condition in ((body or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "-"


def print_table(objects: Sequence[AppliedObject], bodies: dict[AppliedObject, dict[str, Any] | None]) -> None:
    rows = [("KIND", "NAMESPACE", "NAME", "READY")]
    rows += [(obj.kind, obj.namespace or "", obj.name, ready_status(bodies.get(obj))) for obj in objects]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("   ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def describe_conditions(body: dict[str, Any] | None) -> list[str]:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    if not conditions:
        return ["(no status conditions yet)"]
    lines = []
    for condition in conditions:
        reason = f" {condition['reason']}" if condition.get("reason") else ""
        message = f": {condition['message']}" if condition.get("message") else ""
        lines.append(f"{condition.get('type')}={condition.get('status')}{reason}{message}")
    return lines


async def demonstrate(playground: Playground, examples: Path, *, wait_seconds: float) -> list[str]:
    """The demo's steps inside a running playground; the list of what failed."""
    failures: list[str] = []
    registry = install_handlers()
    print(f"Kubernetes API kubeconfig: {playground.kubeconfig_path}")
    print(f"Twilio emulator: {playground.credentials.get('url')}")
    print(f"Operator HTTP server: {playground.operator_url}")

    step(f"Applying {examples}/*.yaml")
    try:
        applied = await playground.apply(examples)
    except (ManifestError, KubeApiError) as exc:
        return [f"cannot apply the examples: {exc}"]
    for obj in applied:
        print(f"{obj.display} {obj.action}")
    ours = [obj for obj in applied if obj.resource.group == API_GROUP]
    if not ours:
        failures.append(f"no {API_GROUP} objects in {examples}")

    step(f"Waiting up to {wait_seconds:.0f}s for the operator to process them")

    def handled(obj: AppliedObject) -> bool:
        resource = obj.resource
        return handles_resource(registry, resource.group, resource.version, resource.plural, obj.kind)

    convergence = await wait_converged(playground.client, ours, handled=handled, wait_seconds=wait_seconds)
    for obj in convergence.converged:
        print(f"{obj.display}: processed")
    for obj in convergence.pending:
        print(f"{obj.display}: NOT processed within {wait_seconds:.0f}s")
        failures.append(f"{obj.display} was not processed")
    for obj in convergence.unhandled:
        print(f"{obj.display}: no handlers for {obj.kind} in this build; not waited for")

    step("kubectl get twilio -A")
    bodies = {obj: await fetch(playground.client, obj) for obj in ours}
    kubectl = kubectl_path()
    if kubectl is None:
        print("(kubectl is not installed next to this Python; listing the objects directly)")
        print_table(ours, bodies)
    elif not await show_with_kubectl(kubectl, playground.kubeconfig_path):
        failures.append("kubectl get twilio -A failed")
        print_table(ours, bodies)

    step("Status conditions")
    for obj in ours:
        print(obj.display)
        for line in describe_conditions(bodies[obj]):
            print(f"    {line}")
    return failures


async def run_demo(examples: Path, *, wait_seconds: float = DEFAULT_TIMEOUT) -> int:
    """Run the whole demo; the process exit code."""
    with tempfile.TemporaryDirectory(prefix="twilio-video-demo-") as state:
        step("Starting the playground (embedded Kubernetes API, Twilio emulator, operator)")
        try:
            async with Playground(Path(state)) as playground:
                failures = await demonstrate(playground, examples, wait_seconds=wait_seconds)
                step("Stopping the playground")
        except (SettingsError, OSError, RuntimeError, KubeApiError) as exc:
            failures = [f"the playground failed: {exc}"]
    if failures:
        print("\nThe demo FAILED:", *failures, sep="\n  - ")
        return 1
    print("\nThe demo finished successfully.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twilio_video_operator.dev.demo", description=__doc__)
    parser.add_argument("--examples", type=Path, default=repository_examples(), help="manifests to apply")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for processing"
    )
    args = parser.parse_args(argv)
    setup_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    return asyncio.run(run_demo(args.examples, wait_seconds=args.timeout))


if __name__ == "__main__":
    raise SystemExit(main())
