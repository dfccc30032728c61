"""The bounded hand-off from the callback endpoint to the processing task, and the per-operator hub."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import REGISTRY

from twilio_video_operator.settings import Settings, load_settings
from twilio_video_operator.webhooks.channel import CallbackChannel, CallbackEvent, Offer
from twilio_video_operator.webhooks.hub import WebhookHub


def event(n: int) -> CallbackEvent:
    return CallbackEvent("AC1", {"n": str(n)})


async def test_offer_accepts_then_drops_duplicates_and_refuses_when_full() -> None:
    channel = CallbackChannel("test-offer", capacity=2)
    assert channel.offer(event(1), "k1") is Offer.ACCEPTED
    assert channel.offer(event(1), "k1") is Offer.DUPLICATE
    assert channel.offer(event(2), "k2") is Offer.ACCEPTED
    assert channel.offer(event(3), "k3") is Offer.FULL
    assert channel.depth == 2
    assert (
        REGISTRY.get_sample_value("twilio_video_operator_webhook_queue_depth", {"endpoint": "test-offer"})
        == 2
    )
    # A refused event was not remembered: Twilio's retry is accepted once there is room.
    processed: list[str] = []

    async def sink(item: CallbackEvent) -> None:
        processed.append(item.params["n"])

    channel.attach(sink)
    await asyncio.wait_for(channel.drained(), 2)
    assert channel.offer(event(3), "k3") is Offer.ACCEPTED
    await asyncio.wait_for(channel.drained(), 2)
    assert processed == ["1", "2", "3"]
    await channel.detach()


async def test_a_failing_sink_does_not_stop_processing() -> None:
    channel = CallbackChannel("test-failing")
    processed: list[str] = []

    async def sink(item: CallbackEvent) -> None:
        if item.params["n"] == "1":
            raise RuntimeError("boom")
        processed.append(item.params["n"])

    channel.attach(sink)
    channel.offer(event(1), 1)
    channel.offer(event(2), 2)
    await asyncio.wait_for(channel.drained(), 2)
    assert processed == ["2"]
    await channel.detach()


async def test_events_wait_for_a_sink_and_a_new_sink_takes_over() -> None:
    channel = CallbackChannel("test-handover")
    channel.offer(event(1), 1)
    first: list[str] = []
    second: list[str] = []

    async def old_sink(item: CallbackEvent) -> None:
        first.append(item.params["n"])

    async def new_sink(item: CallbackEvent) -> None:
        second.append(item.params["n"])

    await asyncio.sleep(0.01)
    assert channel.depth == 1  # nobody processes yet
    channel.attach(old_sink)
    await asyncio.wait_for(channel.drained(), 2)
    channel.attach(new_sink)
    channel.offer(event(2), 2)
    await asyncio.wait_for(channel.drained(), 2)
    await channel.detach()
    channel.offer(event(3), 3)
    await asyncio.sleep(0.01)
    assert (first, second, channel.depth) == (["1"], ["2"], 1)


def settings(token: str | None = "operator-token") -> Settings:
    values = {
        "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
        "TWILIO_API_KEY": "SK" + "b" * 32,
        "TWILIO_API_SECRET": "secret",
        "PUBLIC_BASE_URL": "https://operator.example.com",
    }
    if token:
        values["TWILIO_AUTH_TOKEN"] = token
    return load_settings(**values)


def test_a_hub_verifies_with_its_operator_token_and_keeps_one_channel_per_endpoint() -> None:
    with_token, without = WebhookHub(settings()), WebhookHub(settings(None))
    assert with_token.channel("room-events") is with_token.channel("room-events")
    assert with_token.channel("room-events") is not without.channel("room-events")
    assert with_token.accounts.tokens_for("AC" + "a" * 32) == ["operator-token"]
    assert without.accounts.tokens_for("AC" + "a" * 32) == []


async def test_events_offered_on_one_loop_are_processed_on_another() -> None:
    """The HTTP server and the reconciler run on different loops (threads)."""
    channel = CallbackChannel("test-threads")
    processed: list[str] = []
    started = threading.Event()

    async def consume() -> None:
        done = asyncio.Event()

        async def sink(item: CallbackEvent) -> None:
            processed.append(item.params["n"])
            if len(processed) == 3:
                done.set()

        channel.attach(sink)
        started.set()
        await asyncio.wait_for(done.wait(), 5)
        await channel.detach()

    thread = threading.Thread(target=asyncio.run, args=(consume(),))
    thread.start()
    await asyncio.to_thread(started.wait, 2)
    for n in (1, 2, 3):
        assert channel.offer(event(n), n) is Offer.ACCEPTED
    await asyncio.wait_for(channel.drained(), 2)
    await asyncio.to_thread(thread.join, 2)
    assert processed == ["1", "2", "3"]
