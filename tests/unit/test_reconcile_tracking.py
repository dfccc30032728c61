"""The one path every reconcile goes through: its metrics, and the progress rule behind ``/healthz``."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from twilio_video_operator.reconcilers.reconcile_tracking import (
    DEFAULT_GRACE_SECONDS,
    ReconcileProgress,
    Result,
    track_reconcile,
)

#: A kind of its own, so that these tests never move the series of the real kinds.
KIND = "ExampleKind"
GRACE = 300.0
RESYNC = 600.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"kind": KIND, **labels}) or 0.0


def counts() -> dict[str, float]:
    found = {
        result.value: sample("twilio_video_operator_reconcile_total", result=result.value)
        for result in Result
    }
    found["errors"] = sample("twilio_video_operator_reconcile_errors_total")
    found["timed"] = sample("twilio_video_operator_reconcile_time_seconds_count")
    return found


def moved(before: dict[str, float]) -> dict[str, float]:
    return {key: value - before[key] for key, value in counts().items() if value != before[key]}


# --- metrics ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("result", list(Result))
def test_a_finished_reconcile_counts_its_result_duration_and_time(result: Result) -> None:
    before = counts()
    with track_reconcile(KIND, "ns", "a") as run:
        run.finish(result)
    assert moved(before) == {result.value: 1, "timed": 1}
    stamp = REGISTRY.get_sample_value(
        "twilio_video_operator_last_reconcile_timestamp_seconds", {"kind": KIND}
    )
    assert stamp is not None and stamp > 1.7e9


def test_a_failed_reconcile_also_counts_as_an_error() -> None:
    before = counts()
    with track_reconcile(KIND, "ns", "a") as run:
        run.finish(Result.STALLED, failed=True)
    assert moved(before) == {"stalled": 1, "errors": 1, "timed": 1}


def test_an_exception_counts_as_an_error_and_propagates() -> None:
    before = counts()
    with pytest.raises(RuntimeError), track_reconcile(KIND, "ns", "a"):
        raise RuntimeError("Twilio is down")
    assert moved(before) == {"error": 1, "errors": 1, "timed": 1}


def test_a_skipped_or_unfinished_reconcile_counts_nothing() -> None:
    before = counts()
    with track_reconcile(KIND, "ns", "gone") as run:
        run.skip()
    with track_reconcile(KIND, "ns", "silent"):
        pass
    assert moved(before) == {}


async def test_a_cancelled_reconcile_counts_nothing() -> None:
    before = counts()
    progress = ReconcileProgress()

    async def reconcile() -> None:
        async with track_reconcile(KIND, "ns", "a", progress) as run:
            await asyncio.sleep(10)
            run.finish(Result.SUCCESS)

    task = asyncio.create_task(reconcile())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert moved(before) == {}
    assert progress.problem() is None


# --- the progress rule -----------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def progress(clock: FakeClock) -> ReconcileProgress:
    return ReconcileProgress(grace=GRACE, clock=clock)


def reconciled(progress: ReconcileProgress, name: str, due_in: float | None, kind: str = KIND) -> None:
    with track_reconcile(kind, "ns", name, progress) as run:
        run.finish(Result.SUCCESS, due_in=due_in)


def test_the_default_grace_is_five_minutes() -> None:
    assert ReconcileProgress().grace == DEFAULT_GRACE_SECONDS == 300.0


def test_without_objects_nothing_is_ever_due(progress: ReconcileProgress, clock: FakeClock) -> None:
    assert progress.problem() is None
    clock.now += 30 * 24 * 3600
    assert progress.problem() is None


def test_objects_idle_between_resyncs_are_fine(progress: ReconcileProgress, clock: FakeClock) -> None:
    reconciled(progress, "a", RESYNC)
    reconciled(progress, "b", RESYNC)
    clock.now += RESYNC + GRACE  # due, and late by exactly the grace
    assert progress.problem() is None


def test_a_due_object_left_unreconciled_past_the_grace_is_a_problem(
    progress: ReconcileProgress, clock: FakeClock
) -> None:
    reconciled(progress, "a", RESYNC)
    clock.now += RESYNC + GRACE + 12
    assert progress.problem() == (
        f"no {KIND} reconcile has finished for 912s while 1 object is overdue (ns/a by 312s, limit 300s)"
    )
    reconciled(progress, "a", RESYNC)  # the resync came after all
    assert progress.problem() is None


def test_an_object_waiting_for_a_change_is_never_due(progress: ReconcileProgress, clock: FakeClock) -> None:
    reconciled(progress, "paused", None)
    clock.now += 10 * RESYNC
    assert progress.problem() is None
    assert progress.due_at(KIND, "ns", "paused") is None


def test_a_forgotten_object_is_no_longer_due(progress: ReconcileProgress, clock: FakeClock) -> None:
    reconciled(progress, "a", RESYNC)
    progress.forget(KIND, "ns", "a")
    clock.now += 10 * RESYNC
    assert progress.problem() is None


def test_skipping_a_gone_object_forgets_it(progress: ReconcileProgress, clock: FakeClock) -> None:
    reconciled(progress, "a", RESYNC)
    with track_reconcile(KIND, "ns", "a", progress) as run:
        run.skip()
    clock.now += 10 * RESYNC
    assert progress.problem() is None


def test_a_backlog_is_not_a_stall_while_reconciles_of_the_kind_keep_finishing(
    progress: ReconcileProgress, clock: FakeClock
) -> None:
    reconciled(progress, "behind", 10)
    for _ in range(10):  # others finish every minute while "behind" waits its turn
        clock.now += 60
        reconciled(progress, "other", 10)
    assert progress.problem() is None
    clock.now += GRACE + 1  # then nothing finishes any more
    assert progress.problem() is not None


def test_progress_of_another_kind_does_not_hide_a_stalled_kind(
    progress: ReconcileProgress, clock: FakeClock
) -> None:
    reconciled(progress, "room", RESYNC)
    for _ in range(100):
        clock.now += 15
        reconciled(progress, "keys", 15, kind="OtherKind")
    problem = progress.problem()
    assert problem is not None and problem.startswith(f"no {KIND} reconcile has finished for 1500s")


def test_an_object_being_reconciled_is_not_overdue(progress: ReconcileProgress, clock: FakeClock) -> None:
    reconciled(progress, "a", 10)
    run = track_reconcile(KIND, "ns", "a", progress)
    with run:  # a long delivery
        clock.now += 3600
        assert progress.problem() is None
        run.finish(Result.SUCCESS, due_in=10)
    assert progress.problem() is None


def test_a_failed_reconcile_keeps_the_deadline_or_sets_the_retry(
    progress: ReconcileProgress, clock: FakeClock
) -> None:
    reconciled(progress, "a", 100)
    due = progress.due_at(KIND, "ns", "a")
    clock.now += 50
    with pytest.raises(RuntimeError), track_reconcile(KIND, "ns", "a", progress):
        raise RuntimeError("boom")
    assert progress.due_at(KIND, "ns", "a") == due
    with pytest.raises(RuntimeError), track_reconcile(KIND, "ns", "a", progress, due_in_after_error=15):
        raise RuntimeError("boom")
    assert progress.due_at(KIND, "ns", "a") == clock.now + 15


def test_failing_reconciles_are_progress(progress: ReconcileProgress, clock: FakeClock) -> None:
    """Twilio down: every reconcile fails, but they finish; a restart would not help."""
    reconciled(progress, "a", 10)
    for _ in range(20):
        clock.now += 60
        with pytest.raises(RuntimeError), track_reconcile(KIND, "ns", "a", progress):
            raise RuntimeError("503")
    assert progress.problem() is None
