"""What the benchmark applies (VideoRooms, Compositions) and how it tells that an object has converged."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twilio_video_operator.kube import COMPOSITIONS, VIDEOROOMS, Resource

API_VERSION = "video.openclaw.io/v1alpha1"

# Long timeouts keep the rooms in progress for the whole measurement (the emulator's clock is real time).
BENCH_ROOM_SPEC: dict[str, Any] = {
    "type": "group",
    "maxParticipants": 10,
    "emptyRoomTimeout": 60,
    "unusedRoomTimeout": 60,
}


def videoroom_manifest(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VideoRoom",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**BENCH_ROOM_SPEC, **spec},
    }


def composition_manifest(namespace: str, name: str, room_sid: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Composition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"roomSid": room_sid, "audioSources": ["*"], "format": "mp4", **spec},
    }


def condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(entry, Mapping) and entry.get("type") == kind:
            return entry
    return None


def condition_true(obj: Mapping[str, Any], kind: str) -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == "True"


def current(obj: Mapping[str, Any]) -> bool:
    """The status reflects the object's latest generation (or says nothing about generations)."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    generation = (obj.get("metadata") or {}).get("generation")
    return observed is None or generation is None or int(observed) >= int(generation)


def operator_room_ready(obj: Mapping[str, Any]) -> bool:
    """The real operator's contract: ``Ready=True`` for the current generation, with a room SID."""
    return bool((obj.get("status") or {}).get("sid")) and condition_true(obj, "Ready") and current(obj)


def room_completed(obj: Mapping[str, Any]) -> bool:
    return (obj.get("status") or {}).get("roomStatus") == "completed"


def naive_room_ready(obj: Mapping[str, Any]) -> bool:
    """The naive operator has no conditions: a SID of an in-progress room is as ready as it gets."""
    status = obj.get("status") or {}
    return bool(status.get("sid")) and status.get("roomStatus") == "in-progress"


def stalled(obj: Mapping[str, Any]) -> bool:
    return condition_true(obj, "Stalled")


def composition_completed(obj: Mapping[str, Any]) -> bool:
    return (obj.get("status") or {}).get("compositionStatus") == "completed"


def composition_failed(obj: Mapping[str, Any]) -> bool:
    return (obj.get("status") or {}).get("compositionStatus") == "failed" or stalled(obj)


@dataclass(frozen=True)
class Workload:
    """``count`` objects of one kind, applied at once, and the predicates that say when each is done."""

    kind: str
    resource: Resource
    namespace: str
    manifests: list[dict[str, Any]]
    done: Callable[[Mapping[str, Any]], bool]
    failed: Callable[[Mapping[str, Any]], bool]

    @property
    def count(self) -> int:
        return len(self.manifests)

    @property
    def names(self) -> list[str]:
        return [str(manifest["metadata"]["name"]) for manifest in self.manifests]


def room_workload(namespace: str, count: int, *, naive: bool, prefix: str = "room") -> Workload:
    width = len(str(count))
    manifests = [videoroom_manifest(namespace, f"{prefix}-{index:0{width}d}") for index in range(count)]
    return Workload(
        kind="VideoRoom",
        resource=VIDEOROOMS,
        namespace=namespace,
        manifests=manifests,
        done=naive_room_ready if naive else operator_room_ready,
        failed=(lambda _: False) if naive else stalled,
    )


def composition_workload(namespace: str, count: int, room_sids: list[str]) -> Workload:
    width = len(str(count))
    manifests = [
        composition_manifest(namespace, f"comp-{index:0{width}d}", room_sids[index % len(room_sids)])
        for index in range(count)
    ]
    return Workload(
        kind="Composition",
        resource=COMPOSITIONS,
        namespace=namespace,
        manifests=manifests,
        done=composition_completed,
        failed=composition_failed,
    )
