"""Helpers of the chaos suites: applying objects, waiting for convergence, and the invariants that must hold
afterwards (no duplicate or orphaned Twilio rooms and keys, every object converged)."""

from __future__ import annotations

import asyncio
import base64
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from operator_stack import REPO_ROOT, OperatorProcess, Stack, wait_until
from workloads import (
    composition_manifest,
    condition,
    condition_true,
    current,
    operator_room_ready,
    videoroom_manifest,
)

from secret_scan import SecretScanner
from twilio_video_emulator.compositions import service_of
from twilio_video_operator.kube import COMPOSITIONS, SIGNINGKEYROTATIONS, VIDEOROOMS

NAMESPACE = "chaos"
LEVELS = ("reduced", "full")
HANDLERS_DIR = REPO_ROOT / "operator" / "twilio_video_operator" / "handlers"
ObjectCheck = Callable[[Mapping[str, Any]], bool]


def chaos_level() -> str:
    """``CHAOS_LEVEL``: ``reduced`` (default: the bounded subset ``make test`` runs) or ``full``."""
    level = os.environ.get("CHAOS_LEVEL", "reduced").strip().lower() or "reduced"
    if level not in LEVELS:
        raise ValueError(f"CHAOS_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}")
    return level


def full() -> bool:
    return chaos_level() == "full"


def by_level(reduced: Any, full_level: Any) -> Any:
    return full_level if full() else reduced


def handler_exists(module: str) -> bool:
    return (HANDLERS_DIR / f"{module}.py").exists()


def require_handler(module: str) -> None:
    """Skip the test, saying so, when ``handlers/<module>.py`` does not exist (yet)."""
    if not handler_exists(module):
        pytest.skip(f"not available: the {module} handler (handlers/{module}.py) does not exist")


async def collect_stack(scanner: SecretScanner, stack: Stack) -> None:
    """Hand the stack's evidence and secrets to the secret scan (operators are stopped first, so their
    logs are complete)."""
    for operator in stack.operators:
        await operator.stop()
    observe_stack(scanner, stack)


def observe_stack(scanner: SecretScanner, stack: Stack) -> None:
    """Hand what the stack holds now (logs, Events, statuses, secrets) to the secret scan."""
    for operator in stack.operators:
        scanner.add_file(
            f"log of the {operator.flavor} process ({operator.log_path.name})", operator.log_path
        )
    for value in stack.harvest_secrets():
        scanner.add_secret(value, "a secret held by the emulator or a Kubernetes Secret")
    for plural, api_version in (
        ("events", "v1"),
        ("videorooms", ""),
        ("compositions", ""),
        ("signingkeyrotations", ""),
    ):
        scanner.add_objects("Kubernetes API", stack.objects(plural, api_version))


async def start_operator(stack: Stack, **env: str) -> OperatorProcess:
    operator = stack.new_operator("operator", env={"LOG_LEVEL": "DEBUG", **env})
    await operator.start()
    return operator


# --- VideoRooms ------------------------------------------------------------------------------------------


def room_names(count: int, prefix: str = "room") -> list[str]:
    return [f"{prefix}-{index}" for index in range(count)]


async def create_rooms(stack: Stack, names: Sequence[str], **spec: Any) -> None:
    await asyncio.gather(
        *(
            stack.client.create(VIDEOROOMS, NAMESPACE, videoroom_manifest(NAMESPACE, name, **spec))
            for name in names
        )
    )


async def complete_rooms(stack: Stack, names: Sequence[str]) -> None:
    await asyncio.gather(
        *(stack.client.patch(VIDEOROOMS, NAMESPACE, name, {"spec": {"state": "Completed"}}) for name in names)
    )


def room_in_progress(obj: Mapping[str, Any]) -> bool:
    return operator_room_ready(obj) and (obj.get("status") or {}).get("roomStatus") == "in-progress"


def room_completed(obj: Mapping[str, Any]) -> bool:
    return operator_room_ready(obj) and (obj.get("status") or {}).get("roomStatus") == "completed"


