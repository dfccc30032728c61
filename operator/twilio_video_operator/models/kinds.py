"""Registry of the custom resource kinds: names, models, printer columns and spec checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel

from twilio_video_operator.models.composition import (
    CompositionSpec,
    CompositionStatus,
    validate_composition_spec,
)
from twilio_video_operator.models.signingkeyrotation import (
    SigningKeyRotationSpec,
    SigningKeyRotationStatus,
    validate_signingkeyrotation_spec,
)
from twilio_video_operator.models.videoroom import VideoRoomSpec, VideoRoomStatus, validate_videoroom_spec

GROUP: Final = "video.openclaw.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORIES: Final = ("twilio",)

READY_JSON_PATH: Final = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


READY_COLUMN = PrinterColumn("READY", "string", READY_JSON_PATH, "Status of the Ready condition.")
AGE_COLUMN = PrinterColumn("AGE", "date", ".metadata.creationTimestamp", "Time since creation.")
# Priority 1: shown by `kubectl get -o wide` only, after the default columns (as kubectl does for Pods).
REASON_COLUMN = PrinterColumn(
    "REASON",
    "string",
    '.status.conditions[?(@.type=="Ready")].reason',
    "Reason of the Ready condition.",
    priority=1,
)


@dataclass(frozen=True)
class KindInfo:
    """Everything the operator and the CRD generator need to know about one kind."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    description: str
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    printer_columns: tuple[PrinterColumn, ...]
    validate_spec: Callable[[Mapping[str, Any] | None], list[str]]

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def resource(self) -> str:
        """``group/version/plural``, as API clients and kmock address the resource."""
        return f"{GROUP}/{VERSION}/{self.plural}"


VIDEOROOM = KindInfo(
    kind="VideoRoom",
    plural="videorooms",
    singular="videoroom",
    short_names=("vroom",),
    description="A Twilio Video room managed declaratively.",
    spec_model=VideoRoomSpec,
    status_model=VideoRoomStatus,
    printer_columns=(
        PrinterColumn("SID", "string", ".status.sid", "Twilio Room SID of the current session."),
        PrinterColumn("STATUS", "string", ".status.roomStatus", "Room status."),
        PrinterColumn("PARTICIPANTS", "integer", ".status.participants.connected", "Connected participants."),
        READY_COLUMN,
        AGE_COLUMN,
        PrinterColumn(
            "UNIQUE NAME", "string", ".status.uniqueName", "UniqueName of the Twilio room.", priority=1
        ),
        PrinterColumn("TYPE", "string", ".status.type", "Room type.", priority=1),
        PrinterColumn(
            "MAX PARTICIPANTS",
            "integer",
            ".status.roomSettings.maxParticipants",
            "Participant cap of the current session.",
            priority=1,
        ),
        PrinterColumn("SESSIONS", "integer", ".status.sessions.count", "Sessions opened so far.", priority=1),
        REASON_COLUMN,
    ),
    validate_spec=validate_videoroom_spec,
)

COMPOSITION = KindInfo(
    kind="Composition",
    plural="compositions",
    singular="composition",
    short_names=("vcomp",),
    description="A Twilio Video composition of one room's recordings, optionally delivered to S3.",
    spec_model=CompositionSpec,
    status_model=CompositionStatus,
    printer_columns=(
        PrinterColumn("SID", "string", ".status.sid", "Twilio Composition SID."),
        PrinterColumn("STATUS", "string", ".status.compositionStatus", "Composition status."),
        PrinterColumn("PROGRESS", "integer", ".status.progressPercent", "Processing progress in percent."),
        READY_COLUMN,
        AGE_COLUMN,
        PrinterColumn("ROOM", "string", ".spec.roomRef.name", "VideoRoom of roomRef.", priority=1),
        PrinterColumn("ROOM SID", "string", ".status.roomSid", "SID of the composed room.", priority=1),
        PrinterColumn("FORMAT", "string", ".spec.format", "Container format.", priority=1),
        PrinterColumn("DURATION", "integer", ".status.durationSeconds", "Seconds of media.", priority=1),
        PrinterColumn("SIZE", "integer", ".status.sizeBytes", "Bytes of media.", priority=1),
        PrinterColumn(
            "DELIVERED",
            "string",
            '.status.conditions[?(@.type=="Delivered")].status',
            "Status of the Delivered condition.",
            priority=1,
        ),
        REASON_COLUMN,
    ),
    validate_spec=validate_composition_spec,
)

SIGNINGKEYROTATION = KindInfo(
    kind="SigningKeyRotation",
    plural="signingkeyrotations",
    singular="signingkeyrotation",
    short_names=("skr",),
    description="A Twilio API key kept in a Secret and rotated on a schedule.",
    spec_model=SigningKeyRotationSpec,
    status_model=SigningKeyRotationStatus,
    printer_columns=(
        PrinterColumn("ACTIVE KEY", "string", ".status.activeKeySid", "SID of the active key."),
        PrinterColumn("REVISION", "integer", ".status.revision", "Number of keys made active so far."),
        # A string, not a date: kubectl renders future dates as <invalid>.
        PrinterColumn(
            "NEXT ROTATION", "string", ".status.nextRotationTime", "When the next rotation starts."
        ),
        READY_COLUMN,
        AGE_COLUMN,
        PrinterColumn("SECRET", "string", ".spec.secretName", "Secret the keys are written to.", priority=1),
        PrinterColumn("NEXT KEY", "string", ".status.nextKeySid", "SID of the staged key.", priority=1),
        PrinterColumn(
            "PREVIOUS KEY", "string", ".status.previousKeySid", "SID of the key in its overlap.", priority=1
        ),
        PrinterColumn(
            "ROTATING",
            "string",
            '.status.conditions[?(@.type=="Rotating")].status',
            "Status of the Rotating condition.",
            priority=1,
        ),
        REASON_COLUMN,
    ),
    validate_spec=validate_signingkeyrotation_spec,
)

KINDS: Final = (VIDEOROOM, COMPOSITION, SIGNINGKEYROTATION)
_BY_KIND: Final = {info.kind: info for info in KINDS}


def kind_info(kind: str) -> KindInfo:
    """The registry entry for ``kind`` (e.g. ``"VideoRoom"``); ``KeyError`` if unknown."""
    return _BY_KIND[kind]
