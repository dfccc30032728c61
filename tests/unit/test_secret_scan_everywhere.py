"""The secret scan (tests/secret_scan.py) watches every test of the suite, not only the chaos suites."""

from __future__ import annotations

import logging

import pytest

from secret_scan import SecretScanner, scan_enabled


def test_this_unit_test_is_scanned(request: pytest.FixtureRequest, secret_scanner: SecretScanner) -> None:
    assert scan_enabled(request.node)
    logging.getLogger("twilio_video_operator.example").warning("room %s reconciled", "standup")
    assert any("room standup reconciled" in text for _, text in secret_scanner.evidence)


@pytest.mark.no_secret_scan
def test_the_marker_opts_out(request: pytest.FixtureRequest) -> None:
    assert not scan_enabled(request.node)
