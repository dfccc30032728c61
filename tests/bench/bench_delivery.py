"""Delivery of composition media to S3: memory stays flat as the file grows; throughput to a local S3.

The Twilio emulator composes two rooms, one into a small media file and one into a large one (200 MiB by
default); a real S3 service (SeaweedFS on 127.0.0.1) receives them. Each delivery runs in a fresh child
process, which reports its own peak RSS (``ru_maxrss``) before and after the delivery, so the numbers
belong to the delivery alone. Prints one JSON document:

- ``runs``: per file, bytes, seconds, MB/s and the child's peak RSS growth during the delivery;
- ``rss_growth_difference_mib``: large minus small. ``bounded`` is true when it is at most one part
  (memory does not grow with the file size) and the large file's growth stays within
  ``--max-growth-mib`` (default six parts: the part being filled, the part being sent and the HTTP
  client's copies of it);
- ``sha256_verified``: what was delivered has the SHA-256 of the media the emulator serves.

The small file has a few parts (32 MiB by default), so that both runs reach the steady state of a
multipart upload; below one part there is nothing to compare.

Usage: ``python tests/bench/bench_delivery.py [--large-mib 200] [--small-mib 32] [--part-mib 8]``.
Bounded: every step has a timeout; the whole run gives up after ``--timeout`` seconds (default 300).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from s3_server import SeaweedS3  # noqa: E402 - found through the path set just above

MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------- child


def child(arguments: dict[str, Any]) -> None:
    """Deliver one file and print what it cost (runs in its own process)."""
    from pydantic import SecretStr

    from twilio_video_operator.delivery import S3Credentials, S3Deliverer, S3Target

    async def deliver() -> dict[str, Any]:
        deliverer = S3Deliverer(part_size=arguments["part_size"])
        try:
            started = time.monotonic()
            result = await deliverer.deliver(
                source_url=arguments["url"],
                target=S3Target(arguments["bucket"], arguments["key"], endpoint=arguments["endpoint"]),
                credentials=S3Credentials(arguments["access_key"], SecretStr(arguments["secret_key"])),
                source_id=arguments["sid"],
                expected_size=arguments["size"],
            )
            return {"seconds": time.monotonic() - started, "bytes": result.bytes, "sha256": result.sha256}
        finally:
            await deliverer.close()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = asyncio.run(deliver())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**outcome, "baseline_rss_kib": baseline, "peak_rss_kib": peak}))


# --------------------------------------------------------------------------------------------- parent


class Twilio:
    """The emulator's REST and control APIs."""

    def __init__(self, http: aiohttp.ClientSession, credentials: dict[str, str]) -> None:
        self.http = http
        self.url = credentials["url"]
        user = f"{credentials['account_sid']}:{credentials['auth_token']}".encode()
        self.auth = {"Authorization": "Basic " + base64.b64encode(user).decode()}

    async def rest(self, method: str, path: str, form: dict[str, str] | None = None) -> Any:
        async with self.http.request(method, self.url + path, data=form, headers=self.auth) as response:
            body = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {body}")
            return body

    async def control(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(f"{self.url}/_emulator/{path}", json=body) as response:
            if response.status >= 400:
                raise RuntimeError(f"control {path}: {response.status} {await response.text()}")
            return await response.json()

    async def composition_of_size(self, size: int, token: str) -> tuple[str, str]:
        """A completed composition whose media has ``size`` bytes: (SID, pre-signed media URL)."""
        name = f"bench-{size}"
        room = await self.rest(
            "POST", "/v1/Rooms", {"UniqueName": name, "RecordParticipantsOnConnect": "true"}
        )
        await self.control(f"rooms/{name}/participants", {"identity": "alice", "token": token})
        await self.control("clock/advance", {"seconds": 30})
        await self.rest("POST", f"/v1/Rooms/{room['sid']}", {"Status": "completed"})
        composition = await self.rest(
            "POST", "/v1/Compositions", {"RoomSid": room["sid"], "AudioSources": "*"}
        )
        sid = composition["sid"]
        await self.control(f"compositions/{sid}/config", {"mediaBytes": size})
        async with asyncio.timeout(30):
            while (await self.rest("GET", f"/v1/Compositions/{sid}"))["status"] != "completed":
                await self.control("clock/advance", {"seconds": 5})
        async with self.http.get(
            f"{self.url}/v1/Compositions/{sid}/Media", headers=self.auth, allow_redirects=False
        ) as response:
            return sid, response.headers["Location"]

    async def sha256_of(self, url: str) -> str:
        digest = hashlib.sha256()
        async with self.http.get(url) as response:
            async for chunk in response.content.iter_chunked(MIB):
                digest.update(chunk)
        return digest.hexdigest()


def access_token(credentials: dict[str, str], room: str, identity: str) -> str:
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VideoGrant

    token = AccessToken(
        credentials["account_sid"],
        credentials["api_key"],
        credentials["api_secret"],
        identity=identity,
        grants=[VideoGrant(room=room)],
    )
    return str(token.to_jwt())


async def run_child(arguments: dict[str, Any], limit: float) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", json.dumps(arguments), stdout=subprocess.PIPE
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"the delivery process failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def bench(options: argparse.Namespace) -> dict[str, Any]:
    from twilio_video_emulator.server import start_emulator

    part_size = int(options.part_mib * MIB)
    sizes = {"small": int(options.small_mib * MIB), "large": int(options.large_mib * MIB)}
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as workdir:
        storage = SeaweedS3(Path(workdir), buckets=("bench",))
        await asyncio.to_thread(storage.start)
        emulator = await start_emulator()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=options.timeout)) as http:
                twilio = Twilio(http, emulator.credentials)
                runs: dict[str, Any] = {}
                verified = True
                for label, size in sizes.items():
                    token = access_token(emulator.credentials, f"bench-{size}", "alice")
                    sid, url = await twilio.composition_of_size(size, token)
                    measured = await run_child(
                        {
                            "url": url,
                            "sid": sid,
                            "size": size,
                            "part_size": part_size,
                            "bucket": "bench",
                            "key": f"{label}/{sid}.mp4",
                            "endpoint": storage.endpoint,
                            "access_key": storage.writer.access_key,
                            "secret_key": storage.writer.secret_key,
                        },
                        options.timeout,
                    )
                    verified &= (
                        measured["sha256"] == await twilio.sha256_of(url) and measured["bytes"] == size
                    )
                    growth = (measured["peak_rss_kib"] - measured["baseline_rss_kib"]) / 1024
                    runs[label] = {
                        "bytes": measured["bytes"],
                        "seconds": round(measured["seconds"], 3),
                        "mb_per_s": round(measured["bytes"] / MIB / max(measured["seconds"], 1e-9), 1),
                        "peak_rss_mib": round(measured["peak_rss_kib"] / 1024, 1),
                        "rss_growth_mib": round(growth, 1),
                    }
        finally:
            await emulator.stop()
            await asyncio.to_thread(storage.stop, crash=True)
    difference = runs["large"]["rss_growth_mib"] - runs["small"]["rss_growth_mib"]
    ceiling = options.max_growth_mib or 6 * options.part_mib
    return {
        "part_size_mib": options.part_mib,
        "runs": runs,
        "rss_growth_difference_mib": round(difference, 1),
        "max_growth_mib": ceiling,
        "bounded": difference <= options.part_mib and runs["large"]["rss_growth_mib"] <= ceiling,
        "sha256_verified": verified,
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-mib", type=float, default=32.0)
    parser.add_argument("--large-mib", type=float, default=200.0)
    parser.add_argument("--part-mib", type=float, default=8.0)
    parser.add_argument("--max-growth-mib", type=float, default=None, help="default: six parts")
    parser.add_argument("--timeout", type=float, default=300.0)
    options = parser.parse_args()

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(options.timeout):
            return await bench(options)

    report = asyncio.run(bounded())
    print(json.dumps(report, indent=2))
    return 0 if report["bounded"] and report["sha256_verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
