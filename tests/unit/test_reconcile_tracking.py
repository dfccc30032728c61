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


# --- the work queue ----------------------------------------------------------------------------------------


def queue() -> dict[str, float]:
    return {
        "depth": sample("twilio_video_operator_workqueue_depth"),
        "active": sample("twilio_video_operator_active_workers"),
        "adds": sample("twilio_video_operator_workqueue_adds_total"),
        "waits": sample("twilio_video_operator_workqueue_queue_duration_seconds_count"),
    }


async def test_a_reconcile_waits_for_its_lock_in_the_queue_then_works() -> None:
    """Two reconciles of one object: the second waits in the queue (depth, longest wait) until the first
    releases the lock; each works as an active worker; the longest run and wait are read at scrape time."""
    clock = FakeClock()
    progress = ReconcileProgress(clock=clock)
    lock = asyncio.Lock()
    before = queue()
    release_first = asyncio.Event()
    second_working = asyncio.Event()

    async def first() -> None:
        async with track_reconcile(KIND, "ns", "a", progress, waits_for=(lock,)) as run:
            await release_first.wait()
            run.finish(Result.SUCCESS)

    async def second() -> None:
        async with track_reconcile(KIND, "ns", "a", progress, waits_for=(lock,)) as run:
            second_working.set()
            run.finish(Result.SUCCESS)

    one = asyncio.create_task(first())
    await asyncio.sleep(0)
    two = asyncio.create_task(second())
    await asyncio.sleep(0)
    now = queue()
    assert (now["depth"] - before["depth"], now["active"] - before["active"]) == (1, 1)
    assert now["adds"] - before["adds"] == 2
    clock.now += 7.0
    assert progress.longest(KIND, working=False) == 7.0
    assert progress.longest(KIND, working=True) == 7.0
    assert progress.longest("OtherKind", working=False) == 0.0

    release_first.set()
    await asyncio.gather(one, two)
    assert second_working.is_set()
    after = queue()
    assert (after["depth"], after["active"]) == (before["depth"], before["active"])
    assert after["waits"] - before["waits"] == 2
    waited = sample("twilio_video_operator_workqueue_queue_duration_seconds_bucket", le="5.0")
    assert (
        sample("twilio_video_operator_workqueue_queue_duration_seconds_count") - waited >= 1
    )  # the 7 s wait
    assert progress.longest(KIND, working=False) == progress.longest(KIND, working=True) == 0.0


async def test_a_reconcile_cancelled_while_waiting_leaves_the_queue() -> None:
    progress = ReconcileProgress(clock=FakeClock())
    lock = asyncio.Lock()
    before = queue()
    await lock.acquire()
    waiting = asyncio.create_task(_enter(progress, lock))
    await asyncio.sleep(0)
    assert queue()["depth"] - before["depth"] == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue()["depth"] == before["depth"] and queue()["active"] == before["active"]
    assert progress.longest(KIND, working=False) == 0.0
    assert progress.problem() is None
    lock.release()
    assert not lock.locked()


async def _enter(progress: ReconcileProgress, lock: asyncio.Lock) -> None:
    async with track_reconcile(KIND, "ns", "b", progress, waits_for=(lock,)) as run:
        run.finish(Result.SUCCESS)


def test_a_reconcile_that_waits_for_locks_needs_async_with() -> None:
    with (
        pytest.raises(TypeError, match="async with"),
        track_reconcile(KIND, "ns", "a", waits_for=(asyncio.Lock(),)),
    ):
        pass


def test_published_gauges_read_the_progress_at_scrape_time() -> None:
    clock = FakeClock()
    progress = ReconcileProgress(clock=clock)
    progress.publish_work_queue()
    progress.queued(1, "VideoRoom", clock.now)
    clock.now += 3.0
    value = REGISTRY.get_sample_value(
        "twilio_video_operator_workqueue_longest_waiting_seconds", {"kind": "VideoRoom"}
    )
    assert value == 3.0
    progress.done(1)
    assert (
        REGISTRY.get_sample_value(
            "twilio_video_operator_workqueue_longest_waiting_seconds", {"kind": "VideoRoom"}
        )
        == 0.0
    )
    assert (
        REGISTRY.get_sample_value("twilio_video_operator_active_workers", {"kind": "Composition"}) is not None
    )
