"""Token minting throughput and latency; prints one JSON document.

- ``library``: ``mint_access_token`` in a loop (tokens per second);
- ``http``: ``POST /v1/token`` as fast as a fixed number of concurrent clients can go, with the
  TokenReview/SubjectAccessReview answers cached (bounded request count);
- ``fixed_rate``: the same endpoint at a fixed arrival rate (open loop), with latency percentiles.

The server (the token service on an aiohttp server, with the embedded Kubernetes API answering reviews and
holding the room) runs in a child process, so that client and server do not share one CPU. Rate limits
are raised far above the load so that the limiter runs on every request without refusing any.

Usage: ``python tests/bench/bench_tokens.py [--requests N] [--concurrency C] [--rate R] [--seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from twilio_video_operator.tokens.minting import SigningKey, mint_access_token

NAMESPACE = "bench"
ROOM = "standup"
BEARER = "bench-service-account-token"
GOAL_TOKENS_PER_SECOND = 2000
GOAL_P99_MS = 10.0


# --------------------------------------------------------------------------------------------- server


async def serve() -> None:
    """Child process: embedded Kubernetes API + the token service; prints its URL, runs until stdin closes."""
    from aiohttp import web

    from twilio_video_operator.crdgen import build_crds
    from twilio_video_operator.http_server import HealthState, build_app
    from twilio_video_operator.kube import VIDEOROOMS, KubeClient, Resource
    from twilio_video_operator.kube.connection import connection_from_kubeconfig
    from twilio_video_operator.settings import load_settings
    from twilio_video_operator.tokens.ratelimit import Limit, RateLimits
    from twilio_video_operator.tokens.service import TokenService, token_routes
    from twilio_video_playground.kube import AccessRule, EmbeddedKubernetes

    kube = EmbeddedKubernetes()
    for crd in build_crds():
        kube.register_crd(crd)
    await kube.start()
    user = f"system:serviceaccount:{NAMESPACE}:bench"
    kube.allow_tokens[BEARER] = {"username": user, "groups": ["system:serviceaccounts"]}
    kube.rbac_rules.append(
        AccessRule(
            verbs=("create",),
            api_groups=("video.openclaw.io",),
            resources=("videorooms/token",),
            users=(user,),
        )
    )
    with tempfile.TemporaryDirectory() as folder:
        info = connection_from_kubeconfig(kube.write_kubeconfig(Path(folder) / "kubeconfig"))
    async with KubeClient(info) as client:
        await client.create(Resource("", "v1", "namespaces", False), None, {"metadata": {"name": NAMESPACE}})
        room = {"apiVersion": "video.openclaw.io/v1alpha1", "kind": "VideoRoom", "metadata": {"name": ROOM}}
        await client.create(VIDEOROOMS, NAMESPACE, {**room, "spec": {}})
        await client.patch_status(VIDEOROOMS, NAMESPACE, ROOM, {"roomStatus": "in-progress"})
    settings = load_settings(
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_API_KEY="SK" + "0" * 32,
        TWILIO_API_SECRET="bench-operator-key-secret-0123456",
        PUBLIC_BASE_URL="http://127.0.0.1:9",
    )
    generous = Limit(rate=1e9, burst=1e9)
    limits = RateLimits(per_caller=generous, per_identity=generous, per_room=generous, per_source=generous)
    service = TokenService(settings, KubeClient(info), limits=limits)
    app = build_app(settings, HealthState(), installers=[token_routes(service)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
    await runner.cleanup()
    await kube.stop()


# --------------------------------------------------------------------------------------------- client


def bench_library(count: int) -> dict[str, Any]:
    key = SigningKey("AC" + "1" * 32, "SK" + "2" * 32, SecretStr("library-bench-secret-0123456789ab"))
    now = time.time()
    started = time.perf_counter()
    for index in range(count):
        mint_access_token(key, f"user-{index % 1000}", "bench:standup", ttl=3600, now=now)
    seconds = time.perf_counter() - started
    return {"tokens": count, "seconds": round(seconds, 3), "tokens_per_second": round(count / seconds)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def one(session: aiohttp.ClientSession, url: str, index: int) -> tuple[bool, float]:
    body = {"namespace": NAMESPACE, "room": ROOM, "identity": f"user-{index % 500}"}
    started = time.perf_counter()
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {BEARER}"}) as resp:
        await resp.read()
        return resp.status == 200, time.perf_counter() - started


async def bench_http(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        for index in range(200):  # warm up: connections, caches
            await one(session, url, index)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(requests):
            queue.put_nowait(index)
        latencies: list[float] = []
        errors = 0

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                ok, latency = await one(session, url, queue.get_nowait())
                latencies.append(latency)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": requests,
        "concurrency": concurrency,
        "errors": errors,
        "seconds": round(seconds, 3),
        "tokens_per_second": round((requests - errors) / seconds),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


async def bench_fixed_rate(url: str, rate: float, seconds: float) -> dict[str, Any]:
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        for index in range(200):
            await one(session, url, index)
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def fire(index: int) -> None:
            nonlocal errors
            scheduled = start + index / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            ok, _ = await one(session, url, index)
            latencies.append(loop.time() - scheduled)  # queueing delay behind earlier requests included
            errors += not ok

        await asyncio.gather(*(fire(index) for index in range(total)))
    return {
        "rate_per_second": rate,
        "seconds": seconds,
        "requests": total,
        "errors": errors,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"library": bench_library(args.library_tokens)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = await child.stdout.readline()
        url = json.loads(line)["url"] + "/v1/token"
        result["http"] = await bench_http(url, args.requests, args.concurrency)
        result["fixed_rate"] = await bench_fixed_rate(url, args.rate, args.seconds)
    finally:
        child.stdin.close()
        try:
            async with asyncio.timeout(15):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()
    result["goals"] = {
        "http_tokens_per_second": GOAL_TOKENS_PER_SECOND,
        "fixed_rate_p99_ms": GOAL_P99_MS,
        "met": result["http"]["tokens_per_second"] >= GOAL_TOKENS_PER_SECOND
        and result["fixed_rate"]["p99_ms"] <= GOAL_P99_MS,
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--library-tokens", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    print(json.dumps(asyncio.run(measure(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
