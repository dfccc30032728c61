"""What a notification says: the text of an SMS or WhatsApp message, and the data of an email template or a
Studio execution. Pure functions; the texts end with the notification's reference, the marker a lookup
searches for when a send's answer was lost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from twilio_video_operator.reconcilers.notification_plan import Due

#: The parameter (Studio) and custom argument (SendGrid) carrying the reference.
REFERENCE_FIELD = "notification_ref"
#: Twilio refuses bodies over 1600 characters; titles and links are bounded well below.
BODY_MAX = 1600


@dataclass(frozen=True)
class Session:
    """The object a notification is about."""

    kind: str
    namespace: str
    name: str
    title: str
    join_url: str | None = None


def template_data(session: Session, due: Due) -> dict[str, str]:
    """``dynamic_template_data`` of an email, and the parameters of a Studio execution."""
    data = {
        "event": due.occurrence.event,
        "title": session.title,
        "kind": session.kind,
        "namespace": session.namespace,
        "name": session.name,
        REFERENCE_FIELD: due.reference,
        **dict(due.occurrence.data),
    }
    if session.join_url and due.occurrence.event == "reminder":
        data["joinUrl"] = session.join_url
    return data


def message_body(session: Session, due: Due) -> str:
    """The text of an SMS or WhatsApp message."""
    occurrence = due.occurrence
    if occurrence.event == "reminder":
        text = f"Reminder: {session.title} starts at {_when(occurrence.data.get('startTime'))}."
        if session.join_url:
            text += f" Join: {session.join_url}"
    elif occurrence.event == "recordingAvailable":
        url = occurrence.data.get("recordingUrl")
        text = f"The recording of {session.title} is available" + (f": {url}" if url else ".")
    else:
        reason = occurrence.data.get("reason") or "composition failed"
        text = f"The recording of {session.title} could not be produced ({reason})."
    marker = f" [ref {due.reference}]"
    return text[: BODY_MAX - len(marker)] + marker


def _when(stamp: str | None) -> str:
    if not stamp:
        return "the scheduled time"
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.strftime("%H:%M UTC on %Y-%m-%d")
