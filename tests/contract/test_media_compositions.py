"""Composition media: the 302 redirect, the expiring unauthenticated download, ranges, sizes, restarts."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from test_compositions_support import (
    GRID_LAYOUT,
    CallbackReceiver,
    advance,
    complete_room,
    download,
    media_redirect,
    recorded_room,
    serve_callback_receiver,
    wait_for_status,
)
from twilio.rest import Client

from twilio_video_emulator.server import start_emulator
from twilio_video_operator.gateway.base_url import AsyncBaseUrlHttpClient


@pytest.fixture
def callback_receiver(emulator: Any) -> Iterator[CallbackReceiver]:
    yield from serve_callback_receiver(emulator)


def completed_composition(
    client: Client, join_participant: Any, emulator_control: Any, name: str, **options: Any
) -> Any:
    room_sid = recorded_room(client, join_participant, emulator_control, name=name)
    created = client.video.v1.compositions.create(room_sid=room_sid, **({"audio_sources": ["*"]} | options))
    complete_room(client, room_sid)
    wait_for_status(client, created.sid, ("processing",))
    advance(emulator_control, 600)
    return wait_for_status(client, created.sid, ("completed",))


def test_full_path_from_participants_to_downloaded_media(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    emulator: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    room = twilio_client.video.v1.rooms.create(
        unique_name="town-hall", type="group", record_participants_on_connect=True
    )
    join_participant("town-hall", "alice")  # tokens minted with twilio.jwt.access_token
    join_participant("town-hall", "bob")
    advance(emulator_control, 42)
    composition = twilio_client.video.v1.compositions.create(
        room_sid=room.sid,
        audio_sources=["*"],
        video_layout=GRID_LAYOUT,
        resolution="1280x720",
        status_callback=callback_receiver.url(),
    )
    twilio_client.video.v1.rooms(room.sid).update(status="completed")
    wait_for_status(twilio_client, composition.sid, ("processing",))
    advance(emulator_control, 600)
    done = wait_for_status(twilio_client, composition.sid, ("completed",))
    available = callback_receiver.wait_for("composition-available", composition.sid)
    assert done.duration == 42

    status, headers, body = media_redirect(twilio_client, composition.sid)
    assert status == 302
    assert headers["Location"] == body["redirect_to"]
    assert urlsplit(body["redirect_to"]).path.startswith("/_emulator/media/")
    assert available.params["MediaUri"] == f"/v1/Compositions/{composition.sid}/Media"

    media = download(body["redirect_to"])
    assert media.status == 200
    assert media.headers["Content-Type"] == "video/mp4"
    assert int(media.headers["Content-Length"]) == len(media.body) == done.size
    assert int(available.params["Size"]) == done.size
    assert media.body[4:8] == b"ftyp"
    assert b"moov" in media.body[:4096] and b"mdat" in media.body[:65536]
    assert download(body["redirect_to"]).body == media.body  # deterministic


def test_webm_and_configured_sizes(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    assert emulator_control("POST", "config", {"compositionMediaBytes": 3_000_001}).status == 200
    webm = completed_composition(twilio_client, join_participant, emulator_control, "webm", format="webm")
    assert webm.size == 3_000_001
    _, _, body = media_redirect(twilio_client, webm.sid)
    media = download(body["redirect_to"])
    assert media.headers["Content-Type"] == "video/webm"
    assert len(media.body) == 3_000_001
    assert media.body[:4] == bytes.fromhex("1a45dfa3")  # EBML header

    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="per-composition")
    created = twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    answer = emulator_control("POST", f"compositions/{created.sid}/config", {"mediaBytes": 777_777})
    assert answer.status == 200 and answer.body["mediaBytes"] == 777_777
    complete_room(twilio_client, room_sid)
    wait_for_status(twilio_client, created.sid, ("processing",))
    advance(emulator_control, 600)
    done = wait_for_status(twilio_client, created.sid, ("completed",))
    assert done.size == 777_777
    assert emulator_control("POST", f"compositions/{created.sid}/config", {"mediaBytes": 1}).status == 409
    pending = twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    assert emulator_control("POST", f"compositions/{pending.sid}/config", {"colour": "red"}).status == 400
    assert emulator_control("POST", f"compositions/{pending.sid}/config", {"mediaBytes": -5}).status == 400
    assert emulator_control("POST", "compositions/CJ" + "0" * 32 + "/config", {}).status == 404


def test_ranges_and_head(twilio_client: Client, join_participant: Any, emulator_control: Any) -> None:
    done = completed_composition(twilio_client, join_participant, emulator_control, "ranges")
    _, _, body = media_redirect(twilio_client, done.sid)
    url = body["redirect_to"]
    whole = download(url).body
    size = len(whole)

    first = download(url, {"Range": "bytes=0-99"})
    assert first.status == 206
    assert first.body == whole[:100]
    assert first.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert first.headers["Accept-Ranges"] == "bytes"
    assert download(url, {"Range": f"bytes={size - 10}-"}).body == whole[-10:]
    assert download(url, {"Range": "bytes=-25"}).body == whole[-25:]
    assert download(url, {"Range": f"bytes=5-{size + 100}"}).body == whole[5:]
    unsatisfiable = download(url, {"Range": f"bytes={size}-"})
    assert unsatisfiable.status == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{size}"
    assert download(url, {"Range": "bytes=0-1,5-6"}).body == whole  # multiple ranges: whole file

    head = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as answer:
        assert int(answer.headers["Content-Length"]) == size
        assert answer.read() == b""


def test_media_urls_expire_and_are_signed(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    done = completed_composition(twilio_client, join_participant, emulator_control, "expiry")
    status, _, body = media_redirect(twilio_client, done.sid, "?Ttl=60")
    assert status == 302
    url = body["redirect_to"]
    assert download(url).status == 200
    sid, expires, signature = urlsplit(url).path.rsplit("/", 1)[1].split(".")
    base = url.rsplit("/", 1)[0]
    tampered = f"{base}/{sid}.{int(expires) + 3600}.{signature}"
    assert download(tampered).status == 403
    assert download(f"{base}/garbage").status == 403
    advance(emulator_control, 61)
    expired = download(url)
    assert expired.status == 403
    assert json.loads(expired.body)["message"] == "The media URL has expired"
    for ttl in ("0", "3601", "soon"):
        status, _, body = media_redirect(twilio_client, done.sid, f"?Ttl={ttl}")
        assert (status, body["code"]) == (400, 20001)


def test_media_is_unavailable_until_completed_and_after_delete(
    twilio_client: Client, join_participant: Any, emulator_control: Any, emulator: Any
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="pending")
    created = twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    status, _, body = media_redirect(twilio_client, created.sid)
    assert (status, body["code"], body["status"]) == (404, 20404, 404)
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"

    complete_room(twilio_client, room_sid)
    wait_for_status(twilio_client, created.sid, ("processing",))
    assert media_redirect(twilio_client, created.sid)[0] == 404
    advance(emulator_control, 600)
    wait_for_status(twilio_client, created.sid, ("completed",))
    _, _, body = media_redirect(twilio_client, created.sid)
    url = body["redirect_to"]

    twilio_client.video.v1.compositions(created.sid).delete()
    assert media_redirect(twilio_client, created.sid)[0] == 404
    assert download(url).status == 404
    assert media_redirect(twilio_client, "CJ" + "0" * 32)[0] == 404

    unauthenticated = download(f"{emulator.url}/v1/Compositions/{created.sid}/Media")
    assert unauthenticated.status == 401
    assert json.loads(unauthenticated.body)["code"] == 20003


def test_large_media_streams_with_the_reported_size(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    size = 24 * 1024 * 1024 + 17
    assert emulator_control("POST", "compositions/config", {"mediaBytes": size}).status == 200
    done = completed_composition(twilio_client, join_participant, emulator_control, "large")
    assert done.size == size
    _, _, body = media_redirect(twilio_client, done.sid)
    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(body["redirect_to"], timeout=60) as answer:
        assert int(answer.headers["Content-Length"]) == size
        while chunk := answer.read(1024 * 1024):
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    again = hashlib.sha256(download(body["redirect_to"]).body).hexdigest()
    assert again == digest.hexdigest()


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    """Compositions, hooks, settings and processing timers are saved with ``--state`` and resumed."""
    state_file = str(tmp_path / "emulator.json")
    emulator = await start_emulator(host="127.0.0.1", port=0, state_file=state_file)
    credentials = emulator.credentials
    http = AsyncBaseUrlHttpClient(emulator.url)
    client = Client(credentials["account_sid"], credentials["auth_token"], http_client=http)
    video = client.video.v1
    async with aiohttp.ClientSession() as session:

        async def control(path: str, body: dict[str, Any]) -> None:
            async with session.post(f"{emulator.url}/_emulator/{path}", json=body) as answer:
                assert answer.status in (200, 201), await answer.text()

        await video.composition_hooks.create_async(friendly_name="kept", audio_sources=["*"], enabled=False)
        await video.composition_settings().create_async(friendly_name="kept settings")
        room = await video.rooms.create_async(
            unique_name="saved", type="group", record_participants_on_connect=True
        )
        token = _token(credentials, "alice", "saved")
        await control("rooms/saved/participants", {"identity": "alice", "token": token})
        await control("clock/advance", {"seconds": 30})
        finished = await video.compositions.create_async(room_sid=room.sid, audio_sources=["*"])
        running = await video.compositions.create_async(room_sid=room.sid, video_layout=GRID_LAYOUT)
        await control(f"compositions/{running.sid}/config", {"processingSeconds": 1000})
        await video.rooms(room.sid).update_async(status="completed")
        await control("clock/advance", {"seconds": 10})  # the first completes, the second goes on
        first = await video.compositions(finished.sid).fetch_async()
        assert first.status == "completed"
        assert (await video.compositions(running.sid).fetch_async()).status == "processing"
        original = await _media_bytes(client, session, finished.sid)
        await http.close()
        await emulator.stop()

        emulator = await start_emulator(host="127.0.0.1", port=0, state_file=state_file)
        http = AsyncBaseUrlHttpClient(emulator.url)
        client = Client(credentials["account_sid"], credentials["auth_token"], http_client=http)
        video = client.video.v1
        try:
            restored = await video.compositions(finished.sid).fetch_async()
            assert (restored.status, restored.size, restored.duration) == (
                "completed",
                first.size,
                first.duration,
            )
            assert await _media_bytes(client, session, finished.sid) == original
            assert [h.friendly_name for h in await video.composition_hooks.list_async()] == ["kept"]
            assert (await video.composition_settings().fetch_async()).friendly_name == "kept settings"
            assert (await video.compositions(running.sid).fetch_async()).status == "processing"
            await control("clock/advance", {"seconds": 1000})
            assert (await video.compositions(running.sid).fetch_async()).status == "completed"
        finally:
            await http.close()
            await emulator.stop()


def _token(credentials: dict[str, str], identity: str, room: str) -> str:
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VideoGrant

    token = AccessToken(
        credentials["account_sid"], credentials["api_key"], credentials["api_secret"], identity=identity
    )
    token.add_grant(VideoGrant(room=room))
    return str(token.to_jwt())


async def _media_bytes(client: Client, session: aiohttp.ClientSession, sid: str) -> bytes:
    response = await client.request_async("GET", f"https://video.twilio.com/v1/Compositions/{sid}/Media")
    assert response.status_code == 302
    async with session.get(json.loads(response.text)["redirect_to"]) as answer:
        assert answer.status == 200
        return await answer.read()
