"""``CompositionController.settled`` waits for callbacks a busy object applies later, from another loop.

The controller runs on the reconciler's thread and loop; whoever waits for it (the HTTP side, tests) runs on
another. A callback that arrives while a reconcile holds the object's lock is applied by a background task
once the object is free, so ``settled`` must cover that task without awaiting it across loops.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from twilio_video_operator.controllers.composition import CompositionController
from twilio_video_operator.delivery import S3Deliverer
from twilio_video_operator.gateway import TwilioGateway
from twilio_video_operator.kube.composition_objects import CompositionObjects
from twilio_video_operator.reconcilers.credentials import CredentialsConnector
from twilio_video_operator.webhooks.channel import CallbackEvent

T = TypeVar("T")
KEY = ("ns", "c1")
ACCOUNT = "AC" + "1" * 32
SID = "CJ" + "2" * 32
WAIT = 5.0


class GatedObjects:
    """Composition reads that wait at a gate until the test opens it (the object is gone: ``None``)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.reads = 0

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        await self.gate.wait()
        return None


class IdleDeliverer:
    async def close(self) -> None:
        return None


class ControllerLoop:
    """An event loop on a thread of its own, like the reconciler's, running one controller."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="controller", daemon=True)
        self.thread.start()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()


Running = tuple[CompositionController, GatedObjects, ControllerLoop]


@asynccontextmanager
async def controller_on_its_loop() -> AsyncIterator[Running]:
    side = ControllerLoop()

    async def build() -> tuple[CompositionController, GatedObjects]:
        objects = GatedObjects()
        controller = CompositionController(
            cast(CompositionObjects, objects),
            cast(TwilioGateway, None),
            cast(CredentialsConnector, None),
            cast(S3Deliverer, IdleDeliverer()),
            public_base_url="https://operator.example.test",
        )
        controller.by_sid[SID] = KEY
        return controller, objects

    controller, objects = await side.run(build())
    try:
        yield controller, objects, side
    finally:
        side.loop.call_soon_threadsafe(objects.gate.set)
        await side.run(controller.close())
        side.close()


async def eventually(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not check():  # noqa: ASYNC110 - what is checked changes on the controller's loop
            await asyncio.sleep(0.01)


def progress_callback() -> CallbackEvent:
    return CallbackEvent(
        ACCOUNT,
        {
            "AccountSid": ACCOUNT,
            "CompositionSid": SID,
            "StatusCallbackEvent": "composition-progress",
            "PercentageDone": "60",
            "SecondsRemaining": "4",
        },
    )


async def test_settled_waits_from_another_loop_for_a_callback_applied_after_a_reconcile() -> None:
    async with controller_on_its_loop() as (controller, objects, side):
        reconciling = asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(controller.reconcile(*KEY), side.loop)
        )
        await eventually(lambda: objects.reads == 1)  # the reconcile holds the object's lock
        await side.run(controller.on_callback(progress_callback()))  # handed over, not applied yet

        settled = asyncio.create_task(controller.settled())
        await asyncio.sleep(0.2)
        assert not settled.done(), "settled() returned while the callback waited for the object"
        assert objects.reads == 1

        side.loop.call_soon_threadsafe(objects.gate.set)
        await reconciling
        async with asyncio.timeout(WAIT):
            await settled
        assert objects.reads == 2  # the background drain read the object before settled() returned
        assert not controller.draining and not controller.backlog


async def test_settled_returns_at_once_when_no_callback_waits() -> None:
    async with controller_on_its_loop() as (controller, _, _):
        async with asyncio.timeout(WAIT):
            await controller.settled()
