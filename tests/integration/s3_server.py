"""The ``s3_server`` fixture: a real S3 service (SeaweedFS, see :mod:`twilio_video_playground.s3`).

Use the ``s3_server`` fixture (one server per test session; make a fresh bucket per test with
:meth:`SeaweedS3.create_bucket`) or build a :class:`SeaweedS3` yourself when a test stops and restarts it.
Tests in ``tests/integration`` write ``from s3_server import s3_server_fixture`` (pytest puts the test's
directory on ``sys.path``); importing ``s3_server_fixture`` provides the ``s3_server`` fixture. The server
itself lives in the product's dev package, which ``make demo`` shares; it is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from twilio_video_playground.s3 import S3Identity, SeaweedS3, free_ports, weed_binary

__all__ = ["S3Identity", "SeaweedS3", "free_ports", "s3_server_fixture", "weed_binary"]


@pytest.fixture(scope="session", name="s3_server")
def s3_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server shared by the test session; create a bucket per test."""
    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
