"""The only code that talks to Twilio: typed operations, retries, error classification, metrics.

Usage::

    gateway = TwilioGateway(GatewayConfig.from_settings(settings))
    api = gateway.api(CredentialSet.from_mapping(secret_data))
    room = await api.find_in_progress_room("tenant:standup")
    ...
    await gateway.close()
"""

from twilio_video_operator.gateway.api import TwilioApi
from twilio_video_operator.gateway.catalog import ALL_OPERATIONS, Operation
from twilio_video_operator.gateway.circuit import CircuitBreaker, CircuitSettings, CircuitState
from twilio_video_operator.gateway.config import GatewayConfig
from twilio_video_operator.gateway.core import TwilioGateway
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import (
    AuthError,
    CircuitOpenError,
    GatewayError,
    NotFoundError,
    RetryableError,
    TerminalError,
    ThrottledError,
    TransientError,
)
from twilio_video_operator.gateway.records import CompositionInfo, KeyInfo, NewKey, ParticipantInfo, RoomInfo
from twilio_video_operator.gateway.retry import RetryPolicy

__all__ = [
    "ALL_OPERATIONS",
    "AuthError",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitSettings",
    "CircuitState",
    "CompositionInfo",
    "CredentialSet",
    "GatewayConfig",
    "GatewayError",
    "KeyInfo",
    "NewKey",
    "NotFoundError",
    "Operation",
    "ParticipantInfo",
    "RetryPolicy",
    "RetryableError",
    "RoomInfo",
    "TerminalError",
    "ThrottledError",
    "TransientError",
    "TwilioApi",
    "TwilioGateway",
]
