"""Operator settings, read from the environment (names as in a typical Twilio service env file)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from twilio_video_operator.models.duration import parse_duration

ACCOUNT_SID_PATTERN = r"^AC[0-9a-fA-F]{32}$"
API_KEY_PATTERN = r"^SK[0-9a-fA-F]{32}$"

RoomType = Literal["group", "group-small", "peer-to-peer", "go"]

MessagingServiceGrant = Annotated[str, StringConstraints(pattern=r"^(\*|MG[0-9a-fA-F]{32})$")]
StudioFlowGrant = Annotated[str, StringConstraints(pattern=r"^(\*|FW[0-9a-fA-F]{32})$")]
VerifyServiceGrant = Annotated[str, StringConstraints(pattern=r"^(\*|VA[0-9a-fA-F]{32})$")]


class TenantServices(BaseModel):
    """The Twilio services one namespace (or ``"*"``: every other) may use on the operator's account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messagingServices: list[MessagingServiceGrant] = Field(  # the setting's JSON keys, as written
        default_factory=list, description="Messaging Service SIDs (MG...), or * for any"
    )
    studioFlows: list[StudioFlowGrant] = Field(
        default_factory=list, description="Studio Flow SIDs (FW...), or * for any"
    )
    verifyServices: list[VerifyServiceGrant] = Field(
        default_factory=list, description="Verify Service SIDs (VA...), or * for any"
    )


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


