"""The ``dev`` command this distribution adds to ``twilio-video-operator`` (an entry point), and the
``twilio-video-playground`` console script, which takes the same options.

Light on purpose: ``twilio-video-operator --help`` loads it; the playground is imported only to run.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

DESCRIPTION = (
    "Start an embedded Kubernetes API, the Twilio emulator and the operator on 127.0.0.1; "
    "runs until interrupted (Ctrl+C or SIGTERM)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".dev"),
        help="where kubeconfig, emulator.json and operator.json are written (default: .dev/)",
    )
    parser.add_argument(
        "--apply", type=Path, metavar="DIR", help="apply every *.yaml manifest in DIR once ready"
    )
    parser.add_argument(
        "--http-port", type=int, default=0, help="operator HTTP port (default: any free port)"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="run the operator as N processes electing a leader, behind a balancer (default: 1, in process)",
    )
    parser.add_argument(
        "--crds", type=Path, metavar="DIR", help="CRD manifests to load (default: the project's)"
    )
    parser.add_argument(
        "--kube",
        choices=("embedded", "real"),
        default="embedded",
        help="the Kubernetes API: the embedded one (default), or a real kube-apiserver and etcd built by "
        "`make kube-apiserver` (docs/real-kubernetes.md)",
    )


def run(args: argparse.Namespace) -> int:
    from twilio_video_playground.playground import run_playground

    return asyncio.run(
        run_playground(
            state_dir=args.state_dir,
            apply_dir=args.apply,
            http_port=args.http_port,
            crd_dir=args.crds,
            replicas=args.replicas,
            kube=args.kube,
        )
    )


class DevCommand:
    help = "local playground: embedded Kubernetes API, Twilio emulator and the operator"
    description = DESCRIPTION

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        return run(args)


DEV = DevCommand()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twilio-video-playground", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
