"""What deleting a VideoRoom does to its Twilio room (``deletionPolicy``).

``Complete`` completes the live room and resolves a create that may be in flight; ``Retain`` leaves the
room alone. A paused object is released without any Twilio call. Deletion never waits on a room that is
already gone (404), and gives up with a Warning Event when Twilio refuses the credentials or the call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import GatewayError, NotFoundError, TransientError
from twilio_video_operator.models.annotations import PAUSED as PAUSED_ANNOTATION
from twilio_video_operator.models.timestamps import shifted
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom import CLAIM_CLOCK_SKEW
from twilio_video_operator.reconcilers.videoroom_credentials import CredentialResolver
from twilio_video_operator.reconcilers.videoroom_executor import RoomApi, RoomWriter


@dataclass(frozen=True)
class Released:
    """Outcome of a deletion: ``retry_after`` is set when the finalizer must stay for now."""

    retry_after: float | None = None
    message: str = ""


async def release_room(
    body: Mapping[str, Any],
    spec: VideoRoomSpec | None,
    status: VideoRoomStatus,
    credentials: CredentialResolver,
    api_for: Callable[[CredentialSet], RoomApi],
    writer: RoomWriter,
) -> Released:
    metadata = body.get("metadata") or {}
    if (metadata.get("annotations") or {}).get(PAUSED_ANNOTATION) == "true":
        return Released(message="paused: the Twilio room is left as it is")
    policy = spec.deletion_policy if spec is not None else (body.get("spec") or {}).get("deletionPolicy")
    live = status.sid if status.room_status == "in-progress" else None
    if policy == "Retain":
        if live:
            message = f"Left Twilio room {live} running (deletionPolicy Retain)."
            await writer.post_event(body, "Normal", "Retained", message)
        return Released(message="retained")
    if live is None and status.create_pending is None:
        return Released(message="no live room")
    creds, check = await credentials.resolve(str(metadata.get("namespace")), spec)
    if creds is None:
        why = check.problem[1] if check.problem else "no credentials"
        message = f"Cannot complete the room on deletion: {why}"
        await writer.post_event(body, "Warning", "CompleteFailed", message)
        return Released(message=message)
    api = api_for(creds)
    try:
        for sid in await _rooms_to_complete(api, live, status):
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


async def _rooms_to_complete(api: RoomApi, live: str | None, status: VideoRoomStatus) -> list[str]:
    """The live room, plus the room an interrupted create made (found by the marker's name and time)."""
    targets = [live] if live else []
    marker = status.create_pending
    if marker is not None:
        found = await api.find_in_progress_room(marker.unique_name)
        created = found.date_created if found is not None else None
        claimable_from = shifted(marker.requested_at, -CLAIM_CLOCK_SKEW)
        if found is not None and created is not None and created >= claimable_from:
            targets.append(found.sid)
    return list(dict.fromkeys(targets))
