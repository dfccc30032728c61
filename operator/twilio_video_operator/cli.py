"""Command line entry point: ``twilio-video-operator run|dev|emulator|token``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from twilio_video_operator import __version__

EXIT_USAGE = 2
TOKEN_MODULE = "twilio_video_operator.tokens.cli"  # noqa: S105 - a module name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twilio-video-operator",
        description="Twilio Video rooms, compositions and signing keys as Kubernetes resources.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "run",
        help="run the operator against $KUBECONFIG, ~/.kube/config or the in-cluster service account",
        description="Run the operator. Settings come from the environment (see docs/operations.md).",
    )

    dev = commands.add_parser(
        "dev",
        help="local playground: embedded Kubernetes API, Twilio emulator and the operator",
        description="Start an embedded Kubernetes API, the Twilio emulator and the operator on 127.0.0.1; "
        "runs until interrupted (Ctrl+C or SIGTERM).",
    )
    dev.add_argument("--state-dir", type=Path, default=Path(".dev"), help="where kubeconfig, emulator.json "
                     "and operator.json are written (default: .dev/)")  # fmt: skip
    dev.add_argument(
        "--apply", type=Path, metavar="DIR", help="apply every *.yaml manifest in DIR once ready"
    )
    dev.add_argument("--http-port", type=int, default=0, help="operator HTTP port (default: any free port)")
    dev.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="run the operator as N processes electing a leader, behind a balancer (default: 1, in process)",
    )
    dev.add_argument(
        "--crds", type=Path, metavar="DIR", help="CRD manifests to load (default: the project's)"
    )
    dev.add_argument(
        "--kube",
        choices=("embedded", "real"),
        default="embedded",
        help="the Kubernetes API: the embedded one (default), or a real kube-apiserver and etcd built by "
        "`make kube-apiserver` (docs/real-kubernetes.md)",
    )

    emulator = commands.add_parser("emulator", help="run the Twilio Video emulator alone")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=0, help="default: any free port")
    emulator.add_argument("--state", type=Path, metavar="FILE", help="persist the emulator's state in FILE")

    token = commands.add_parser("token", help="mint a Twilio Video Access Token for a room (admin use)")
    token.add_argument("--namespace", required=True)
    token.add_argument("--room", required=True, help="VideoRoom name")
    token.add_argument("--identity", required=True)
    token.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="token lifetime (default: the room's maximum)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = {
        "run": _run,
        "dev": _dev,
        "emulator": _emulator,
        "token": _token,
    }[args.command]
    return command(args)


def _run(_: argparse.Namespace) -> int:
    from twilio_video_operator.logs import setup_logging
    from twilio_video_operator.runner import OperatorError, run_operator
    from twilio_video_operator.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.LOG_LEVEL)

    try:
        asyncio.run(run_operator(settings))  # SIGINT and SIGTERM stop it (leadership released first)
    except OperatorError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _dev(args: argparse.Namespace) -> int:
    from twilio_video_operator.dev.playground import run_playground

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


def _emulator(args: argparse.Namespace) -> int:
    from twilio_video_operator.emulator.__main__ import main as emulator_main

    argv = ["--host", args.host, "--port", str(args.port)]
    if args.state is not None:
        argv += ["--state", str(args.state)]
    return int(emulator_main(argv))


def _token(args: argparse.Namespace) -> int:
    try:
        token_cli = importlib.import_module(TOKEN_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (TOKEN_MODULE, TOKEN_MODULE.rpartition(".")[0]):
            raise
        print("token minting is not available in this build", file=sys.stderr)
        return EXIT_USAGE
    return int(token_cli.main(args))
