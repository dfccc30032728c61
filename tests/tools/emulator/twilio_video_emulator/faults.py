"""Fault injection for Twilio API routes: 429s, 5xx, latency, dropped connections, a concurrency cap, and
lost responses (the request is applied, then its answer is replaced by a 5xx or a dropped connection)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any

from .core import TwilioError

RETRY_AFTER_SECONDS = 1
#: Methods whose requests change Twilio's state: the only ones whose answer ``rateLostResponse`` loses.
MUTATING_METHODS = frozenset({"POST", "DELETE"})
#: How a lost answer reaches the client: ``mixed`` draws ``5xx`` or ``drop`` with equal odds.
LOST_RESPONSE_MODES = ("mixed", "5xx", "drop")


@dataclass
class FaultConfig:
    """Current fault settings; all zero means no faults."""

    rate429: float = 0.0
    rate5xx: float = 0.0
    rate_drop: float = 0.0
    rate_lost_response: float = 0.0
    lost_response_mode: str = "mixed"
    latency_ms: int = 0
    concurrency_limit: int = 0
    seed: int | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultConfig:
        """Parse the control API's body; unknown keys or bad values raise ``ValueError``."""
        known = {
            "rate429",
            "rate5xx",
            "rateDrop",
            "rateLostResponse",
            "lostResponseMode",
            "latencyMs",
            "concurrencyLimit",
            "seed",
        }
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")

        def rate(name: str) -> float:
            value = body.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a number between 0 and 1")
            return float(value)

        def count(name: str) -> int:
            value = body.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
            return value

        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer")
        mode = body.get("lostResponseMode", "mixed")
        if mode not in LOST_RESPONSE_MODES:
            raise ValueError(f"lostResponseMode must be one of: {', '.join(LOST_RESPONSE_MODES)}")
        return cls(
            rate429=rate("rate429"),
            rate5xx=rate("rate5xx"),
            rate_drop=rate("rateDrop"),
            rate_lost_response=rate("rateLostResponse"),
            lost_response_mode=mode,
            latency_ms=count("latencyMs"),
            concurrency_limit=count("concurrencyLimit"),
            seed=seed,
            rng=random.Random(seed if seed is not None else 0),
        )

    def update_from(self, other: FaultConfig) -> None:
        """Take over every setting of ``other`` (the live object is shared by the running app)."""
        for item in fields(self):
            setattr(self, item.name, getattr(other, item.name))

    def to_json(self) -> dict[str, Any]:
        return {
            "rate429": self.rate429,
            "rate5xx": self.rate5xx,
            "rateDrop": self.rate_drop,
            "rateLostResponse": self.rate_lost_response,
            "lostResponseMode": self.lost_response_mode,
            "latencyMs": self.latency_ms,
            "concurrencyLimit": self.concurrency_limit,
            "seed": self.seed,
        }

    @property
    def active(self) -> bool:
        return bool(
            self.rate429
            or self.rate5xx
            or self.rate_drop
            or self.rate_lost_response
            or self.latency_ms
            or self.concurrency_limit
        )

    def draw(self) -> str | None:
        """Decide this request's fate: ``"drop"``, ``"429"``, ``"5xx"`` or ``None`` (serve normally)."""
        if not (self.rate429 or self.rate5xx or self.rate_drop):
            return None
        roll = self.rng.random()
        if roll < self.rate_drop:
            return "drop"
        roll -= self.rate_drop
        if roll < self.rate429:
            return "429"
        roll -= self.rate429
        if roll < self.rate5xx:
            return "5xx"
        return None

    def lose_answer(self, method: str, status: int) -> str | None:
        """After the request was applied: ``"5xx"`` or ``"drop"`` to lose its answer, ``None`` to send it.

        Only answers of mutating requests that succeeded (below 400) are lost: a refused request changed
        nothing, so losing its answer would be no different from ``rate5xx`` or ``rateDrop``. Nothing is
        drawn for other requests, so settings without this fault repeat the same sequence as before.
        """
        if not self.rate_lost_response or method not in MUTATING_METHODS or status >= 400:
            return None
        if self.rng.random() >= self.rate_lost_response:
            return None
        if self.lost_response_mode == "mixed":
            return "5xx" if self.rng.random() < 0.5 else "drop"
        return self.lost_response_mode

    def server_error(self) -> TwilioError:
        if self.rng.random() < 0.5:
            return TwilioError(500, 20500, "Internal Server Error")
        return TwilioError(503, 20503, "Service Unavailable")


def too_many_requests() -> TwilioError:
    return TwilioError(429, 20429, "Too Many Requests")
