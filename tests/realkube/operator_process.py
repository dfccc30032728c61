"""The Twilio emulator and the operator as processes of their own, for the operator run out of cluster
against the real kube-apiserver: ``python -m twilio_video_emulator`` and ``python -m
twilio_video_operator run``, each on 127.0.0.1, logging to a file, stopped with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def emulator(log: Path) -> Iterator[dict[str, str]]:
    """A Twilio emulator; yields its credentials (``url``, ``account_sid``, ``auth_token``...)."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "twilio_video_emulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT):
                raise AssertionError(f"the emulator printed nothing within {START_TIMEOUT:.0f}s; see {log}")
        line = process.stdout.readline()
        assert line, f"the emulator exited {process.wait()}; see {log}"
        yield dict(json.loads(line))
    finally:
        _stop(process)
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def operator(environment: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``twilio-video-operator run`` with ``environment`` on top of this process's (``HTTP_PORT`` must
    be set); yields the process once ``/readyz`` answers 200."""
    url = f"http://127.0.0.1:{environment['HTTP_PORT']}"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "twilio_video_operator", "run"],
            env={**os.environ, **environment},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready(url):
            if process.poll() is not None:
                raise AssertionError(f"the operator exited {process.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the operator was not ready within {START_TIMEOUT:.0f}s:\n{tail(log)}")
            time.sleep(0.2)
        yield process
    finally:
        _stop(process)


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def http_json(
    method: str, url: str, body: Any = None, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    """One JSON request over plain HTTP (the emulator, the operator's HTTP server): status and answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return answer.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as error:
        with error:
            text = error.read()
            try:
                return error.code, json.loads(text) if text else None
            except ValueError:
                return error.code, text.decode(errors="replace")
