"""The playground on a real control plane (``dev --kube real``): etcd and the kube-apiserver of
k8s.io/kubernetes, built from ``tests/kube-apiserver/`` of a source checkout by ``make kube-apiserver``
(docs/real-kubernetes.md).

:func:`locate_binary` finds the program (``$KUBE_APISERVER_BINARY``, else the checkout's
``.cache/kube-apiserver/``); :class:`RealKubeApiServer` runs it on 127.0.0.1 until stopped. The program
writes an admin kubeconfig (client certificate, the server's CA) and prints one JSON line when ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from twilio_video_playground.checkout import REPOSITORY

BINARY_ENV = "KUBE_APISERVER_BINARY"
START_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0


class RealKubeUnavailable(RuntimeError):
    """The real kube-apiserver cannot be run here; the message says why in one line."""


def checkout_binary() -> Path:
    """Where ``make kube-apiserver`` puts the program in a source checkout."""
    return REPOSITORY / ".cache" / "kube-apiserver" / "kube-apiserver"


def locate_binary() -> Path:
    explicit = os.environ.get(BINARY_ENV)
    path = Path(explicit) if explicit else checkout_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RealKubeUnavailable(
            f"no kube-apiserver at {path}: build it with `make kube-apiserver` (needs Go) "
            f"or set {BINARY_ENV} to a built one"
        )
    return path


class RealKubeApiServer:
    """One kube-apiserver process with its etcd, writing its admin kubeconfig to ``kubeconfig``."""

    def __init__(self, binary: Path, kubeconfig: Path, log: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.log = log
        self.url: str | None = None
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            # stdin stays open while the process runs: should this process die without stopping it,
            # the pipe closes and the server stops by itself (--exit-on-stdin-eof).
            self._process = await asyncio.create_subprocess_exec(
                str(self.binary),
                "--kubeconfig",
                str(self.kubeconfig),
                "--exit-on-stdin-eof",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            raise RealKubeUnavailable(f"kube-apiserver was not ready within {START_TIMEOUT:.0f}s") from None
        if not line:
            code = await self._process.wait()
            raise RealKubeUnavailable(f"kube-apiserver exited {code} before it was ready; see {self.log}")
        self.url = str(json.loads(line)["server"])

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if process.stdin is not None:
            process.stdin.close()