class Settings(BaseSettings):
    """Everything the operator process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=True, extra="ignore")

    TWILIO_ACCOUNT_SID: str = Field(pattern=ACCOUNT_SID_PATTERN, description="Twilio Account SID (AC...)")
    TWILIO_API_KEY: str | None = Field(
        default=None, pattern=API_KEY_PATTERN, description="API key SID (SK...)"
    )
    TWILIO_API_SECRET: SecretStr | None = Field(default=None, description="API key secret")
    TWILIO_AUTH_TOKEN: SecretStr | None = Field(
        default=None, description="Auth Token: verifies webhook signatures; may also authenticate REST calls"
    )
    TWILIO_BASE_URL: str | None = Field(
        default=None, description="Send every Twilio host to this base URL (an emulator); unset in production"
    )
    SENDGRID_BASE_URL: str = Field(
        default="https://api.sendgrid.com", description="SendGrid v3 base URL (an emulator in tests)"
    )
    PUBLIC_BASE_URL: str = Field(description="Externally visible base URL Twilio calls back")
    VIDEO_ROOM_TYPE: RoomType = "group"
    VIDEO_MAX_PARTICIPANTS: int = Field(default=25, ge=1, le=50)
    VIDEO_TOKEN_TTL_SECONDS: int = Field(default=3600, ge=60, le=86400)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    TWILIO_MAX_CONCURRENCY: int = Field(default=10, ge=1, le=1000)
    RESYNC_INTERVAL: timedelta = Field(default=timedelta(minutes=10))
    HTTP_HOST: str = Field(default="127.0.0.1", description="Address the operator's HTTP server binds")
    HTTP_PORT: int = Field(default=8080, ge=0, le=65535)
    WATCH_NAMESPACES: str = Field(default="", description="Comma-separated namespaces; empty watches all")
    WATCH_NAMESPACE_SELECTOR: str = Field(
        default="",
        description=(
            "Label selector of the namespaces whose objects this operator reconciles (a shard), e.g. "
            "'tenant-shard=a'; with WATCH_NAMESPACES too, a namespace must be in both; empty: no selector"
        ),
    )
    LEADER_ELECTION: bool = Field(
        default=True, description="Elect one reconciling replica through a Lease (off: this one always leads)"
    )
    LEADER_ELECTION_NAMESPACE: str = Field(
        default="",
        description="Namespace of the leader Lease; empty: POD_NAMESPACE, else the service account's",
    )
    LEADER_ELECTION_LEASE_NAME: str = Field(
        default="twilio-video-operator", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253
    )
    LEADER_ELECTION_LEASE_DURATION: float = Field(default=15.0, gt=0, description="Seconds")
    LEADER_ELECTION_RENEW_DEADLINE: float = Field(default=10.0, gt=0, description="Seconds")
    LEADER_ELECTION_RETRY_PERIOD: float = Field(default=2.0, gt=0, description="Seconds")
    POD_NAME: str = Field(
        default="", description="This replica's name in the Lease; empty: host name + random"
    )
    POD_NAMESPACE: str = Field(default="", description="The namespace this replica runs in (downward API)")
    REPLICA_URL: str = Field(
        default="",
        description=(
            "Base URL at which the other replicas reach this one's HTTP server (callback hand-off); empty: "
            "http://$POD_IP:HTTP_PORT when POD_IP is set, else the address the server listens on"
        ),
    )
    POD_IP: str = Field(default="", description="This replica's address (downward API)")
    SHUTDOWN_DRAIN_SECONDS: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description=(
            "On SIGTERM, keep serving tokens and callbacks this long after /readyz turned 503, while the "
            "Service stops sending requests here"
        ),
    )
    DELIVERY_ALLOWED_ENDPOINTS: str = Field(
        default="",
        description=(
            "Comma-separated origins (https://host[:port], *.domain allowed) S3 deliveries may go to, "
            "besides AWS; empty allows any endpoint"
        ),
    )
    TENANT_NAME_PREFIXES: dict[str, list[str]] = Field(
        default_factory=dict,
        description=(
            "JSON object granting namespaces more room-name prefixes on the shared account, e.g. "
            '{"team-a": ["shared-"]}; every namespace always owns "<namespace>:"'
        ),
    )

    TENANT_TWILIO_SERVICES: dict[str, TenantServices] = Field(
        default_factory=dict,
        description=(
            "JSON object granting namespaces Messaging Services, Studio Flows and Verify Services of the "
            'operator\'s account, e.g. {"*": {"verifyServices": ["VA..."]}, "team-a": {"messagingServices": '
            '["MG..."]}}; a namespace without an entry gets the "*" entry; none: nothing is granted'
        ),
    )

    @field_validator("LOG_LEVEL", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("RESYNC_INTERVAL", mode="before")
    @classmethod
    def _parse_resync(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return timedelta(seconds=int(text)) if text.isdigit() else parse_duration(text)
        return value

    @field_validator("TENANT_NAME_PREFIXES")
    @classmethod
    def _prefixes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for namespace, prefixes in value.items():
            if not namespace or any(not prefix for prefix in prefixes):
                raise ValueError("namespaces and prefixes must be non-empty strings")
        return value

    @field_validator("TENANT_TWILIO_SERVICES")
    @classmethod
    def _service_namespaces(cls, value: dict[str, TenantServices]) -> dict[str, TenantServices]:
        for namespace in value:
            if namespace != "*" and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace):
                raise ValueError(f"{namespace!r} is neither a namespace name nor *")
        return value

    @field_validator("PUBLIC_BASE_URL", "TWILIO_BASE_URL", "SENDGRID_BASE_URL")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _lease_timings(self) -> Settings:
        # client-go's rules: a leader gives up before anyone may take over, and retries within its deadline.
        if not self.LEADER_ELECTION_LEASE_DURATION > self.LEADER_ELECTION_RENEW_DEADLINE:
            raise ValueError(
                "LEADER_ELECTION_LEASE_DURATION must be greater than LEADER_ELECTION_RENEW_DEADLINE"
            )
        if not self.LEADER_ELECTION_RENEW_DEADLINE > 1.2 * self.LEADER_ELECTION_RETRY_PERIOD:
            raise ValueError(
                "LEADER_ELECTION_RENEW_DEADLINE must be greater than 1.2 x LEADER_ELECTION_RETRY_PERIOD"
            )
        return self

    @model_validator(mode="after")
    def _credentials(self) -> Settings:
        has_key = self.TWILIO_API_KEY is not None and self.TWILIO_API_SECRET is not None
        if (self.TWILIO_API_KEY is None) != (self.TWILIO_API_SECRET is None):
            raise ValueError("TWILIO_API_KEY and TWILIO_API_SECRET must be set together")
        if not has_key and self.TWILIO_AUTH_TOKEN is None:
            raise ValueError("set TWILIO_API_KEY and TWILIO_API_SECRET, or TWILIO_AUTH_TOKEN")
        return self

    @property
    def delivery_allowed_endpoints(self) -> tuple[str, ...]:
        return tuple(item.strip() for item in self.DELIVERY_ALLOWED_ENDPOINTS.split(",") if item.strip())

    @property
    def tenant_twilio_services(self) -> dict[str, dict[str, list[str]]]:
        """``TENANT_TWILIO_SERVICES`` as plain lists, keyed like the setting."""
        return {namespace: entry.model_dump() for namespace, entry in self.TENANT_TWILIO_SERVICES.items()}

    @property
    def watch_namespaces(self) -> list[str]:
        return [ns.strip() for ns in self.WATCH_NAMESPACES.split(",") if ns.strip()]


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise :class:`SettingsError` with one line naming the first bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is required but not set"
        raise SettingsError(f"setting {name}: {message}") from None
