"""The real-Kubernetes tier: etcd and the kube-apiserver of k8s.io/kubernetes, run from the Go program in
``tests/kube-apiserver/`` (``make kube-apiserver`` builds it into ``.cache/kube-apiserver/``), for the
tests of ``tests/realkube/``. ``docs/real-kubernetes.md`` describes the tier.

:func:`locate_binary` finds the binary (building it with ``make kube-apiserver`` when ``go`` is on PATH),
:func:`running` starts it and yields a :class:`RealKube` (admin kubeconfig, server URL) until the ``with``
block ends, then stops it with SIGTERM. :func:`unavailable` is the skip rule: a tier that cannot be had is
skipped, except under ``CI=true``, where it fails. The server audits the requests of ServiceAccounts
(:func:`service_account_requests`), so a test can see what real RBAC answered an operator.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import selectors
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO_ROOT / ".cache" / "kube-apiserver"
BINARY = CACHE_DIR / "kube-apiserver"
# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule), fetched by `make kube-apiserver` too.
MONITORING_CRDS = CACHE_DIR / "crds"
# A binary built elsewhere (a machine without Go can be handed one); it is used as it is, never rebuilt.
BINARY_ENV = "KUBE_APISERVER_BINARY"
KUBECTL = Path(sys.executable).parent / "kubectl"
# Upper bounds for a stuck process, not expectations: a cold build of the program takes many minutes.
BUILD_TIMEOUT = 3600.0
START_TIMEOUT = 300.0
STOP_TIMEOUT = 90.0


# What the server audits: the requests of ServiceAccounts (operators run as the chart's, so that real RBAC
# decides their calls) at the Metadata level (user, verb, URI, response code), once each, when answered.
AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}


class TierUnavailable(Exception):
    """The real API server cannot be built or started here; the message says why."""


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test or fixture, or fail it under ``CI=true``, where the tier must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"real Kubernetes tier unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(f"real Kubernetes tier unavailable: {reason}")


def locate_binary() -> Path:
    """The kube-apiserver program: ``$KUBE_APISERVER_BINARY`` if set, else ``.cache/kube-apiserver/``,
    brought up to date by ``make kube-apiserver`` (which rebuilds only when its sources changed)."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        path = Path(explicit)
        if not os.access(path, os.X_OK):
            raise TierUnavailable(f"{BINARY_ENV}={explicit} is not an executable file")
        return path
    if shutil.which("go") is None:
        raise TierUnavailable(
            "`go` is not on PATH, so tests/kube-apiserver cannot be built "
            f"(install Go, or set {BINARY_ENV} to a built binary)"
        )
    if shutil.which("make") is None:
        raise TierUnavailable("`make` is not on PATH")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    log = CACHE_DIR / "build.log"
    # One build at a time: two test sessions would otherwise write the same output file.
    with (CACHE_DIR / ".build.lock").open("w") as lock, log.open("w") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            result = subprocess.run(
                ["make", "--no-print-directory", "kube-apiserver"],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TierUnavailable(
                f"`make kube-apiserver` did not finish within {BUILD_TIMEOUT:.0f}s"
            ) from None
    if result.returncode != 0 or not BINARY.exists():
        raise TierUnavailable(f"`make kube-apiserver` failed (exit {result.returncode}):\n{_tail(log)}")
    return BINARY


@dataclass(frozen=True)
class RealKube:
    """A running API server: its admin kubeconfig and URL, and the files of the admin credential."""

    kubeconfig: Path
    server: str
    log: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    audit_log: Path
    """JSON lines of the audit log: by default every request of a ServiceAccount (``system:serviceaccounts``)
    with its user and response code (:func:`service_account_requests`), nobody else's."""

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl`` (the one of the virtualenv, 1.37) against this server as the admin."""
        result = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def request(
        self, method: str, path: str, body: Any = None, query: str = ""
    ) -> tuple[int, dict[str, Any], list[str]]:
        """One API request as the admin: (HTTP status, decoded JSON body, Warning headers)."""
        data = None if body is None else json.dumps(body).encode()
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        url = self.server + path + (f"?{query}" if query else "")
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": content_type}
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as response:
                return response.status, json.load(response), response.headers.get_all("Warning") or []
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.load(error), error.headers.get_all("Warning") or []


@contextlib.contextmanager
def running(binary: Path, workdir: Path, *extra_args: str) -> Iterator[RealKube]:
    """Start ``binary`` (its own temporary directory, ports chosen by the kernel), wait for its JSON line,
    yield the server, then stop it with SIGTERM and wait for it to exit. ``extra_args`` go to the
    kube-apiserver itself (after ``--``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    kubeconfig = workdir / "admin.kubeconfig"
    log = workdir / "kube-apiserver.log"
    audit_log, audit_args = _audit(workdir, extra_args)
    command = [str(binary), "--kubeconfig", str(kubeconfig), "--exit-on-stdin-eof"]
    command += ["--", *audit_args, *extra_args]
    with log.open("w") as stderr:
        # stdin stays open for the process's lifetime: if this Python process dies without stopping
        # it, the pipe closes and the server stops by itself (--exit-on-stdin-eof).
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        line = _first_line(process, START_TIMEOUT)
        if not line:
            process.wait(timeout=STOP_TIMEOUT)
            raise TierUnavailable(
                f"kube-apiserver exited {process.returncode} before it was ready:\n{_tail(log)}"
            )
        ready = json.loads(line)
        yield RealKube(
            kubeconfig=Path(ready["kubeconfig"]),
            server=ready["server"],
            log=log,
            audit_log=audit_log,
            **_credential_files(Path(ready["kubeconfig"]), workdir),
        )
    finally:
        _stop(process)


def _audit(workdir: Path, extra_args: tuple[str, ...]) -> tuple[Path, tuple[str, ...]]:
    """The audit log and the flags that write it: :data:`AUDIT_POLICY`'s, unless the caller audits in its
    own way (``--audit-log-path`` among ``extra_args``)."""
    for arg in extra_args:
        if arg.startswith("--audit-log-path="):
            return Path(arg.partition("=")[2]), ()
    policy = workdir / "audit-policy.yaml"
    policy.write_text(yaml.safe_dump(AUDIT_POLICY), encoding="utf-8")
    log = workdir / "audit.log"
    return log, (f"--audit-policy-file={policy}", f"--audit-log-path={log}", "--audit-log-format=json")


def service_account_requests(kube: RealKube, user: str) -> list[dict[str, Any]]:
    """The audit events of the requests ``user`` (``system:serviceaccount:NAMESPACE:NAME``) made so far,
    as the server logs them: ``verb``, ``requestURI``, ``objectRef``, ``responseStatus`` ({"code": ...})..."""
    if not kube.audit_log.exists():
        return []
    events = []
    for line in kube.audit_log.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") == user:
            events.append(event)
    return events


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line of the process's stdout, or "" when it closes stdout (exits) first."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise TierUnavailable(f"kube-apiserver printed nothing within {timeout:.0f}s")
    return process.stdout.readline()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def _credential_files(kubeconfig: Path, workdir: Path) -> dict[str, Path]:
    """Write the CA and the admin's certificate and key of the kubeconfig to files (Python's ssl module
    reads them only from files)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    files = {
        "ca_file": (workdir / "ca.crt", cluster["certificate-authority-data"]),
        "cert_file": (workdir / "admin.crt", user["client-certificate-data"]),
        "key_file": (workdir / "admin.key", user["client-key-data"]),
    }
    for path, data in files.values():
        path.write_bytes(base64.b64decode(data))
        path.chmod(0o600)
    return {name: path for name, (path, _) in files.items()}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
