"""VideoRoom reconciliation as pure functions: what to do next, and what a Twilio answer means for status.

One reconcile is a short loop driven by :mod:`~twilio_video_operator.reconcilers.videoroom_executor`:

1. :func:`plan` looks at the spec, the status, what this reconcile has learned so far (:class:`Facts`) and
   the clock, and returns a :class:`Plan`: at most one Twilio :data:`Action`, the status to write, and when
   to come back;
2. the executor performs the action (writing the status first when ``persist_first`` says so: the
   create-pending marker of a room created without a StatusCallback must be stored before CreateRoom is
   sent; other rooms name their object in their StatusCallback, see :mod:`.videoroom_ownership`);
3. :func:`absorb` folds the answer into the working state (:class:`Working`), or :func:`fail` turns an
   error into a final status (or into a fact, for Twilio's "room exists");
4. repeat until the plan has no action.

Nothing here performs I/O, so every branch is unit-tested directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from twilio_video_operator.gateway.errors import (
    AuthError,
    GatewayError,
    NotFoundError,
    TerminalError,
    ThrottledError,
    TransientError,
)
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo
from twilio_video_operator.models.annotations import PAUSED as PAUSED_ANNOTATION
from twilio_video_operator.models.annotations import RECONCILE_REQUESTED_AT
from twilio_video_operator.models.conditions import ConditionStatus, Reason
from twilio_video_operator.models.timestamps import shifted
from twilio_video_operator.models.videoroom import (
    RECORDING_ROOM_TYPES,
    AppliedRecordingRule,
    CreatePending,
    ParticipantCounts,
    SessionHistory,
    VideoRoomSpec,
    VideoRoomStatus,
)
from twilio_video_operator.reconcilers import videoroom_conditions as cond
from twilio_video_operator.reconcilers.tenancy import NameRule
from twilio_video_operator.reconcilers.videoroom_desired import (
    Defaults,
    Window,
    blocked_identities,
    create_params,
    describe_rules,
    extra_problems,
    implied_recording_rules,
    moderation_digest,
    pending_changes,
    recording_rules_of,
    settings_of_room,
    unique_name_of,
    window_of,
)
from twilio_video_operator.reconcilers.videoroom_mutes import (
    DEFAULT_RULES,
    ManagedFields,
    audit_mutes,
    mute_digest,
    mute_rules,
)
from twilio_video_operator.reconcilers.videoroom_ownership import (
    made_for,
    name_in_doubt,
    no_create_since,
    room_callback_url,
)

#: Twilio error code: an in-progress room already uses this UniqueName.
CODE_ROOM_EXISTS = 53113
#: Twilio error codes of an operation on a room that is no longer in progress.
CODES_ROOM_NOT_IN_PROGRESS = (53112, 53118)
#: Twilio error code: invalid recording rules.
CODE_INVALID_RECORDING_RULES = 53120
#: A room found by UniqueName counts as the one an interrupted create made (for a room without a
#: StatusCallback) only if Twilio created it no earlier than this before the create-pending marker was
#: written (tolerates clock skew with Twilio).
CLAIM_CLOCK_SKEW = timedelta(minutes=2)
#: How many past session SIDs ``status.sessions.recentSids`` keeps.
RECENT_SESSIONS = 5
#: Seconds before trying again when Twilio says the name is taken but no in-progress room has it.
CONFLICT_RETRY_SECONDS = 5.0
#: Seconds before retrying after an error Twilio answered but that is not about the spec.
REJECTED_RETRY_SECONDS = 60.0
#: Seconds before retrying when Twilio could not be asked whether the credentials hold.
CREDENTIALS_RETRY_SECONDS = 5.0

EventType = Literal["Normal", "Warning"]


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class CredentialsCheck:
    """Which credentials this reconcile uses, and what is wrong with them (``(reason, message)``)."""

    revision: str
    problem: tuple[str, str] | None = None
    transient: bool = False
    """The problem may clear by retrying (Twilio could not be asked): retry instead of stalling."""


def _nobody(_sid: str) -> str | None:
    return None


@dataclass(frozen=True)
class PlanInput:
    """Everything a reconcile starts from. ``spec`` is ``None`` when it does not parse (see problems)."""

    namespace: str
    name: str
    generation: int | None
    spec: VideoRoomSpec | None
    status: VideoRoomStatus
    now: datetime
    defaults: Defaults
    credentials: CredentialsCheck
    spec_problems: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    observe: bool = False
    """Verify the live room at Twilio (one FetchRoom): resync, operator restart, unpause."""
    names: NameRule | None = None
    """Which unique names this object may use and adopt (``None``: any, as on a tenant's own account)."""
    verified_sid: str | None = None
    """The room this process created, took over or checked at Twilio for this object. ``status.sid`` is
    writable by whoever may write the status, so any other SID is fetched and checked before it is used."""
    claimed_by: Callable[[str], str | None] = _nobody
    """The other object (``namespace/name``) a room SID belongs to, if any."""
    managed_fields: tuple[ManagedFields, ...] = ()
    """``metadata.managedFields`` (spec writers only): who changed the mutes, for the audit Events."""
    uid: str = ""
    """``metadata.uid``: named in the StatusCallback of the object's rooms (their proof of ownership)."""
    create_in_doubt: bool = False
    """A CreateRoom of this object may have reached Twilio without its answer being stored: this process
    sent one and did not record its answer, or has not yet ruled out that a predecessor did."""
    doubt_name: str | None = None
    """The UniqueName of the CreateRoom this process sent whose answer is missing, if it knows one."""

    def may_use(self, unique_name: str | None) -> bool:
        return self.names is None or self.names.allows(unique_name)

    @property
    def rooms_name_owner(self) -> bool:
        """The rooms this object creates carry its uid in their StatusCallback (else: the marker)."""
        return bool(self.uid) and self.defaults.status_callback is not None


# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class FetchRoom:
    sid: str


@dataclass(frozen=True)
class LookupRoom:
    """Find the in-progress room with this UniqueName."""

    unique_name: str


@dataclass(frozen=True)
class CreateRoom:
    params: Mapping[str, Any]


@dataclass(frozen=True)
class CompleteRoom:
    sid: str


@dataclass(frozen=True)
class ListParticipants:
    sid: str


@dataclass(frozen=True)
class DisconnectParticipants:
    sid: str
    identities: tuple[str, ...]


@dataclass(frozen=True)
class UpdateRecordingRules:
    """Replace the recording rules of the live room ``sid``.

    ``rules`` are ``spec.recording.rules``; ``reset`` when the spec no longer has any and the room goes back
    to what recording on connect implies (``rules`` then holds that single rule).
    """

    sid: str
    rules: tuple[Mapping[str, Any], ...]
    reset: bool = False


@dataclass(frozen=True)
class UpdateSubscribeRules:
    """Set the subscribe rules of each of ``participants`` (PA SIDs) of the live room ``sid`` to ``rules``."""

    sid: str
    participants: tuple[str, ...]
    rules: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class CreateRecordingComposition:
    """Create the Composition object ``name`` (Kubernetes, not Twilio) owned by the room."""

    name: str
    spec: Mapping[str, Any]


Action = (
    FetchRoom
    | LookupRoom
    | CreateRoom
    | CompleteRoom
    | ListParticipants
    | DisconnectParticipants
    | UpdateRecordingRules
    | UpdateSubscribeRules
    | CreateRecordingComposition
)


@dataclass(frozen=True)
class Note:
    """A Kubernetes Event to post about the object."""

    type: EventType
    reason: str
    message: str


# ------------------------------------------------------------------------------------------ working state


@dataclass(frozen=True)
class Facts:
    """What this reconcile learned from Twilio so far (beyond what the status records)."""

    fetched: bool = False
    looked_up: str | None = None
    """The UniqueName last looked up (after which ``foreign`` holds any room found that is not ours)."""
    foreign: RoomInfo | None = None
    conflict: bool = False
    """CreateRoom answered 53113 (the name is taken)."""
    participants: tuple[ParticipantInfo, ...] | None = None
    removal_done: bool = False
    subscribe_done: bool = False
    """Every listed participant's subscribe rules were set in this reconcile."""
    stale: bool = False
    """Twilio said the room is no longer in progress: fetch it before going on."""
    not_ours: str | None = None
    """Why the room ``status.sid`` names is not this object's (found when it was fetched)."""
    claimed_by: str | None = None
    """The object that owns the room the last lookup found (which may then not be adopted)."""
    verified: str | None = None
    """The room this reconcile created, took over or fetched and checked: this object's own."""
    opened: str | None = None
    """The room this reconcile created."""
    doubt_cleared: bool = False
    """No create of this object can be unanswered any more: a CreateRoom succeeded, the name in doubt was
    looked up, or the room status names was seen in progress."""


@dataclass(frozen=True)
class Working:
    status: VideoRoomStatus
    facts: Facts = Facts()
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Plan:
    status: VideoRoomStatus
    action: Action | None = None
    persist_first: bool = False
    """Write ``status`` before performing ``action`` (the create-pending marker)."""
    requeue_at: datetime | None = None
    """Come back at this time (schedule start or end); resyncs are the caller's business."""
    retry_after: float | None = None
    """Not done yet: come back after this many seconds (``Synced`` says why)."""
    stalled: bool = False
    paused: bool = False
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True)
class Failure:
    """How a failed action ends this reconcile: the status to write and whether (when) to retry."""

    status: VideoRoomStatus
    reason: str
    message: str
    retry: bool
    retry_after: float | None = None
    """Twilio's hint in seconds (``Retry-After``), when it gave one."""
    notes: tuple[Note, ...] = ()