async def wait_objects(
    stack: Stack, plural: str, names: Sequence[str], check: ObjectCheck, *, within: float
) -> dict[str, Any]:
    """Wait until ``check`` holds for every named object; the statuses of those that never got there.
    Each round is one read of the namespace (on the real API a list from its watch cache, off the event
    loop, which also serves the emulator), not a request per object."""

    async def laggards() -> dict[str, Any]:
        found = await stack.objects_by_name(plural, NAMESPACE)
        return {
            name: (found.get(name) or {}).get("status")
            for name in names
            if name not in found or not check(found[name])
        }

    async def converged() -> bool:
        return not await laggards()

    await wait_until(converged, within=within, interval=0.2)
    return await laggards()


def unique_name_of(obj: Mapping[str, Any]) -> str:
    metadata = obj["metadata"]
    return str((obj.get("spec") or {}).get("uniqueName") or f"{metadata['namespace']}:{metadata['name']}")


def room_invariants(stack: Stack, names: Sequence[str], *, twilio_status: str) -> list[str]:
    """Problems with the rooms of ``names``: every CR converged on exactly one Twilio room of its own,
    in ``twilio_status``, and no Twilio room that belongs to no CR."""
    problems: list[str] = []
    rooms = list(stack.emulator.state.rooms.values())
    by_name: dict[str, list[Any]] = {}
    for room in rooms:
        by_name.setdefault(room.unique_name, []).append(room)
    in_progress = Counter(room.unique_name for room in rooms if room.status == "in-progress")
    problems += [
        f"{count} in-progress Twilio rooms named {name!r}" for name, count in in_progress.items() if count > 1
    ]
    expected_names = set()
    for name in names:
        obj = stack.object("videorooms", NAMESPACE, name)
        if obj is None:
            problems.append(f"VideoRoom {name} is gone")
            continue
        unique_name = unique_name_of(obj)
        expected_names.add(unique_name)
        status = obj.get("status") or {}
        mine = by_name.get(unique_name, [])
        sessions = int((status.get("sessions") or {}).get("count") or 1)
        if len(mine) != sessions:
            problems.append(
                f"VideoRoom {name}: {len(mine)} Twilio rooms for {sessions} session(s): "
                f"{[r.sid for r in mine]}"
            )
        if mine and status.get("sid") != mine[-1].sid:
            problems.append(
                f"VideoRoom {name}: status.sid {status.get('sid')} is not the Twilio room {mine[-1].sid}"
            )
        if mine and mine[-1].status != twilio_status:
            problems.append(
                f"VideoRoom {name}: Twilio room {mine[-1].sid} is {mine[-1].status}, not {twilio_status}"
            )
        if status.get("roomStatus") != twilio_status:
            problems.append(
                f"VideoRoom {name}: status.roomStatus is {status.get('roomStatus')}, not {twilio_status}"
            )
        if not (condition_true(obj, "Ready") and current(obj)) or condition_true(obj, "Stalled"):
            problems.append(f"VideoRoom {name} did not converge: {status.get('conditions')}")
    strangers = sorted({room.sid for room in rooms if room.unique_name not in expected_names})
    if strangers:
        problems.append(f"Twilio rooms that belong to no VideoRoom: {strangers}")
    return problems


# --- SigningKeyRotations ---------------------------------------------------------------------------------


def rotation_manifest(name: str, *, prefix: str, secret_name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "video.openclaw.io/v1alpha1",
        "kind": "SigningKeyRotation",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "secretName": secret_name or f"{name}-secret",
            "rotationInterval": "720h",
            "stagePeriod": "1s",
            "overlap": "1h",
            "friendlyNamePrefix": prefix,
            "deletionPolicy": "Revoke",
        },
    }


async def request_rotation(stack: Stack, name: str, token: str) -> None:
    patch = {"metadata": {"annotations": {"video.openclaw.io/rotate-requested-at": token}}}
    await stack.client.patch(SIGNINGKEYROTATIONS, NAMESPACE, name, patch)


def rotation_ready(revision: int) -> ObjectCheck:
    def check(obj: Mapping[str, Any]) -> bool:
        status = obj.get("status") or {}
        return (
            condition_true(obj, "Ready")
            and current(obj)
            and int(status.get("revision") or 0) >= revision
            and not status.get("pendingKey")
        )

    return check


