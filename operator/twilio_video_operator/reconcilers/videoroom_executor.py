"""Carry out a VideoRoom reconcile: run the planner's actions through the gateway, write status, post Events.

The loop is Crossplane's Observe/Create/Update/Delete in small steps: plan, (persist,) act, absorb, plan
again. Status is written as a JSON merge patch holding only what changed, and before an action that may create
something at Twilio when the plan asks for it (the create-pending marker of a room without a StatusCallback).
A CreateRoom whose answer is missing (a lost response) is reported to the controller as a create in doubt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from twilio_video_operator import metrics
from twilio_video_operator.gateway.errors import GatewayError, RetryableError
from twilio_video_operator.gateway.records import ParticipantInfo, RoomInfo
from twilio_video_operator.models.videoroom import VideoRoomStatus
from twilio_video_operator.reconcilers.videoroom import (
    Action,
    CompleteRoom,
    CreateRecordingComposition,
    CreateRoom,
    DisconnectParticipants,
    Failure,
    FetchRoom,
    ListParticipants,
    LookupRoom,
    Note,
    PlanInput,
    UpdateRecordingRules,
    UpdateSubscribeRules,
    Working,
    absorb,
    begin,
    doubt_remains,
    fail,
    plan,
)
from twilio_video_operator.reconcilers.videoroom_mutes import MUTED, UNMUTED

logger = logging.getLogger(__name__)

#: Upper bound of plan/act rounds in one reconcile (a full path needs at most six).
MAX_STEPS = 12


class RoomApi(Protocol):
    """The gateway operations a VideoRoom needs (``TwilioGateway.api(creds)`` provides them)."""

    async def create_room(self, **params: Any) -> RoomInfo: ...

    async def fetch_room(self, sid_or_unique_name: str) -> RoomInfo | None: ...

    async def find_in_progress_room(self, unique_name: str) -> RoomInfo | None: ...

    async def verify_auth_token(self) -> None: ...

    async def complete_room(self, sid: str) -> RoomInfo: ...

    async def list_participants(
        self, room_sid: str, status: str | None = "connected"
    ) -> list[ParticipantInfo]: ...

    async def disconnect_participant(self, room_sid: str, sid_or_identity: str) -> ParticipantInfo | None: ...

    async def update_recording_rules(
        self, room_sid: str, rules: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]: ...

    async def update_subscribe_rules(
        self, room_sid: str, participant_sid: str, rules: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]] | None: ...


class ObjectGone(Exception):
    """The object was deleted meanwhile (a status write answered 404)."""


class RoomWriter(Protocol):
    """The Kubernetes side of one reconcile: the object's status, its Events, its Composition."""

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch the status; raises :class:`ObjectGone` when the object no longer exists."""
        ...

    async def post_event(
        self, body: Mapping[str, Any], type: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None: ...

    async def create_composition(self, owner: Mapping[str, Any], name: str, spec: Mapping[str, Any]) -> bool:
        """Create the Composition owned by ``owner``; ``False`` when it already exists."""
        ...


@dataclass(frozen=True)
class RunReport:
    """How one run of the executor ended (the controller makes it the kind's Outcome)."""

    status: VideoRoomStatus
    requeue_at: datetime | None = None
    retry: bool = False
    retry_after: float | None = None
    stalled: bool = False
    paused: bool = False
    error: str | None = None
    """Why it must be retried (a classified gateway error, never a secret)."""
    error_reason: str | None = None
    observed: bool = False
    """The live room was verified at Twilio in this reconcile."""
    twilio_calls: int = 0
    verified_sid: str | None = None
    """The room this object may use (see ``PlanInput.verified_sid``), as of the end of the reconcile."""
    create_in_doubt: bool = False
    """A create of the object may still be unanswered (see ``PlanInput.create_in_doubt``)."""
    doubt_name: str | None = None
    """The UniqueName of the CreateRoom this reconcile sent whose answer is missing, if any."""


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``old`` into ``new`` (removed keys become ``null``; lists are replaced)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch


class ReconcileRun:
    """One reconcile of one object: ``await ReconcileRun(...).execute()``."""

    def __init__(
        self,
        inp: PlanInput,
        body: Mapping[str, Any],
        api: RoomApi | None,
        writer: RoomWriter,
        on_verified: Callable[[str], None] | None = None,
        on_create: Callable[[str], None] | None = None,
    ) -> None:
        self.inp = inp
        self.body = body
        self.api = api
        self.writer = writer
        self._on_verified = on_verified
        self._on_create = on_create
        self._unanswered: str | None = None  # the UniqueName of a CreateRoom sent and not answered
        self._verified = inp.verified_sid
        self._stored: dict[str, Any] = inp.status.to_dict()
        self._posted = 0
        self._calls = 0
        self._observed = False

    async def execute(self) -> RunReport:
        work = begin(self.inp)
        for _ in range(MAX_STEPS):
            step = plan(self.inp, work)
            await self._post(work.notes + step.notes)
            if step.action is None:
                await self._store(step.status)
                return RunReport(
                    status=step.status,
                    requeue_at=step.requeue_at,
                    retry=step.retry_after is not None,
                    retry_after=step.retry_after,
                    stalled=step.stalled,
                    paused=step.paused,
                    observed=self._observed,
                    twilio_calls=self._calls,
                    verified_sid=self._verified,
                    create_in_doubt=self._in_doubt(work),
                    doubt_name=self._unanswered or self.inp.doubt_name,
                )
            if step.persist_first:
                await self._store(step.status)
            work = Working(step.status, work.facts, work.notes)
            try:
                result = await self._perform(step.action)
            except GatewayError as error:
                if not (isinstance(error, RetryableError) and error.maybe_applied):
                    self._unanswered = None  # Twilio answered: no room was created
                outcome = fail(self.inp, work, step.action, error)
                if isinstance(outcome, Working):
                    work = outcome
                    continue
                return await self._failed(work, outcome)
            self._unanswered = None
            before = work.facts.verified
            work = absorb(self.inp, work, step.action, result)
            if isinstance(step.action, FetchRoom):
                self._observed = True
            if work.facts.verified is not None and work.facts.verified != before:
                self._note_verified(work.facts.verified)
        raise RuntimeError(
            f"reconcile of {self.inp.namespace}/{self.inp.name} did not settle in {MAX_STEPS} steps"
        )

    def _note_verified(self, sid: str) -> None:
        """A room this object created, took over by lookup, or fetched and checked is its own from now on.

        Claimed at once (no await since the check): two objects cannot both take the same room.
        """
        self._verified = sid
        if self._on_verified is not None:
            self._on_verified(sid)

    async def _failed(self, work: Working, failure: Failure) -> RunReport:
        await self._post(work.notes + failure.notes)
        await self._store(failure.status)
        return RunReport(
            status=failure.status,
            retry=failure.retry,
            retry_after=failure.retry_after,
            stalled=not failure.retry,
            error=failure.message,
            error_reason=failure.reason,
            observed=self._observed,
            twilio_calls=self._calls,
            verified_sid=self._verified,
            create_in_doubt=self._in_doubt(work),
            doubt_name=self._unanswered or self.inp.doubt_name,
        )

    def _in_doubt(self, work: Working) -> bool:
        return self._unanswered is not None or doubt_remains(self.inp, work.facts)

    async def _store(self, status: VideoRoomStatus) -> None:
        new = status.to_dict()
        patch = merge_patch(self._stored, new)
        if patch:
            await self.writer.patch_status(self.inp.namespace, self.inp.name, patch)
            self._stored = new

    async def _post(self, notes: Sequence[Note]) -> None:
        for note in notes[self._posted :]:
            await self.writer.post_event(self.body, note.type, note.reason, note.message)
            if note.reason in (MUTED, UNMUTED):
                metrics.MODERATION_ACTIONS.labels(note.reason.lower()).inc()
        self._posted = max(self._posted, len(notes))

    async def _perform(self, action: Action) -> Any:
        if isinstance(action, CreateRecordingComposition):
            return await self.writer.create_composition(self.body, action.name, action.spec)
        if self.api is None:
            raise RuntimeError("no Twilio credentials for an action that needs them")
        self._calls += 1
        api = self.api
        if isinstance(action, FetchRoom):
            return await api.fetch_room(action.sid)
        if isinstance(action, LookupRoom):
            return await api.find_in_progress_room(action.unique_name)
        if isinstance(action, CreateRoom):
            self._unanswered = str(action.params["unique_name"])
            if self._on_create is not None:
                self._on_create(self._unanswered)
            return await api.create_room(**action.params)
        if isinstance(action, CompleteRoom):
            return await api.complete_room(action.sid)
        if isinstance(action, ListParticipants):
            return await api.list_participants(action.sid)
        if isinstance(action, DisconnectParticipants):
            removed: list[str] = []
            for identity in action.identities:
                if await api.disconnect_participant(action.sid, identity) is not None:
                    removed.append(identity)  # None: the participant had already left
            return removed
        if isinstance(action, UpdateRecordingRules):
            return await api.update_recording_rules(action.sid, action.rules)
        if isinstance(action, UpdateSubscribeRules):
            updated: list[str] = []
            for participant in action.participants:
                # None: the participant left meanwhile (its successor gets the rules when it joins).
                if await api.update_subscribe_rules(action.sid, participant, action.rules) is not None:
                    updated.append(participant)
                    metrics.SUBSCRIBE_RULES_SET.labels("reconcile").inc()
            return updated
        raise TypeError(f"unknown action {action!r}")
