"""Composition hooks through the real twilio client: CRUD, filters, uniqueness and hook-made compositions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from test_compositions_support import (
    COMPOSITION_PARAMS,
    GRID_LAYOUT,
    HOOK_PARAMS,
    CallbackReceiver,
    advance,
    complete_room,
    recorded_room,
    serve_callback_receiver,
    wait_for_status,
)
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client


@pytest.fixture
def callback_receiver(emulator: Any) -> Iterator[CallbackReceiver]:
    yield from serve_callback_receiver(emulator)


HOOK_FIELDS = {
    "account_sid",
    "friendly_name",
    "enabled",
    "date_created",
    "date_updated",
    "sid",
    "audio_sources",
    "audio_sources_excluded",
    "video_layout",
    "resolution",
    "trim",
    "format",
    "status_callback",
    "status_callback_method",
    "url",
}


def test_create_fetch_update_delete(twilio_client: Client, emulator: Any, emulator_control: Any) -> None:
    hooks = twilio_client.video.v1.composition_hooks
    created = hooks.create(
        friendly_name="Everything",
        audio_sources=["*"],
        audio_sources_excluded=["moderator*"],
        video_layout=GRID_LAYOUT,
        resolution="1280x720",
        format="webm",
        trim=False,
        status_callback="https://example.com/hooks",
        status_callback_method="GET",
    )
    assert re.fullmatch(r"HK[0-9a-f]{32}", created.sid)
    assert created.enabled is True
    assert created.friendly_name == "Everything"
    assert (created.audio_sources, created.audio_sources_excluded) == (["*"], ["moderator*"])
    assert created.video_layout == GRID_LAYOUT
    assert (created.resolution, created.format, created.trim) == ("1280x720", "webm", False)
    assert (created.status_callback, created.status_callback_method) == ("https://example.com/hooks", "GET")
    assert created.account_sid == emulator.credentials["account_sid"]
    assert created.url == f"{emulator.url}/v1/CompositionHooks/{created.sid}"
    raw = twilio_client.request("GET", f"https://video.twilio.com/v1/CompositionHooks/{created.sid}")
    assert set(json.loads(raw.text)) == HOOK_FIELDS

    assert hooks(created.sid).fetch().friendly_name == "Everything"
    advance(emulator_control, 60)
    updated = hooks(created.sid).update(friendly_name="Audio only", enabled=False, video_layout={})
    assert (updated.friendly_name, updated.enabled) == ("Audio only", False)
    assert updated.video_layout == {}
    assert updated.audio_sources == ["*"]  # parameters left out keep their values
    assert updated.resolution == "1280x720"
    assert isinstance(updated.date_updated, datetime)
    assert updated.date_updated - updated.date_created >= timedelta(seconds=60)

    assert hooks(created.sid).delete() is True
    with pytest.raises(TwilioRestException) as error:
        hooks(created.sid).fetch()
    assert (error.value.status, error.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException):
        hooks(created.sid).delete()


def test_defaults(twilio_client: Client) -> None:
    hook = twilio_client.video.v1.composition_hooks.create(friendly_name="defaults", audio_sources=["*"])
    assert (hook.enabled, hook.resolution, hook.format, hook.trim) == (True, "640x480", "mp4", True)
    assert hook.video_layout == {} and hook.audio_sources_excluded == []
    assert hook.status_callback is None and hook.status_callback_method == "POST"


async def test_async_client_operations(async_twilio_client: Client) -> None:
    hooks = async_twilio_client.video.v1.composition_hooks
    created = await hooks.create_async(friendly_name="async hook", video_layout=GRID_LAYOUT, enabled=False)
    assert (await hooks(created.sid).fetch_async()).enabled is False
    updated = await hooks(created.sid).update_async(friendly_name="async hook 2", enabled=True)
    assert updated.enabled is True
    assert [h.sid for h in await hooks.list_async(friendly_name="ASYNC*")] == [created.sid]
    assert await hooks(created.sid).delete_async() is True
    assert await hooks.list_async() == []


@pytest.mark.parametrize(
    ("arguments", "status", "code"),
    [
        ({"friendly_name": None, "audio_sources": ["*"]}, 400, 20001),
        ({"friendly_name": "x" * 101, "audio_sources": ["*"]}, 400, 20002),
        ({"friendly_name": "no sources"}, 400, 20001),
        ({"friendly_name": "bad", "audio_sources": ["*"], "resolution": "2000x10"}, 400, 20001),
        ({"friendly_name": "bad", "audio_sources": ["*"], "format": "mkv"}, 400, 20001),
        ({"friendly_name": "bad", "audio_sources": ["*"], "enabled": "sometimes"}, 400, 20001),
        ({"friendly_name": "bad", "video_layout": {"grid": {}}}, 400, 20001),
    ],
)
def test_invalid_requests(twilio_client: Client, arguments: dict[str, Any], status: int, code: int) -> None:
    with pytest.raises(TwilioRestException) as error:
        twilio_client.video.v1.composition_hooks.create(**arguments)
    assert (error.value.status, error.value.code) == (status, code)
    assert twilio_client.video.v1.composition_hooks.list() == []


def test_friendly_name_is_unique(twilio_client: Client) -> None:
    hooks = twilio_client.video.v1.composition_hooks
    first = hooks.create(friendly_name="Recorder", audio_sources=["*"])
    with pytest.raises(TwilioRestException) as error:
        hooks.create(friendly_name="Recorder", audio_sources=["*"])
    assert (error.value.status, error.value.code) == (409, 20409)
    second = hooks.create(friendly_name="Other", audio_sources=["*"])
    with pytest.raises(TwilioRestException) as error:
        hooks(second.sid).update(friendly_name="Recorder")
    assert (error.value.status, error.value.code) == (409, 20409)
    assert (
        hooks(first.sid).update(friendly_name="Recorder", enabled=False).enabled is False
    )  # same name is fine
    with pytest.raises(TwilioRestException) as error:
        hooks(first.sid).update(friendly_name="")
    assert error.value.status == 400


def test_list_filters_and_pagination(twilio_client: Client, emulator_control: Any) -> None:
    hooks = twilio_client.video.v1.composition_hooks
    alpha = hooks.create(friendly_name="Alpha Recorder", audio_sources=["*"])
    beta = hooks.create(friendly_name="beta recorder", audio_sources=["*"], enabled=False)
    advance(emulator_control, 30)
    gamma = hooks.create(friendly_name="Gamma", audio_sources=["*"])

    assert [h.sid for h in hooks.list()] == [gamma.sid, beta.sid, alpha.sid]
    assert [h.sid for h in hooks.list(page_size=1)] == [gamma.sid, beta.sid, alpha.sid]
    assert [h.sid for h in hooks.list(enabled=True)] == [gamma.sid, alpha.sid]
    assert [h.sid for h in hooks.list(enabled=False)] == [beta.sid]
    assert [h.sid for h in hooks.list(friendly_name="*RECORDER")] == [beta.sid, alpha.sid]
    assert [h.sid for h in hooks.list(friendly_name="alpha*")] == [alpha.sid]
    assert [h.sid for h in hooks.list(friendly_name="gamma")] == [gamma.sid]
    assert hooks.list(friendly_name="gam") == []
    gamma_created = hooks(gamma.sid).fetch().date_created
    assert [h.sid for h in hooks.list(date_created_after=gamma_created)] == [gamma.sid]
    assert {h.sid for h in hooks.list(date_created_before=gamma_created)} == {alpha.sid, beta.sid}
    with pytest.raises(TwilioException):
        hooks.list(page_size=1001)


def test_enabled_hooks_compose_every_completed_group_room(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    emulator: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    hooks = twilio_client.video.v1.composition_hooks
    hook = hooks.create(
        friendly_name="Auto compose",
        audio_sources=["*"],
        video_layout=GRID_LAYOUT,
        format="webm",
        status_callback=callback_receiver.url("/hook-events"),
    )
    hooks.create(friendly_name="Disabled", audio_sources=["*"], enabled=False)
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="hooked")
    p2p = twilio_client.video.v1.rooms.create(unique_name="p2p", type="peer-to-peer")
    assert twilio_client.video.v1.compositions.list() == []

    complete_room(twilio_client, room_sid)
    complete_room(twilio_client, p2p.sid)
    [composition] = twilio_client.video.v1.compositions.list()
    assert composition.room_sid == room_sid
    assert (composition.format, composition.video_layout) == ("webm", GRID_LAYOUT)
    assert composition.status_callback == callback_receiver.url("/hook-events")

    enqueued = callback_receiver.wait_for("composition-enqueued", composition.sid)
    assert set(enqueued.params) == COMPOSITION_PARAMS | HOOK_PARAMS
    assert enqueued.params["HookSid"] == hook.sid
    assert enqueued.params["HookUri"] == f"/v1/CompositionHooks/{hook.sid}"
    assert enqueued.params["HookFriendlyName"] == "Auto compose"

    wait_for_status(twilio_client, composition.sid, ("processing",))
    advance(emulator_control, 600)
    wait_for_status(twilio_client, composition.sid, ("completed",))
    callback_receiver.wait_for("composition-available", composition.sid)
    assert callback_receiver.events(composition.sid)[:2] == ["composition-enqueued", "composition-started"]
    callback_receiver.assert_signed(emulator.credentials["auth_token"])

    hooks(hook.sid).update(friendly_name="Auto compose", enabled=False)
    other = recorded_room(twilio_client, join_participant, emulator_control, name="after-disable")
    complete_room(twilio_client, other)
    assert twilio_client.video.v1.compositions.list(room_sid=other) == []
