"""Rooms and their participants (Video v1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twilio_video_operator.gateway import catalog
from twilio_video_operator.gateway.bound import BoundOperations, SdkClient, sdk_params
from twilio_video_operator.gateway.errors import NotFoundError, TerminalError
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo, participant_info, room_info

CODE_ROOM_STATUS_INVALID = 53112
CODE_ROOM_COMPLETED = 53118
CODE_PARTICIPANT_NOT_FOUND = 53204

_FIND_PAGE_SIZE = 20
_PARTICIPANT_PAGE_SIZE = 100


class RoomOperations(BoundOperations):
    async def create_room(
        self,
        *,
        unique_name: str | None = None,
        type: str | None = None,
        status_callback: str | None = None,
        status_callback_method: str | None = None,
        max_participants: int | None = None,
        max_participant_duration: int | None = None,
        empty_room_timeout: int | None = None,
        unused_room_timeout: int | None = None,
        record_participants_on_connect: bool | None = None,
        recording_rules: Sequence[Mapping[str, Any]] | None = None,
        transcribe_participants_on_connect: bool | None = None,
        transcriptions_configuration: Mapping[str, Any] | None = None,
        video_codecs: Sequence[str] | None = None,
        media_region: str | None = None,
        audio_only: bool | None = None,
        large_room: bool | None = None,
        enable_turn: bool | None = None,
    ) -> RoomInfo:
        """CreateRoom. Parameters left at ``None`` are not sent (Twilio's defaults apply).

        Not retried after a 5xx, timeout or dropped connection: such failures raise
        ``RetryableError(maybe_applied=True)``; look for the room (``find_in_progress_room``) before
        creating it again. A name already used by an in-progress room raises ``TerminalError`` code 53113.
        """
        params = sdk_params(
            unique_name=unique_name,
            type=type,
            status_callback=status_callback,
            status_callback_method=status_callback_method,
            max_participants=max_participants,
            max_participant_duration=max_participant_duration,
            empty_room_timeout=empty_room_timeout,
            unused_room_timeout=unused_room_timeout,
            record_participants_on_connect=record_participants_on_connect,
            # The SDK JSON-encodes list/dict values of these parameters.
            recording_rules=_plain(recording_rules),
            transcribe_participants_on_connect=transcribe_participants_on_connect,
            transcriptions_configuration=_plain(transcriptions_configuration),
            video_codecs=list(video_codecs) if video_codecs is not None else None,
            media_region=media_region,
            audio_only=audio_only,
            large_room=large_room,
            enable_turn=enable_turn,
        )

        async def attempt(client: SdkClient) -> RoomInfo:
            return room_info(await client.video.v1.rooms.create_async(**params))

        return await self._call(catalog.CREATE_ROOM, attempt)

    async def fetch_room(self, sid_or_unique_name: str) -> RoomInfo | None:
        """FetchRoom by RM SID, or by UniqueName (in-progress rooms only). ``None`` when not found."""

        async def attempt(client: SdkClient) -> RoomInfo:
            return room_info(await client.video.v1.rooms(sid_or_unique_name).fetch_async())

        try:
            return await self._call(catalog.FETCH_ROOM, attempt)
        except NotFoundError:
            return None

    async def find_in_progress_room(self, unique_name: str) -> RoomInfo | None:
        """The in-progress room with this UniqueName, if any: one ListRoom call (UniqueName + Status)."""

        async def attempt(client: SdkClient) -> list[RoomInfo]:
            page = await client.video.v1.rooms.page_async(
                status="in-progress", unique_name=unique_name, page_size=_FIND_PAGE_SIZE
            )
            return [room_info(record) for record in page]

        rooms = await self._call(catalog.LIST_ROOM, attempt)
        matches = [room for room in rooms if room.unique_name == unique_name and room.in_progress]
        if not matches:
            return None
        return max(matches, key=_newest_first_key)

    async def complete_room(self, sid: str) -> RoomInfo:
        """UpdateRoom ``Status=completed``. Idempotent: a room already ended is returned as it is.

        Raises ``NotFoundError`` for an unknown room.
        """

        async def attempt(client: SdkClient) -> RoomInfo:
            return room_info(await client.video.v1.rooms(sid).update_async(status="completed"))

        try:
            return await self._call(catalog.UPDATE_ROOM, attempt)
        except TerminalError as error:
            if error.code not in (CODE_ROOM_STATUS_INVALID, CODE_ROOM_COMPLETED):
                raise
            room = await self.fetch_room(sid)
            if room is None or room.in_progress:
                raise
            return room

    async def list_participants(
        self, room_sid: str, status: str | None = "connected"
    ) -> list[ParticipantInfo]:
        """ListRoomParticipant with a Status filter, every page.

        ``status=None`` sends no filter, so Twilio's default applies (connected participants of an
        in-progress room, disconnected ones of an ended room).
        """

        async def attempt(client: SdkClient) -> list[ParticipantInfo]:
            participants = client.video.v1.rooms(room_sid).participants
            records = await participants.list_async(
                **sdk_params(status=status), page_size=_PARTICIPANT_PAGE_SIZE
            )
            return [participant_info(record) for record in records]

        return await self._call(catalog.LIST_ROOM_PARTICIPANT, attempt)

    async def disconnect_participant(self, room_sid: str, sid_or_identity: str) -> ParticipantInfo | None:
        """UpdateRoomParticipant ``Status=disconnected``. ``None`` when the participant is already gone."""

        async def attempt(client: SdkClient) -> ParticipantInfo:
            context = client.video.v1.rooms(room_sid).participants(sid_or_identity)
            return participant_info(await context.update_async(status="disconnected"))

        try:
            return await self._call(catalog.UPDATE_ROOM_PARTICIPANT, attempt)
        except NotFoundError:
            return None
        except TerminalError as error:
            if error.code == CODE_PARTICIPANT_NOT_FOUND:
                return None
            raise

    async def update_recording_rules(
        self, room_sid: str, rules: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """UpdateRoomRecordingRule: replace the recording rules of an in-progress room.

        Returns the rules Twilio now holds. Setting the same rules twice is harmless, so it is retried like
        any update. Invalid rules raise ``TerminalError`` code 53120, a room that has ended ``TerminalError``
        code 53118, an unknown room ``NotFoundError``.
        """
        body = _plain(list(rules))

        async def attempt(client: SdkClient) -> list[dict[str, Any]]:
            context = client.video.v1.rooms(room_sid).recording_rules
            instance = await context.update_async(rules=body)
            return [dict(rule) for rule in instance.rules or []]

        return await self._call(catalog.UPDATE_ROOM_RECORDING_RULE, attempt)

    async def update_subscribe_rules(
        self, room_sid: str, participant_sid: str, rules: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """UpdateRoomParticipantSubscribeRule: replace one participant's subscribe rules.

        Returns the rules Twilio now holds, ``None`` when the participant (or the room) is not found.
        Idempotent, so retried like any update. A room that has ended raises ``TerminalError`` 53118.
        """
        body = _plain(list(rules))

        async def attempt(client: SdkClient) -> list[dict[str, Any]]:
            context = client.video.v1.rooms(room_sid).participants(participant_sid).subscribe_rules
            instance = await context.update_async(rules=body)
            return [dict(rule) for rule in instance.rules or []]

        try:
            return await self._call(catalog.UPDATE_ROOM_PARTICIPANT_SUBSCRIBE_RULE, attempt)
        except NotFoundError:
            return None
        except TerminalError as error:
            if error.code == CODE_PARTICIPANT_NOT_FOUND:
                return None
            raise


def _newest_first_key(room: RoomInfo) -> tuple[float, str]:
    return (room.date_created.timestamp() if room.date_created else 0.0, room.sid)


def _plain(value: Any) -> Any:
    """Mappings and sequences as plain dicts and lists, which the SDK JSON-encodes."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
