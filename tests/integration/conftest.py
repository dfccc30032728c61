"""Shared fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from twilio_video_playground.kube import EmbeddedKubernetes

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def kube() -> AsyncIterator[EmbeddedKubernetes]:
    """The embedded Kubernetes API on 127.0.0.1 with the project's CRDs (``crds/``) registered."""
    async with EmbeddedKubernetes(REPO / "crds") as server:
        yield server


@pytest.fixture
def kubeconfig(kube: EmbeddedKubernetes, tmp_path: Path) -> Path:
    """A kubeconfig file for kubectl and kopf pointing at :func:`kube`."""
    return kube.write_kubeconfig(tmp_path / "kubeconfig")
