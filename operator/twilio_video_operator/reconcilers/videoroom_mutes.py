"""Server-side mute (pure): the subscribe rules a VideoRoom's mutes ask for, and their audit trail.

A muted identity's tracks are withheld by every participant's Twilio subscribe rules: the same list for
everyone, ``include all`` followed by one ``exclude`` per muted identity and track kind. Rules name the
publisher by identity, so they keep holding when the muted participant leaves and joins again; a
participant who joins gets them from the ``participant-connected`` callback. With no mutes left, everyone
goes back to Twilio's default, ``include all``.

Each change of ``spec.moderation.mutedIdentities`` is recorded in ``status.mutedIdentities`` with an Event
saying who was muted or unmuted, why (``spec.moderation.reasons``) and which field manager changed the
spec (from ``metadata.managedFields``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twilio_video_operator.models.videoroom import MutedIdentity, MuteRecord, VideoRoomSpec

INCLUDE_ALL: Mapping[str, Any] = {"type": "include", "all": True}
#: Twilio's subscribe rules of a participant nobody changed.
DEFAULT_RULES: tuple[Mapping[str, Any], ...] = (INCLUDE_ALL,)
#: Event reasons.
MUTED = "Muted"
UNMUTED = "Unmuted"
#: ``by`` when no managedFields entry owns the change (an API server that keeps none, or an old object).
UNKNOWN_MANAGER = "unknown"
_TRACK_WORDS = {"audio": "audio", "video": "video", "both": "audio and video"}


def mutes_of(spec: VideoRoomSpec | None) -> tuple[MutedIdentity, ...]:
    if spec is None or spec.moderation is None:
        return ()
    return tuple(sorted(spec.moderation.muted_identities, key=lambda mute: mute.identity))


def mute_rules(spec: VideoRoomSpec | None) -> tuple[Mapping[str, Any], ...]:
    """Every participant's subscribe rules for the spec's mutes; empty when nobody is muted."""
    mutes = mutes_of(spec)
    if not mutes:
        return ()
    excludes = [
        {"type": "exclude", "publisher": mute.identity, "kind": kind}
        for mute in mutes
        for kind in mute.kinds()
    ]
    return (INCLUDE_ALL, *excludes)


def mute_digest(room_sid: str, rules: Sequence[Mapping[str, Any]]) -> str | None:
    """Digest of (room, rules): a change means every participant's rules must be set again. ``None`` for
    no rules (nothing to enforce)."""
    if not rules:
        return None
    text = room_sid + "\n" + json.dumps(list(rules), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------- field managers


@dataclass(frozen=True)
class ManagedFields:
    """One ``metadata.managedFields`` entry, as far as the audit needs it."""

    manager: str
    time: str
    fields: Mapping[str, Any]


def parse_managed_fields(raw: Any) -> tuple[ManagedFields, ...]:
    """The spec-writing entries of ``metadata.managedFields`` (status writes and malformed ones skipped)."""
    entries: list[ManagedFields] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping) or item.get("subresource"):
            continue
        manager, fields = item.get("manager"), item.get("fieldsV1")
        if isinstance(manager, str) and manager and isinstance(fields, Mapping):
            entries.append(ManagedFields(manager, str(item.get("time") or ""), fields))
    return tuple(entries)


def _child(fields: Any, key: str) -> Any:
    return fields.get(key) if isinstance(fields, Mapping) else None


def _owns_mute(fields: Mapping[str, Any], identity: str) -> bool:
    muted = _child(_child(_child(fields, "f:spec"), "f:moderation"), "f:mutedIdentities")
    if not isinstance(muted, Mapping):
        return False
    for key in muted:
        if not key.startswith("k:"):
            continue
        try:
            item = json.loads(key[2:])
        except ValueError:
            continue
        if isinstance(item, Mapping) and item.get("identity") == identity:
            return True
    return False


def _owns_moderation(fields: Mapping[str, Any]) -> bool:
    return isinstance(_child(_child(fields, "f:spec"), "f:moderation"), Mapping)


def manager_of(entries: Sequence[ManagedFields], identity: str | None) -> str:
    """The field manager behind a mute (``identity``) or an unmute (``None``).

    A mute is owned by the manager whose fields hold its list entry (``k:{"identity":...}``). An unmute
    leaves no entry behind: it is attributed to the manager that wrote ``spec.moderation`` last. The latest
    ``time`` wins when several qualify.
    """
    owners = [entry for entry in entries if identity is not None and _owns_mute(entry.fields, identity)]
    if not owners:
        owners = [entry for entry in entries if _owns_moderation(entry.fields)]
    if not owners:
        return UNKNOWN_MANAGER
    return max(owners, key=lambda entry: entry.time).manager


# ----------------------------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class MuteChange:
    """One moderation action for an Event: ``reason`` is :data:`MUTED` or :data:`UNMUTED`."""

    reason: str
    identity: str
    message: str


def _reason_of(spec: VideoRoomSpec | None, identity: str) -> str | None:
    reasons = spec.moderation.reasons if spec is not None and spec.moderation is not None else None
    return (reasons or {}).get(identity)


def audit_mutes(
    spec: VideoRoomSpec | None,
    recorded: Sequence[MuteRecord] | None,
    entries: Sequence[ManagedFields],
    now: datetime,
) -> tuple[list[MuteRecord] | None, tuple[MuteChange, ...]]:
    """The mutes to record in status and one change per identity muted, changed or unmuted since."""
    before = {record.identity: record for record in recorded or ()}
    records: list[MuteRecord] = []
    changes: list[MuteChange] = []
    for mute in mutes_of(spec):
        old = before.pop(mute.identity, None)
        if old is not None and old.tracks == mute.tracks:
            records.append(old)
            continue
        reason = _reason_of(spec, mute.identity)
        by = manager_of(entries, mute.identity)
        records.append(
            MuteRecord(identity=mute.identity, tracks=mute.tracks, since=now, by=by, reason=reason)
        )
        changes.append(
            MuteChange(MUTED, mute.identity, _message("Muted", mute.identity, mute.tracks, reason, by))
        )
    for identity, old in sorted(before.items()):
        reason = _reason_of(spec, identity)
        by = manager_of(entries, None)
        changes.append(MuteChange(UNMUTED, identity, _message("Unmuted", identity, old.tracks, reason, by)))
    return records or None, tuple(changes)


def _message(verb: str, identity: str, tracks: str, reason: str | None, by: str) -> str:
    why = f"reason: {reason}" if reason else "no reason given"
    words = _TRACK_WORDS.get(tracks, tracks)
    return f"{verb} {identity!r} ({words}) for every other participant; {why}; changed by {by}."
