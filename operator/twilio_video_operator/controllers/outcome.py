"""How one reconcile or deletion of one object ended, for whoever triggered it: the one Outcome type.

A controller never raises the framework's errors. It says ``done``, ``retry`` (after a delay) or
``give_up`` (retrying cannot help), and the kopf handlers map that to kopf in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from twilio_video_operator.kube.errors import kube_problem

#: Seconds before trying again after the Kubernetes API failed a read or a write.
KUBE_RETRY_SECONDS = 10.0


class Verdict(StrEnum):
    DONE = "done"
    """Nothing more to do for this trigger (the controller's own timers bring it back when due)."""
    RETRY = "retry"
    """Try again after ``delay`` seconds."""
    GIVE_UP = "give_up"
    """Retrying will not help; stop trying for this trigger."""


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    message: str = ""
    delay: float | None = None

    @classmethod
    def done(cls, message: str = "") -> Outcome:
        return cls(Verdict.DONE, message)

    @classmethod
    def retry(cls, message: str, delay: float) -> Outcome:
        return cls(Verdict.RETRY, message, max(delay, 0.0))

    @classmethod
    def give_up(cls, message: str) -> Outcome:
        return cls(Verdict.GIVE_UP, message)

    @property
    def finished(self) -> bool:
        return self.verdict is Verdict.DONE


def kube_failed(doing: str, exc: BaseException) -> Outcome:
    """Retry soon: the Kubernetes API failed while ``doing`` (e.g. "read the object")."""
    return Outcome.retry(f"cannot {doing}: {kube_problem(exc)}", KUBE_RETRY_SECONDS)