# ------------------------------------------------------------------------------------------------- plan


def begin(inp: PlanInput) -> Working:
    """The working state a reconcile starts from: changes of the mutes recorded, one Event each.

    Nothing is recorded while the object is paused or its spec does not parse: the audit follows what the
    operator acts on.
    """
    status = inp.status
    if inp.spec is None or inp.spec_problems or inp.annotations.get(PAUSED_ANNOTATION) == "true":
        return Working(status)
    records, changes = audit_mutes(inp.spec, status.muted_identities, inp.managed_fields, inp.now)
    if not changes:
        return Working(status)
    notes = tuple(Note("Normal", change.reason, change.message) for change in changes)
    return Working(status.model_copy(update={"muted_identities": records}), notes=notes)


def plan(inp: PlanInput, work: Working) -> Plan:
    """The next step of the reconcile described by ``inp`` given what ``work`` holds so far."""
    status = work.status
    gen, now = inp.generation, inp.now
    if inp.annotations.get(PAUSED_ANNOTATION) == "true":
        return Plan(status=cond.paused(status, generation=gen, now=now), paused=True)
    token = inp.annotations.get(RECONCILE_REQUESTED_AT)
    if token is not None:
        status = status.model_copy(update={"last_handled_reconcile_at": token})

    spec = inp.spec
    problems = list(inp.spec_problems) + (extra_problems(spec, inp.defaults) if spec is not None else [])
    if spec is None or problems:
        message = "; ".join(problems) or "spec is missing"
        return _stall(status, Reason.INVALID_SPEC, message, inp)

    stall = cond.stall_of(status)
    if stall is not None and stall[1] == gen and status.credentials_revision == inp.credentials.revision:
        return Plan(status=status, stalled=True)  # nothing changed since: no Twilio call
    status = status.model_copy(update={"credentials_revision": inp.credentials.revision})
    if stall is not None:  # the spec or the credentials changed since: try again
        status = cond.with_condition(status, cond.STALLED, "False", Reason.NOT_STALLED, "", gen, now)
    if inp.credentials.problem is not None:
        reason, message = inp.credentials.problem
        if inp.credentials.transient:
            status = cond.unsynced(status, reason, message, generation=gen, now=now)
            return Plan(status=status, retry_after=CREDENTIALS_RETRY_SECONDS)
        return _stall(status, reason, message, inp)
    unique_name = unique_name_of(spec, inp.namespace, inp.name)
    if not inp.may_use(unique_name):
        return _stall(
            status, Reason.NAME_NOT_ALLOWED, _name_not_allowed(inp, unique_name), inp, drop_marker=True
        )
    marker = status.create_pending
    if marker is not None and not inp.may_use(marker.unique_name):
        status = status.model_copy(update={"create_pending": None})  # not a name this object can have used
    if work.facts.not_ours is not None:
        return _stall(_forget_room(status), Reason.ROOM_NOT_OWNED, work.facts.not_ours, inp)

    work = replace(work, status=status)
    observe = inp.observe or (token is not None and token != inp.status.last_handled_reconcile_at)
    live = status.sid is not None and status.room_status == "in-progress"
    unverified = status.sid not in (inp.verified_sid, work.facts.verified)
    # A room this reconcile created needs no observing: Twilio just answered about it.
    observe = observe and work.facts.opened != status.sid
    if live and (observe or work.facts.stale or unverified) and not work.facts.fetched:
        return Plan(status=status, action=FetchRoom(status.sid or ""))
    if live:
        return _plan_live(inp, spec, work)
    return _plan_idle(inp, spec, work)


