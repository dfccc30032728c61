"""The demo's steps in order, each bounded in time; the first one that fails ends the story."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from twilio_video_operator.kube import KubeApiError
from twilio_video_operator.settings import SettingsError
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.counters import show_what_moved, take_snapshot
from twilio_video_playground.demo.joining import participant_joins
from twilio_video_playground.demo.moderation import blocked_identity_is_removed
from twilio_video_playground.demo.muting import muted_identity_is_not_heard
from twilio_video_playground.demo.notifying import recording_available
from twilio_video_playground.demo.recording import record_and_deliver
from twilio_video_playground.demo.rooms import apply_examples
from twilio_video_playground.demo.rotation import rotate_while_joining
from twilio_video_playground.demo.waiting import StepFailed
from twilio_video_playground.playground import ManifestError, Playground

DEFAULT_TIMEOUT = 60.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15)
STEP_BUDGET = 4  # a step may take at most this many of its waits in all

Step = Callable[[Demo], Awaitable[None]]
STEPS: tuple[tuple[str, Step], ...] = (
    ("Rooms from examples/ are applied and Ready", apply_examples),
    ("A participant joins with a token from the operator's token service", participant_joins),
    ("A blocked identity joins and the operator removes it", blocked_identity_is_removed),
    ("A muted identity is heard by nobody until it is unmuted", muted_identity_is_not_heard),
    ("A recorded room is completed, composed and delivered to S3", record_and_deliver),
    ("The attendees get a 'recording available' text message with the link", recording_available),
    ("The signing key rotates while clients keep joining", rotate_while_joining),
    ("Metrics that moved (GET /metrics, before and after)", show_what_moved),
)


def banner(title: str) -> None:
    print(f"\n==> {title}", flush=True)


async def run_step(demo: Demo, number: int, title: str, step: Step) -> str | None:
    """Run one step; what went wrong, or ``None``."""
    banner(f"{number}. {title}")
    budget = demo.wait_seconds * STEP_BUDGET
    try:
        async with asyncio.timeout(budget):
            await step(demo)
    except StepFailed as exc:
        return str(exc)
    except TimeoutError:
        return f"the step did not finish within {budget:.0f}s"
    except (
        KubeApiError,
        ManifestError,
        aiohttp.ClientError,
        OSError,
        RuntimeError,
        KeyError,
        ValueError,
    ) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def tell(demo: Demo) -> list[str]:
    """Every step in turn; the failure of the first step that failed (an empty list: all went well)."""
    playground = demo.playground
    print(f"Kubernetes API kubeconfig: {playground.kubeconfig_path}")
    print(f"Twilio emulator: {demo.emulator_url}")
    print(f"Operator HTTP server: {demo.operator_url}")
    await take_snapshot(demo)
    for number, (title, step) in enumerate(STEPS, start=1):
        problem = await run_step(demo, number, title, step)
        if problem is not None:
            return [f"step {number} ({title}): {problem}"]
    return []


async def run_demo(examples: Path, *, wait_seconds: float = DEFAULT_TIMEOUT, kube: str = "embedded") -> int:
    """Run the whole demo in a temporary directory, on the embedded Kubernetes API or (``kube="real"``) a
    real kube-apiserver; the process exit code."""
    with tempfile.TemporaryDirectory(prefix="twilio-video-demo-") as state:
        api = "real kube-apiserver" if kube == "real" else "embedded Kubernetes API"
        banner(f"Starting the playground ({api}, Twilio emulator, operator)")
        try:
            async with (
                Playground(Path(state) / "playground", kube=kube) as playground,
                aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http,
            ):
                demo = Demo(playground, http, examples, Path(state), wait_seconds)
                failures = await tell(demo)
                banner("Stopping the playground")
        except (SettingsError, OSError, RuntimeError, KubeApiError, aiohttp.ClientError) as exc:
            # RealKubeUnavailable is a RuntimeError: a missing binary, one line naming make kube-apiserver.
            failures = [f"the playground failed: {exc}"]
    if failures:
        print("\nThe demo FAILED:", *failures, sep="\n  - ")
        return 1
    print("\nThe demo finished successfully.")
    return 0
