"""The chart's alert rules: well-formed, documented, valid for promtool, and unit-tested under promtool.

The rules are taken from the rendered PrometheusRule (the chart renders ``files/alerts/*.yaml`` through
``tpl``), exactly as a Prometheus Operator would load them. Each file in ``tests/unit/promtool/`` is a
promtool rule-test file that names ``rules.yaml``; expected alerts may leave out ``exp_annotations``, which
are then filled in from the rule (the chart's annotations are static, so they do not vary per alert).

promtool comes from Debian's ``prometheus`` package (``make test`` installs it). Without it the promtool
tests skip locally and fail when ``CI`` is set.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_rules import (
    CHART,
    JOB,
    NAMESPACE,
    RELEASE,
    RUNBOOK_BASE,
    VALUES,
    prometheus_rule_spec,
    rendered_rule_spec,
)

helm = pytest.importorskip("helm_python")

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks.md"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool"

SEVERITIES = {"critical", "warning", "info"}


# --- helpers shared with test_dashboard.py --------------------------------------------------------


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of the chart, by alert name."""
    found: dict[str, dict[str, Any]] = {}
    for group in rendered_rule_spec()["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["alert"] not in found, f"alert {rule['alert']} is defined twice"
                found[rule["alert"]] = rule
    return found


def all_rule_expressions() -> list[str]:
    """The PromQL of every rule (alerting and recording)."""
    return [rule["expr"] for group in rendered_rule_spec()["groups"] for rule in group["rules"]]


# --- promtool -------------------------------------------------------------------------------------


def promtool() -> str:
    """Path of promtool; skips the test when it is missing, but fails it in CI."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool not installed (Debian package `prometheus`; `make test` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def write_rules(directory: Path) -> Path:
    path = directory / "rules.yaml"
    path.write_text(yaml.safe_dump(rendered_rule_spec(), sort_keys=False))
    return path


def promtool_test_files() -> list[Path]:
    return sorted(PROMTOOL_TESTS.glob("*.yaml"))


def load_promtool_test(path: Path) -> dict[str, Any]:
    """One rule-test file with the annotations of each expected alert filled in from its rule."""
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    rules = alert_rules()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            rule = rules.get(check["alertname"])
            assert rule is not None, f"{path.name}: no alert named {check['alertname']}"
            for expected in check.get("exp_alerts") or []:
                expected.setdefault("exp_annotations", rule["annotations"])
    return document


# --- structure and documentation ------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOKS.read_text(), flags=re.MULTILINE)
    return {github_anchor(heading) for heading in headings}


def test_github_anchor_matches_githubs_rules() -> None:
    assert github_anchor("Twilio authentication failed (20003)") == "twilio-authentication-failed-20003"
    assert github_anchor("Operator down") == "operator-down"
    assert (
        github_anchor("Token rejected: clock skew or wrong key") == "token-rejected-clock-skew-or-wrong-key"
    )


def test_the_chart_has_the_expected_alerts() -> None:
    assert set(alert_rules()) >= {
        "TwilioVideoOperatorDown",
        "TwilioVideoOperatorNotReconciling",
        "TwilioVideoReconcileErrors",
        "TwilioVideoApiThrottled",
        "TwilioVideoAuthFailures",
        "TwilioVideoCircuitOpen",
        "TwilioVideoCompositionStuck",
        "TwilioVideoSigningKeyRotationOverdue",
        "TwilioVideoSigningKeyRotationFailing",
        "TwilioVideoWebhookSignatureFailures",
    }


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_alert_is_labelled_and_documented(name: str) -> None:
    rule = alert_rules()[name]
    assert name.startswith("TwilioVideo"), name
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip() and annotations["description"].strip()
    base, _, anchor = annotations["runbook_url"].partition("#")
    assert base == RUNBOOK_BASE, "runbook links use metrics.prometheusRule.runbookBaseUrl"
    assert anchor in runbook_anchors(), f"docs/runbooks.md has no heading for #{anchor}"


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_alert_selects_only_this_release(name: str) -> None:
    """Every series selector names the release's job and namespace, so two releases never mix."""
    expr = alert_rules()[name]["expr"]
    selectors = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{([^}]*)\}", expr)
    assert selectors, expr
    for matchers in selectors:
        assert f'job="{JOB}"' in matchers and f'namespace="{NAMESPACE}"' in matchers, expr


def test_alerts_leave_no_helm_template_behind() -> None:
    text = yaml.safe_dump(rendered_rule_spec())
    assert "{{" not in text and "}}" not in text


def test_runbook_urls_follow_the_configured_base() -> None:
    with helm.Chart.load(CHART) as chart:
        values = copy.deepcopy(VALUES)
        values["metrics"]["prometheusRule"]["runbookBaseUrl"] = "https://wiki.example.org/video/runbooks"
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    text = "\n".join(rendered.values())
    assert "https://wiki.example.org/video/runbooks#operator-not-reconciling" in text
    assert RUNBOOK_BASE not in text


@pytest.mark.parametrize(
    ("resync", "stale_after"),
    [("10m", 1800), ("600", 1800), ("1h30m", 16200), ("1.5h", 16200), ("90s", 900), ("2m", 900)],
)
def test_not_reconciling_threshold_follows_the_resync_interval(resync: str, stale_after: int) -> None:
    """Three resync intervals, at least 15 minutes: every object is reconciled once per interval."""
    spec = prometheus_rule_spec({**VALUES, "resyncInterval": resync})
    (rule,) = (
        rule
        for group in spec["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "TwilioVideoOperatorNotReconciling"
    )
    assert re.search(rf"<\s*{stale_after}\s*\)", rule["expr"]), rule["expr"]


# --- promtool: syntax and unit tests ---------------------------------------------------------------


def test_promtool_check_rules(tmp_path: Path) -> None:
    write_rules(tmp_path)
    result = run_promtool("check", "rules", "rules.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(all_rule_expressions())} rules found" in result.stdout


def test_every_alert_has_firing_and_quiet_promtool_cases() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in promtool_test_files():
        document = yaml.safe_load(path.read_text())
        assert document["rule_files"] == ["rules.yaml"], path.name
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(alert_rules())
    assert alerts - firing == set(), "alerts without a case where they fire"
    assert alerts - quiet == set(), "alerts without a case where they stay quiet"
    assert (firing | quiet) - alerts == set(), "cases for alerts that do not exist"


@pytest.mark.parametrize("path", promtool_test_files(), ids=lambda path: path.stem)
def test_promtool_rule_unit_tests(path: Path, tmp_path: Path) -> None:
    write_rules(tmp_path)
    (tmp_path / path.name).write_text(yaml.safe_dump(load_promtool_test(path), sort_keys=False))
    result = run_promtool("test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The harness really compares: a case expecting the down alert while the target is up fails."""
    write_rules(tmp_path)
    wrong = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'up{{job="{JOB}", namespace="{NAMESPACE}", instance="a"}}', "values": "1x20"}
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "15m",
                        "alertname": "TwilioVideoOperatorDown",
                        "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(wrong))
    result = run_promtool("test", "rules", "wrong.yaml", cwd=tmp_path)
    assert result.returncode != 0, result.stdout
