"""The two things notified about: a VideoRoom (its reminder) and a Composition (its recording's fate).

Each function reads what the object's spec and status say, plans (:mod:`.notification_plan`) and, when
something is due, runs the plan (:mod:`.notification_executor`). The controllers call them once per
reconcile, after their own work, and take the returned time as the next moment to look again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.models.composition import CompositionSpec, CompositionStatus
from twilio_video_operator.models.conditions import ConditionType, Reason, get_condition
from twilio_video_operator.models.notifications import Notifications, recorded_notifications
from twilio_video_operator.models.videoroom import VideoRoomSpec
from twilio_video_operator.reconcilers.notification_executor import Notifier, Target
from twilio_video_operator.reconcilers.notification_plan import (
    Occurrence,
    Plan,
    composition_occurrences,
    plan_notifications,
    reminder_occurrence,
)
from twilio_video_operator.reconcilers.notification_render import Session
from twilio_video_operator.reconcilers.shared_services import refused_senders


async def notify_room(
    notifier: Notifier, body: Mapping[str, Any], spec: VideoRoomSpec | None, creds: CredentialSet | None
) -> datetime | None:
    """The reminder of a VideoRoom's scheduled session; returns when to look again, if ever.

    Without ``spec.notifications`` only Pending records left from before are settled (looked up where
    possible, else cancelled)."""
    if spec is None:
        return None
    target = _target("VideoRoom", body)
    notifications = spec.notifications
    if notifications is None:
        if not notifications_pending(body):
            return None
        session = Session("VideoRoom", target.namespace, target.name, target.name)
        return await _run(notifier, target, None, session, [], None, creds)
    start = spec.schedule.start_time if spec.schedule is not None else None
    occurrence, next_at = reminder_occurrence(
        notifications, start, notifier.now(), completed=spec.state == "Completed"
    )
    session = Session(
        "VideoRoom", target.namespace, target.name, notifications.title or target.name, notifications.join_url
    )
    return await _run(
        notifier, target, notifications, session, [occurrence] if occurrence else [], next_at, creds
    )


async def notify_composition(
    notifier: Notifier,
    body: Mapping[str, Any],
    status: CompositionStatus,
    creds: CredentialSet | None,
) -> datetime | None:
    """``recordingAvailable`` / ``compositionFailed`` of a Composition, with its own notifications or those
    of its ``roomRef`` VideoRoom; returns when to look again, if ever."""
    try:
        spec = CompositionSpec.model_validate(dict(body.get("spec") or {}))
    except (ValidationError, TypeError, ValueError):
        return None
    target = _target("Composition", body)
    delivered = get_condition(status.conditions, ConditionType.DELIVERED)
    stalled = get_condition(status.conditions, ConditionType.STALLED)
    occurrences = composition_occurrences(
        sid=status.sid,
        composition_status=status.composition_status,
        wants_delivery=spec.delivery is not None,
        delivered_url=status.delivery.url
        if status.delivery is not None and delivered is not None and delivered.status == "True"
        else None,
        timed_out=stalled is not None
        and stalled.status == "True"
        and stalled.reason == Reason.PROCESSING_TIMEOUT,
    )
    if not occurrences and not notifications_pending(body):
        return None  # nothing happened yet: no need to read the room's notifications
    notifications, title = spec.notifications, target.name
    if spec.room_ref is not None:
        title = spec.room_ref.name
        if notifications is None:
            room = await notifier.ports.get_object("VideoRoom", target.namespace, spec.room_ref.name)
            notifications = _room_notifications(room)
    if notifications is None and not notifications_pending(body):
        return None
    if notifications is not None and notifications.title:
        title = notifications.title
    session = Session("Composition", target.namespace, target.name, title)
    return await _run(notifier, target, notifications, session, occurrences, None, creds)


def notifications_pending(body: Mapping[str, Any]) -> bool:
    """Whether the object's notifications want another look (a retry is due, or an outcome is unknown)."""
    raw = (body.get("status") or {}).get("notifications")
    records, _ = recorded_notifications(raw)
    retry_at = raw.get("retryAt") if isinstance(raw, dict) else None
    return bool(retry_at) or any(record.state == "Pending" for record in records.values())


async def _run(
    notifier: Notifier,
    target: Target,
    notifications: Notifications | None,
    session: Session,
    occurrences: list[Occurrence],
    next_at: datetime | None,
    creds: CredentialSet | None,
) -> datetime | None:
    raw = (target.body.get("status") or {}).get("notifications")
    records, unreadable = recorded_notifications(raw)
    retry_at = _retry_at(raw)
    account = creds.account_sid if creds is not None else None
    refused = refused_senders(notifier.services, target.namespace, notifications, account)
    plan: Plan = plan_notifications(
        notifications, occurrences, records, unreadable, uid=target.uid, next_at=next_at, refused=refused
    )
    now = notifier.now()
    if plan.idle and retry_at is None:
        return next_at
    if retry_at is not None and retry_at > now and not (plan.sends or plan.refusals):
        return min(moment for moment in (next_at, retry_at) if moment is not None)
    return await notifier.run(target, notifications, session, plan, creds=creds, retry_at=retry_at)


def _target(kind: str, body: Mapping[str, Any]) -> Target:
    metadata = body.get("metadata") or {}
    return Target(
        kind=kind,
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        body=body,
    )


def _room_notifications(room: Mapping[str, Any] | None) -> Notifications | None:
    raw = ((room or {}).get("spec") or {}).get("notifications")
    if raw is None:
        return None
    try:
        return Notifications.model_validate(raw)
    except (ValidationError, TypeError, ValueError):
        return None


def _retry_at(raw: Any) -> datetime | None:
    text = raw.get("retryAt") if isinstance(raw, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
