"""How the operator knows the room an interrupted create made, without writing anything before CreateRoom.

Every room the operator creates gets a StatusCallback URL naming its object (namespace, name and uid), and
Twilio reports that URL with the room. After a crash or a lost answer, CreateRoom answers 53113 (an
in-progress room has the name), the room is looked up by name, and it is this object's only when its
callback names this object's uid. On the operator's shared account only the operator creates rooms, and it
writes an object's uid only into the rooms it creates for that object; a uid is never reused.

A create whose answer may be missing is "in doubt". When a session is wanted again, the next CreateRoom
settles the doubt (it succeeds, so no room has the name, or answers 53113 and the room is looked up). When
none is wanted any more (the spec says Completed, the schedule ended, the object is deleted), the room is
looked up by name first, unless the stored status shows that no create can have followed it
(:func:`no_create_since`).

Rooms created without a StatusCallback (credentials whose callbacks the operator cannot verify) carry no
uid: for them the create-pending marker is written to status before CreateRoom, as before.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

from twilio_video_operator.gateway.records import RoomInfo
from twilio_video_operator.models.conditions import ConditionType, Reason, get_condition
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom_desired import unique_name_of, window_of


def room_callback_url(base: str, namespace: str, name: str, uid: str) -> str:
    """The StatusCallback of the rooms of one object: ``base`` (``<PUBLIC_BASE_URL>/twilio/room-events``)
    with the object's namespace, name and uid in the query (Twilio signs the whole URL)."""
    return f"{base}?{urlencode({'namespace': namespace, 'name': name, 'uid': uid})}"


def made_for(room: RoomInfo, uid: str) -> bool:
    """Whether the operator created ``room`` for the object whose uid is ``uid``."""
    if not uid or not room.status_callback:
        return False
    return parse_qs(urlsplit(room.status_callback).query).get("uid") == [uid]


def no_create_since(
    spec: VideoRoomSpec | None, status: VideoRoomStatus, generation: int | None, now: datetime
) -> bool:
    """Whether the stored status shows that no CreateRoom can have been sent since it was written.

    A create is sent only while a session is wanted and none is live. These states, once written for the
    current generation, stay so until the spec changes: Ready Completed (state Completed, an ended schedule,
    an ended room without keepAlive); a room recorded without keepAlive (only the first session is
    created); Ready Scheduled while the window has not opened yet. A spec that never changed (generation
    1) and never wanted a session (state Completed, or a window still ahead) needs no status at all.
    """
    if spec is None:
        return False
    window = window_of(spec)
    never_wanted = spec.state == "Completed" or window.before(now)
    if generation == 1 and never_wanted:
        return True
    if status.observed_generation is None or status.observed_generation != generation:
        return False
    ready = get_condition(status.conditions, ConditionType.READY)
    if ready is not None and ready.observed_generation == generation:
        if ready.reason == Reason.COMPLETED:
            return True
        if ready.reason == Reason.SCHEDULED and window.before(now):
            return True
    return status.sid is not None and not spec.keep_alive


def name_in_doubt(
    spec: VideoRoomSpec | None,
    status: VideoRoomStatus,
    generation: int | None,
    now: datetime,
    namespace: str,
    name: str,
    sent: str | None,
) -> str | None:
    """The UniqueName to look up for a create of the object that may be unanswered: ``sent`` (a CreateRoom
    this process sent without storing its answer), else the spec's name, unless the stored status shows
    that no create can have followed it (``None``)."""
    if sent is not None:
        return sent
    if spec is None or no_create_since(spec, status, generation, now):
        return None
    return unique_name_of(spec, namespace, name)
