"""Commands that other distributions add to ``twilio-video-operator``, found through entry points.

The playground (``dev``) and the Twilio emulator (``emulator``) are their own distributions; the operator
never imports them. Each declares an entry point in the group ``twilio_video_operator.commands`` whose
object has ``help``, ``description``, ``add_arguments(parser)`` and ``run(args) -> int``. Where a known tool
is not installed, its command still appears and says which distribution provides it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

ENTRY_POINT_GROUP = "twilio_video_operator.commands"
EXIT_USAGE = 2


class ToolCommand(Protocol):
    @property
    def help(self) -> str: ...

    @property
    def description(self) -> str: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@dataclass(frozen=True)
class KnownTool:
    command: str
    distribution: str
    help: str


KNOWN_TOOLS = (
    KnownTool(
        "dev",
        "twilio-video-playground",
        "local playground: embedded Kubernetes API, Twilio emulator and the operator",
    ),
    KnownTool("emulator", "twilio-video-emulator", "run the Twilio Video emulator alone"),
)


@dataclass(frozen=True)
class MissingTool:
    """Stands in for a tool whose distribution is not installed (or failed to load)."""

    tool: KnownTool
    problem: str

    @property
    def help(self) -> str:
        return f"{self.tool.help} (not installed)"

    @property
    def description(self) -> str:
        return self.message

    @property
    def message(self) -> str:
        return (
            f"`{self.tool.command}` comes with the {self.tool.distribution} distribution, which "
            f"{self.problem}; a source checkout installs it with `make install`"
        )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """None: the tool's options are unknown without it (the command line accepts any)."""

    def run(self, args: argparse.Namespace) -> int:
        print(self.message, file=sys.stderr)
        return EXIT_USAGE


def discover(reserved: frozenset[str]) -> dict[str, ToolCommand]:
    """The installed tool commands by name, with stand-ins for known tools that are missing."""
    found: dict[str, ToolCommand] = {}
    problems: dict[str, str] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if entry.name in reserved or entry.name in found:
            continue
        try:
            found[entry.name] = _load(entry)
        except Exception as error:
            problems[entry.name] = f"failed to load ({type(error).__name__}: {error})"
    for tool in KNOWN_TOOLS:
        if tool.command not in found:
            found[tool.command] = MissingTool(tool, problems.get(tool.command, "is not installed"))
    return found


def _load(entry: EntryPoint) -> ToolCommand:
    command: Any = entry.load()
    for attribute in ("help", "description", "add_arguments", "run"):
        if not hasattr(command, attribute):
            raise TypeError(f"{entry.value} has no {attribute!r}")
    return command  # type: ignore[no-any-return]


def add_tool_commands(commands: Any, reserved: frozenset[str]) -> None:
    """Add one sub-command per tool to ``commands`` (an argparse sub-parsers action)."""
    for name, command in discover(reserved).items():
        parser = commands.add_parser(name, help=command.help, description=command.description)
        command.add_arguments(parser)
        parser.set_defaults(tool=command)
