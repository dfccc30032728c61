"""What the steps of the demo share: the running playground, an HTTP session, and what earlier steps
left for later ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from twilio_video_playground.playground import Playground

# Counter samples read from /metrics: (sample name, sorted labels) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Demo:
    playground: Playground
    http: aiohttp.ClientSession
    examples: Path
    state_dir: Path
    wait_seconds: float
    bearer: str = field(default="", repr=False)  # the app's ServiceAccount token (never shown)
    metrics_before: Samples = field(default_factory=dict)

    @property
    def emulator_url(self) -> str:
        return self.playground.credentials["url"]

    @property
    def operator_url(self) -> str:
        url = self.playground.operator_url
        if url is None:
            raise RuntimeError("the operator is not running")
        return url
