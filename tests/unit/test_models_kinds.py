"""The kinds registry."""

from __future__ import annotations

import re

import pytest

from twilio_video_operator.models import COMPOSITION, KINDS, SIGNINGKEYROTATION, VIDEOROOM, kind_info
from twilio_video_operator.models.kinds import API_VERSION, KindInfo


def test_names_and_short_names() -> None:
    assert API_VERSION == "video.openclaw.io/v1alpha1"
    assert [(k.kind, k.plural, k.singular, k.short_names) for k in KINDS] == [
        ("VideoRoom", "videorooms", "videoroom", ("vroom",)),
        ("Composition", "compositions", "composition", ("vcomp",)),
        ("SigningKeyRotation", "signingkeyrotations", "signingkeyrotation", ("skr",)),
    ]
    assert VIDEOROOM.crd_name == "videorooms.video.openclaw.io"
    assert COMPOSITION.resource == "video.openclaw.io/v1alpha1/compositions"
    assert SIGNINGKEYROTATION.list_kind == "SigningKeyRotationList"


def default_columns(info: KindInfo) -> list[str]:
    return [c.name for c in info.printer_columns if c.priority == 0]


def wide_columns(info: KindInfo) -> list[str]:
    return [c.name for c in info.printer_columns if c.priority == 1]


def test_printer_columns_follow_the_contract() -> None:
    assert default_columns(VIDEOROOM) == ["SID", "STATUS", "PARTICIPANTS", "READY", "AGE"]
    assert default_columns(COMPOSITION) == ["SID", "STATUS", "PROGRESS", "READY", "AGE"]
    assert default_columns(SIGNINGKEYROTATION) == ["ACTIVE KEY", "REVISION", "NEXT ROTATION", "READY", "AGE"]


def test_wide_columns_come_after_the_default_ones() -> None:
    """`kubectl get -o wide` adds the priority-1 columns; they follow AGE, as kubectl's own wide views do."""
    assert wide_columns(VIDEOROOM) == ["UNIQUE NAME", "TYPE", "MAX PARTICIPANTS", "SESSIONS", "REASON"]
    assert wide_columns(COMPOSITION) == [
        "ROOM",
        "ROOM SID",
        "FORMAT",
        "DURATION",
        "SIZE",
        "DELIVERED",
        "REASON",
    ]
    assert wide_columns(SIGNINGKEYROTATION) == ["SECRET", "NEXT KEY", "PREVIOUS KEY", "ROTATING", "REASON"]
    for info in (VIDEOROOM, COMPOSITION, SIGNINGKEYROTATION):
        priorities = [c.priority for c in info.printer_columns]
        assert priorities == sorted(priorities) and set(priorities) == {0, 1}, info.kind


def test_lookup_and_spec_validation_through_the_registry() -> None:
    assert kind_info("Composition") is COMPOSITION
    assert kind_info("VideoRoom").validate_spec({"maxParticipants": 51}) == [
        "spec.maxParticipants: Input should be less than or equal to 50"
    ]
    assert kind_info("SigningKeyRotation").validate_spec({"secretName": "k"}) == []
    with pytest.raises(KeyError):
        kind_info("Room")


def test_crd_reference_lists_the_wide_columns() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "crd-reference.md").read_text(encoding="utf-8")
    for info in KINDS:
        section = text[text.index("Columns added by `-o wide`") :]
        row = next(line for line in section.splitlines() if line.startswith(f"| {info.kind} | "))
        listed = [re.sub(r"\s*\(.*?\)", "", name).strip(" `") for name in row.split("|")[2].split(",")]
        assert listed == wide_columns(info), info.kind
