"""Saving and loading the emulator's state as JSON (``--state FILE``).

Accounts (the main one and its subaccounts) and keys with their secrets (the file is a test fixture, keep it
private), rooms with their participants, tracks, recordings and transcriptions, the clock offset, and every
``state.persisters`` entry. Timers are not stored: timeouts of in-progress rooms and participants are armed
again on load.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, fields, is_dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from .core import EmulatorState
from .entities import Account, ApiKey, Participant, Recording, Room, Track, Transcription
from .lifecycle import arm_duration_limit, arm_empty_timeout, arm_unused_timeout

FORMAT_VERSION = 1
_DATETIME_TAG = "$datetime"

T = TypeVar("T")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: value.isoformat()}
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    return value


def _decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DATETIME_TAG in obj:
        return datetime.fromisoformat(obj[_DATETIME_TAG])
    return obj


def _build(cls: type[T], data: dict[str, Any]) -> T:
    assert is_dataclass(cls)
    names = {item.name for item in fields(cls)}
    return cls(**{key: value for key, value in data.items() if key in names})


def _load_room(data: dict[str, Any]) -> Room:
    participants = {}
    for sid, raw in data.pop("participants", {}).items():
        tracks = {track_sid: _build(Track, track) for track_sid, track in raw.pop("tracks", {}).items()}
        participants[sid] = _build(Participant, {**raw, "tracks": tracks})
    recordings = [_build(Recording, item) for item in data.pop("recordings", [])]
    transcriptions = {
        ttid: _build(Transcription, item) for ttid, item in data.pop("transcriptions", {}).items()
    }
    return _build(
        Room,
        {**data, "participants": participants, "recordings": recordings, "transcriptions": transcriptions},
    )


def dump_state(state: EmulatorState) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "account_sid": state.account_sid,
        "auth_token": state.auth_token,
        "clock_offset_seconds": state.clock.offset.total_seconds(),
        "accounts": [_encode(asdict(account)) for account in state.accounts.values()],
        "keys": [_encode(asdict(key)) for key in state.keys.values()],
        "rooms": [_encode(asdict(room)) for room in state.rooms.values()],
        "extensions": {name: _encode(dump()) for name, (dump, _) in state.persisters.items()},
    }


def load_state(state: EmulatorState, data: dict[str, Any]) -> None:
    """Replace ``state``'s contents with ``data`` (as produced by :func:`dump_state`)."""
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported emulator state version: {data.get('version')!r}")
    state.account_sid = data["account_sid"]
    state.auth_token = data["auth_token"]
    # Files written before subaccounts existed have no "accounts": the main account is rebuilt then.
    state.accounts = {raw["sid"]: _build(Account, raw) for raw in data.get("accounts", [])}
    state.ensure_main_account()
    offset = timedelta(seconds=float(data.get("clock_offset_seconds", 0.0)))
    state.clock.offset = max(state.clock.offset, offset)
    state.keys = {raw["sid"]: _build(ApiKey, raw) for raw in data.get("keys", [])}
    state.rooms = {}
    state.room_index = {}
    state.recordings = {}
    for raw in data.get("rooms", []):
        room = _load_room(raw)
        state.rooms[room.sid] = room
        for recording in room.recordings:
            state.recordings[recording.sid] = recording
        if room.status == "in-progress":
            state.names_in(room.account_sid)[room.unique_name] = room.sid
            _rearm(state, room)
    for name, payload in data.get("extensions", {}).items():
        persister = state.persisters.get(name)
        if persister is not None:
            persister[1](payload)


def _rearm(state: EmulatorState, room: Room) -> None:
    if not room.ever_joined:
        arm_unused_timeout(state, room)
    elif not room.connected():
        arm_empty_timeout(state, room)
    for participant in room.connected():
        arm_duration_limit(state, room, participant)


def save_file(state: EmulatorState, path: str | os.PathLike[str]) -> None:
    """Write atomically (temporary file + rename), readable by the owner only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".emulator-state-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dump_state(state), handle)
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_file(state: EmulatorState, path: str | os.PathLike[str]) -> bool:
    """Load ``path`` into ``state`` if it exists; returns whether something was loaded."""
    target = Path(path)
    if not target.exists():
        return False
    data = json.loads(target.read_text(encoding="utf-8"), object_hook=_decode_hook)
    load_state(state, data)
    return True
