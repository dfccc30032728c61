"""Carry out a notification plan: record each intent in status, send, record what came of it.

Exactly once per notification, across retries, restarts, leader changes and lost answers:

1. every notification about to be sent is written to ``status.notifications.records`` as ``Pending``
   (one merge patch) *before* any send;
2. each send's answer is written at once: ``Sent`` with the SID, or ``Failed`` when Twilio or SendGrid
   refused it for good; a transient failure leaves it ``Pending``;
3. a ``Pending`` record found later (a crash, a lost answer, a new leader) is looked up first (the
   recipient's messages for the reference in their body, Email Activity for the reference in
   ``custom_args``, the flow's executions for it in their parameters) and sent only when it is not found;
4. a ``Pending`` record the spec no longer asks for (an orphan: its recipient was removed, its occurrence
   passed) is looked up the same way (the account's newest messages, or every execution of the flow
   since the intent, when the address is no longer known) and recorded ``Sent`` or ``Cancelled``.

A notification whose Messaging Service or Studio Flow the namespace may not use on the operator's account
(:mod:`.shared_services`) is recorded ``Failed``/``SenderNotAllowed`` without any Twilio call.

Logs and Events name recipients by index and channel only; the gateway redacts addresses and bodies from
its errors.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from twilio_video_operator import metrics
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import GatewayError, TransientError
from twilio_video_operator.gateway.notify import CODE_EXECUTION_ACTIVE, Sent
from twilio_video_operator.gateway.sendgrid import Mail
from twilio_video_operator.models.notifications import EmailChannel, Notifications, RecordReason
from twilio_video_operator.reconcilers.credentials import SecretData
from twilio_video_operator.reconcilers.notification_plan import Due, Orphan, Plan, retry_delay
from twilio_video_operator.reconcilers.notification_render import (
    REFERENCE_FIELD,
    Session,
    message_body,
    template_data,
)
from twilio_video_operator.reconcilers.shared_services import SharedServices

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
#: Look-ups search from this long before the intent was recorded (the operator's and Twilio's clocks differ).
LOOKUP_CLOCK_SKEW = timedelta(minutes=2)


class MessagingApi(Protocol):
    async def send_message(
        self, *, to: str, service_sid: str, body: str, status_callback: str | None = None
    ) -> Sent: ...

    async def find_message(self, *, to: str | None, marker: str, since: datetime) -> Sent | None: ...

    async def start_execution(
        self, *, flow_sid: str, to: str, from_: str, parameters: dict[str, Any]
    ) -> Sent: ...

    async def find_execution(
        self, *, flow_sid: str, to: str | None, marker_name: str, marker: str, since: datetime
    ) -> Sent | None: ...


class MailApi(Protocol):
    async def send(self, mail: Mail) -> str | None: ...

    async def find(self, arg_name: str, arg_value: str) -> str | None: ...


class NotificationPorts(Protocol):
    """What the notifier needs from Kubernetes."""

    async def read_secret(self, namespace: str, name: str) -> SecretData | None: ...

    async def patch_notifications(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None: ...

    async def post_event(
        self, body: Mapping[str, Any], type: EventType, reason: str, message: str
    ) -> None: ...

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...


CallbackUrl = Callable[["Target", str], str]
"""The StatusCallback URL of one message: ``(target, reference) -> URL``."""


@dataclass(frozen=True)
class Target:
    """The object notified about (its body for Events)."""

    kind: str
    namespace: str
    name: str
    uid: str
    body: Mapping[str, Any]


@dataclass
class _Pass:
    """What one pass did: record patches, and tallies for the Events."""

    updates: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    sent: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(event, occurrence, channel) -> notifications sent."""
    cancelled: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(event, reason, channel) -> orphans cancelled."""
    retry: bool = False
    attempts: int = 0


class Notifier:
    """Runs notification plans for VideoRooms and Compositions (one per operator process)."""

    def __init__(
        self,
        ports: NotificationPorts,
        twilio_for: Callable[[CredentialSet], MessagingApi],
        sendgrid_for: Callable[[str], MailApi],
        *,
        clock: Callable[[], datetime],
        services: SharedServices,
        callback_url: CallbackUrl | None = None,
        verifiable: Callable[[str], bool] | None = None,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self._ports = ports
        self.services = services
        """The senders each namespace may use on the operator's account."""
        self._twilio_for = twilio_for
        self._sendgrid_for = sendgrid_for
        self._clock = clock
        self._callback_url = callback_url
        self._verifiable = verifiable
        self._on_secret = on_secret

    @property
    def ports(self) -> NotificationPorts:
        return self._ports

    def now(self) -> datetime:
        return self._clock()

    async def run(
        self,
        target: Target,
        notifications: Notifications | None,
        session: Session,
        plan: Plan,
        *,
        creds: CredentialSet | None,
        retry_at: datetime | None,
    ) -> datetime | None:
        """Carry out ``plan``; returns when to come back (a reminder's time, or a retry), if ever."""
        now = self._clock()
        work = _Pass()
        mail: MailApi | None = None
        items = [*plan.recoveries, *plan.sends]
        email = notifications.email if notifications is not None else None
        lookups = [orphan for orphan in plan.orphans if _lookup_possible(orphan, notifications, plan)]
        channels = {due.channel for due in items} | {orphan.channel for orphan in lookups}
        if email is not None and "email" in channels:
            mail = await self._mail_api(target, email, retry_at is not None)
            if mail is None:
                work.retry = True
        if (creds is None) and channels - {"email"}:
            work.retry = True  # no Twilio credentials yet: the object's own conditions say why
        callbacks = creds is not None and self._verifiable is not None and self._verifiable(creds.account_sid)
        ready = [due for due in items if self._ready(due.channel, mail, creds)]
        fresh = [due for due in ready if due.record is None]
        intents: dict[str, dict[str, Any] | None] = {ref: None for ref in plan.prune}
        for due in fresh:
            intents[due.reference] = _intent(due, now, creds if due.channel != "email" else None)
        for due in plan.refusals:
            intents[due.reference] = _refused(due, now, creds)
        if intents:
            await self._patch(target, intents)
        await self._report_refusals(target, plan)
        for due in ready:
            assert notifications is not None  # sends and recoveries come from the spec's notifications
            await self._deliver(target, notifications, session, due, mail, creds, callbacks, now, work)
        for orphan in plan.orphans:
            await self._settle(target, notifications, orphan, orphan in lookups, mail, creds, work)
        retry = now + retry_delay(max(work.attempts, 1)) if work.retry else None
        if work.updates or retry != retry_at:
            await self._patch(target, work.updates, retry_at=retry, clear_retry=retry is None)
        await self._report(target, work)
        return min((moment for moment in (plan.next_at, retry) if moment is not None), default=None)

    # ------------------------------------------------------------------------------------------ sending

    def _ready(self, channel: str, mail: MailApi | None, creds: CredentialSet | None) -> bool:
        return mail is not None if channel == "email" else creds is not None

    async def _deliver(
        self,
        target: Target,
        notifications: Notifications,
        session: Session,
        due: Due,
        mail: MailApi | None,
        creds: CredentialSet | None,
        callbacks: bool,
        now: datetime,
        work: _Pass,
    ) -> None:
        attempts = (due.record.attempts or 0) if due.record is not None else 0
        try:
            found = await self._look_up(notifications, due, mail, creds) if due.record is not None else None
            if due.record is not None:
                metrics.NOTIFICATION_LOOKUPS.labels(due.channel, "found" if found else "not_found").inc()
            sent = found or await self._send(target, notifications, session, due, mail, creds, callbacks)
        except GatewayError as error:
            attempts += 1
            if _transient(error):
                work.retry = True
                work.attempts = max(work.attempts, attempts)
                work.updates[due.reference] = {"attempts": attempts, "errorCode": _code(error)}
                logger.info(
                    "%s %s notification to recipient %d (%s) will be retried: %s",
                    target.kind,
                    due.occurrence.event,
                    due.index,
                    due.channel,
                    error,
                    extra=_fields(target, due),
                )
                return
            metrics.NOTIFICATIONS_FAILED.labels(due.channel, due.occurrence.event).inc()
            work.updates[due.reference] = {"state": "Failed", "attempts": attempts, "errorCode": _code(error)}
            await self._ports.post_event(
                target.body,
                "Warning",
                "NotificationFailed",
                f"The {due.occurrence.event} notification to recipient {due.index} ({due.channel}) was "
                f"refused: {_describe(error)}.",
            )
            return
        metrics.NOTIFICATIONS_SENT.labels(due.channel, due.occurrence.event).inc()
        work.sent[(due.occurrence.event, due.occurrence.key, due.channel)] += 1
        work.updates[due.reference] = {
            "state": "Sent",
            "sid": sent.sid,
            "sentAt": _stamp(self._clock()),
            "attempts": attempts + 1,
            "errorCode": None,
        }

    async def _send(
        self,
        target: Target,
        notifications: Notifications,
        session: Session,
        due: Due,
        mail: MailApi | None,
        creds: CredentialSet | None,
        callbacks: bool,
    ) -> Sent:
        recipient = due.recipient
        if due.channel == "email":
            assert mail is not None and notifications.email is not None
            email = notifications.email
            message_id = await mail.send(
                Mail(
                    to=recipient.address,
                    from_email=email.from_,
                    from_name=email.from_name,
                    template_id=email.template_id,
                    data=template_data(session, due),
                    custom_args={REFERENCE_FIELD: due.reference},
                )
            )
            return Sent(message_id or "accepted")
        assert creds is not None
        twilio = self._twilio_for(creds)
        if due.channel == "studio":
            assert notifications.studio is not None
            return await twilio.start_execution(
                flow_sid=notifications.studio.flow_sid,
                to=recipient.address,
                from_=notifications.studio.from_,
                parameters=template_data(session, due),
            )
        assert notifications.messaging is not None
        callback = self._callback_url(target, due.reference) if callbacks and self._callback_url else None
        return await twilio.send_message(
            to=recipient.address,
            service_sid=notifications.messaging.service_sid,
            body=message_body(session, due),
            status_callback=callback,
        )

    async def _look_up(
        self, notifications: Notifications, due: Due, mail: MailApi | None, creds: CredentialSet | None
    ) -> Sent | None:
        """Whether the Pending notification was sent after all (its answer was lost)."""
        assert due.record is not None
        address, intent_at = due.recipient.address, due.record.intent_at
        return await self._find(notifications, due.channel, due.reference, address, intent_at, mail, creds)

    async def _find(
        self,
        notifications: Notifications,
        channel: str,
        reference: str,
        address: str | None,
        intent_at: datetime,
        mail: MailApi | None,
        creds: CredentialSet | None,
    ) -> Sent | None:
        """The notification recorded under ``reference``, if Twilio or SendGrid has it (``address``
        narrows the search when it is still known)."""
        since = intent_at - LOOKUP_CLOCK_SKEW
        if channel == "email":
            assert mail is not None
            found = await mail.find(REFERENCE_FIELD, reference)
            return Sent(found) if found is not None else None
        assert creds is not None
        twilio = self._twilio_for(creds)
        if channel == "studio":
            assert notifications.studio is not None
            return await twilio.find_execution(
                flow_sid=notifications.studio.flow_sid,
                to=address,
                marker_name=REFERENCE_FIELD,
                marker=reference,
                since=since,
            )
        return await twilio.find_message(to=address, marker=reference, since=since)

    async def _settle(
        self,
        target: Target,
        notifications: Notifications | None,
        orphan: Orphan,
        lookup: bool,
        mail: MailApi | None,
        creds: CredentialSet | None,
        work: _Pass,
    ) -> None:
        """An orphan: ``Sent`` when the look-up finds it, else ``Cancelled``; never sent now.

        Without the channel's section (or with its sender refused) there is nothing to look up with, or
        no call to make, so it is cancelled at once."""
        record, channel = orphan.record, orphan.channel
        found: Sent | None = None
        if lookup:
            if not self._ready(channel, mail, creds):
                return  # waits for the SendGrid key or the credentials, like a send would
            assert notifications is not None
            address = orphan.recipient.address if orphan.recipient is not None else None
            try:
                found = await self._find(
                    notifications, channel, orphan.reference, address, record.intent_at, mail, creds
                )
            except GatewayError as error:
                attempts = (record.attempts or 0) + 1
                if _transient(error):
                    work.retry = True
                    work.attempts = max(work.attempts, attempts)
                    work.updates[orphan.reference] = {"attempts": attempts, "errorCode": _code(error)}
                    return
                work.updates[orphan.reference] = {"errorCode": _code(error)}  # refused: cancelled below
            else:
                metrics.NOTIFICATION_LOOKUPS.labels(channel, "found" if found else "not_found").inc()
        if found is not None:
            metrics.NOTIFICATIONS_SENT.labels(channel, record.event).inc()
            work.sent[(record.event, record.occurrence, channel)] += 1
            work.updates[orphan.reference] = {
                "state": "Sent",
                "sid": found.sid,
                "sentAt": _stamp(self._clock()),
                "errorCode": None,
            }
            return
        work.cancelled[(record.event, orphan.reason.value, channel)] += 1
        cancelled = {"state": "Cancelled", "reason": orphan.reason.value}
        work.updates[orphan.reference] = {**(work.updates.get(orphan.reference) or {}), **cancelled}

    async def _mail_api(self, target: Target, email: EmailChannel, retrying: bool) -> MailApi | None:
        """SendGrid with the key of ``apiKeySecretRef``; ``None`` (one Warning) while it cannot be read."""
        ref = email.api_key_secret_ref
        secret = await self._ports.read_secret(target.namespace, ref.name)
        key = (secret.data.get(ref.key) or "").strip() if secret is not None else ""
        if key:
            if self._on_secret is not None:
                self._on_secret(key)
            return self._sendgrid_for(key)
        if not retrying:
            where = f"Secret {ref.name}" if secret is None else f"key {ref.key} of Secret {ref.name}"
            await self._ports.post_event(
                target.body,
                "Warning",
                "NotificationBlocked",
                f"Email notifications wait for the SendGrid API key: {where} does not exist.",
            )
        return None

    # ------------------------------------------------------------------------------------------ status

    async def _patch(
        self,
        target: Target,
        records: Mapping[str, dict[str, Any] | None],
        *,
        retry_at: datetime | None = None,
        clear_retry: bool = False,
    ) -> None:
        patch: dict[str, Any] = {}
        if records:
            patch["records"] = dict(records)
        if retry_at is not None:
            patch["retryAt"] = _stamp(retry_at)
        elif clear_retry:
            patch["retryAt"] = None
        if patch:
            await self._ports.patch_notifications(target.kind, target.namespace, target.name, patch)

    async def _report_refusals(self, target: Target, plan: Plan) -> None:
        """One Warning per event and channel whose notifications were refused (SenderNotAllowed)."""
        refused: Counter[tuple[str, str]] = Counter(
            (due.occurrence.event, due.channel) for due in plan.refusals
        )
        for (event, channel), count in sorted(refused.items()):
            metrics.NOTIFICATIONS_FAILED.labels(channel, event).inc(count)
            await self._ports.post_event(
                target.body,
                "Warning",
                RecordReason.SENDER_NOT_ALLOWED.value,
                f"Not sent: the {event} notification to {count} recipient(s) ({channel}). "
                f"{plan.refused[channel]}.",
            )

    async def _report(self, target: Target, work: _Pass) -> None:
        by_occurrence: dict[tuple[str, str], Counter[str]] = {}
        for (event, key, channel), count in work.sent.items():
            by_occurrence.setdefault((event, key), Counter())[channel] += count
        for (event, _key), channels in sorted(by_occurrence.items()):
            listed = ", ".join(f"{channel} {count}" for channel, count in sorted(channels.items()))
            total = sum(channels.values())
            await self._ports.post_event(
                target.body,
                "Normal",
                "NotificationSent",
                f"Sent the {event} notification to {total} recipient(s) ({listed}).",
            )
        for (event, reason, channel), count in sorted(work.cancelled.items()):
            await self._ports.post_event(
                target.body,
                "Normal",
                "NotificationCancelled",
                f"Cancelled the {event} notification to {count} recipient(s) ({channel}): {reason}, "
                f"{CANCELLED_BECAUSE[reason]}; it was not found sent and will not be.",
            )


