"""The Twilio operations the gateway performs, named by their spec operationId (the ``op_id`` label)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OpType = Literal["create", "read", "list", "update", "delete"]
Service = str
"""The product host label: ``video`` (video.twilio.com), ``api`` (api.twilio.com), ``studio``
(studio.twilio.com), ``verify`` (verify.twilio.com) or ``sendgrid`` (SendGrid's v3 API)."""


@dataclass(frozen=True)
class Operation:
    op_id: str
    service: Service
    op_type: OpType

    @property
    def idempotent(self) -> bool:
        """Whether sending the request twice is harmless.

        Creates are not. Updates and deletes here are: completing a completed room, disconnecting a gone
        participant or deleting a deleted resource is answered with an error the gateway tolerates.
        """
        return self.op_type != "create"

    @property
    def mutating(self) -> bool:
        return self.op_type in ("create", "update", "delete")


def _op(op_id: str, service: Service, op_type: OpType) -> Operation:
    return Operation(op_id, service, op_type)


CREATE_ROOM = _op("CreateRoom", "video", "create")
LIST_ROOM = _op("ListRoom", "video", "list")
FETCH_ROOM = _op("FetchRoom", "video", "read")
UPDATE_ROOM = _op("UpdateRoom", "video", "update")
LIST_ROOM_PARTICIPANT = _op("ListRoomParticipant", "video", "list")
UPDATE_ROOM_PARTICIPANT = _op("UpdateRoomParticipant", "video", "update")
UPDATE_ROOM_RECORDING_RULE = _op("UpdateRoomRecordingRule", "video", "update")
UPDATE_ROOM_PARTICIPANT_SUBSCRIBE_RULE = _op("UpdateRoomParticipantSubscribeRule", "video", "update")
CREATE_COMPOSITION = _op("CreateComposition", "video", "create")
FETCH_COMPOSITION = _op("FetchComposition", "video", "read")
LIST_COMPOSITION = _op("ListComposition", "video", "list")
DELETE_COMPOSITION = _op("DeleteComposition", "video", "delete")
# Not a path in the OpenAPI spec: Media exists only as a link of a Composition.
FETCH_COMPOSITION_MEDIA = _op("FetchCompositionMedia", "video", "read")
CREATE_NEW_KEY = _op("CreateNewKey", "api", "create")
LIST_KEY = _op("ListKey", "api", "list")
FETCH_KEY = _op("FetchKey", "api", "read")
DELETE_KEY = _op("DeleteKey", "api", "delete")
# Session notifications: Programmable Messaging (api v2010) and Studio v2.
CREATE_MESSAGE = _op("CreateMessage", "api", "create")
LIST_MESSAGE = _op("ListMessage", "api", "list")
CREATE_EXECUTION = _op("CreateExecution", "studio", "create")
LIST_EXECUTION = _op("ListExecution", "studio", "list")
FETCH_EXECUTION_CONTEXT = _op("FetchExecutionContext", "studio", "read")
# SendGrid v3 has no operationIds of Twilio's: named after its API reference, prefixed.
SENDGRID_MAIL_SEND = _op("SendGrid.MailSend", "sendgrid", "create")
SENDGRID_LIST_MESSAGES = _op("SendGrid.ListMessages", "sendgrid", "list")
# Verified joins: Verify v2.
CREATE_VERIFICATION_CHECK = _op("CreateVerificationCheck", "verify", "create")

ALL_OPERATIONS: tuple[Operation, ...] = (
    CREATE_ROOM,
    LIST_ROOM,
    FETCH_ROOM,
    UPDATE_ROOM,
    LIST_ROOM_PARTICIPANT,
    UPDATE_ROOM_PARTICIPANT,
    UPDATE_ROOM_RECORDING_RULE,
    UPDATE_ROOM_PARTICIPANT_SUBSCRIBE_RULE,
    CREATE_COMPOSITION,
    FETCH_COMPOSITION,
    LIST_COMPOSITION,
    DELETE_COMPOSITION,
    FETCH_COMPOSITION_MEDIA,
    CREATE_NEW_KEY,
    LIST_KEY,
    FETCH_KEY,
    DELETE_KEY,
    CREATE_MESSAGE,
    LIST_MESSAGE,
    CREATE_EXECUTION,
    LIST_EXECUTION,
    FETCH_EXECUTION_CONTEXT,
    SENDGRID_MAIL_SEND,
    SENDGRID_LIST_MESSAGES,
    CREATE_VERIFICATION_CHECK,
)
