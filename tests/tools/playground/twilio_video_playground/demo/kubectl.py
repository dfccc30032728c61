"""``kubectl get twilio -A`` against the playground, or a plain table when kubectl is not installed."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twilio_video_playground.demo.objects import condition
from twilio_video_playground.playground import AppliedObject

KUBECTL_TIMEOUT = 30.0


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


def print_table(objects: Sequence[AppliedObject], bodies: dict[AppliedObject, dict[str, Any] | None]) -> None:
    rows = [("KIND", "NAMESPACE", "NAME", "READY")]
    rows += [
        (obj.kind, obj.namespace or "", obj.name, str(condition(bodies.get(obj), "Ready").get("status", "-")))
        for obj in objects
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("   ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
