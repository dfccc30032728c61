"""Observing a Composition: everything its plan needs to know besides its own status.

The composed room (``roomRef``'s VideoRoom, or ``roomSid``), the credentials of that room's account (from
the connector), and, once before the first create, whether the room may be composed by an object of this
namespace at all (the tenancy rule of docs/security.md, checked at Twilio).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from twilio_video_operator.gateway import GatewayError, TwilioApi, TwilioGateway
from twilio_video_operator.kube.composition_objects import CompositionObjects, created_spec
from twilio_video_operator.kube.errors import KUBE_ERRORS, kube_problem
from twilio_video_operator.models.composition import (
    CompositionSpec,
    CompositionStatus,
    validate_composition_spec,
)
from twilio_video_operator.models.conditions import Reason
from twilio_video_operator.reconcilers.composition_plan import CompositionContext, Memory, RoomTarget
from twilio_video_operator.reconcilers.credentials import Connection, CredentialsConnector
from twilio_video_operator.reconcilers.tenancy import name_rule
from twilio_video_operator.webhooks.composition_events import composition_callback_url


class CompositionObserver:
    """Builds the :class:`CompositionContext` of an object and picks the Twilio operations to use."""

    def __init__(
        self,
        objects: CompositionObjects,
        gateway: TwilioGateway,
        credentials: CredentialsConnector,
        memory: Callable[[str], Memory],
        *,
        public_base_url: str,
        name_prefixes: Mapping[str, Sequence[str]],
    ) -> None:
        self.objects = objects
        self.gateway = gateway
        self.credentials = credentials
        self.memory = memory
        self.public_base_url = public_base_url
        self.name_prefixes = name_prefixes

    async def context(self, obj: Mapping[str, Any]) -> tuple[CompositionContext, TwilioApi | None]:
        """The reconcile context of ``obj`` and the Twilio operations to use (``None``: no credentials)."""
        metadata = obj.get("metadata") or {}
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        uid = str(metadata.get("uid") or "")
        raw_spec = obj.get("spec") or {}
        problems = tuple(validate_composition_spec(raw_spec))
        spec = None if problems else CompositionSpec.model_validate(raw_spec)
        status = CompositionStatus.model_validate(obj.get("status") or {})
        recorded = created_spec(metadata)
        base = CompositionContext(
            namespace=namespace,
            name=name,
            uid=uid,
            generation=metadata.get("generation"),
            spec=spec,
            spec_problems=problems,
            created_spec=recorded,
            callback_url=composition_callback_url(self.public_base_url, namespace, name, uid),
        )
        if spec is None:
            return base, None
        room, room_obj = await self._room(namespace, spec, status)
        connection = await self._credentials(namespace, spec, room_obj, room.sid)
        if connection.credentials is None:
            problem = connection.problem or (Reason.CREDENTIALS_NOT_FOUND, "no credentials")
            return replace(base, room=room, credentials_problem=problem), None
        api = self.gateway.api(connection.credentials)
        self.memory(uid).account_sid = connection.credentials.account_sid
        base = replace(base, room=room)
        if status.sid is None and status.create_pending_at is None and room.sid is not None:
            try:
                why = await self._room_problem(namespace, room.sid, connection, api, self.memory(uid))
            except GatewayError as exc:
                return replace(base, credentials_problem=(Reason.TWILIO_UNAVAILABLE, str(exc))), None
            base = replace(base, room_problem=why)
        return base, api

    async def _room_problem(
        self, namespace: str, room_sid: str, connection: Connection, api: TwilioApi, memory: Memory
    ) -> str | None:
        """Why ``room_sid`` may not be composed by an object of ``namespace`` (``None``: it may).

        Checked at Twilio once, before the first create: a room of the namespace's own account, or on the
        operator's shared account a room whose unique name the namespace may use. A VideoRoom's status
        alone proves nothing, since whoever may write it could name any room.
        """
        if memory.room_verified == room_sid:
            return None
        room = await api.fetch_room(room_sid)
        rule = name_rule(namespace, shared_account=connection.shared, extra_prefixes=self.name_prefixes)
        if room is None:
            where = "the operator's shared account" if connection.shared else "the namespace's own account"
            return (
                f"Twilio room {room_sid} does not exist in {where}; only rooms of this namespace can be "
                "composed."
            )
        if not rule.allows(room.unique_name):
            return (
                f"Twilio room {room_sid} ({room.unique_name!r}) is not a room of namespace {namespace}: on "
                f"the operator's shared account it may compose only rooms with {rule.describe()}."
            )
        memory.room_verified = room_sid
        return None

    async def _room(
        self, namespace: str, spec: CompositionSpec, status: CompositionStatus
    ) -> tuple[RoomTarget, dict[str, Any] | None]:
        if spec.room_ref is None:
            return RoomTarget(sid=status.room_sid or spec.room_sid), None
        ref = spec.room_ref.name
        try:
            room_obj = await self.objects.room(namespace, ref)
        except KUBE_ERRORS as exc:
            return RoomTarget(
                status.room_sid, waiting=f"Cannot read VideoRoom {ref}: {kube_problem(exc)}"
            ), None
        room_status = (room_obj or {}).get("status") or {}
        current = room_status.get("sid")
        sid = status.room_sid or current
        ended_at = None
        if sid is not None and current == sid and room_status.get("endedAt"):
            ended_at = parse_time(str(room_status["endedAt"]))
        if room_obj is None:
            return RoomTarget(sid, waiting=f"VideoRoom {ref} does not exist."), None
        waiting = None if sid else f"VideoRoom {ref} has no Twilio room yet."
        return RoomTarget(sid, ended_at=ended_at, waiting=waiting), room_obj

    async def _credentials(
        self,
        namespace: str,
        spec: CompositionSpec,
        room_obj: Mapping[str, Any] | None,
        room_sid: str | None,
    ) -> Connection:
        """The Twilio credentials of the composed room's account: the ``credentialsRef`` of the VideoRoom
        (``roomRef``, or for a ``roomSid`` the namespace's VideoRoom whose status names that room), else
        the operator's own."""
        if room_obj is None and room_sid is not None:
            room_obj = await self._room_naming(namespace, room_sid)
        ref = ((room_obj or {}).get("spec") or {}).get("credentialsRef") or {}
        secret_name = ref.get("name") if isinstance(ref, Mapping) else None
        try:
            return await self.credentials.connect(namespace, str(secret_name) if secret_name else None)
        except KUBE_ERRORS as exc:
            message = f"Cannot read Secret {secret_name}: {kube_problem(exc)}"
            return Connection(None, f"{secret_name}@unreadable", (Reason.CREDENTIALS_NOT_FOUND, message))

    async def _room_naming(self, namespace: str, room_sid: str) -> dict[str, Any] | None:
        """The VideoRoom of ``namespace`` whose status names ``room_sid`` (current or a recent session)."""
        try:
            rooms = await self.objects.rooms(namespace)
        except KUBE_ERRORS:
            return None
        for item in rooms:
            status = item.get("status") or {}
            recent = (status.get("sessions") or {}).get("recentSids") or []
            if status.get("sid") == room_sid or room_sid in recent:
                return item
        return None


def parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
