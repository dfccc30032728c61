"""Server-side mute end to end: the operator, the embedded Kubernetes API and the Twilio emulator, with the
official ``twilio`` client reading every participant's subscribe rules and subscribed tracks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorHarness, condition
from prometheus_client import REGISTRY
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import AsyncBaseUrlHttpClient

ACTIONS = "twilio_video_operator_moderation_actions_total"
RULES_SET = "twilio_video_operator_subscribe_rules_set_total"


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[OperatorHarness]:
    async with OperatorHarness(tmp_path) as bed:
        yield bed


@pytest.fixture
async def twilio(harness: OperatorHarness) -> AsyncIterator[Client]:
    assert harness.emulator is not None
    creds = harness.emulator.credentials
    http = AsyncBaseUrlHttpClient(harness.twilio_url)
    yield Client(creds["api_key"], creds["api_secret"], creds["account_sid"], http_client=http)
    await http.close()


def in_progress(obj: dict[str, Any]) -> bool:
    ready = condition(obj, "Ready")
    return ready.get("status") == "True" and ready.get("reason") == "InProgress"


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def connected(twilio: Client, room: str) -> dict[str, str]:
    """Connected participants of ``room``: identity -> participant SID."""
    people = await twilio.video.v1.rooms(room).participants.list_async(status="connected")
    return {p.identity: p.sid for p in people}


async def publishers_heard(twilio: Client, room: str) -> dict[str, set[str]]:
    """For every connected participant: the identities whose tracks it receives (SubscribedTracks)."""
    people = await connected(twilio, room)
    identity_of = {sid: identity for identity, sid in people.items()}
    heard: dict[str, set[str]] = {}
    for identity, sid in people.items():
        tracks = await twilio.video.v1.rooms(room).participants(sid).subscribed_tracks.list_async()
        heard[identity] = {identity_of[t.publisher_sid] for t in tracks}
    return heard


async def rules_of(twilio: Client, room: str, participant: str) -> list[dict[str, Any]]:
    fetched = await twilio.video.v1.rooms(room).participants(participant).subscribe_rules.fetch_async()
    return [{key: value for key, value in rule.items() if value is not None} for rule in fetched.rules]


async def test_a_muted_identity_is_heard_by_nobody_until_unmuted(
    harness: OperatorHarness, twilio: Client
) -> None:
    ns = await harness.namespace()
    await harness.create_room(ns, "town-hall", {})
    room = (await harness.wait_room(ns, "town-hall", in_progress))["status"]["sid"]
    await harness.join(room, "ann")
    await harness.join(room, "bob")
    await harness.settled()
    assert await publishers_heard(twilio, room) == {"ann": {"bob"}, "bob": {"ann"}}
    muted_before = counted(ACTIONS, action="muted")
    unmuted_before = counted(ACTIONS, action="unmuted")
    joined_before = counted(RULES_SET, trigger="participant-connected")

    mute = {"mutedIdentities": [{"identity": "bob"}], "reasons": {"bob": "heckling"}}
    await harness.patch_room(ns, "town-hall", {"spec": {"moderation": mute}})
    await harness.wait_room(ns, "town-hall", lambda o: o["status"].get("muteDigest"))
    assert await publishers_heard(twilio, room) == {"ann": set(), "bob": {"ann"}}
    people = await connected(twilio, room)
    assert await rules_of(twilio, room, people["ann"]) == [
        {"type": "include", "all": True},
        {"type": "exclude", "publisher": "bob", "kind": "audio"},
        {"type": "exclude", "publisher": "bob", "kind": "video"},
    ]

    # Whoever joins while bob is muted, and bob himself coming back, keep him unheard.
    await harness.join(room, "carol")
    await harness.leave(room, people["bob"])
    await harness.join(room, "bob")
    await harness.settled()
    assert await publishers_heard(twilio, room) == {
        "ann": {"carol"},
        "carol": {"ann"},
        "bob": {"ann", "carol"},
    }
    assert counted(RULES_SET, trigger="participant-connected") - joined_before == 2

    await harness.patch_room(ns, "town-hall", {"spec": {"moderation": {"mutedIdentities": []}}})
    await harness.wait_room(ns, "town-hall", lambda o: "muteDigest" not in o["status"])
    assert await publishers_heard(twilio, room) == {
        "ann": {"bob", "carol"},
        "carol": {"ann", "bob"},
        "bob": {"ann", "carol"},
    }
    for sid in (await connected(twilio, room)).values():
        assert await rules_of(twilio, room, sid) == [{"type": "include", "all": True}]

    events = {e["reason"]: e for e in await harness.events(ns, "town-hall")}
    reasons = [e["reason"] for e in await harness.events(ns, "town-hall")]
    assert reasons.count("Muted") == reasons.count("Unmuted") == 1  # one Event per action
    muted, unmuted = events["Muted"]["message"], events["Unmuted"]["message"]
    assert "'bob' (audio and video)" in muted and "reason: heckling" in muted
    assert "Unmuted 'bob'" in unmuted and "changed by " in unmuted
    assert counted(ACTIONS, action="muted") - muted_before == 1
    assert counted(ACTIONS, action="unmuted") - unmuted_before == 1
    obj = await harness.get_room(ns, "town-hall")
    assert obj is not None and "mutedIdentities" not in obj["status"]


async def test_a_room_opened_with_mutes_gives_every_joiner_the_rules(
    harness: OperatorHarness, twilio: Client
) -> None:
    ns = await harness.namespace()
    mute = {"mutedIdentities": [{"identity": "dan", "tracks": "video"}]}
    await harness.create_room(ns, "lecture", {"moderation": mute})
    obj = await harness.wait_room(ns, "lecture", in_progress)
    room = obj["status"]["sid"]
    [record] = obj["status"]["mutedIdentities"]
    assert (record["identity"], record["tracks"]) == ("dan", "video") and record["since"]
    await harness.reset_counts()

    await harness.join(room, "dan")
    await harness.join(room, "eve")
    await harness.settled()
    # One call per joiner, named by its callback: nothing listed.
    assert await harness.twilio_counts() == {"UpdateRoomParticipantSubscribeRule": 2}
    people = await connected(twilio, room)
    eve_hears = await twilio.video.v1.rooms(room).participants(people["eve"]).subscribed_tracks.list_async()
    assert sorted(t.kind for t in eve_hears) == ["audio"]  # dan's audio only