def _name_not_allowed(inp: PlanInput, unique_name: str) -> str:
    rule = inp.names.describe() if inp.names is not None else "any name"
    return (
        f"uniqueName {unique_name!r} is not a name namespace {inp.namespace} may use on the operator's "
        f"shared Twilio account ({rule}); choose such a name, or use an account of your own "
        "(spec.credentialsRef)."
    )


def _forget_room(status: VideoRoomStatus) -> VideoRoomStatus:
    """Drop a room SID that turned out not to be this object's (it came from a status written by hand)."""
    return status.model_copy(update={"sid": None, "room_status": None, "create_pending": None})


def _stall(
    status: VideoRoomStatus, reason: str, message: str, inp: PlanInput, *, drop_marker: bool = False
) -> Plan:
    """Stop until the spec or the credentials change. ``drop_marker`` when no create can have succeeded."""
    already = cond.stall_of(status)
    notes = () if already == (reason, inp.generation) else (Note("Warning", reason, message),)
    if drop_marker:
        status = status.model_copy(update={"create_pending": None})
    status = cond.stalled(status, reason, message, generation=inp.generation, now=inp.now)
    return Plan(status=status, stalled=True, notes=notes)


def _plan_live(inp: PlanInput, spec: VideoRoomSpec, work: Working) -> Plan:
    status, facts = work.status, work.facts
    sid = status.sid or ""
    window = window_of(spec)
    if spec.state == "Completed" or window.after(inp.now):
        return Plan(status=status, action=CompleteRoom(sid))

    blocked = blocked_identities(spec)
    digest = moderation_digest(sid, blocked)
    if status.moderation_digest != digest:
        if blocked and facts.participants is None:
            return Plan(status=status, action=ListParticipants(sid))
        targets = tuple(
            sorted(
                {
                    p.identity
                    for p in facts.participants or ()
                    if p.identity in blocked and p.status != "disconnected"
                }
            )
        )
        if targets and not facts.removal_done:
            return Plan(status=status, action=DisconnectParticipants(sid, targets))
        status = status.model_copy(update={"moderation_digest": digest})

    subscribe = _subscribe_rules_action(inp, status, facts)
    if isinstance(subscribe, ListParticipants | UpdateSubscribeRules):
        return Plan(status=status, action=subscribe)
    status = subscribe

    unique_name = unique_name_of(spec, inp.namespace, inp.name)
    changes = pending_changes(spec, inp.defaults, status, unique_name)
    rules = _recording_rules_action(spec, status)
    if isinstance(rules, UpdateRecordingRules):
        return Plan(status=status, action=rules)
    if rules is not None:
        changes.append(rules)
    synced_reason, synced_message = Reason.RECONCILE_SUCCESS, "The room matches the spec."
    if changes:
        synced_reason = Reason.PENDING_NEXT_SESSION
        synced_message = (
            "Twilio cannot change these on a live room; they apply to the next session: " + "; ".join(changes)
        )
    status = cond.healthy(
        status,
        ready="True",
        ready_reason=Reason.IN_PROGRESS,
        ready_message=f"Twilio room {sid} is in progress.",
        synced_reason=synced_reason,
        synced_message=synced_message,
        generation=inp.generation,
        now=inp.now,
    )
    return Plan(status=status, requeue_at=window.closes_at)


