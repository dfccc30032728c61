"""Operator replicas of the playground as processes of their own: ``twilio-video-operator run`` each, with its
own HTTP port, against the playground's Kubernetes API and emulator (``dev --replicas N``).

The replicas elect a leader through the Lease ``twilio-video-operator`` in the ``default`` namespace, as
the Helm chart's do; a :class:`~twilio_video_playground.balancer.Balancer` in front of them plays the
Service. Chaos tests stop, kill and start replicas one by one (:meth:`ReplicaSet.signal`,
:meth:`ReplicaSet.start`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
LEASE_NAMESPACE = "default"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    index: int
    port: int
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class ReplicaSet:
    """``count`` operator processes sharing ``environment`` (settings), each logging to ``log_dir``."""

    def __init__(self, count: int, environment: Mapping[str, str], log_dir: Path) -> None:
        self.environment = dict(environment)
        self.log_dir = log_dir
        self.replicas = [Replica(index, free_port()) for index in range(count)]

    def urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]

    def describe(self) -> list[dict[str, object]]:
        """``operator.json``'s ``replicas``: URL and process id of each running replica."""
        return [{"url": r.url, "pid": r.pid} for r in self.replicas if r.running]

    async def start_all(self) -> None:
        await asyncio.gather(*(self.start(replica.index) for replica in self.replicas))

    async def start(self, index: int, *, wait: bool = True) -> Replica:
        """Start replica ``index`` (again, on the same port) and wait until its ``/readyz`` answers 200."""
        replica = self.replicas[index]
        env = {
            **os.environ,
            **self.environment,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(replica.port),
            "POD_NAME": f"operator-{index}-{time.monotonic_ns() % 10**8}",
            "REPLICA_URL": replica.url,
            "LEADER_ELECTION_NAMESPACE": LEASE_NAMESPACE,
        }
        log = (self.log_dir / f"operator-{index}.log").open("ab")
        try:
            replica.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "twilio_video_operator", "run", env=env, stdout=log, stderr=log
            )
        finally:
            log.close()
        if wait:
            await self.wait_ready(index)
        return replica

    async def wait_ready(self, index: int, timeout: float = START_TIMEOUT) -> None:  # noqa: ASYNC109
        replica = self.replicas[index]
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if not replica.running:
                    raise RuntimeError(
                        f"operator replica {index} exited; see {self.log_dir}/operator-{index}.log"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.get(replica.url + "/readyz") as answer:
                        if answer.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"operator replica {index} was not ready within {timeout:.0f}s")

    def signal(self, index: int, signum: signal.Signals) -> None:
        replica = self.replicas[index]
        if replica.running and replica.process is not None:
            replica.process.send_signal(signum)

    async def wait_exit(self, index: int, timeout: float = STOP_TIMEOUT) -> int | None:  # noqa: ASYNC109
        process = self.replicas[index].process
        if process is None:
            return None
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            return await process.wait()

    async def stop_all(self) -> None:
        for replica in self.replicas:
            self.signal(replica.index, signal.SIGTERM)
        await asyncio.gather(*(self.wait_exit(replica.index) for replica in self.replicas))
