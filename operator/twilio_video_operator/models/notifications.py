"""Session notifications: who is told what, and the record of what was sent.

A VideoRoom's ``spec.notifications`` names the recipients and the events; the Composition of its recording
(one whose ``roomRef`` names the room) inherits it unless it has a section of its own. Text messages and
WhatsApp messages go through a Messaging Service, email through a SendGrid dynamic template, and a Studio
Flow gets an execution with the session's data. ``status.notifications`` records each notification before
it is sent and what came of it, keyed by a reference that carries no address.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from twilio_video_operator.models.common import (
    OBJECT_NAME_MAX_LENGTH,
    OBJECT_NAME_PATTERN,
    SpecModel,
    StatusModel,
    kubernetes_validations,
)
from twilio_video_operator.models.duration import DurationLimit

NotificationEvent = Literal["reminder", "recordingAvailable", "compositionFailed"]
ALL_EVENTS: tuple[NotificationEvent, ...] = ("reminder", "recordingAvailable", "compositionFailed")
#: Events a VideoRoom acts on itself; the others are its recording Composition's.
ROOM_EVENTS: tuple[NotificationEvent, ...] = ("reminder",)
COMPOSITION_EVENTS: tuple[NotificationEvent, ...] = ("recordingAvailable", "compositionFailed")
Channel = Literal["sms", "whatsapp", "email", "studio"]

#: E.164: a plus, a non-zero digit, at most 15 digits in all.
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
#: A phone recipient: an E.164 number (SMS) or ``whatsapp:`` and one (WhatsApp).
PHONE_PATTERN = r"^(whatsapp:)?\+[1-9][0-9]{1,14}$"
#: A practical email address check (one @, no spaces, a dot in the domain); SendGrid checks the rest.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
EMAIL_MAX_LENGTH = 254
MESSAGING_SERVICE_SID_PATTERN = r"^MG[0-9a-fA-F]{32}$"
STUDIO_FLOW_SID_PATTERN = r"^FW[0-9a-fA-F]{32}$"
#: SendGrid dynamic template ids: ``d-`` and 32 hex digits.
TEMPLATE_ID_PATTERN = r"^d-[0-9a-f]{32}$"
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
DEFAULT_SENDGRID_KEY = "SENDGRID_API_KEY"

MAX_RECIPIENTS = 50
#: Records kept in status: every recipient for every event, and room for an earlier occurrence's.
MAX_RECORDS = 2 * MAX_RECIPIENTS * len(ALL_EVENTS)
REMINDER_BEFORE_MAX = timedelta(hours=168)
TITLE_MAX_LENGTH = 120
URL_MAX_LENGTH = 2048

PhoneAddress = Annotated[str, StringConstraints(pattern=PHONE_PATTERN, max_length=25)]


class SendGridKeyRef(SpecModel):
    """A key of a Secret in the object's namespace."""

    name: str = Field(
        min_length=1,
        max_length=OBJECT_NAME_MAX_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
        description="Name of the Secret, in the namespace of the object.",
    )
    key: str = Field(
        default=DEFAULT_SENDGRID_KEY,
        min_length=1,
        max_length=253,
        pattern=DATA_KEY_PATTERN,
        description="Key of the Secret holding the SendGrid API key (needs mail.send and messages.read).",
    )


class MessagingChannel(SpecModel):
    """SMS and WhatsApp through a Programmable Messaging Service of the object's Twilio account."""

    service_sid: str = Field(
        min_length=34,
        max_length=34,
        pattern=MESSAGING_SERVICE_SID_PATTERN,
        description=(
            "Messaging Service SID (MG...) whose senders send the messages; on the operator's account, one "
            "the admin granted the namespace (TENANT_TWILIO_SERVICES)."
        ),
    )


class EmailChannel(SpecModel):
    """Email through a SendGrid dynamic template."""

    template_id: str = Field(
        min_length=34,
        max_length=34,
        pattern=TEMPLATE_ID_PATTERN,
        description=(
            "SendGrid dynamic template id (d-...); it receives event, title, startTime, joinUrl, "
            "recordingUrl, namespace, name and reason as dynamic_template_data."
        ),
    )
    from_: str = Field(
        alias="from",
        min_length=3,
        max_length=EMAIL_MAX_LENGTH,
        pattern=EMAIL_PATTERN,
        description="Sender address (a verified sender of the SendGrid account).",
    )
    from_name: str | None = Field(
        default=None, min_length=1, max_length=100, description="Sender display name."
    )
    api_key_secret_ref: SendGridKeyRef = Field(
        description="Secret in the object's namespace holding the SendGrid API key."
    )


