"""Command line entry point: ``twilio-video-operator run|token``, and ``dev|emulator`` from the tools
that add them (:mod:`twilio_video_operator.tool_commands`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence

from twilio_video_operator import __version__
from twilio_video_operator.tool_commands import MissingTool, ToolCommand, add_tool_commands

EXIT_USAGE = 2
BUILT_IN = frozenset({"run", "token"})
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

    add_tool_commands(commands, BUILT_IN)

    token = commands.add_parser("token", help="mint a Twilio Video Access Token for a room (admin use)")
    token.add_argument("--namespace", required=True)
    token.add_argument("--room", required=True, help="VideoRoom name")
    token.add_argument("--identity", required=True)
    token.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="token lifetime (default: the room's maximum)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    tool: ToolCommand | None = getattr(args, "tool", None)
    if unknown and not isinstance(tool, MissingTool):  # a missing tool's options are not known here
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if tool is not None:
        return int(tool.run(args))
    command: Callable[[argparse.Namespace], int] = {"run": _run, "token": _token}[args.command]
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


def _token(args: argparse.Namespace) -> int:
    try:
        token_cli = importlib.import_module(TOKEN_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (TOKEN_MODULE, TOKEN_MODULE.rpartition(".")[0]):
            raise
        print("token minting is not available in this build", file=sys.stderr)
        return EXIT_USAGE
    return int(token_cli.main(args))
