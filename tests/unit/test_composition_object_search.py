"""Which Composition a callback for an unknown SID belongs to: the search honours ``WATCH_NAMESPACES``,
whose entries may be globs (``team-*``), not namespace names to list."""

from __future__ import annotations

from typing import Any, cast

from twilio_video_operator.controllers.composition import CompositionController
from twilio_video_operator.delivery import S3Deliverer
from twilio_video_operator.gateway import TwilioGateway
from twilio_video_operator.kube.composition_objects import CompositionObjects
from twilio_video_operator.reconcilers.credentials import CredentialsConnector

SID = "CJ" + "2" * 32
ROOM = "RM" + "3" * 32


class ListedObjects:
    """Compositions as the API lists them: by namespace name, or all of them for ``None``."""

    def __init__(self, *objects: tuple[str, str, dict[str, Any]]) -> None:
        self.objects = objects
        self.listed: list[str | None] = []

    async def all(self, namespace: str | None) -> list[dict[str, Any]]:
        self.listed.append(namespace)
        return [
            {"metadata": {"namespace": ns, "name": name}, "status": status}
            for ns, name, status in self.objects
            if namespace is None or ns == namespace
        ]


def controller(objects: ListedObjects, watch: tuple[str, ...]) -> CompositionController:
    return CompositionController(
        cast(CompositionObjects, objects),
        cast(TwilioGateway, None),
        cast(CredentialsConnector, None),
        cast(S3Deliverer, None),
        public_base_url="https://operator.example.test",
        watch_namespaces=watch,
    )


async def test_a_glob_is_matched_against_every_namespace_not_listed_as_a_name() -> None:
    objects = ListedObjects(("team-a", "c1", {"sid": SID}))
    found = await controller(objects, ("team-*",))._object_of(SID, ROOM)
    assert found == ("team-a", "c1")
    assert objects.listed == [None]


async def test_an_object_outside_the_patterns_is_not_taken() -> None:
    objects = ListedObjects(("other", "c1", {"sid": SID}), ("team-b", "pending", {"createPendingAt": "x"}))
    assert await controller(objects, ("team-*", "staging"))._object_of(SID, ROOM) is None


async def test_a_pending_object_in_a_matching_namespace_is_found_by_its_room() -> None:
    pending = {"createPendingAt": "2026-12-07T10:00:00Z", "roomSid": ROOM}
    objects = ListedObjects(("team-b", "c2", pending), ("elsewhere", "c3", pending))
    assert await controller(objects, ("team-?",))._object_of(SID, ROOM) == ("team-b", "c2")


async def test_plain_names_are_listed_one_by_one() -> None:
    objects = ListedObjects(("b", "c1", {"sid": SID}))
    assert await controller(objects, ("a", "b"))._object_of(SID, ROOM) == ("b", "c1")
    assert objects.listed == ["a", "b"]
