"""twilio-video.js ``connect()`` options returned with each token: the room's ``clientProfile`` merged over
the operator's defaults.

Objects merge key by key (so ``bandwidthProfile: {video: {mode: grid}}`` keeps the default bitrate cap);
lists and plain values in the room's profile replace the default. The defaults suit group calls in
browsers that all do VP8 (Chrome, Firefox, Edge). Audiences mostly on Safari/iOS do better with
``preferredVideoCodecs: [{codec: H264}]`` in the room's ``clientProfile`` (H.264 is hardware-accelerated
there; simulcast is a VP8 feature).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

DEFAULT_CONNECT_OPTIONS: dict[str, Any] = {
    "bandwidthProfile": {"video": {"mode": "collaboration", "maxSubscriptionBitrate": 2_500_000}},
    "networkQuality": {"local": 1, "remote": 1},
    "dominantSpeaker": True,
    "preferredVideoCodecs": [{"codec": "VP8", "simulcast": True}],
}


def merge_options(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: nested objects merge, everything else replaces; inputs are not changed."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_options(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def connect_options(
    client_profile: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The options for one room (``client_profile`` in its JSON form: camelCase keys, unset fields absent)."""
    return merge_options(DEFAULT_CONNECT_OPTIONS if defaults is None else defaults, client_profile or {})