def _subscribe_rules_action(
    inp: PlanInput, status: VideoRoomStatus, facts: Facts
) -> ListParticipants | UpdateSubscribeRules | VideoRoomStatus:
    """Make every connected participant's subscribe rules match the mutes (the status once they do).

    Done when the rules or the session changed since they were last set, and again on an observing
    reconcile (resync, restart) while mutes are in force, since anyone holding the account's credentials
    can change a participant's rules.
    """
    sid = status.sid or ""
    rules = mute_rules(inp.spec)
    digest = mute_digest(sid, rules)
    recheck = inp.observe and digest is not None and facts.opened != sid
    if (status.mute_digest == digest and not recheck) or facts.subscribe_done:
        return status.model_copy(update={"mute_digest": digest})
    if facts.participants is None:
        return ListParticipants(sid)
    blocked = blocked_identities(inp.spec) if inp.spec is not None else frozenset[str]()
    targets = tuple(
        p.sid for p in facts.participants if p.status != "disconnected" and p.identity not in blocked
    )
    if not targets:
        return status.model_copy(update={"mute_digest": digest})
    return UpdateSubscribeRules(sid, targets, rules or DEFAULT_RULES)


def _recording_rules_action(
    spec: VideoRoomSpec, status: VideoRoomStatus
) -> UpdateRecordingRules | str | None:
    """Bring the live room's recording rules in line with the spec: the action, or why it waits, or ``None``.

    ``status.recordingRules`` holds the spec's rules last applied to the session. Rules removed from the
    spec send the room back to what its recording on connect implies.
    """
    desired = recording_rules_of(spec)
    applied = [rule.to_dict() for rule in status.recording_rules] if status.recording_rules else None
    if desired == applied:
        return None
    room_type = (status.room_settings.type if status.room_settings else None) or status.type
    if room_type is not None and room_type not in RECORDING_ROOM_TYPES:
        return f"recording.rules: a {room_type} room does not record"
    sid = status.sid or ""
    if desired is not None:
        return UpdateRecordingRules(sid, tuple(desired))
    on_connect = status.room_settings.record_participants_on_connect if status.room_settings else None
    if on_connect is None:
        on_connect = spec.recording.participants_on_connect if spec.recording else False
    return UpdateRecordingRules(sid, tuple(implied_recording_rules(on_connect)), reset=True)


