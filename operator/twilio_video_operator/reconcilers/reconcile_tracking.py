"""What every reconcile of every kind goes through: its metrics, and the progress that ``/healthz`` checks.

A kind wraps each reconcile of one object in :func:`track_reconcile` and tells the scope how it ended::

    async with track_reconcile("Composition", namespace, name, progress, waits_for=(lock,)) as run:
        obj = await read(...)
        if obj is None:
            run.skip()  # gone: not a reconcile, and the object is forgotten
            return
        ...
        run.finish(Result.REQUEUE_AFTER, due_in=10.0)

On leaving the scope it records, under controller-runtime's names with the ``twilio_video_operator_``
prefix: ``reconcile_total{kind, result}``, ``reconcile_errors_total{kind}`` (when the reconcile failed),
``reconcile_time_seconds{kind}`` and ``last_reconcile_timestamp_seconds{kind}``. An exception counts as
``error`` and propagates; a cancelled reconcile (the operator stopping) and a skipped one count as nothing.

The scope is also the kind's work queue, as controller-runtime's workqueue metrics see one. A reconcile
waits from entering the scope until it holds what ``waits_for`` names (the object's lock, a cap on
parallel reconciles; use ``async with``), and works from then until it leaves. Waiting reconciles are the
queue's ``workqueue_depth{kind}``; working ones its ``active_workers{kind}``; the wait of each is observed
in ``workqueue_queue_duration_seconds{kind}``; after :meth:`ReconcileProgress.publish_work_queue`, every
scrape reads the longest wait and the longest run of the moment.

:class:`ReconcileProgress` (one per operator process) remembers when each object is due for its next
reconcile (``due_in``, given by the kind: its resync or timer interval; ``None`` when the object waits for a
change, e.g. paused or finished) and tells the health check when reconciling has stopped; see
:meth:`ReconcileProgress.problem` for the rule.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from enum import StrEnum
from types import TracebackType
from typing import Any, Final

from twilio_video_operator import metrics
from twilio_video_operator.models.kinds import KINDS

#: How late a due reconcile may be, with no reconcile of its kind finishing meanwhile, before the operator
#: counts as no longer reconciling.
DEFAULT_GRACE_SECONDS: Final = 300.0

Key = tuple[str, str, str]
"""``(kind, namespace, name)``."""


class Result(StrEnum):
    """The ``result`` label of ``reconcile_total``."""

    SUCCESS = "success"
    REQUEUE_AFTER = "requeue_after"
    """Succeeded, and asked to come back at a set time (a schedule, a poll, a rotation step)."""
    ERROR = "error"
    """Failed; will be retried."""
    STALLED = "stalled"
    """Stopped until the spec or the credentials change."""
    PAUSED = "paused"


class ReconcileProgress:
    """Per-object deadlines and per-kind progress of one operator process (no I/O; monotonic time)."""

    def __init__(
        self, *, grace: float = DEFAULT_GRACE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace = grace
        self.clock = clock
        self._due: dict[Key, float] = {}
        self._running: Counter[Key] = Counter()
        self._last_finished: dict[str, float] = {}
        # Reconciles by token: (kind, monotonic time since which they wait / work).
        self._waiting: dict[int, tuple[str, float]] = {}
        self._working: dict[int, tuple[str, float]] = {}

    # -- fed by track_reconcile ---------------------------------------------------------------------

    def started(self, key: Key) -> None:
        self._running[key] += 1

    def stopped(self, key: Key) -> None:
        """A reconcile of ``key`` ended without finishing (cancelled or skipped)."""
        self._running[key] -= 1
        if self._running[key] <= 0:
            self._running.pop(key, None)

    def finished(self, key: Key, due_in: float | None, *, keep_due: bool = False) -> None:
        """A reconcile of ``key`` finished; its next one is due in ``due_in`` seconds (``None``: not until
        the object changes). ``keep_due`` leaves the previous deadline as it was."""
        self.stopped(key)
        now = self.clock()
        self._last_finished[key[0]] = now
        if keep_due:
            return
        if due_in is None:
            self._due.pop(key, None)
        else:
            self._due[key] = now + max(0.0, due_in)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """The object is gone: nothing is due for it any more."""
        self._due.pop((kind, namespace, name), None)

    def reset(self) -> None:
        """This process stopped reconciling (it no longer leads): nothing is due here any more."""
        self._due.clear()
        self._running.clear()
        self._last_finished.clear()
        self._waiting.clear()
        self._working.clear()

    def queued(self, token: int, kind: str, since: float) -> None:
        self._waiting[token] = (kind, since)

    def working(self, token: int, kind: str, since: float) -> None:
        self._waiting.pop(token, None)
        self._working[token] = (kind, since)

    def done(self, token: int) -> None:
        self._waiting.pop(token, None)
        self._working.pop(token, None)

    # -- read by /metrics ---------------------------------------------------------------------------

    def longest(self, kind: str, *, working: bool) -> float:
        """Seconds the longest-waiting (or longest-working) reconcile of ``kind`` has spent so far; 0 when
        there is none."""
        entries = list((self._working if working else self._waiting).values())  # a snapshot
        since = [started for entry_kind, started in entries if entry_kind == kind]
        return max(0.0, self.clock() - min(since)) if since else 0.0

    def publish_work_queue(self) -> None:
        """Make the longest-wait and longest-running gauges of every kind read this process's reconciles,
        computed at each scrape."""
        for info in KINDS:
            for gauge, working in (
                (metrics.WORKQUEUE_LONGEST_WAITING, False),
                (metrics.WORKQUEUE_LONGEST_RUNNING, True),
            ):
                gauge.labels(info.kind).set_function(
                    functools.partial(self.longest, info.kind, working=working)
                )
            metrics.WORKQUEUE_DEPTH.labels(info.kind)
            metrics.ACTIVE_WORKERS.labels(info.kind)

    # -- read by the health check -------------------------------------------------------------------

    def due_at(self, kind: str, namespace: str, name: str) -> float | None:
        """The monotonic time at which the object's next reconcile is due (``None``: nothing is due)."""
        return self._due.get((kind, namespace, name))

    def problem(self) -> str | None:
        """Why the operator counts as no longer reconciling, or ``None`` while it is fine.

        The rule: some object that is not being reconciled right now was due for a reconcile more than
        ``grace`` seconds ago, and no reconcile of its kind finished in the last ``grace`` seconds. Without
        objects, or with every object waiting for its next resync, nothing is due. An overdue object while
        other reconciles of its kind keep finishing is a backlog (a slow Twilio, many objects), which a
        restart would not help.
        """
        now = self.clock()
        overdue: dict[str, list[tuple[float, str]]] = {}
        for key, due in list(self._due.items()):  # a snapshot: the reconciler's thread writes meanwhile
            late = now - due
            if late <= self.grace or self._running.get(key):
                continue
            kind = key[0]
            last = self._last_finished.get(kind)
            if last is not None and now - last <= self.grace:
                continue
            overdue.setdefault(kind, []).append((late, f"{key[1]}/{key[2]}"))
        if not overdue:
            return None
        kind = min(overdue)
        late, name = max(overdue[kind])
        quiet = now - self._last_finished.get(kind, now)  # a deadline is only set when a reconcile finishes
        count = len(overdue[kind])
        objects = "1 object is" if count == 1 else f"{count} objects are"
        return (
            f"no {kind} reconcile has finished for {quiet:.0f}s while {objects} overdue "
            f"({name} by {late:.0f}s, limit {self.grace:.0f}s)"
        )


