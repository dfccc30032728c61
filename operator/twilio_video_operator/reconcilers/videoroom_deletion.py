"""What deleting a VideoRoom does to its Twilio room (``deletionPolicy``).

``Complete`` completes the object's room and resolves a create that may be in flight (the room the
create-pending marker names, or a room whose StatusCallback names the object's uid, see
:mod:`.videoroom_ownership`); ``Retain`` leaves the room alone. A paused object is released without any
Twilio call. Deletion never waits on a room that is already gone (404), and gives up with a Warning Event
when Twilio refuses the credentials or the call.

What status says is not trusted for the decision (whoever may write the status could hide a live room, or
point at another object's): the room this process verified is completed unless it saw it end; any other
room status names is fetched first, and completed only when Twilio reports it in progress and it is this
object's to end (a name the namespace may use, not another object's room).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import GatewayError, NotFoundError, TransientError
from twilio_video_operator.gateway.records import RoomInfo
from twilio_video_operator.models.annotations import PAUSED as PAUSED_ANNOTATION
from twilio_video_operator.models.timestamps import shifted
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.credentials import Connection
from twilio_video_operator.reconcilers.tenancy import NameRule
from twilio_video_operator.reconcilers.videoroom import CLAIM_CLOCK_SKEW
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi, RoomWriter
from twilio_video_operator.reconcilers.videoroom_ownership import made_for

ENDED = ("completed", "failed")


@dataclass(frozen=True)
class Ownership:
    """What decides which Twilio rooms an object may end: its credentials, names and verified room."""

    connection: Connection
    names: NameRule
    verified_sid: str | None
    """``status.sid`` when this process verified that room and wrote that status (see the controller)."""
    claimed_by: Callable[[str], str | None]
    remembered: tuple[str, str | None] | None = None
    """The room SID and room status this process last wrote for the object, whatever status says now."""
    uid: str = ""
    """The object's uid, which the StatusCallback of the rooms the operator created for it names."""
    doubt_name: str | None = None
    """The UniqueName of a create of the object that may be unanswered (its room is looked up by it)."""

    def may_end(self, room: RoomInfo) -> bool:
        return room.sid == self.verified_sid or (
            self.claimed_by(room.sid) is None and self.names.allows(room.unique_name)
        )


@dataclass(frozen=True)
class Released:
    """Outcome of a deletion: ``retry_after`` is set when the finalizer must stay for now."""

    retry_after: float | None = None
    message: str = ""


async def release_room(
    body: Mapping[str, Any],
    spec: VideoRoomSpec | None,
    status: VideoRoomStatus,
    ownership: Ownership,
    api_for: Callable[[CredentialSet], RoomApi],
    writer: RoomWriter,
) -> Released:
    metadata = body.get("metadata") or {}
    if (metadata.get("annotations") or {}).get(PAUSED_ANNOTATION) == "true":
        return Released(message="paused: the Twilio room is left as it is")
    policy = spec.deletion_policy if spec is not None else (body.get("spec") or {}).get("deletionPolicy")
    if policy == "Retain":
        live = status.sid if status.room_status == "in-progress" else None
        if live:
            message = f"Left Twilio room {live} running (deletionPolicy Retain)."
            await writer.post_event(body, "Normal", "Retained", message)
        return Released(message="retained")
    seen_ended = status.sid == ownership.verified_sid and status.room_status in ENDED
    remembered = ownership.remembered
    remembered_live = remembered is not None and remembered[0] != status.sid and remembered[1] not in ENDED
    in_doubt = status.create_pending is not None or ownership.doubt_name is not None
    if (status.sid is None or seen_ended) and not in_doubt and not remembered_live:
        return Released(message="no live room")
    creds = ownership.connection.credentials
    if creds is None:
        problem = ownership.connection.problem
        why = problem[1] if problem else "no credentials"
        message = f"Cannot complete the room on deletion: {why}"
        await writer.post_event(body, "Warning", "CompleteFailed", message)
        return Released(message=message)
    api = api_for(creds)
    try:
        for sid in await _rooms_to_complete(api, status, ownership, seen_ended):
            try:
                await api.complete_room(sid)
            except NotFoundError:
                continue
            await writer.post_event(body, "Normal", "Completed", f"Completed Twilio room {sid} on deletion.")
    except TransientError as error:
        return Released(retry_after=max(error.retry_after or 0.0, 1.0), message=str(error))
    except GatewayError as error:
        message = f"Could not complete the Twilio room on deletion, leaving it to Twilio's timeouts: {error}"
        await writer.post_event(body, "Warning", "CompleteFailed", message)
        return Released(message=message)
    return Released(message="completed")


async def _rooms_to_complete(
    api: RoomApi, status: VideoRoomStatus, ownership: Ownership, seen_ended: bool
) -> list[str]:
    """The object's room, plus the room an interrupted create made (found by the marker's name and time, or
    by the name in doubt and the uid its StatusCallback names)."""
    targets: list[str] = []
    remembered = ownership.remembered
    if remembered is not None and remembered[0] != status.sid and remembered[1] not in ENDED:
        targets.append(remembered[0])  # status no longer names the room this process opened for it
    sid = status.sid
    if sid is not None and not seen_ended:
        if sid == ownership.verified_sid:
            targets.append(sid)  # completing an ended room is harmless: no need to look first
        else:
            room = await api.fetch_room(sid)
            if room is not None and room.in_progress and ownership.may_end(room):
                targets.append(sid)
    marker = status.create_pending
    if marker is not None and ownership.names.allows(marker.unique_name):
        found = await api.find_in_progress_room(marker.unique_name)
        created = found.date_created if found is not None else None
        if (
            found is not None
            and created is not None
            and created >= shifted(marker.requested_at, -CLAIM_CLOCK_SKEW)
            and ownership.may_end(found)
        ):
            targets.append(found.sid)
    doubt = ownership.doubt_name
    if doubt is not None and ownership.names.allows(doubt):
        found = await api.find_in_progress_room(doubt)
        if found is not None and made_for(found, ownership.uid) and ownership.may_end(found):
            targets.append(found.sid)
    return list(dict.fromkeys(targets))