def decoded_secret(stack: Stack, name: str) -> dict[str, str]:
    secret = stack.object("secrets", NAMESPACE, name, "v1") or {}
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def rotation_invariants(stack: Stack, name: str, *, prefix: str) -> list[str]:
    """Problems with one rotation: every live Twilio key of its prefix is one the Secret holds (no orphan),
    one key per friendly name (no duplicate), and the Secret's active key is live with the right secret."""
    problems: list[str] = []
    obj = stack.object("signingkeyrotations", NAMESPACE, name)
    if obj is None:
        return [f"SigningKeyRotation {name} is gone"]
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    keys = {
        key.sid: key for key in stack.emulator.state.keys.values() if key.friendly_name.startswith(prefix)
    }
    names = Counter(key.friendly_name for key in keys.values())
    problems += [f"{count} live keys named {fname!r}" for fname, count in names.items() if count > 1]
    slots = ("activeKeySid", "nextKeySid", "previousKeySid")
    referenced = {str(status[slot]) for slot in slots if status.get(slot)}
    orphans = sorted(set(keys) - referenced)
    if orphans:
        problems.append(f"orphaned keys (live at Twilio, referenced by nothing): {orphans}")
    missing = sorted(sid for sid in referenced if sid not in keys)
    if missing:
        problems.append(f"status references keys that do not exist: {missing}")
    data = decoded_secret(stack, str(spec.get("secretName")))
    active = status.get("activeKeySid")
    if data.get("TWILIO_API_KEY") != active:
        problems.append(
            f"the Secret's active key {data.get('TWILIO_API_KEY')} is not status.activeKeySid {active}"
        )
    elif active in keys and data.get("TWILIO_API_SECRET") != keys[active].secret:
        problems.append("the Secret's TWILIO_API_SECRET is not the secret of the active key")
    if not (condition_true(obj, "Ready") and current(obj)) or condition_true(obj, "Stalled"):
        problems.append(f"SigningKeyRotation {name} did not converge: {condition(obj, 'Ready')}")
    return problems


# --- crashes -----------------------------------------------------------------------------------------------


async def kill_at_random(
    operator: OperatorProcess, rng: random.Random, *, kills: int, window: tuple[float, float]
) -> list[float]:
    """SIGKILL the operator ``kills`` times, each after a random delay in ``window`` from its (re)start,
    restarting it each time; the delays used (seeded by ``rng``, so a failure can be replayed)."""
    delays = []
    for _ in range(kills):
        delay = rng.uniform(*window)
        delays.append(round(delay, 3))
        await asyncio.sleep(delay)
        operator.kill()
        await operator.start()
    return delays


# --- Compositions ------------------------------------------------------------------------------------------


async def create_compositions(stack: Stack, room_sids: Sequence[str]) -> dict[str, str]:
    """One Composition per room (``comp-<i>``); the names mapped to their room SIDs."""
    planned = {f"comp-{index}": sid for index, sid in enumerate(room_sids)}
    await asyncio.gather(
        *(
            stack.client.create(COMPOSITIONS, NAMESPACE, composition_manifest(NAMESPACE, name, sid))
            for name, sid in planned.items()
        )
    )
    return planned


def composition_done(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    return status.get("compositionStatus") == "completed" and condition_true(obj, "Ready") and current(obj)


def composition_invariants(stack: Stack, planned: Mapping[str, str]) -> list[str]:
    """Problems with the Compositions of ``planned``: exactly one live Twilio composition per object, of
    its own room, completed, and none for a room no object asked for."""
    problems: list[str] = []
    service = service_of(stack.emulator.state)
    live = [comp for comp in service.compositions.values() if comp.status != "deleted"]
    for name, room_sid in planned.items():
        obj = stack.object("compositions", NAMESPACE, name)
        if obj is None:
            problems.append(f"Composition {name} is gone")
            continue
        status = obj.get("status") or {}
        mine = [comp for comp in live if comp.room_sid == room_sid]
        if len(mine) != 1:
            problems.append(
                f"Composition {name}: {len(mine)} Twilio compositions of {room_sid}: {[c.sid for c in mine]}"
            )
        elif status.get("sid") != mine[0].sid or mine[0].status != "completed":
            problems.append(
                f"Composition {name}: status.sid {status.get('sid')}, "
                f"Twilio {mine[0].sid} is {mine[0].status}"
            )
        if not composition_done(obj) or condition_true(obj, "Stalled"):
            problems.append(
                f"Composition {name} did not converge: "
                f"{status.get('compositionStatus')} {status.get('conditions')}"
            )
    strangers = sorted(comp.sid for comp in live if comp.room_sid not in set(planned.values()))
    if strangers:
        problems.append(f"Twilio compositions that belong to no Composition: {strangers}")
    return problems
