"""The real-Kubernetes tier (``docs/real-kubernetes.md``): every test here talks to the kube-apiserver of
k8s.io/kubernetes, with etcd, started once for the session by ``tests/real_kube.py``.

Where the tier cannot be had (no ``go`` on PATH, a build or start that fails) its tests are skipped with
the reason, except under ``CI=true``, where they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from real_kube import RealKube, TierUnavailable, locate_binary, running, unavailable


@pytest.fixture(scope="session")
def real_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKube]:
    """A real API server for the whole session: admin kubeconfig, URL and a ``kubectl`` runner."""
    try:
        binary = locate_binary()
    except TierUnavailable as exc:
        unavailable(str(exc))
    try:
        with running(binary, tmp_path_factory.mktemp("real-kube")) as kube:
            yield kube
    except TierUnavailable as exc:
        unavailable(str(exc))
