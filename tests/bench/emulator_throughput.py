"""Throughput of the Twilio Video emulator: authenticated ``GET /v1/Rooms/{sid}`` requests per second.

Starts the emulator in its own process (``python -m twilio_video_emulator``), creates a few rooms,
then sends a fixed number of fetches over keep-alive connections and prints one JSON object, e.g.::

    python tests/bench/emulator_throughput.py --requests 20000 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp


def start_emulator() -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "twilio_video_emulator", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the emulator did not start")
    return process, json.loads(line)


async def measure(credentials: dict[str, str], total: int, concurrency: int, rooms: int) -> dict[str, Any]:
    token = base64.b64encode(f"{credentials['account_sid']}:{credentials['auth_token']}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
    base = credentials["url"]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        sids = []
        for index in range(rooms):
            async with session.post(f"{base}/v1/Rooms", data={"UniqueName": f"bench-{index}"}) as answer:
                sids.append((await answer.json())["sid"])
        statuses: dict[int, int] = {}
        remaining = total

        async def worker(offset: int) -> None:
            nonlocal remaining
            index = offset
            while remaining > 0:
                remaining -= 1
                async with session.get(f"{base}/v1/Rooms/{sids[index % len(sids)]}") as answer:
                    await answer.read()
                    statuses[answer.status] = statuses.get(answer.status, 0) + 1
                index += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "operation": "FetchRoom",
        "requests": total,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(total / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10_000, help="fetches to send (default 10000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--rooms", type=int, default=100, help="rooms to create first (default 100)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.rooms < 1:
        parser.error("--requests, --concurrency and --rooms must be positive")
    process, credentials = start_emulator()
    try:
        result = asyncio.run(measure(credentials, args.requests, args.concurrency, args.rooms))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    print(json.dumps(result))
    return 0 if result["statuses"] == {"200": args.requests} else 1


if __name__ == "__main__":
    sys.exit(main())
