"""Building blocks shared by the spec and status models of every kind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from twilio_video_operator.models.duration import DurationLimit
from twilio_video_operator.models.timestamps import TimestampBounds

#: Kubernetes object names (DNS-1123 subdomain), e.g. Secrets and VideoRooms referenced by name.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
OBJECT_NAME_MAX_LENGTH = 253
#: Twilio Room SID.
ROOM_SID_PATTERN = r"^RM[0-9a-f]{32}$"

#: A Go-style duration string such as ``90s``, ``5m``, ``2h`` or ``1h30m``, of at most 10 years
#: (:data:`~twilio_video_operator.models.duration.MAX_DURATION`); fields with a lower maximum use
#: ``Annotated[str, DurationLimit(maximum)]``.
Duration = Annotated[str, DurationLimit()]
#: An RFC 3339 time with an offset, from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
Timestamp = Annotated[AwareDatetime, TimestampBounds()]


def kubernetes_validations(*rules: Mapping[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` declaring CEL rules (``x-kubernetes-validations``) for the generated CRD."""
    return {"x-kubernetes-validations": [dict(rule) for rule in rules]}


class SpecModel(BaseModel):
    """Base of every spec part: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form (camelCase keys, unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(BaseModel):
    """Base of every status part: like :class:`SpecModel`, but fields it does not know are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form (camelCase keys, unset optional fields left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalObjectReference(SpecModel):
    """A reference to an object in the same namespace."""

    name: str = Field(
        min_length=1,
        max_length=OBJECT_NAME_MAX_LENGTH,
        pattern=OBJECT_NAME_PATTERN,
        description="Name of the object, in the namespace of the referring object.",
    )


def _format_location(prefix: str, location: tuple[int | str, ...]) -> str:
    path = prefix
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _format_error(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    return str(error["msg"])


def validation_problems(error: ValidationError, prefix: str = "spec") -> list[str]:
    """Turn a pydantic error into ``path: message`` lines, e.g. ``spec.maxParticipants: ...``."""
    return [f"{_format_location(prefix, tuple(e['loc']))}: {_format_error(e)}" for e in error.errors()]


def model_problems(model: type[BaseModel], data: Mapping[str, Any] | None, prefix: str = "spec") -> list[str]:
    """Validate ``data`` against ``model``; return human-readable problems (empty when valid)."""
    if data is not None and not isinstance(data, Mapping):
        return [f"{prefix}: must be an object"]  # an API server that skipped the schema
    try:
        model.model_validate(dict(data or {}))
    except ValidationError as error:
        return validation_problems(error, prefix)
    return []
