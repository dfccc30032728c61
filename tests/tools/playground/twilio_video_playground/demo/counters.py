"""Step 6: what the story did to the operator's counters, from ``GET /metrics`` before and after."""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families

from twilio_video_playground.demo.clients import scrape_metrics
from twilio_video_playground.demo.context import Demo, Samples
from twilio_video_playground.demo.waiting import StepFailed

MAX_PARTS = 4


class Tracked(NamedTuple):
    title: str
    name: str
    label: str | None  # broken down by this label


# Each of these moves in every run of the story; one that does not is a failure.
TRACKED = (
    Tracked("reconciles", "twilio_video_operator_reconcile_total", "kind"),
    Tracked("Twilio API requests", "twilio_outbound_api_requests_total", "op_id"),
    Tracked("Twilio callbacks received", "twilio_video_operator_webhooks_received_total", "endpoint"),
    Tracked("access tokens minted", "twilio_video_operator_access_tokens_minted_total", "key_source"),
    Tracked("token requests refused", "twilio_video_operator_access_token_requests_denied_total", "reason"),
    Tracked("signing key rotation steps", "twilio_video_operator_signing_key_rotations_total", "result"),
    Tracked("deliveries to S3", "twilio_video_operator_deliveries_total", "outcome"),
    Tracked("bytes delivered", "twilio_video_operator_delivery_bytes_total", None),
)


def parse_counters(text: str) -> Samples:
    """Every ``*_total`` sample of a Prometheus text exposition, by name and labels."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return samples


def deltas(before: Samples, after: Samples, name: str, label: str | None) -> dict[str, float]:
    """How much each value of ``label`` of the counter ``name`` grew (``""`` without a label)."""
    grown: dict[str, float] = defaultdict(float)
    for (sample, labels), value in after.items():
        if sample == name:
            grown[dict(labels).get(label, "") if label else ""] += value - before.get((sample, labels), 0.0)
    return {key: value for key, value in grown.items() if value}


def number(value: float) -> str:
    return f"{value:.0f}" if value == int(value) else f"{value:.3g}"


def describe(parts: dict[str, float]) -> str:
    ranked = sorted(parts.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{key} +{number(value)}" for key, value in ranked[:MAX_PARTS] if key)
    more = ", ..." if len(ranked) > MAX_PARTS else ""
    return f"({shown}{more})" if shown else ""


async def take_snapshot(demo: Demo) -> None:
    demo.metrics_before = parse_counters(await scrape_metrics(demo))


async def show_what_moved(demo: Demo) -> None:
    after = parse_counters(await scrape_metrics(demo))
    width = max(len(counter.title) for counter in TRACKED)
    still: list[str] = []
    for counter in TRACKED:
        parts = deltas(demo.metrics_before, after, counter.name, counter.label)
        total = sum(parts.values())
        print(f"{counter.title.ljust(width)}  +{number(total).ljust(8)} {describe(parts)}".rstrip())
        if not total:
            still.append(counter.name)
    if still:
        raise StepFailed(f"these counters did not move: {', '.join(still)}")