_tokens = itertools.count()


class ReconcileRun:
    """One reconcile of one object; use through :func:`track_reconcile`."""

    def __init__(
        self,
        kind: str,
        namespace: str,
        name: str,
        progress: ReconcileProgress | None,
        *,
        due_in_after_error: float | None,
        waits_for: Sequence[AbstractAsyncContextManager[Any]] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.key: Key = (kind, namespace, name)
        self.progress = progress
        self.due_in_after_error = due_in_after_error
        self.waits_for = tuple(waits_for)
        # The progress's clock, so that the waits and runs it reports are in its time.
        self.clock = clock or (progress.clock if progress is not None else time.monotonic)
        self.token = next(_tokens)
        self._held = AsyncExitStack()
        self._queued = False
        self._queued_at = 0.0
        self.result: Result | None = None
        self.failed = False
        self.due_in: float | None = None
        self.skipped = False
        self._started = 0.0

    @property
    def kind(self) -> str:
        return self.key[0]

    def finish(self, result: Result, *, failed: bool = False, due_in: float | None = None) -> None:
        """How the reconcile ended. ``failed``: it hit an error (counted in ``reconcile_errors_total``);
        ``due_in``: seconds until the object is due again (``None``: only when it changes)."""
        self.result, self.failed, self.due_in, self.skipped = result, failed, due_in, False

    def skip(self) -> None:
        """Not a reconcile after all (the object is gone or being deleted): nothing is counted, and the
        object is forgotten."""
        self.skipped, self.result = True, None

    async def __aenter__(self) -> ReconcileRun:
        self._enqueue()
        try:
            for gate in self.waits_for:
                await self._held.enter_async_context(gate)
        except BaseException:
            await self._held.aclose()
            self._dequeue()
            raise
        return self._work()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.__exit__(exc_type, exc, traceback)
        finally:
            await self._held.aclose()

    def __enter__(self) -> ReconcileRun:
        if self.waits_for:
            raise TypeError("a reconcile that waits for locks is entered with `async with`")
        self._enqueue()
        return self._work()

    def _enqueue(self) -> None:
        kind, now = self.kind, self.clock()
        self._queued_at, self._queued = now, True
        metrics.WORKQUEUE_ADDS.labels(kind).inc()
        metrics.WORKQUEUE_DEPTH.labels(kind).inc()
        if self.progress is not None:
            self.progress.queued(self.token, kind, now)
            self.progress.started(self.key)

    def _dequeue(self) -> None:
        """Left the queue without working (cancelled while waiting)."""
        if self._queued:
            self._queued = False
            metrics.WORKQUEUE_DEPTH.labels(self.kind).dec()
        if self.progress is not None:
            self.progress.done(self.token)
            self.progress.stopped(self.key)

    def _work(self) -> ReconcileRun:
        kind, now = self.kind, self.clock()
        self._queued = False
        metrics.WORKQUEUE_DEPTH.labels(kind).dec()
        metrics.WORKQUEUE_QUEUE_DURATION.labels(kind).observe(max(0.0, now - self._queued_at))
        self._started = now  # reconcile_time_seconds counts the work, not the wait
        metrics.ACTIVE_WORKERS.labels(kind).inc()
        if self.progress is not None:
            self.progress.working(self.token, kind, now)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        progress, kind = self.progress, self.kind
        metrics.ACTIVE_WORKERS.labels(kind).dec()
        if progress is not None:
            progress.done(self.token)
        if exc_type is not None and not issubclass(exc_type, Exception):  # cancelled: the operator stops
            if progress is not None:
                progress.stopped(self.key)
            return
        if exc_type is None and (self.skipped or self.result is None):
            if progress is not None:
                progress.stopped(self.key)
                if self.skipped:
                    progress.forget(*self.key)
            return
        if exc_type is not None:
            result, failed = Result.ERROR, True
        else:
            assert self.result is not None
            result, failed = self.result, self.failed
        metrics.RECONCILE_TOTAL.labels(kind, result.value).inc()
        if failed:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
        metrics.RECONCILE_TIME.labels(kind).observe(max(0.0, self.clock() - self._started))
        metrics.LAST_RECONCILE_TIMESTAMP.labels(kind).set_to_current_time()
        if progress is not None:
            if exc_type is not None:
                due_in = self.due_in_after_error
                progress.finished(self.key, due_in, keep_due=due_in is None)
            else:
                progress.finished(self.key, self.due_in)


def track_reconcile(
    kind: str,
    namespace: str,
    name: str,
    progress: ReconcileProgress | None = None,
    *,
    due_in_after_error: float | None = None,
    waits_for: Sequence[AbstractAsyncContextManager[Any]] = (),
) -> ReconcileRun:
    """A scope around one reconcile of ``kind`` ``namespace/name`` (see the module docstring).

    ``due_in_after_error``: when the reconcile raises, seconds until the object is due again (its retry
    or resync); ``None`` keeps the deadline it had. ``waits_for``: what the reconcile acquires, in order,
    before it starts working (held until the scope ends; needs ``async with``).
    """
    return ReconcileRun(
        kind, namespace, name, progress, due_in_after_error=due_in_after_error, waits_for=waits_for
    )