CANCELLED_BECAUSE = {
    RecordReason.RECIPIENT_REMOVED.value: "the recipient was removed from the spec",
    RecordReason.NO_LONGER_DUE.value: "the event is no longer due for the recipient",
}


def _lookup_possible(orphan: Orphan, notifications: Notifications | None, plan: Plan) -> bool:
    """Whether an orphan can be looked up: its channel's section is still in the spec (the SendGrid key,
    the flow) and, on the operator's account, its sender is one the namespace may use."""
    if notifications is None or orphan.channel in plan.refused:
        return False
    if orphan.channel == "email":
        return notifications.email is not None
    if orphan.channel == "studio":
        return notifications.studio is not None
    return notifications.messaging is not None


def _refused(due: Due, now: datetime, creds: CredentialSet | None) -> dict[str, Any]:
    """The record of a notification whose sender is refused: Failed, nothing sent."""
    if due.record is not None:  # a Pending one: not looked up either
        return {"state": "Failed", "reason": RecordReason.SENDER_NOT_ALLOWED.value}
    record = _intent(due, now, creds)
    record.update(state="Failed", reason=RecordReason.SENDER_NOT_ALLOWED.value)
    return record


def _intent(due: Due, now: datetime, creds: CredentialSet | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event": due.occurrence.event,
        "occurrence": due.occurrence.key,
        "channel": due.channel,
        "recipient": due.index,
        "recipientHash": due.recipient_hash,
        "state": "Pending",
        "intentAt": _stamp(now),
        "attempts": 0,
        "reason": None,  # a SenderNotAllowed record sent after all: nothing of it stays
        "errorCode": None,
    }
    if creds is not None:
        record["accountSid"] = creds.account_sid
    return record


def _transient(error: GatewayError) -> bool:
    """Retried later: a failure that may clear, and Studio's "already active for this contact"."""
    return isinstance(error, TransientError) or error.code == CODE_EXECUTION_ACTIVE


def _code(error: GatewayError) -> int | None:
    return error.code if error.code is not None else error.status


def _describe(error: GatewayError) -> str:
    """An error without its message (which might quote the address): class, codes."""
    parts = [type(error).__name__.removesuffix("Error") or "error"]
    if error.code is not None:
        parts.append(f"code {error.code}")
    if error.status is not None:
        parts.append(f"HTTP {error.status}")
    return ", ".join(parts)


def _fields(target: Target, due: Due) -> dict[str, Any]:
    return {
        "namespace": target.namespace,
        "object_name": target.name,
        "kind": target.kind,
        "notification_ref": due.reference,
        "channel": due.channel,
    }


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
