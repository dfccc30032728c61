"""The one place where a controller's :class:`~twilio_video_operator.controllers.outcome.Outcome` becomes
kopf's answer: ``done`` returns, ``retry`` raises ``kopf.TemporaryError`` with its delay, ``give_up`` raises
``kopf.PermanentError`` (kopf stops retrying that handler for this change)."""

from __future__ import annotations

import kopf

from twilio_video_operator.controllers.outcome import Outcome, Verdict


def settle(outcome: Outcome, *, about: str = "") -> None:
    """Answer kopf for one handler run; ``about`` (e.g. ``VideoRoom ns/name``) prefixes the message."""
    message = f"{about}: {outcome.message}" if about else outcome.message
    if outcome.verdict is Verdict.RETRY:
        raise kopf.TemporaryError(message, delay=outcome.delay)
    if outcome.verdict is Verdict.GIVE_UP:
        raise kopf.PermanentError(message)
