"""The kinds registry."""

from __future__ import annotations

import pytest

from twilio_video_operator.models import COMPOSITION, KINDS, SIGNINGKEYROTATION, VIDEOROOM, kind_info
from twilio_video_operator.models.kinds import API_VERSION


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


def test_printer_columns_follow_the_contract() -> None:
    assert [c.name for c in VIDEOROOM.printer_columns] == ["SID", "STATUS", "PARTICIPANTS", "READY", "AGE"]
    assert [c.name for c in COMPOSITION.printer_columns] == ["SID", "STATUS", "PROGRESS", "READY", "AGE"]
    assert [c.name for c in SIGNINGKEYROTATION.printer_columns] == [
        "ACTIVE KEY",
        "REVISION",
        "NEXT ROTATION",
        "READY",
        "AGE",
    ]


def test_lookup_and_spec_validation_through_the_registry() -> None:
    assert kind_info("Composition") is COMPOSITION
    assert kind_info("VideoRoom").validate_spec({"maxParticipants": 51}) == [
        "spec.maxParticipants: Input should be less than or equal to 50"
    ]
    assert kind_info("SigningKeyRotation").validate_spec({"secretName": "k"}) == []
    with pytest.raises(KeyError):
        kind_info("Room")
