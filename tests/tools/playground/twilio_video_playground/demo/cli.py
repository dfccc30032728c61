"""``python -m twilio_video_playground.demo`` (``make demo``): the command line."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

from twilio_video_operator.logs import setup_logging
from twilio_video_playground.checkout import REPOSITORY
from twilio_video_playground.demo.story import DEFAULT_TIMEOUT, run_demo


def repository_examples() -> Path:
    return REPOSITORY / "examples"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="twilio-video-demo",
        description="The operator's story in one run against a local playground (exit 1: a step failed).",
    )
    parser.add_argument("--examples", type=Path, default=repository_examples(), help="manifests to apply")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds each wait of a step may take"
    )
    parser.add_argument(
        "--kube",
        choices=("embedded", "real"),
        default="embedded",
        help="the Kubernetes API: embedded (default) or a real kube-apiserver (`make kube-apiserver`)",
    )
    args = parser.parse_args(argv)
    setup_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    return asyncio.run(run_demo(args.examples, wait_seconds=args.timeout, kube=args.kube))
