"""Chaos suites: faults, crashes, hostile manifests, fuzzed webhooks and token abuse.

``CHAOS_LEVEL=full`` (what ``make test-chaos`` sets) runs every case; the default, ``reduced``, runs a small
bounded subset that is part of ``make test``. Every test here carries the ``chaos`` marker and, like every
test of the suite, is watched by the secret scan (``tests/secret_scan.py``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

CHAOS_DIR = Path(__file__).resolve().parent
BENCH_DIR = CHAOS_DIR.parent / "bench"
for directory in (CHAOS_DIR, BENCH_DIR):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

from chaos_support import NAMESPACE, chaos_level, collect_stack  # noqa: E402
from operator_stack import Stack  # noqa: E402

import secret_scan  # noqa: E402
from kube_backends import KubeBackend  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    try:
        chaos_level()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).is_relative_to(CHAOS_DIR):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
def level() -> str:
    return chaos_level()


@pytest_asyncio.fixture
async def stack(
    tmp_path: Path, secret_scanner: secret_scan.SecretScanner, kube_backend: KubeBackend
) -> AsyncIterator[Stack]:
    """A Kubernetes API (a fresh embedded one unless the test runs on both backends) and the Twilio emulator
    (no operator yet) for one test."""
    async with Stack(tmp_path / "stack", namespaces=(NAMESPACE,), backend=kube_backend) as started:
        try:
            yield started
        finally:
            await collect_stack(secret_scanner, started)
