"""The ``emulator`` command this distribution adds to ``twilio-video-operator`` (an entry point).

Light on purpose: ``twilio-video-operator --help`` loads it; the server is imported only to run.
"""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Serve the Twilio emulator on HOST:PORT until interrupted; prints the JSON of emulator.json "
    "(url, account_sid, auth_token, api_key, api_secret) once it listens."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free port)")
    parser.add_argument("--state", default=None, help="JSON file to load on start and save on shutdown")


class EmulatorCommand:
    help = "run the Twilio Video emulator alone"
    description = DESCRIPTION

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_arguments(parser)

    def run(self, args: argparse.Namespace) -> int:
        from twilio_video_emulator.serving import run

        return run(args)


EMULATOR = EmulatorCommand()
