"""kopf adapter for the condition gauges: every watch event of the three kinds feeds one tally per run.

The watch shows each object as the API server holds it, status included, so the gauges say what
``kubectl get`` and Argo CD see: how many objects of each kind are Ready, Stalled or Paused, and since when
the oldest stall has lasted (see :mod:`twilio_video_operator.reconcilers.object_conditions`). The tally is
built when kopf starts, refilled by its initial listing, and emptied when kopf stops, so a process that no
longer reconciles reports no objects rather than stale ones.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from twilio_video_operator import API_GROUP, API_VERSION, metrics
from twilio_video_operator.models.kinds import KINDS
from twilio_video_operator.reconcilers.object_conditions import ConditionTally

MEMO_KEY = "object_conditions"


def register_handlers(registry: kopf.OperatorRegistry) -> None:
    """Register the startup and cleanup handlers of the tally, and one event handler per kind."""

    @kopf.on.startup(registry=registry, id="object-conditions-startup")
    async def startup(memo: kopf.Memo, **_: Any) -> None:
        memo[MEMO_KEY] = ConditionTally(
            (info.kind for info in KINDS),
            metrics.export_object_count,
            metrics.export_oldest_stall,
            clock=time.time,
        )

    @kopf.on.cleanup(registry=registry, id="object-conditions-cleanup")
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        tally: ConditionTally | None = memo.pop(MEMO_KEY, None)
        if tally is not None:
            tally.clear()

    for info in KINDS:
        kopf.on.event(API_GROUP, API_VERSION, info.plural, registry=registry, id=f"{info.plural}-conditions")(
            _observer(info.kind)
        )


def _observer(kind: str) -> Callable[..., Awaitable[None]]:
    """The event handler of one kind (async on purpose: kopf runs plain functions in threads)."""

    async def observed(
        memo: kopf.Memo, type: str | None, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        tally: ConditionTally | None = memo.get(MEMO_KEY)
        if tally is None:
            return
        if type == "DELETED":
            tally.forget(kind, str(namespace), name)
        else:
            tally.observe(kind, str(namespace), name, dict(body))

    return observed
