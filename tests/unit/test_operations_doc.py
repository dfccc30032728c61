"""Claims of docs/operations.md that the code can check: where kopf keeps its bookkeeping."""

from __future__ import annotations

import re
from pathlib import Path

from twilio_video_operator.runner import FINALIZER, build_kopf_settings
from twilio_video_operator.settings import load_settings

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_kopf_annotation_prefix_and_finalizer_are_the_ones_documented() -> None:
    text = " ".join(OPERATIONS.read_text(encoding="utf-8").split())
    match = re.search(r"kept in annotations under the `([^`]+)/` prefix", text)
    assert match is not None, "operations.md names the prefix of kopf's annotations"
    settings = build_kopf_settings(
        load_settings(TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t", PUBLIC_BASE_URL="https://x")
    )
    progress = settings.persistence.progress_storage
    diffbase = settings.persistence.diffbase_storage
    assert getattr(progress, "prefix", None) == match.group(1)
    assert getattr(diffbase, "prefix", None) == match.group(1)
    assert f"`{match.group(1)}/{getattr(diffbase, 'key', '')}`" in text
    assert f"the finalizer is `{FINALIZER}`" in text