def _plan_idle(inp: PlanInput, spec: VideoRoomSpec, work: Working) -> Plan:
    """No live room: resolve an interrupted create, compose, wait for the schedule, or open a session."""
    status, facts, now = work.status, work.facts, inp.now
    window = window_of(spec)
    want_end = spec.state == "Completed" or window.after(now)
    ended = status.sid is not None
    marker = status.create_pending

    # A create may have reached Twilio before the process stopped: find that room before anything else.
    if marker is not None and facts.looked_up != marker.unique_name:
        return Plan(status=status, action=LookupRoom(marker.unique_name))
    no_session_wanted = want_end or window.before(now) or (ended and not spec.keep_alive)
    unique_name = unique_name_of(spec, inp.namespace, inp.name)
    doubt = None if facts.doubt_cleared else _doubt_name(inp)
    if doubt is not None and facts.looked_up != doubt and (no_session_wanted or doubt != unique_name):
        # Its room names this object in its StatusCallback; a CreateRoom of the same name would find it too.
        return Plan(status=status, action=LookupRoom(doubt))
    if marker is not None and no_session_wanted:
        status = status.model_copy(update={"create_pending": None})

    new_session = ended and spec.keep_alive and not want_end and not window.before(now)
    unverified = status.sid not in (inp.verified_sid, facts.verified)
    if unverified and not facts.fetched and (new_session or _composition_due(spec, status)):
        # Acting on a session's end (composing it, or opening the next one) needs Twilio's word for it.
        return Plan(status=status, action=FetchRoom(status.sid or ""))
    if ended and _composition_due(spec, status):
        return Plan(status=status, action=CreateRecordingComposition(*_composition_of(inp, spec)))
    if want_end or (ended and not spec.keep_alive):
        return _finish_ended(inp, spec, status, window)
    if window.before(now):
        return _finish_scheduled(inp, status, window)

    if (spec.adopt_existing or facts.conflict) and facts.looked_up != unique_name:
        return Plan(status=status, action=LookupRoom(unique_name))
    found_here = facts.foreign if facts.looked_up == unique_name else None  # not a room of an older name
    if found_here is not None and facts.claimed_by is not None:
        found = found_here
        message = (
            f"The in-progress Twilio room {found.sid} named {unique_name!r} belongs to VideoRoom "
            f"{facts.claimed_by}; a room is never taken over from another object. Choose another "
            "spec.uniqueName."
        )
        return _stall(status, Reason.ROOM_CLAIMED, message, inp, drop_marker=True)
    if found_here is not None:
        found = found_here
        message = (
            f"An in-progress Twilio room named {unique_name!r} ({found.sid}) exists that this object did not "
            "create; set spec.adoptExisting to take it over, or choose another spec.uniqueName."
        )
        return _stall(status, Reason.ROOM_EXISTS, message, inp, drop_marker=True)
    if facts.conflict:
        message = f"Twilio reports the name {unique_name!r} in use but lists no in-progress room with it yet."
        status = cond.unsynced(status, Reason.CREATING, message, generation=inp.generation, now=now)
        return Plan(status=status, retry_after=CONFLICT_RETRY_SECONDS)

    owner = inp.rooms_name_owner  # the room will name this object: no marker to store first
    if not owner and (marker is None or marker.unique_name != unique_name):
        marker = CreatePending(unique_name=unique_name, requested_at=now)
    status = status.model_copy(
        update={"create_pending": marker, "room_status": status.room_status if ended else None}
    )
    status = cond.with_condition(
        status,
        cond.READY,
        "False",
        Reason.CREATING,
        f"Creating the Twilio room {unique_name!r}.",
        inp.generation,
        now,
    )
    callback = inp.defaults.status_callback
    if owner and callback is not None:
        callback = room_callback_url(callback, inp.namespace, inp.name, inp.uid)
    params = create_params(spec, replace(inp.defaults, status_callback=callback), unique_name)
    return Plan(status=status, action=CreateRoom(params), persist_first=not owner)


def doubt_remains(inp: PlanInput, facts: Facts) -> bool:
    """Whether, after a reconcile that learned ``facts``, a create of the object may still be unanswered
    (not counting a CreateRoom sent in that reconcile: the executor knows whether it was answered)."""
    if not inp.create_in_doubt or facts.doubt_cleared:
        return False
    return inp.doubt_name is not None or not (
        inp.spec is not None and no_create_since(inp.spec, inp.status, inp.generation, inp.now)
    )


def _doubt_name(inp: PlanInput) -> str | None:
    """The UniqueName to look up for a create that may be unanswered (rooms that name their owner only)."""
    if not inp.create_in_doubt or not inp.rooms_name_owner or inp.spec is None:
        return None
    name = name_in_doubt(
        inp.spec, inp.status, inp.generation, inp.now, inp.namespace, inp.name, inp.doubt_name
    )
    return name if name is not None and inp.may_use(name) else None


