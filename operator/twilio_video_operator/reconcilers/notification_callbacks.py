"""Programmable Messaging status callbacks of notifications: delivery reports folded into status.

Each notification message is sent with ``StatusCallback`` naming its object and reference in the query
(``kind``, ``namespace``, ``name``, ``uid``, ``ref``), which Twilio's signature covers. A verified callback
changes a record only when the record was sent from the signing account and names the same message (or
is still waiting for the send's answer), so no account's callbacks can touch another account's records.
Only the record's ``deliveryStatus`` and ``deliveryErrorCode`` are written, as a merge patch of those two
fields: the reconciles that write the rest of the record never race with it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from twilio_video_operator import metrics
from twilio_video_operator.models.notifications import recorded_notifications
from twilio_video_operator.reconcilers.notification_executor import NotificationPorts

logger = logging.getLogger(__name__)

KINDS = ("VideoRoom", "Composition")
FAILED_STATUSES = frozenset({"failed", "undelivered"})
#: Statuses a later callback may not overwrite with an earlier one (Twilio does not promise order).
FINAL_STATUSES = frozenset({"delivered", "read", "failed", "undelivered", "canceled"})


@dataclass(frozen=True)
class MessageCallback:
    kind: str
    namespace: str
    name: str
    uid: str
    reference: str
    account_sid: str
    message_sid: str
    status: str
    error_code: int | None


def parse_message_callback(
    account_sid: str, params: Mapping[str, str], path: str | None
) -> MessageCallback | None:
    """The callback, or ``None`` when its URL or fields do not name a notification."""
    query = {key: values[0] for key, values in parse_qs(urlsplit(path or "").query).items() if values}
    fields = [query.get(name, "") for name in ("kind", "namespace", "name", "uid", "ref")]
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if not all(fields) or fields[0] not in KINDS or not sid or not status:
        return None
    code_text = params.get("ErrorCode", "")
    code = int(code_text) if code_text.isdigit() else None
    kind, namespace, name, uid, ref = fields
    return MessageCallback(kind, namespace, name, uid, ref, account_sid, sid, status.lower(), code)


class MessageStatusSink:
    """Applies verified message status callbacks to the records they are about."""

    def __init__(self, ports: NotificationPorts) -> None:
        self._ports = ports

    async def apply(self, callback: MessageCallback) -> bool:
        """Fold one callback into its record; ``False`` when it names no record it may change."""
        body = await self._ports.get_object(callback.kind, callback.namespace, callback.name)
        metadata = (body or {}).get("metadata") or {}
        if body is None or metadata.get("uid") != callback.uid:
            logger.info("a message status callback for an object that is gone; dropped")
            return False
        records, _ = recorded_notifications((body.get("status") or {}).get("notifications"))
        record = records.get(callback.reference)
        if (
            record is None
            or record.account_sid != callback.account_sid
            or (record.sid is not None and record.sid != callback.message_sid)
        ):
            logger.info(
                "a message status callback names no notification of its account; dropped",
                extra={"namespace": callback.namespace, "object_name": callback.name, "kind": callback.kind},
            )
            return False
        if record.delivery_status in FINAL_STATUSES and callback.status not in FINAL_STATUSES:
            return True  # an earlier status arriving late
        if record.delivery_status == callback.status:
            return True
        patch = {
            "records": {
                callback.reference: {
                    "deliveryStatus": callback.status,
                    "deliveryErrorCode": callback.error_code,
                }
            }
        }
        await self._ports.patch_notifications(callback.kind, callback.namespace, callback.name, patch)
        if callback.status in FAILED_STATUSES:
            metrics.NOTIFICATION_DELIVERY_FAILURES.labels(record.channel, record.event).inc()
            code = f" (Twilio error {callback.error_code})" if callback.error_code is not None else ""
            await self._ports.post_event(
                body,
                "Warning",
                "NotificationUndelivered",
                f"The {record.event} {record.channel} message to recipient {record.recipient} was "
                f"{callback.status}{code}.",
            )
        return True
