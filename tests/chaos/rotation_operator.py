"""The operator's ``run`` command with only the SigningKeyRotation handlers, a short periodic tick and a short
failure backoff, in a process of its own (so a chaos test can SIGKILL and restart it).

The operator's own timings (a tick every 15 s, 30 s after a first failed step, doubling) are right for
Twilio, but a suite that loses the answers of key creates and deletes on purpose would spend minutes
waiting for them. Only these two timings differ; the reconcile, the create-pending marker and the clean-up
of an interrupted create are the operator's own code. Settings come from the environment, as for ``run``.

    python tests/chaos/rotation_operator.py
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from twilio_video_operator.handlers import base_registry
from twilio_video_operator.handlers.signingkeyrotation import register_handlers
from twilio_video_operator.logs import setup_logging
from twilio_video_operator.reconcilers.signingkeyrotation_plan import BackoffPolicy
from twilio_video_operator.runner import OperatorError, run_operator
from twilio_video_operator.settings import SettingsError, load_settings

TICK_SECONDS = 0.5
BACKOFF = BackoffPolicy(base=timedelta(seconds=0.5), cap=timedelta(seconds=4))


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(settings.LOG_LEVEL)
    registry = base_registry()
    register_handlers(registry, tick_seconds=TICK_SECONDS, backoff=BACKOFF)
    try:
        asyncio.run(run_operator(settings, registry=registry))
    except OperatorError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