def _finish_scheduled(inp: PlanInput, status: VideoRoomStatus, window: Window) -> Plan:
    opens_at = window.opens_at
    assert opens_at is not None  # only called before the window opens
    if status.sid is None:
        status = status.model_copy(update={"room_status": "Scheduled"})
    # Waiting for the window is the desired state until it opens (possibly months ahead): Ready, so that
    # `kubectl wait --for=condition=Ready`, Argo CD health and sync waves do not hang on a scheduled room.
    status = cond.healthy(
        status,
        ready="True",
        ready_reason=Reason.SCHEDULED,
        ready_message=f"The room opens at {opens_at.isoformat()}.",
        generation=inp.generation,
        now=inp.now,
    )
    return Plan(status=status, requeue_at=opens_at)


def _finish_ended(inp: PlanInput, spec: VideoRoomSpec, status: VideoRoomStatus, window: Window) -> Plan:
    ready: ConditionStatus
    if status.sid is None:
        status = status.model_copy(update={"room_status": None})
        why = "state is Completed" if spec.state == "Completed" else "the schedule ended"
        ready, reason, message = "True", Reason.COMPLETED, f"No room is opened: {why}."
    elif status.room_status == "failed":
        ready, reason, message = "False", Reason.FAILED, f"Twilio room {status.sid} failed."
    else:
        if spec.state == "Completed":
            why = "state is Completed"
        elif window.after(inp.now):
            why = "the schedule ended"
        else:
            why = "Twilio ended it (empty or unused timeout) and keepAlive is off"
        ready, reason, message = "True", Reason.COMPLETED, f"Twilio room {status.sid} is completed: {why}."
    status = cond.healthy(
        status,
        ready=ready,
        ready_reason=reason,
        ready_message=message,
        generation=inp.generation,
        now=inp.now,
    )
    return Plan(status=status)


def _composition_due(spec: VideoRoomSpec, status: VideoRoomStatus) -> bool:
    return (
        spec.recording is not None
        and spec.recording.compose is not None
        and status.room_status == "completed"
        and status.recording_composition is None
    )


def composition_name(room_name: str) -> str:
    return f"{room_name}-recording"


def _composition_of(inp: PlanInput, spec: VideoRoomSpec) -> tuple[str, dict[str, Any]]:
    assert spec.recording is not None and spec.recording.compose is not None
    body = spec.recording.compose.to_dict()
    body["roomRef"] = {"name": inp.name}
    return composition_name(inp.name), body


# ----------------------------------------------------------------------------------------------- absorb


def absorb(inp: PlanInput, work: Working, action: Action, result: Any) -> Working:
    """Fold the successful result of ``action`` into the working state (pure)."""
    status, facts, now = work.status, work.facts, inp.now
    if isinstance(action, FetchRoom):
        return _absorb_fetch(work, result, now, inp)
    if isinstance(action, LookupRoom):
        return _absorb_lookup(inp, work, action.unique_name, result)
    if isinstance(action, CreateRoom):
        status = _start_session(status, result, fresh=True, spec=inp.spec)
        note = Note("Normal", "Created", f"Created Twilio room {result.sid} ({result.unique_name}).")
        facts = replace(facts, verified=result.sid, opened=result.sid, doubt_cleared=True)
        return _with(replace(work, facts=facts), status, note)
    if isinstance(action, CompleteRoom):
        room: RoomInfo | None = result
        update: dict[str, Any] = {
            "room_status": room.status if room is not None and not room.in_progress else "completed",
            "ended_at": (room.end_time if room is not None else None) or now,
            "duration_seconds": room.duration if room is not None else status.duration_seconds,
            "participants": _participants(status, connected=0),
        }
        note = Note("Normal", "Completed", f"Completed Twilio room {action.sid}.")
        return _with(work, status.model_copy(update=update), note)
    if isinstance(action, ListParticipants):
        listed = tuple(result)
        connected = sum(1 for p in listed if p.status != "disconnected")
        status = status.model_copy(update={"participants": _participants(status, connected=connected)})
        return replace(work, status=status, facts=replace(facts, participants=listed))
    if isinstance(action, DisconnectParticipants):
        removed = tuple(result)
        counts = status.participants or ParticipantCounts()
        connected = max(0, (counts.connected or 0) - len(removed))
        status = status.model_copy(update={"participants": _participants(status, connected=connected)})
        notes = tuple(
            Note(
                "Normal",
                "ParticipantRemoved",
                f"Disconnected participant {identity!r} from room {action.sid}: the identity is in "
                "spec.moderation.blockedIdentities.",
            )
            for identity in removed
        )
        return Working(status, replace(facts, removal_done=True), work.notes + notes)
    if isinstance(action, UpdateRecordingRules):
        return _absorb_rules(work, action)
    if isinstance(action, UpdateSubscribeRules):
        return replace(work, facts=replace(facts, subscribe_done=True))
    if isinstance(action, CreateRecordingComposition):
        status = status.model_copy(update={"recording_composition": action.name})
        if not result:
            return replace(work, status=status)
        return _with(
            work, status, Note("Normal", "CompositionCreated", f"Created Composition {action.name}.")
        )
    raise TypeError(f"unknown action {action!r}")


