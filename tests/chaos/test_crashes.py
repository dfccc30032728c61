"""The operator SIGKILLed at random (seeded) moments while rooms are created and completed and keys are
created and rotated, then restarted. Afterwards: one Twilio room per VideoRoom session, no orphaned key,
everything converged. A failure names its seed and the kill delays, so it can be replayed."""

from __future__ import annotations

import random

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
    kill_at_random,
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

SEEDS = [7, 11, 23] if full() else [7]
KILL_WINDOW = (0.0, 0.6)  # seconds after the operator is (re)started and healthy
# Slow Twilio calls, two at a time: the work spreads over the kill window, and kills land between a
# call and the status write that records its result.
LATENCY_MS = 150
OPERATOR_ENV = {"TWILIO_MAX_CONCURRENCY": "2"}
CONVERGE_TIMEOUT = 90.0


@pytest.mark.both_backends
@pytest.mark.parametrize("seed", SEEDS)
async def test_rooms_survive_operator_kills(stack: Stack, seed: int) -> None:
    require_handler("videoroom")
    rng = random.Random(seed)
    operator = await start_operator(stack, **OPERATOR_ENV)
    await stack.control.set_faults(latencyMs=LATENCY_MS)
    names = room_names(by_level(4, 8))
    kills = by_level(2, 4)

    await create_rooms(stack, names)
    delays = await kill_at_random(operator, rng, kills=kills, window=KILL_WINDOW)
    laggards = await wait_objects(stack, "videorooms", names, room_in_progress, within=CONVERGE_TIMEOUT)
    assert not laggards, f"seed {seed}, kills after {delays}s: not in progress: {laggards}"
    assert room_invariants(stack, names, twilio_status="in-progress") == [], f"seed {seed}, kills {delays}"

    await complete_rooms(stack, names)
    delays = await kill_at_random(operator, rng, kills=kills, window=KILL_WINDOW)
    laggards = await wait_objects(stack, "videorooms", names, room_completed, within=CONVERGE_TIMEOUT)
    assert not laggards, f"seed {seed}, kills after {delays}s: not completed: {laggards}"
    assert room_invariants(stack, names, twilio_status="completed") == [], f"seed {seed}, kills {delays}"
    assert operator.starts == 1 + 2 * kills


@pytest.mark.both_backends
@pytest.mark.parametrize("seed", SEEDS)
async def test_key_rotation_survives_operator_kills(stack: Stack, seed: int) -> None:
    require_handler("signingkeyrotation")
    rng = random.Random(seed)
    operator = await start_operator(stack, **OPERATOR_ENV)
    await stack.control.set_faults(latencyMs=LATENCY_MS)
    prefix = f"chaos-crash-{seed}-"
    kills = by_level(1, 3)

    await stack.client.create(SIGNINGKEYROTATIONS, "chaos", rotation_manifest("keys", prefix=prefix))
    delays = await kill_at_random(operator, rng, kills=kills, window=KILL_WINDOW)
    laggards = await wait_objects(
        stack, "signingkeyrotations", ["keys"], rotation_ready(1), within=CONVERGE_TIMEOUT
    )
    assert not laggards, f"seed {seed}, kills after {delays}s: no active key: {laggards}"
    assert rotation_invariants(stack, "keys", prefix=prefix) == [], f"seed {seed}, kills {delays}"

    if full():  # the switch to the new key waits for the operator's periodic tick
        await request_rotation(stack, "keys", f"crash-{seed}")
        delays = await kill_at_random(operator, rng, kills=kills, window=KILL_WINDOW)
        laggards = await wait_objects(
            stack, "signingkeyrotations", ["keys"], rotation_ready(2), within=CONVERGE_TIMEOUT
        )
        assert not laggards, f"seed {seed}, kills after {delays}s: rotation did not finish: {laggards}"
        assert rotation_invariants(stack, "keys", prefix=prefix) == [], f"seed {seed}, kills {delays}"


@pytest.mark.both_backends
@pytest.mark.parametrize("seed", SEEDS)
async def test_compositions_survive_operator_kills(stack: Stack, seed: int) -> None:
    require_handler("composition")
    rng = random.Random(seed)
    room_sids = await recorded_rooms(stack, by_level(3, 5), namespace=NAMESPACE)
    operator = await start_operator(stack, **OPERATOR_ENV)
    await stack.control.set_faults(latencyMs=LATENCY_MS)
    kills = by_level(2, 4)
    async with ticking_clock(stack, step=20.0, every=0.5):
        planned = await create_compositions(stack, room_sids)
        delays = await kill_at_random(operator, rng, kills=kills, window=KILL_WINDOW)
        laggards = await wait_objects(
            stack, "compositions", list(planned), composition_done, within=CONVERGE_TIMEOUT
        )
    assert not laggards, f"seed {seed}, kills after {delays}s: not completed: {laggards}"
    assert composition_invariants(stack, planned) == [], f"seed {seed}, kills {delays}"
