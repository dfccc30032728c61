"""The chart as the tests install it (path, release, namespace, the values every install needs), and the
PrometheusRule it renders, shared by the chart, RBAC, alert-rule, dashboard and Prometheus scrape tests.

Rendered with Helm's own engine (``helm-python-sdk``, imported when first needed) for release ``tvo`` in
``video-system``, with the PrometheusRule enabled.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "twilio-video-operator"
RELEASE = "tvo"
NAMESPACE = "video-system"
FULLNAME = "tvo-twilio-video-operator"
#: The Prometheus `job` of the release's Service (the chart's `metricsJob`), which its rules select.
JOB = FULLNAME
#: What every install must set.
REQUIRED: dict[str, Any] = {
    "publicBaseUrl": "https://video.example.com",
    "credentials": {"existingSecret": "twilio-credentials"},
}
RUNBOOK_BASE = "https://runbooks.example.com/docs/runbooks.md"
VALUES: dict[str, Any] = {
    **REQUIRED,
    "metrics": {"prometheusRule": {"enabled": True, "runbookBaseUrl": RUNBOOK_BASE}},
}


def prometheus_rule_spec(values: dict[str, Any]) -> dict[str, Any]:
    """``.spec`` of the PrometheusRule the chart renders with ``values``."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE)
    for path, text in rendered.items():
        if path.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "PrometheusRule":
                return doc["spec"]  # type: ignore[no-any-return]
    raise AssertionError("the chart rendered no PrometheusRule")


@functools.cache
def rendered_rule_spec() -> dict[str, Any]:
    """``.spec`` of the PrometheusRule rendered with :data:`VALUES`."""
    return prometheus_rule_spec(VALUES)