def _absorb_rules(work: Working, action: UpdateRecordingRules) -> Working:
    if action.reset:
        applied = None
        text = (
            f"Reset the recording rules of Twilio room {action.sid} to '{describe_rules(action.rules)}': "
            "spec.recording.rules was removed."
        )
    else:
        applied = [AppliedRecordingRule.model_validate(rule) for rule in action.rules]
        text = f"Applied recording rules to Twilio room {action.sid}: {describe_rules(action.rules)}."
    status = work.status.model_copy(update={"recording_rules": applied})
    return _with(work, status, Note("Normal", "RecordingRulesUpdated", text))


def _with(work: Working, status: VideoRoomStatus, note: Note) -> Working:
    return Working(status, work.facts, (*work.notes, note))


def _participants(status: VideoRoomStatus, *, connected: int) -> ParticipantCounts:
    counts = status.participants or ParticipantCounts()
    return ParticipantCounts(connected=connected, peak=max(counts.peak or 0, connected))


def _absorb_fetch(
    work: Working, room: RoomInfo | None, now: datetime, inp: PlanInput | None = None
) -> Working:
    status = work.status
    facts = replace(work.facts, fetched=True)
    if room is not None and inp is not None:
        why = _not_ours(inp, room)
        if why is not None:
            return replace(work, facts=replace(facts, not_ours=why))
    cleared = facts.doubt_cleared or _settles_doubt(inp, room)
    facts = replace(facts, verified=status.sid, doubt_cleared=cleared)
    if room is None:
        update: dict[str, Any] = {
            "room_status": "completed",
            "ended_at": status.ended_at or now,
            "participants": _participants(status, connected=0),
        }
        note = Note(
            "Warning", "RoomGone", f"Twilio no longer knows room {status.sid}; it is treated as ended."
        )
        return Working(status.model_copy(update=update), facts, (*work.notes, note))
    update = {"room_status": room.status, "type": room.type or status.type}
    if room.date_created is not None:
        update["created_at"] = room.date_created
    if not room.in_progress:
        update["ended_at"] = room.end_time or status.ended_at or now
        update["duration_seconds"] = room.duration
        update["participants"] = _participants(status, connected=0)
    return Working(status.model_copy(update=update), facts, work.notes)


def _not_ours(inp: PlanInput, room: RoomInfo) -> str | None:
    """Why the fetched room ``status.sid`` names may not be used by this object (``None``: it may)."""
    if room.sid == inp.verified_sid:
        return None
    owner = inp.claimed_by(room.sid)
    if owner is not None:
        return f"status.sid names Twilio room {room.sid}, which belongs to VideoRoom {owner}."
    if not inp.may_use(room.unique_name):
        return (
            f"status.sid names Twilio room {room.sid} ({room.unique_name!r}), whose name namespace "
            f"{inp.namespace} may not use on the operator's shared Twilio account."
        )
    return None


def _settles_doubt(inp: PlanInput | None, room: RoomInfo | None) -> bool:
    """A room of the name in doubt seen in progress: no other room of that name can have been made."""
    if inp is None or room is None or not room.in_progress:
        return False
    return inp.doubt_name is None or room.unique_name == inp.doubt_name


def _absorb_lookup(inp: PlanInput, work: Working, unique_name: str, room: RoomInfo | None) -> Working:
    cleared = work.facts.doubt_cleared or unique_name == _doubt_name(inp)
    facts = replace(work.facts, looked_up=unique_name, foreign=None, claimed_by=None, doubt_cleared=cleared)
    if room is None:
        return replace(work, facts=facts)
    owner = inp.claimed_by(room.sid)
    if owner is not None:
        return replace(work, facts=replace(facts, foreign=room, claimed_by=owner))
    original = inp.status.create_pending
    ours = made_for(room, inp.uid) or (
        original is not None
        and original.unique_name == unique_name
        and room.date_created is not None
        and room.date_created >= shifted(original.requested_at, -CLAIM_CLOCK_SKEW)
    )
    spec = inp.spec
    if ours:
        note = Note(
            "Normal",
            "Created",
            f"Found Twilio room {room.sid} ({unique_name}) created by an interrupted attempt; using it.",
        )
    elif spec is not None and spec.adopt_existing:
        note = Note("Normal", "Adopted", f"Adopted the in-progress Twilio room {room.sid} ({unique_name}).")
    else:
        return replace(work, facts=replace(facts, foreign=room))
    status = _start_session(work.status, room, fresh=False, spec=spec)
    return Working(status, replace(facts, fetched=True, verified=room.sid), (*work.notes, note))


