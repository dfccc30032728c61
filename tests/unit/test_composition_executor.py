"""The Composition executor against a fake Twilio, fake ports and a fake clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from composition_samples import composition_info
from prometheus_client import REGISTRY
from pydantic import SecretStr

from twilio_video_operator.delivery import (
    DeliveryError,
    DeliveryReason,
    DeliveryResult,
    S3Credentials,
    S3Target,
)
from twilio_video_operator.gateway.errors import RetryableError, TerminalError
from twilio_video_operator.gateway.records import CompositionInfo, RoomInfo
from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.models.conditions import get_condition
from twilio_video_operator.reconcilers.composition import CompositionExecutor, Ports
from twilio_video_operator.reconcilers.composition_plan import CompositionContext, Memory, RoomTarget, Timing

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ROOM = "RM" + "1" * 32
UID = "0b0e5d2c-1111-2222-3333-444455556666"
CALLBACK = f"http://op.test/twilio/composition-events?namespace=ns&name=c1&uid={UID}"
TIMING = Timing(
    poll_min=10, poll_max=80, room_wait=5, transient_retry=3, delivery_retry_min=5, delivery_stuck_min=60
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeTwilio:
    clock: Clock
    compositions: dict[str, CompositionInfo] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    fail_create: list[Exception] = field(default_factory=list)
    lose_create_answer: bool = False
    calls: list[str] = field(default_factory=list)
    room_end: datetime | None = None

    async def create_composition(self, **params: Any) -> CompositionInfo:
        self.calls.append("create")
        if self.fail_create:
            raise self.fail_create.pop(0)
        sid = f"CJ{len(self.created) + 1:032x}"
        self.created.append(params)
        info = composition(
            sid,
            "enqueued",
            created=self.clock.now,
            audio_sources=tuple(params["audio_sources"]),
            video_layout=params.get("video_layout"),
            status_callback=params.get("status_callback"),
        )
        self.compositions[sid] = info
        if self.lose_create_answer:
            raise RetryableError("connection reset", operation="CreateComposition", maybe_applied=True)
        return info

    async def fetch_composition(self, sid: str) -> CompositionInfo | None:
        self.calls.append("fetch")
        return self.compositions.get(sid)

    async def list_compositions(self, room_sid: str, status: str | None = None) -> list[CompositionInfo]:
        self.calls.append("list")
        return [info for info in self.compositions.values() if info.room_sid == room_sid]

    async def delete_composition(self, sid: str) -> bool:
        return self.compositions.pop(sid, None) is not None

    async def composition_media_url(self, sid: str, ttl_seconds: int | None = None) -> str:
        return f"http://media.test/{sid}?token=secret-capability"

    async def fetch_room(self, sid_or_unique_name: str) -> RoomInfo | None:
        self.calls.append("fetch_room")
        return room(self.room_end)


def composition(sid: str, status: str, *, created: datetime = T0, **changes: Any) -> CompositionInfo:
    values = {"account_sid": "AC" + "0" * 32, "status_callback": CALLBACK, "status_callback_method": "POST"}
    fixed = {"sid": sid, "room_sid": ROOM, "status": status, "date_created": created.replace(microsecond=0)}
    return composition_info(**{**fixed, **values, **changes})


def room(end: datetime | None) -> RoomInfo:
    return RoomInfo(
        sid=ROOM, status="completed" if end else "in-progress", unique_name="r", type="group",
        account_sid=None, max_participants=None, max_participant_duration=None, date_created=T0,
        date_updated=None, end_time=end, duration=None, status_callback=None, status_callback_method=None,
        video_codecs=(), media_region=None, audio_only=None, record_participants_on_connect=None,
        empty_room_timeout=None, unused_room_timeout=None, large_room=None, url=None,
    )  # fmt: skip


@dataclass
class FakeDeliverer:
    errors: list[DeliveryError] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def deliver(self, **kwargs: Any) -> DeliveryResult:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        target: S3Target = kwargs["target"]
        return DeliveryResult(target.url, kwargs["expected_size"] or 0, "ab" * 32, uploaded=True, parts=1)


@dataclass
class World:
    """Fake ports: persisted status and annotation, Events, and a switch to fail status writes."""

    clock: Clock
    status: CompositionStatus = field(default_factory=CompositionStatus)
    writes: list[CompositionStatus] = field(default_factory=list)
    recorded: Mapping[str, Any] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    crash_on_sid_write: bool = False
    deliverer: FakeDeliverer = field(default_factory=FakeDeliverer)

    async def write_status(self, status: CompositionStatus) -> None:
        if self.crash_on_sid_write and status.sid is not None:
            raise ConnectionResetError("the process died")
        self.order.append("status")
        self.writes.append(status)
        self.status = status

    async def record_spec(self, spec: Mapping[str, Any] | None) -> None:
        self.order.append("annotation")
        self.recorded = spec

    async def post_event(self, kind: str, reason: str, message: str) -> None:
        self.events.append((kind, reason, message))

    async def s3_credentials(self, name: str) -> S3Credentials:
        if name == "missing":
            raise DeliveryError(
                DeliveryReason.CREDENTIALS_NOT_FOUND, "Secret missing does not exist", retryable=False
            )
        return S3Credentials("AKID", SecretStr("s3-secret"))

    def ports(self) -> Ports:
        return Ports(
            self.write_status, self.record_spec, self.post_event, self.s3_credentials, self.deliverer
        )


def spec(**changes: Any) -> CompositionSpec:
    return CompositionSpec.model_validate({"roomSid": ROOM, "stalledAfter": "1h", **changes})


def context(world: World, the_spec: CompositionSpec | None = None, **changes: Any) -> CompositionContext:
    chosen = the_spec or spec()
    base = CompositionContext(
        namespace="ns",
        name="c1",
        uid=UID,
        generation=1,
        spec=chosen,
        created_spec=world.recorded,
        room=RoomTarget(sid=ROOM),
        callback_url=CALLBACK,
    )
    return replace(base, **changes)


async def run(
    world: World, twilio: FakeTwilio, memory: Memory | None = None, **changes: Any
) -> tuple[CompositionStatus, float | None]:
    executor = CompositionExecutor(
        context(world, **changes),
        twilio=twilio,
        ports=world.ports(),
        memory=memory if memory is not None else Memory(),
        clock=world.clock,
        timing=TIMING,
    )
    return await executor.reconcile(world.status)


def cond(status: CompositionStatus, type: str) -> tuple[str, str]:
    condition = get_condition(status.conditions, type)
    assert condition is not None, type
    return condition.status, condition.reason


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(clock: Clock) -> World:
    return World(clock)


@pytest.fixture
def twilio(clock: Clock) -> FakeTwilio:
    return FakeTwilio(clock)


# ------------------------------------------------------------------------------------------------ create


async def test_create_records_the_marker_before_calling_twilio(world: World, twilio: FakeTwilio) -> None:
    status, after = await run(world, twilio)

    assert world.order[:2] == ["annotation", "status"]
    first = world.writes[0]
    assert first.create_pending_at == world.clock.now and first.sid is None and first.room_sid == ROOM
    assert status.sid == "CJ" + "0" * 31 + "1" and status.create_pending_at is None
    assert status.composition_status == "enqueued" and status.started_at == T0
    assert cond(status, "Ready") == ("False", "Enqueued") and cond(status, "Synced") == (
        "True",
        "ReconcileSuccess",
    )
    assert cond(status, "Stalled") == ("False", "NotStalled")
    assert world.recorded == spec().to_dict()
    assert world.events[0][:2] == ("Normal", "Created")
    assert after == TIMING.poll_min  # the next poll, unless callbacks come first


async def test_twilio_gets_every_parameter(world: World, twilio: FakeTwilio) -> None:
    layout = {"grid": {"video_sources": ["*"]}}
    the_spec = spec(
        videoLayout=layout, audioSourcesExcluded=["bot*"], resolution="1280x720", format="webm", trim=False
    )
    await run(world, twilio, spec=the_spec)

    assert twilio.created == [
        {
            "room_sid": ROOM,
            "video_layout": layout,
            "audio_sources": ["*"],
            "audio_sources_excluded": ["bot*"],
            "resolution": "1280x720",
            "format": "webm",
            "trim": False,
            "status_callback": CALLBACK,
            "status_callback_method": "POST",
        }
    ]


async def test_a_crash_after_create_claims_the_composition_instead_of_creating_again(
    world: World, twilio: FakeTwilio, clock: Clock
) -> None:
    world.crash_on_sid_write = True
    with pytest.raises(ConnectionResetError):
        await run(world, twilio)
    assert world.status.create_pending_at is not None and world.status.sid is None  # what was persisted

    world.crash_on_sid_write = False
    clock.advance(30)
    status, _ = await run(world, twilio, memory=Memory())  # a new process: nothing remembered

    assert len(twilio.created) == 1
    assert status.sid == next(iter(twilio.compositions)) and status.create_pending_at is None
    assert [reason for _, reason, _ in world.events] == ["Claimed"]


async def test_an_unanswered_create_is_looked_up_first(world: World, twilio: FakeTwilio) -> None:
    twilio.lose_create_answer = True
    status, after = await run(world, twilio)
    assert status.sid is None and status.create_pending_at is not None
    assert cond(status, "Synced") == ("False", "TwilioUnavailable") and after == TIMING.transient_retry

    twilio.lose_create_answer = False
    status, _ = await run(world, twilio)
    assert twilio.calls == ["create", "list"] and status.sid in twilio.compositions


async def test_a_create_that_never_reached_twilio_is_sent_again_after_the_lookup(
    world: World, twilio: FakeTwilio
) -> None:
    twilio.fail_create = [RetryableError("timeout", operation="CreateComposition", maybe_applied=True)]
    await run(world, twilio)
    status, _ = await run(world, twilio)

    assert twilio.calls == ["create", "list", "create"]
    assert len(twilio.compositions) == 1 and status.sid in twilio.compositions


async def test_someone_elses_composition_of_the_room_is_not_claimed(world: World, twilio: FakeTwilio) -> None:
    other = "CJ" + "f" * 32
    twilio.compositions[other] = composition(
        other, "enqueued", status_callback=CALLBACK.replace(UID, "another-uid")
    )
    twilio.fail_create = [RetryableError("timeout", operation="CreateComposition", maybe_applied=True)]
    await run(world, twilio)
    status, _ = await run(world, twilio)

    assert status.sid not in (None, other) and len(twilio.created) == 1


async def test_a_refused_create_stalls_until_the_spec_changes(world: World, twilio: FakeTwilio) -> None:
    twilio.fail_create = [
        TerminalError("Room not found", operation="CreateComposition", status=400, code=53106)
    ]
    status, after = await run(world, twilio)

    assert status.sid is None and status.create_pending_at is None and world.recorded is None
    assert cond(status, "Stalled") == ("True", "RejectedByTwilio") and after is None
    assert cond(status, "Ready") == ("False", "RejectedByTwilio")
    await run(world, twilio)
    assert twilio.calls == ["create"]  # not retried at the same generation
    await run(world, twilio, generation=2)
    assert twilio.calls == ["create", "create"]


# ----------------------------------------------------------------------------------------- not creating


async def test_waits_for_the_room_with_a_clear_condition(world: World, twilio: FakeTwilio) -> None:
    waiting = RoomTarget(sid=None, waiting="VideoRoom standup has no Twilio room yet.")
    status, after = await run(world, twilio, room=waiting)

    assert cond(status, "Ready") == ("False", "WaitingForRoom") and after == TIMING.room_wait
    assert get_condition(status.conditions, "Ready").message == "VideoRoom standup has no Twilio room yet."  # type: ignore[union-attr]
    assert twilio.calls == []


async def test_an_invalid_spec_is_stalled(world: World, twilio: FakeTwilio) -> None:
    status, after = await run(world, twilio, spec=None, spec_problems=("spec.resolution: out of range",))
    assert cond(status, "Stalled") == ("True", "InvalidSpec") and after is None and twilio.calls == []


async def test_a_changed_spec_stalls_and_never_creates_a_second_composition(
    world: World, twilio: FakeTwilio
) -> None:
    await run(world, twilio)
    status, after = await run(world, twilio, spec=spec(format="webm"), generation=2)

    assert cond(status, "Stalled") == ("True", "SpecImmutable") and after is None
    assert "spec.format" in get_condition(status.conditions, "Stalled").message  # type: ignore[union-attr]
    assert len(twilio.created) == 1
    assert ("Warning", "SpecImmutable") in [event[:2] for event in world.events]


async def test_missing_credentials_wait(world: World, twilio: FakeTwilio) -> None:
    problem = ("CredentialsNotFound", "The room's credentials Secret tenant-a does not exist.")
    status, after = await run(world, twilio, credentials_problem=problem)
    assert cond(status, "Ready") == ("False", "CredentialsNotFound") and cond(status, "Synced")[0] == "False"
    assert after == TIMING.credentials_retry and twilio.calls == []


# ------------------------------------------------------------------------------------- polls and watchdog


async def test_polls_back_off_while_nothing_changes(world: World, twilio: FakeTwilio, clock: Clock) -> None:
    memory = Memory()
    await run(world, twilio, memory=memory)
    intervals = []
    for _ in range(5):
        _, after = await run(world, twilio, memory=memory)
        assert after is not None
        intervals.append(after)
        clock.advance(after)
    assert intervals == [10, 20, 40, 80, 80]
    assert twilio.calls.count("fetch") == 4


async def test_news_from_a_poll_resets_the_backoff(world: World, twilio: FakeTwilio, clock: Clock) -> None:
    memory = Memory(quiet_polls=3)
    status, _ = await run(world, twilio, memory=memory)
    sid = status.sid
    assert sid is not None
    twilio.compositions[sid] = composition(sid, "processing")
    twilio.room_end = clock.now
    clock.advance(80)
    status, after = await run(world, twilio, memory=memory)
    assert status.composition_status == "processing" and memory.quiet_polls == 0 and after == 10


async def test_processing_longer_than_stalled_after_is_stalled(
    world: World, twilio: FakeTwilio, clock: Clock
) -> None:
    before = REGISTRY.get_sample_value("twilio_video_operator_composition_processing_timeouts_total") or 0.0
    memory = Memory()
    status, _ = await run(world, twilio, memory=memory)
    assert status.sid is not None
    twilio.compositions[status.sid] = composition(status.sid, "processing")
    twilio.room_end = clock.now + timedelta(minutes=5)
    clock.advance(5 * 60)
    status, _ = await run(world, twilio, memory=memory)  # learns that the room ended: processing since then
    assert status.composition_status == "processing" and cond(status, "Stalled") == ("False", "NotStalled")

    clock.advance(3600 - 1)
    status, _ = await run(world, twilio, memory=memory)
    assert cond(status, "Stalled") == ("False", "NotStalled")
    clock.advance(2)
    status, _ = await run(world, twilio, memory=memory)

    assert cond(status, "Stalled") == ("True", "ProcessingTimeout")
    assert cond(status, "Ready") == ("False", "ProcessingTimeout") and memory.timed_out
    assert [e[:2] for e in world.events].count(("Warning", "ProcessingTimeout")) == 1
    assert (
        REGISTRY.get_sample_value("twilio_video_operator_composition_processing_timeouts_total") == before + 1
    )

    twilio.compositions[status.sid] = composition(status.sid, "completed", size=10, duration=3)  # type: ignore[index]
    clock.advance(600)
    status, _ = await run(world, twilio, memory=memory)
    assert cond(status, "Stalled") == ("False", "NotStalled") and cond(status, "Ready") == (
        "True",
        "Completed",
    )
    assert not memory.timed_out


async def test_enqueued_while_the_room_runs_is_not_stalled(
    world: World, twilio: FakeTwilio, clock: Clock
) -> None:
    memory = Memory()
    await run(world, twilio, memory=memory)
    clock.advance(3 * 3600)
    status, _ = await run(world, twilio, memory=memory)
    assert status.composition_status == "enqueued" and cond(status, "Stalled") == ("False", "NotStalled")


async def test_failed_at_twilio_is_reported(world: World, twilio: FakeTwilio, clock: Clock) -> None:
    status, _ = await run(world, twilio)
    assert status.sid is not None
    twilio.compositions[status.sid] = composition(status.sid, "failed")
    clock.advance(60)
    status, after = await run(world, twilio)
    assert cond(status, "Ready") == ("False", "Failed") and after is None
    assert ("Warning", "CompositionFailed") in [event[:2] for event in world.events]


# ----------------------------------------------------------------------------------------------- delivery

DELIVERY = {"s3": {"bucket": "media", "endpoint": "http://127.0.0.1:9000", "credentialsRef": {"name": "s3"}}}


async def completed(world: World, twilio: FakeTwilio, clock: Clock, the_spec: CompositionSpec) -> Memory:
    memory = Memory()
    status, _ = await run(world, twilio, memory=memory, spec=the_spec)
    assert status.sid is not None
    twilio.compositions[status.sid] = composition(status.sid, "completed", size=4096, duration=9)
    clock.advance(60)
    return memory


async def test_completed_media_is_delivered(world: World, twilio: FakeTwilio, clock: Clock) -> None:
    the_spec = spec(delivery=DELIVERY)
    memory = await completed(world, twilio, clock, the_spec)
    status, after = await run(world, twilio, memory=memory, spec=the_spec)

    call = world.deliverer.calls[0]
    assert call["target"] == S3Target("media", f"ns/c1/{status.sid}.mp4", "http://127.0.0.1:9000", None)
    assert call["expected_size"] == 4096 and call["source_id"] == status.sid
    assert status.delivery is not None
    assert (status.delivery.bytes, status.delivery.sha256) == (4096, "ab" * 32)
    assert status.delivery.url == f"http://127.0.0.1:9000/media/ns/c1/{status.sid}.mp4"
    assert cond(status, "Delivered") == ("True", "DeliverySucceeded")
    assert cond(status, "Ready") == ("True", "Completed") and after is None
    assert ("Normal", "Delivered") in [event[:2] for event in world.events]


async def test_failed_deliveries_back_off_with_a_clear_condition(
    world: World, twilio: FakeTwilio, clock: Clock
) -> None:
    the_spec = spec(delivery=DELIVERY)
    memory = await completed(world, twilio, clock, the_spec)
    world.deliverer.errors = [
        DeliveryError(DeliveryReason.BUCKET_NOT_FOUND, "bucket 'media' does not exist", retryable=False),
        DeliveryError(DeliveryReason.STORAGE_UNAVAILABLE, "cannot reach the storage service", retryable=True),
    ]
    status, after = await run(world, twilio, memory=memory, spec=the_spec)
    assert cond(status, "Delivered") == ("False", "BucketNotFound") and after == 60
    assert cond(status, "Ready") == ("False", "DeliveryFailed")
    message = get_condition(status.conditions, "Delivered").message  # type: ignore[union-attr]
    assert message == "bucket 'media' does not exist (attempt 1; next attempt in 60s)"

    clock.advance(30)
    _, after = await run(world, twilio, memory=memory, spec=the_spec)
    assert len(world.deliverer.calls) == 1 and after == 30  # not before the backoff is over

    clock.advance(30)
    status, after = await run(world, twilio, memory=memory, spec=the_spec)
    assert cond(status, "Delivered") == ("False", "StorageUnavailable") and after == 10  # retryable: sooner

    clock.advance(10)
    status, _ = await run(world, twilio, memory=memory, spec=the_spec)
    assert cond(status, "Delivered") == ("True", "DeliverySucceeded") and len(world.deliverer.calls) == 3
    warnings = [event for event in world.events if event[1] == "DeliveryFailed"]
    assert len(warnings) == 2  # one per distinct reason


async def test_missing_s3_credentials_are_a_delivery_failure(
    world: World, twilio: FakeTwilio, clock: Clock
) -> None:
    delivery = {"s3": {**DELIVERY["s3"], "credentialsRef": {"name": "missing"}}}
    the_spec = spec(delivery=delivery)
    memory = await completed(world, twilio, clock, the_spec)
    status, _ = await run(world, twilio, memory=memory, spec=the_spec)
    assert cond(status, "Delivered") == ("False", "CredentialsNotFound") and world.deliverer.calls == []


def test_fake_twilio_matches_the_protocol() -> None:
    from twilio_video_operator.reconcilers.composition import CompositionsApi

    def accepts(api: CompositionsApi) -> Sequence[str]:
        return ["ok"]

    assert accepts(FakeTwilio(Clock())) == ["ok"]
