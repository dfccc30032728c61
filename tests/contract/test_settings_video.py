"""CompositionSettings and RecordingSettings through the real twilio client."""

from __future__ import annotations

from typing import Any

import pytest
from test_compositions_support import advance, complete_room, recorded_room, wait_for_status
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

CREDENTIAL = "CR" + "a" * 32
KEY = "CR" + "b" * 32


def _settings(client: Client, kind: str) -> Any:
    return (
        client.video.v1.composition_settings()
        if kind == "composition"
        else client.video.v1.recording_settings()
    )


@pytest.mark.parametrize("kind", ["composition", "recording"])
def test_defaults_then_replace(twilio_client: Client, emulator: Any, kind: str) -> None:
    path = "CompositionSettings" if kind == "composition" else "RecordingSettings"
    initial = _settings(twilio_client, kind).fetch()
    assert initial.account_sid == emulator.credentials["account_sid"]
    assert initial.friendly_name is None
    assert (initial.aws_storage_enabled, initial.encryption_enabled) == (False, False)
    assert (
        initial.aws_credentials_sid is None
        and initial.aws_s3_url is None
        and initial.encryption_key_sid is None
    )
    assert initial.url == f"{emulator.url}/v1/{path}/Default"

    saved = _settings(twilio_client, kind).create(
        friendly_name="Archive",
        aws_credentials_sid=CREDENTIAL,
        aws_s3_url="https://archive.example.com/media",
        aws_storage_enabled=True,
        encryption_key_sid=KEY,
        encryption_enabled=True,
    )
    assert saved.friendly_name == "Archive"
    assert (saved.aws_credentials_sid, saved.encryption_key_sid) == (CREDENTIAL, KEY)
    assert saved.aws_s3_url == "https://archive.example.com/media"
    assert (saved.aws_storage_enabled, saved.encryption_enabled) == (True, True)
    assert _settings(twilio_client, kind).fetch().friendly_name == "Archive"

    replaced = _settings(twilio_client, kind).create(friendly_name="Plain")
    assert replaced.aws_storage_enabled is False and replaced.aws_s3_url is None  # a POST replaces everything


async def test_async_client(async_twilio_client: Client) -> None:
    saved = await async_twilio_client.video.v1.composition_settings().create_async(friendly_name="async")
    assert saved.friendly_name == "async"
    fetched = await async_twilio_client.video.v1.recording_settings().fetch_async()
    assert fetched.friendly_name is None
    await async_twilio_client.video.v1.recording_settings().create_async(friendly_name="rec")
    assert (await async_twilio_client.video.v1.recording_settings().fetch_async()).friendly_name == "rec"


@pytest.mark.parametrize("kind", ["composition", "recording"])
@pytest.mark.parametrize(
    "arguments",
    [
        {"friendly_name": None},
        {"friendly_name": "x", "aws_credentials_sid": "CR123"},
        {"friendly_name": "x", "encryption_key_sid": "SK" + "0" * 32},
        {"friendly_name": "x", "aws_s3_url": "not a url"},
        {"friendly_name": "x", "aws_storage_enabled": True},
        {"friendly_name": "x", "encryption_enabled": True},
        {"friendly_name": "x", "aws_storage_enabled": "perhaps"},
    ],
)
def test_invalid_settings(twilio_client: Client, kind: str, arguments: dict[str, Any]) -> None:
    with pytest.raises(TwilioRestException) as error:
        _settings(twilio_client, kind).create(**arguments)
    assert (error.value.status, error.value.code) == (400, 20001)
    assert _settings(twilio_client, kind).fetch().friendly_name is None


def test_external_storage_sets_media_external_location(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    twilio_client.video.v1.composition_settings().create(
        friendly_name="S3",
        aws_credentials_sid=CREDENTIAL,
        aws_s3_url="https://bucket.example.com/compositions/",
        aws_storage_enabled=True,
    )
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="external")
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid, audio_sources=["*"], format="webm"
    )
    complete_room(twilio_client, room_sid)
    advance(emulator_control, 600)
    done = wait_for_status(twilio_client, created.sid, ("completed",))
    assert done.media_external_location == f"https://bucket.example.com/compositions/{created.sid}.webm"
