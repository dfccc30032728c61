"""One conditions vocabulary: every declared reason is written by the operator and documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from twilio_video_operator.delivery.errors import DeliveryReason
from twilio_video_operator.models.conditions import REASON_PATTERN, Reason

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "operator" / "twilio_video_operator"
DECLARED_IN = PACKAGE / "models" / "conditions.py"
REFERENCE = REPO / "docs" / "crd-reference.md"
#: Words that once named one thing in several ways; the vocabulary keeps one of each.
RETIRED = ("Throttled", "CredentialsInvalid", "Forbidden", "Available", "ForeignRoom", "RoomNotFound")


#: Where conditions are written (the token service and the embedded API answer HTTP errors of their own).
CONDITION_WRITERS = ("reconcilers", "handlers", "controllers", "kube")


def operator_sources() -> str:
    return "\n".join(
        path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != DECLARED_IN and path.relative_to(PACKAGE).parts[0] in CONDITION_WRITERS
    )


def reasons_table() -> dict[str, str]:
    """``reason -> row`` of the table under "Condition reasons" in the CRD reference."""
    text = REFERENCE.read_text()
    section = text.split("### Condition reasons", 1)[1].split("\n## ", 1)[0]
    return {match.group(1): match.group(0) for match in re.finditer(r"^\| `(\w+)` \|.*$", section, re.M)}


@pytest.mark.parametrize("reason", list(Reason), ids=lambda reason: reason.value)
def test_every_declared_reason_is_used(reason: Reason) -> None:
    assert re.search(rf"\bReason\.{reason.name}\b", operator_sources()), (
        f"{reason.value} is declared but unused"
    )


@pytest.mark.parametrize("reason", list(Reason), ids=lambda reason: reason.value)
def test_every_declared_reason_is_documented(reason: Reason) -> None:
    assert reason.value in reasons_table(), f"{reason.value} is missing from docs/crd-reference.md"
    assert re.fullmatch(REASON_PATTERN, reason.value)


def test_the_documented_reasons_are_the_declared_ones() -> None:
    assert set(reasons_table()) == {reason.value for reason in Reason}


def test_delivery_reasons_are_documented_beside_them() -> None:
    text = REFERENCE.read_text().split("### Condition reasons", 1)[1]
    for reason in DeliveryReason:
        assert f"`{reason.value}`" in text


def test_no_reason_is_spelled_two_ways() -> None:
    values = [reason.value for reason in Reason]
    assert len(values) == len(set(values))
    sources = operator_sources()
    for word in RETIRED:
        assert word not in values
        assert not re.search(rf'"{word}"', sources), f"the retired reason {word} is still written somewhere"
