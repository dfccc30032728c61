"""Every gateway operation for one credential set, in one object."""

from __future__ import annotations

from twilio_video_operator.gateway.compositions import CompositionOperations
from twilio_video_operator.gateway.keys import KeyOperations
from twilio_video_operator.gateway.rooms import RoomOperations
from twilio_video_operator.gateway.verify import VerifyOperations


class TwilioApi(RoomOperations, CompositionOperations, KeyOperations, VerifyOperations):
    """Rooms, participants, compositions, keys and Verify checks of one Twilio account.

    Obtain it with ``TwilioGateway.api(creds)``; it is cheap, so build one per reconcile with the credential
    values just read. Every method retries transient failures within the gateway's bounds and raises a
    :class:`~twilio_video_operator.gateway.errors.GatewayError` subclass otherwise.
    """
