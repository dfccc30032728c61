"""``twilio-video-emulator`` (``python -m twilio_video_emulator``): serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys

from twilio_video_emulator.command import DESCRIPTION, add_arguments
from twilio_video_emulator.serving import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twilio-video-emulator", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