class StudioChannel(SpecModel):
    """A Studio Flow execution per recipient, with the session's data as its parameters."""

    flow_sid: str = Field(
        min_length=34,
        max_length=34,
        pattern=STUDIO_FLOW_SID_PATTERN,
        description=(
            "Studio Flow SID (FW...) of the object's Twilio account; on the operator's account, one the "
            "admin granted the namespace (TENANT_TWILIO_SERVICES)."
        ),
    )
    from_: PhoneAddress = Field(
        alias="from",
        description="The execution's From: a number (or whatsapp: number) of the account the flow uses.",
    )


RECIPIENT_RULE = {
    "rule": "[has(self.phone), has(self.email), has(self.studio)].filter(x, x).size() == 1",
    "message": "a recipient has exactly one of phone, email and studio",
}


class Recipient(SpecModel):
    """One recipient: a phone number (SMS), a whatsapp: address, an email address, or a Studio contact."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(RECIPIENT_RULE))

    phone: PhoneAddress | None = Field(
        default=None,
        description="E.164 number for SMS, or whatsapp:+<E.164> for WhatsApp (through messaging.serviceSid).",
    )
    email: str | None = Field(
        default=None,
        min_length=3,
        max_length=EMAIL_MAX_LENGTH,
        pattern=EMAIL_PATTERN,
        description="Email address (through email.templateId).",
    )
    studio: PhoneAddress | None = Field(
        default=None,
        description="Contact address (E.164 or whatsapp:) of a Studio execution of studio.flowSid.",
    )
    events: list[NotificationEvent] | None = Field(
        default=None,
        min_length=1,
        max_length=len(ALL_EVENTS),
        description="Events this recipient gets; unset: the section's events.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _one_address(self) -> Recipient:
        if sum(value is not None for value in (self.phone, self.email, self.studio)) != 1:
            raise ValueError(RECIPIENT_RULE["message"])
        if self.events is not None and len(set(self.events)) != len(self.events):
            raise ValueError("events lists an event twice")
        return self

    @property
    def channel(self) -> Channel:
        if self.phone is not None:
            return "whatsapp" if self.phone.startswith("whatsapp:") else "sms"
        return "email" if self.email is not None else "studio"

    @property
    def address(self) -> str:
        """The address itself: never log it, never put it in status or an Event."""
        return self.phone or self.email or self.studio or ""


NOTIFICATIONS_RULES: list[dict[str, str]] = [
    {
        "rule": "!self.recipients.exists(r, has(r.phone)) || has(self.messaging)",
        "message": "phone recipients need messaging.serviceSid",
    },
    {
        "rule": "!self.recipients.exists(r, has(r.email)) || has(self.email)",
        "message": "email recipients need the email section (templateId, from, apiKeySecretRef)",
    },
    {
        "rule": "!self.recipients.exists(r, has(r.studio)) || has(self.studio)",
        "message": "studio recipients need studio.flowSid and studio.from",
    },
]


class Notifications(SpecModel):
    """Notifications of the session's lifecycle: a reminder before a scheduled room opens, the recording's
    link once its Composition is delivered, and an escalation when the composition fails. Each goes to each
    recipient exactly once per event and object."""

    model_config = ConfigDict(json_schema_extra=kubernetes_validations(*NOTIFICATIONS_RULES))

    title: str | None = Field(
        default=None,
        min_length=1,
        max_length=TITLE_MAX_LENGTH,
        description="What the messages call the session; unset: the VideoRoom's name.",
    )
    join_url: str | None = Field(
        default=None,
        max_length=URL_MAX_LENGTH,
        pattern=r"^https?://[^\s]+$",
        description="Where attendees join, quoted in reminders.",
    )
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(ALL_EVENTS),
        min_length=1,
        max_length=len(ALL_EVENTS),
        description="Events notified (reminder, recordingAvailable, compositionFailed); default all three.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    reminder_before: Annotated[str, DurationLimit(REMINDER_BEFORE_MAX)] = Field(
        default="15m",
        description=(
            "How long before schedule.startTime the reminder goes out (Go duration, at most 168h); none is "
            "sent once the session has started."
        ),
    )
    messaging: MessagingChannel | None = Field(default=None, description="For phone recipients.")
    email: EmailChannel | None = Field(default=None, description="For email recipients.")
    studio: StudioChannel | None = Field(default=None, description="For studio recipients.")
    recipients: list[Recipient] = Field(
        min_length=1, max_length=MAX_RECIPIENTS, description=f"1 to {MAX_RECIPIENTS} recipients."
    )

    @model_validator(mode="after")
    def _channels_configured(self) -> Notifications:
        channels = {recipient.channel for recipient in self.recipients}
        if channels & {"sms", "whatsapp"} and self.messaging is None:
            raise ValueError(NOTIFICATIONS_RULES[0]["message"])
        if "email" in channels and self.email is None:
            raise ValueError(NOTIFICATIONS_RULES[1]["message"])
        if "studio" in channels and self.studio is None:
            raise ValueError(NOTIFICATIONS_RULES[2]["message"])
        if len(set(self.events)) != len(self.events):
            raise ValueError("events lists an event twice")
        return self

    def events_of(self, recipient: Recipient) -> tuple[NotificationEvent, ...]:
        return tuple(recipient.events if recipient.events is not None else self.events)


# --------------------------------------------------------------------------------------------- status

RecordState = Literal["Pending", "Sent", "Failed", "Cancelled"]


class RecordReason(StrEnum):
    """Why a record was not sent (its ``reason``); Twilio's or SendGrid's refusals carry ``errorCode``."""

    SENDER_NOT_ALLOWED = "SenderNotAllowed"
    """Failed, nothing sent: the Messaging Service or Studio Flow is not one the namespace may use on the
    operator's account. Tried again when the spec or the admin's grants change."""
    RECIPIENT_REMOVED = "RecipientRemoved"
    """Cancelled: the recipient of a Pending record left the spec, and the look-up did not find it sent."""
    NO_LONGER_DUE = "NoLongerDue"
    """Cancelled: the event of a Pending record is no longer due (the start time moved or passed, the
    event was taken off the recipient's list), and the look-up did not find it sent."""


class NotificationRecord(StatusModel):
    """One notification to one recipient: written as Pending before it is sent (the intent), then Sent with
    what Twilio or SendGrid answered, or Failed. No address or message text is kept."""

    event: str = Field(description="reminder, recordingAvailable or compositionFailed.")
    occurrence: str = Field(
        description="What the event is about: the startTime a reminder announces, the composition SID."
    )
    channel: str = Field(description="sms, whatsapp, email or studio.")
    recipient: int = Field(ge=0, description="Index of the recipient in spec.notifications.recipients.")
    recipient_hash: str = Field(
        description="First 16 hex digits of HMAC-SHA256(object uid, address): tells recipients apart."
    )
    state: RecordState = Field(
        description=(
            "Pending (intent recorded, outcome not known yet), Sent, Failed, or Cancelled (no longer due "
            "before it was known to be sent)."
        )
    )
    reason: str | None = Field(
        default=None,
        description="Why Failed or Cancelled: SenderNotAllowed, RecipientRemoved or NoLongerDue.",
    )
    intent_at: datetime = Field(description="When the intent was recorded, just before the first send.")
    sent_at: datetime | None = Field(default=None, description="When Twilio or SendGrid accepted it.")
    sid: str | None = Field(
        default=None, description="Message SID (SM...), SendGrid message id, or Studio execution SID (FN...)."
    )
    account_sid: str | None = Field(
        default=None, description="Twilio account that sent it (status callbacks count only from it)."
    )
    attempts: int | None = Field(default=None, ge=0, description="Sends and look-ups tried so far.")
    error_code: int | None = Field(default=None, description="Twilio or HTTP error code of a failure.")
    delivery_status: str | None = Field(
        default=None,
        description="Last status the Messaging status callback reported (sent, delivered, undelivered...).",
    )
    delivery_error_code: int | None = Field(
        default=None, description="ErrorCode the status callback reported for failed or undelivered."
    )


class NotificationsStatus(StatusModel):
    """What was sent, keyed by each notification's reference (also the marker its lookups search for)."""

    records: dict[str, NotificationRecord] | None = Field(
        default=None,
        max_length=MAX_RECORDS,
        description=f"Notifications by reference (at most {MAX_RECORDS}).",
    )
    retry_at: datetime | None = Field(
        default=None, description="Set while a notification waits to be tried again (a transient failure)."
    )


def recorded_notifications(raw: object) -> tuple[dict[str, NotificationRecord], frozenset[str]]:
    """The records of ``status.notifications`` that parse, and the references of those that do not.

    A reference whose record does not parse (edited by hand) still blocks a new send under it: sending
    again might send twice, which is worse than not sending.
    """
    records: dict[str, NotificationRecord] = {}
    unreadable: set[str] = set()
    entries = raw.get("records") if isinstance(raw, dict) else None
    for key, value in (entries if isinstance(entries, dict) else {}).items():
        try:
            records[str(key)] = NotificationRecord.model_validate(value)
        except ValueError:
            unreadable.add(str(key))
    return records, frozenset(unreadable)