def _start_session(
    status: VideoRoomStatus, room: RoomInfo, *, fresh: bool, spec: VideoRoomSpec | None
) -> VideoRoomStatus:
    """Status of a new session on ``room`` for ``spec``.

    ``fresh`` rooms were just created from ``spec``: nobody is connected yet, and they record by its rules.
    The rules of a room found by name are not known, so the spec's are applied to it next.
    """
    blocked = blocked_identities(spec) if spec is not None else frozenset[str]()
    rules = recording_rules_of(spec) if fresh and spec is not None else None
    # Nobody is connected to a fresh room yet: every participant will get the rules when it joins.
    muted = mute_digest(room.sid, mute_rules(spec)) if fresh else None
    history = status.sessions or SessionHistory()
    recent = list(history.recent_sids or [])
    count = history.count or 0
    if room.sid not in recent:
        count += 1
        recent = [*recent, room.sid][-RECENT_SESSIONS:]
    return status.model_copy(
        update={
            "sid": room.sid,
            "unique_name": room.unique_name,
            "room_status": room.status,
            "type": room.type,
            "created_at": room.date_created,
            "ended_at": None,
            "duration_seconds": None,
            "participants": ParticipantCounts(connected=0, peak=0) if fresh else None,
            "sessions": SessionHistory(count=count, recent_sids=recent),
            "create_pending": None,
            "room_settings": settings_of_room(room, spec),
            "recording_rules": [AppliedRecordingRule.model_validate(rule) for rule in rules]
            if rules
            else None,
            # Nobody can be connected to a room created a moment ago: the block list holds already.
            "moderation_digest": moderation_digest(room.sid, blocked) if fresh else None,
            "mute_digest": muted,
        }
    )


# ------------------------------------------------------------------------------------------------- fail


def fail(inp: PlanInput, work: Working, action: Action, error: GatewayError) -> Working | Failure:
    """What a failed action means: a fact to plan on (53113 on create), or how the reconcile ends."""
    status, gen, now = work.status, inp.generation, inp.now
    if isinstance(action, CreateRoom) and isinstance(error, TerminalError) and error.code == CODE_ROOM_EXISTS:
        return replace(work, facts=replace(work.facts, conflict=True, looked_up=None))
    message = str(error)
    if isinstance(error, ThrottledError):
        status = cond.unsynced(status, Reason.RATE_LIMITED, message, generation=gen, now=now)
        return Failure(status, Reason.RATE_LIMITED, message, retry=True, retry_after=error.retry_after)
    if isinstance(error, TransientError):
        status = cond.unsynced(status, Reason.TWILIO_UNAVAILABLE, message, generation=gen, now=now)
        return Failure(status, Reason.TWILIO_UNAVAILABLE, message, retry=True, retry_after=error.retry_after)
    if isinstance(error, AuthError):
        stalled = _stall(status, Reason.AUTH_FAILED, f"Twilio rejected the credentials: {message}", inp)
        return Failure(stalled.status, Reason.AUTH_FAILED, message, retry=False, notes=stalled.notes)
    if isinstance(action, CreateRoom) and isinstance(error, TerminalError):
        text = f"Twilio rejected the room settings: {message}"
        stalled = _stall(status, Reason.INVALID_SPEC, text, inp, drop_marker=True)
        return Failure(stalled.status, Reason.INVALID_SPEC, message, retry=False, notes=stalled.notes)
    if (
        isinstance(action, UpdateSubscribeRules)
        and isinstance(error, TerminalError)
        and error.code in CODES_ROOM_NOT_IN_PROGRESS
        and not work.facts.fetched
    ):
        return replace(work, facts=replace(work.facts, stale=True))  # the room ended: see how
    if isinstance(action, UpdateRecordingRules) and isinstance(error, TerminalError):
        if error.code == CODE_INVALID_RECORDING_RULES:
            text = f"Twilio rejected spec.recording.rules: {message}"
            stalled = _stall(status, Reason.INVALID_SPEC, text, inp)
            return Failure(stalled.status, Reason.INVALID_SPEC, message, retry=False, notes=stalled.notes)
        if error.code in CODES_ROOM_NOT_IN_PROGRESS and not work.facts.fetched:
            return replace(work, facts=replace(work.facts, stale=True))  # the room ended: see how
    if isinstance(error, NotFoundError):
        if isinstance(action, CompleteRoom):
            return absorb(inp, work, action, None)  # already gone: nothing left to complete
        if isinstance(
            action, ListParticipants | DisconnectParticipants | UpdateRecordingRules | UpdateSubscribeRules
        ):
            return _absorb_fetch(work, None, now)  # the room vanished under us
    status = cond.unsynced(status, Reason.RECONCILE_ERROR, message, generation=gen, now=now)
    return Failure(status, Reason.RECONCILE_ERROR, message, retry=True, retry_after=REJECTED_RETRY_SECONDS)
