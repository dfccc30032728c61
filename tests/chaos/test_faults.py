"""Twilio misbehaving: 429 with Retry-After, 500/503, dropped connections and latency, at 10 % and 30 %,
while rooms are created and completed and keys are rotated. Afterwards: no duplicate or orphaned Twilio
rooms or keys, and every object converged."""

from __future__ import annotations

from typing import Any

import pytest
from chaos_support import (
    NAMESPACE,
    by_level,
    complete_rooms,
    composition_done,
    composition_invariants,
    create_compositions,
    create_rooms,
    full,
    request_rotation,
    require_handler,
    room_completed,
    room_in_progress,
    room_invariants,
    room_names,
    rotation_invariants,
    rotation_manifest,
    rotation_ready,
    start_operator,
    wait_objects,
)
from operator_stack import Stack
from twilio_setup import recorded_rooms, ticking_clock

from twilio_video_operator.kube import SIGNINGKEYROTATIONS

SEED = 20261125
CONVERGE_TIMEOUT = 90.0


def fault_profile(kind: str, rate: float) -> dict[str, Any]:
    """Emulator fault settings for one kind of trouble at ``rate``."""
    profiles: dict[str, dict[str, Any]] = {
        "429": {"rate429": rate},
        "5xx": {"rate5xx": rate},
        "drop": {"rateDrop": rate},
        "latency": {"latencyMs": int(rate * 2000)},  # 10 % -> 200 ms, 30 % -> 600 ms per request
        "mixed": {"rate429": rate / 3, "rate5xx": rate / 3, "rateDrop": rate / 3, "latencyMs": 20},
    }
    return {**profiles[kind], "seed": SEED}


CASES = (
    [(kind, rate) for kind in ("429", "5xx", "drop", "latency", "mixed") for rate in (0.1, 0.3)]
    if full()
    else [("mixed", 0.1)]
)


def case_id(case: tuple[str, float]) -> str:
    return f"{case[0]}-{int(case[1] * 100)}pct"


@pytest.mark.both_backends
@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_rooms_converge_under_faults(stack: Stack, case: tuple[str, float]) -> None:
    require_handler("videoroom")
    kind, rate = case
    await start_operator(stack)
    names = room_names(by_level(3, 6))
    await stack.control.set_faults(**fault_profile(kind, rate))

    await create_rooms(stack, names)
    laggards = await wait_objects(stack, "videorooms", names, room_in_progress, within=CONVERGE_TIMEOUT)
    assert not laggards, f"not in progress under {kind} faults at {rate:.0%}: {laggards}"
    assert room_invariants(stack, names, twilio_status="in-progress") == []

    await complete_rooms(stack, names)
    laggards = await wait_objects(stack, "videorooms", names, room_completed, within=CONVERGE_TIMEOUT)
    await stack.control.clear_faults()
    assert not laggards, f"not completed under {kind} faults at {rate:.0%}: {laggards}"
    assert room_invariants(stack, names, twilio_status="completed") == []


ROTATION_CASES = [("mixed", 0.1), ("mixed", 0.3)] if full() else [("mixed", 0.1)]
# One failed attempt under faults costs the rotation's first backoff step (30 s) before it tries again.
ROTATION_TIMEOUT = 75.0


def attempt_made(revision: int, failures_before: str | None) -> Any:
    """The rotation reached ``revision``, or failed once more since ``failures_before``."""
    done = rotation_ready(revision)

    def check(obj: Any) -> bool:
        return done(obj) or (obj.get("status") or {}).get("lastFailureTime") not in (None, failures_before)

    return check


@pytest.mark.both_backends
@pytest.mark.parametrize("case", ROTATION_CASES, ids=case_id)
async def test_key_rotation_converges_under_faults(stack: Stack, case: tuple[str, float]) -> None:
    """Faults stay on until the operator has tried (succeeded or failed once); then it must converge."""
    require_handler("signingkeyrotation")
    kind, rate = case
    await start_operator(stack)
    prefix = "chaos-faults-"
    await stack.control.set_faults(**fault_profile(kind, rate))
    await stack.client.create(SIGNINGKEYROTATIONS, "chaos", rotation_manifest("keys", prefix=prefix))
    await wait_objects(stack, "signingkeyrotations", ["keys"], attempt_made(1, None), within=30)
    await stack.control.clear_faults()
    laggards = await wait_objects(
        stack, "signingkeyrotations", ["keys"], rotation_ready(1), within=ROTATION_TIMEOUT
    )
    assert not laggards, f"no active key after {kind} faults at {rate:.0%}: {laggards}"
    assert rotation_invariants(stack, "keys", prefix=prefix) == []

    if full():  # a whole rotation also waits for the operator's periodic tick after the stage period
        before = ((stack.object("signingkeyrotations", "chaos", "keys") or {}).get("status") or {}).get(
            "lastFailureTime"
        )
        await stack.control.set_faults(**fault_profile(kind, rate))
        await request_rotation(stack, "keys", "rotate-1")
        await wait_objects(stack, "signingkeyrotations", ["keys"], attempt_made(2, before), within=40)
        await stack.control.clear_faults()
        laggards = await wait_objects(
            stack, "signingkeyrotations", ["keys"], rotation_ready(2), within=ROTATION_TIMEOUT
        )
        assert not laggards, f"rotation did not finish after {kind} faults at {rate:.0%}: {laggards}"
        assert rotation_invariants(stack, "keys", prefix=prefix) == []


COMPOSITION_CASES = [("mixed", 0.1), ("mixed", 0.3), ("drop", 0.3)] if full() else [("mixed", 0.1)]


@pytest.mark.both_backends
@pytest.mark.parametrize("case", COMPOSITION_CASES, ids=case_id)
async def test_compositions_complete_under_faults(stack: Stack, case: tuple[str, float]) -> None:
    require_handler("composition")
    kind, rate = case
    room_sids = await recorded_rooms(stack, by_level(2, 4), namespace=NAMESPACE)
    await start_operator(stack)
    await stack.control.set_faults(**fault_profile(kind, rate))
    async with ticking_clock(stack, step=20.0, every=0.5):
        planned = await create_compositions(stack, room_sids)
        laggards = await wait_objects(
            stack, "compositions", list(planned), composition_done, within=CONVERGE_TIMEOUT
        )
    await stack.control.clear_faults()
    assert not laggards, f"not completed under {kind} faults at {rate:.0%}: {laggards}"
    assert composition_invariants(stack, planned) == []
