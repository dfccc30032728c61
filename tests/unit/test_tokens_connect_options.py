"""connectOptions: the room's clientProfile over the operator's defaults."""

from __future__ import annotations

import copy

from twilio_video_operator.models import ClientProfile
from twilio_video_operator.tokens.connect_options import (
    DEFAULT_CONNECT_OPTIONS,
    connect_options,
    merge_options,
)


def test_defaults_for_production() -> None:
    assert connect_options(None) == {
        "bandwidthProfile": {"video": {"mode": "collaboration", "maxSubscriptionBitrate": 2500000}},
        "networkQuality": {"local": 1, "remote": 1},
        "dominantSpeaker": True,
        "preferredVideoCodecs": [{"codec": "VP8", "simulcast": True}],
    }


def test_the_room_profile_merges_objects_and_replaces_the_rest() -> None:
    profile = ClientProfile.model_validate(
        {
            "bandwidthProfile": {"video": {"mode": "grid"}},
            "networkQuality": {"remote": 0},
            "dominantSpeaker": False,
            "preferredVideoCodecs": [{"codec": "H264"}],
            "maxAudioBitrate": 16000,
            "degradation": {},
        }
    )

    options = connect_options(profile.to_dict())

    assert options == {
        "bandwidthProfile": {"video": {"mode": "grid", "maxSubscriptionBitrate": 2500000}},
        "networkQuality": {"local": 1, "remote": 0},
        "dominantSpeaker": False,
        "preferredVideoCodecs": [{"codec": "H264"}],
        "maxAudioBitrate": 16000,
        "degradation": {
            "audioOnlyBelowLevel": 2,
            "afterSeconds": 10,
            "restoreAtLevel": 3,
            "restoreAfterSeconds": 30,
        },
    }


def test_merging_never_changes_its_inputs() -> None:
    before = copy.deepcopy(DEFAULT_CONNECT_OPTIONS)
    override = {"bandwidthProfile": {"video": {"mode": "presentation"}}}
    result = merge_options(DEFAULT_CONNECT_OPTIONS, override)
    result["bandwidthProfile"]["video"]["mode"] = "changed"
    result["preferredVideoCodecs"].append({"codec": "VP9"})
    assert before == DEFAULT_CONNECT_OPTIONS
    assert override == {"bandwidthProfile": {"video": {"mode": "presentation"}}}


def test_custom_defaults_can_be_given() -> None:
    assert connect_options({"a": {"c": 2}}, defaults={"a": {"b": 1}}) == {"a": {"b": 1, "c": 2}}
