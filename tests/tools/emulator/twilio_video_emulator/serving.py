"""Serve the emulator until SIGINT/SIGTERM, printing its credentials as JSON once it listens."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from twilio_video_emulator.server import start_emulator


async def serve(host: str, port: int, state_file: str | None) -> None:
    emulator = await start_emulator(host=host, port=port, state_file=state_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        print(json.dumps(emulator.credentials), flush=True)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await emulator.stop()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        asyncio.run(serve(args.host, args.port, args.state))
    except OSError as error:
        print(f"emulator: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
