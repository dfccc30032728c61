"""Events served by both ``v1`` and ``events.k8s.io/v1``: one storage, two shapes.

The API server keeps core Events and shows them through ``events.k8s.io/v1`` converted
(k8s.io/kubernetes/pkg/apis/events/v1/conversion.go): ``involvedObject`` is ``regarding``, ``message`` is
``note``, ``reportingComponent`` is ``reportingController``, ``source`` is ``deprecatedSource``, the
``firstTimestamp``, ``lastTimestamp`` and ``count`` are ``deprecated...``; the other fields keep their names.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# core v1 name -> events.k8s.io/v1 name
_RENAMED = {
    "involvedObject": "regarding",
    "message": "note",
    "reportingComponent": "reportingController",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
}
_SHARED = ("metadata", "eventTime", "series", "reportingInstance", "action", "reason", "related", "type")
# events.k8s.io/v1 fields Go always writes (structs, and eventTime without omitempty), and their zero values
_ALWAYS: dict[str, Any] = {"eventTime": None, "regarding": {}, "deprecatedSource": {}}
_TIMES = ("deprecatedFirstTimestamp", "deprecatedLastTimestamp")


def core_to_events_v1(event: Mapping[str, Any]) -> dict[str, Any]:
    """A stored core Event as ``events.k8s.io/v1`` serves it."""
    out: dict[str, Any] = {"apiVersion": "events.k8s.io/v1", "kind": "Event"}
    for key in _SHARED:
        if key in event:
            out[key] = copy.deepcopy(event[key])
    for old, new in _RENAMED.items():
        if old in event:
            out[new] = copy.deepcopy(event[old])
    for key, zero in _ALWAYS.items():
        if out.get(key) is None:
            out[key] = copy.deepcopy(zero)
    for key in _TIMES:
        out.setdefault(key, None)
    # omitempty strings and counts of the events.k8s.io type
    for key in (
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "note",
        "type",
        "deprecatedCount",
    ):
        if out.get(key) in ("", 0, None):
            out.pop(key, None)
    return out


def events_v1_to_core(event: Mapping[str, Any]) -> dict[str, Any]:
    """An ``events.k8s.io/v1`` Event as the core Event it is stored as."""
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for key in _SHARED:
        if key in event:
            out[key] = copy.deepcopy(event[key])
    for old, new in _RENAMED.items():
        if new in event and event[new] is not None:
            out[old] = copy.deepcopy(event[new])
    return out
