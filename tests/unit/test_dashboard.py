"""The Grafana dashboard, alert expressions and docs/metrics.md, checked against the exported metrics.

Metric names and label names are read from prometheus-client's default registry after importing every
module of the package that defines metrics, so a renamed metric or label breaks these tests instead of
silently emptying a panel or muting an alert.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from test_alert_rules import alert_rules, all_rule_expressions

helm = pytest.importorskip("helm_python")

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "twilio_video_operator"
CHART = ROOT / "charts" / "twilio-video-operator"
DASHBOARD = CHART / "files" / "dashboards" / "twilio-video-operator.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

#: Labels Prometheus adds to every scraped series (ServiceMonitor target labels), and `up` itself.
TARGET_LABELS = frozenset({"job", "namespace", "instance", "pod", "service", "endpoint", "container"})
SYNTHETIC_METRICS = {"up": TARGET_LABELS}
PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"inf", "nan", "Inf", "NaN"}
)
METRIC_CONSTRUCTOR = re.compile(r"\b(Counter|Gauge|Histogram|Summary|Info|Enum)\(")


# --- what the code exports -------------------------------------------------------------------------


def metric_modules() -> list[str]:
    """Dotted names of the package's modules that construct prometheus-client metrics."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "prometheus_client" in text and METRIC_CONSTRUCTOR.search(text):
            relative = path.relative_to(PACKAGE.parent).with_suffix("")
            names.append(".".join(relative.parts).removesuffix(".__init__"))
    return names


@dataclass(frozen=True)
class Metric:
    name: str
    """The name users query: counters with ``_total``, histograms and summaries without suffix."""
    type: str
    labels: tuple[str, ...]
    series: dict[str, frozenset[str]] = field(default_factory=dict)
    """Exposed series names and the labels each carries once scraped."""


def describe(collector: MetricWrapperBase) -> Metric:
    # prometheus-client keeps the declared name, type and label names in these attributes; a labelled
    # metric without children has no samples, so collect() cannot tell its labels.
    base = str(collector._name)
    kind = str(collector._type)
    labels = tuple(str(label) for label in collector._labelnames)
    scraped = frozenset("exported_namespace" if label == "namespace" else label for label in labels)
    scraped |= TARGET_LABELS
    if kind == "counter":
        series = {f"{base}_total": scraped}
        name = f"{base}_total"
    elif kind == "histogram":
        series = {f"{base}_bucket": scraped | {"le"}, f"{base}_sum": scraped, f"{base}_count": scraped}
        name = base
    elif kind == "summary":
        series = {base: scraped | {"quantile"}, f"{base}_sum": scraped, f"{base}_count": scraped}
        name = base
    else:
        series = {base: scraped}
        name = base
    return Metric(name=name, type=kind, labels=labels, series=series)


def project_metrics() -> dict[str, Metric]:
    """Every metric defined at module level in the package, by the name users query."""
    modules = {name: importlib.import_module(name) for name in metric_modules()}
    registered = set(REGISTRY._names_to_collectors.values())
    found: dict[str, Metric] = {}
    for module_name, module in modules.items():
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                assert value in registered, f"{module_name}: a metric outside the default registry"
                metric = describe(value)
                found[metric.name] = metric
    return found


def exported_series() -> dict[str, frozenset[str]]:
    """Every series name /metrics can expose, with its labels after scraping."""
    series: dict[str, frozenset[str]] = dict(SYNTHETIC_METRICS)
    for metric in project_metrics().values():
        series.update(metric.series)
    # The default collectors (process_*, python_*) of prometheus-client.
    for family in REGISTRY.collect():
        for sample in family.samples:
            labels = frozenset(sample.labels) | TARGET_LABELS
            series[sample.name] = series.get(sample.name, frozenset()) | labels
    return series


def test_project_metrics_are_found() -> None:
    metrics = project_metrics()
    assert "twilio_outbound_api_requests_total" in metrics
    assert metrics["twilio_outbound_api_request_duration_seconds"].type == "histogram"
    assert "twilio_video_operator_last_reconcile_timestamp_seconds" in metrics
    series = exported_series()
    assert "le" in series["twilio_outbound_api_request_duration_seconds_bucket"]
    assert "process_resident_memory_bytes" in series or "python_info" in series


# --- a small PromQL reader -------------------------------------------------------------------------


@dataclass
class Expression:
    selectors: list[tuple[str, list[str]]]
    """(metric name, label names of its matchers)"""
    grouping: set[str]
    """Labels named in by/without/on/ignoring/group_left/group_right."""


GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"(?:[^\"\\]|\\.)*\"")
BARE_NAME = re.compile(r"(?<![\w$.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def read_promql(expr: str) -> Expression:
    grouping = {
        label.strip() for group in GROUPING.findall(expr) for label in group.split(",") if label.strip()
    }
    rest = GROUPING.sub(" ", expr)
    selectors: list[tuple[str, list[str]]] = []

    def take(match: re.Match[str]) -> str:
        assert match.group(1), f"selector without a metric name in {expr!r}"
        matchers = MATCHER.findall(match.group(2))
        assert len(matchers) == match.group(2).count('"') // 2, f"unreadable matchers in {expr!r}"
        selectors.append((match.group(1), matchers))
        return " "

    rest = SELECTOR.sub(take, rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # ranges and subqueries
    rest = re.sub(r"\boffset\s+\S+", " ", rest)
    rest = re.sub(r"\"(?:[^\"\\]|\\.)*\"", " ", rest)  # string arguments
    for name in BARE_NAME.findall(rest):
        if name not in PROMQL_KEYWORDS:
            selectors.append((name, []))
    return Expression(selectors=selectors, grouping=grouping)


def test_promql_reader() -> None:
    parsed = read_promql(
        'sum by (kind, le) (rate(foo_bucket{job=~"$job", kind!="a,b"}[$__rate_interval])) '
        "/ on (kind) group_left bar * 2 > bool 1e3 unless baz offset 5m or vector(1)"
    )
    assert parsed.selectors == [("foo_bucket", ["job", "kind"]), ("bar", []), ("baz", [])]
    assert parsed.grouping == {"kind", "le"}


def problems_in(expr: str, series: dict[str, frozenset[str]], legend: str = "") -> list[str]:
    """What in ``expr`` the code does not export: unknown metrics, labels, grouping or legend labels."""
    parsed = read_promql(expr)
    problems = []
    available: set[str] = set()
    for name, matchers in parsed.selectors:
        if name not in series:
            problems.append(f"unknown metric {name}")
            continue
        available |= series[name]
        problems.extend(f"{name} has no label {label}" for label in matchers if label not in series[name])
    problems.extend(f"no metric has label {label}" for label in parsed.grouping - available - {"__name__"})
    for label in re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend):
        if label not in available:
            problems.append(f"legend label {label} is on no metric")
    return problems


# --- the dashboard ---------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def data_panels() -> list[dict[str, Any]]:
    return [panel for panel in all_panels(load_dashboard()) if panel["type"] != "row"]


def test_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"] == "twilio-video-operator" and dashboard["title"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in all_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_panels_use_the_datasource_variable() -> None:
    panels = data_panels()
    assert len(panels) >= 20
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panels_do_not_overlap() -> None:
    occupied: dict[tuple[int, int], str] = {}
    for panel in all_panels(load_dashboard()):
        grid = panel["gridPos"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for column in range(grid["x"], grid["x"] + grid["w"]):
                assert (row, column) not in occupied, f"{panel['title']} overlaps {occupied[(row, column)]}"
                occupied[(row, column)] = panel["title"]


def test_dashboard_covers_the_operator() -> None:
    """The panels the operator's users look for are there (by the metric they read)."""
    used = {
        name
        for panel in data_panels()
        for t in panel["targets"]
        for name, _ in read_promql(t["expr"]).selectors
    }
    wanted = {
        "twilio_outbound_api_requests_total",
        "twilio_outbound_api_request_duration_seconds_bucket",
        "twilio_outbound_api_requests_error_total",
        "twilio_throttled_requests_total",
        "twilio_circuit_state",
        "twilio_inflight_requests",
        "twilio_video_operator_access_tokens_minted_total",
        "twilio_video_operator_access_token_requests_denied_total",
        "twilio_video_operator_signing_key_age_seconds",
        "twilio_video_operator_signing_key_next_rotation_timestamp_seconds",
        "twilio_video_operator_composition_stalled",
        "twilio_video_operator_compositions",
        "twilio_video_operator_videorooms",
        "twilio_video_operator_last_reconcile_timestamp_seconds",
        "twilio_video_operator_reconcile_total",
        "twilio_video_operator_reconcile_errors_total",
        "twilio_video_operator_reconcile_time_seconds_bucket",
        "twilio_video_operator_objects",
        "twilio_video_operator_oldest_stall_timestamp_seconds",
        "twilio_video_operator_workqueue_depth",
        "twilio_video_operator_workqueue_longest_waiting_seconds",
        "twilio_video_operator_workqueue_longest_running_processor_seconds",
        "twilio_video_operator_workqueue_queue_duration_seconds_bucket",
        "twilio_video_operator_active_workers",
    }
    assert wanted - used == set()
    covered = [metric.name for metric in project_metrics().values() if set(metric.series) & used]
    assert len(covered) >= 0.8 * len(project_metrics()), "most of the operator's metrics have a panel"


@pytest.mark.parametrize("panel", data_panels(), ids=lambda panel: panel["title"])
def test_panel_queries_use_exported_metrics_and_labels(panel: dict[str, Any]) -> None:
    series = exported_series()
    for target in panel["targets"]:
        expr = target["expr"]
        assert problems_in(expr, series, target.get("legendFormat", "")) == [], expr
        for name, matchers in read_promql(expr).selectors:
            assert {"namespace", "job"} <= set(matchers), (
                f"{name} in {panel['title']} ignores $namespace/$job"
            )


def test_template_variables_query_exported_labels() -> None:
    series = exported_series()
    queries = [
        variable["definition"]
        for variable in load_dashboard()["templating"]["list"]
        if variable["type"] == "query"
    ]
    assert queries
    for query in queries:
        match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", query)
        assert match, query
        expr, label = match.groups()
        assert problems_in(expr, series) == [], query
        assert all(label in series[name] for name, _ in read_promql(expr).selectors), query


# --- the alert rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("expr", all_rule_expressions(), ids=lambda expr: expr[:60])
def test_alert_expressions_use_exported_metrics_and_labels(expr: str) -> None:
    assert problems_in(expr, exported_series()) == [], expr


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_alert_selectors_name_the_release(name: str) -> None:
    for metric, matchers in read_promql(alert_rules()[name]["expr"]).selectors:
        if metric not in {"time", "vector"}:
            assert {"job", "namespace"} <= set(matchers), f"{metric} in {name} is not scoped to the release"


# --- docs/metrics.md -------------------------------------------------------------------------------


def documented_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\|\s*`([a-z_:]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
        if match:
            name, kind, labels = match.groups()
            assert name not in rows, f"{name} is listed twice"
            rows[name] = (kind, tuple(re.findall(r"`([a-zA-Z_]+)`", labels)))
    return rows


def test_metrics_doc_lists_exactly_the_exported_metrics() -> None:
    documented = documented_metrics()
    exported = {metric.name: (metric.type, metric.labels) for metric in project_metrics().values()}
    assert set(documented) - set(exported) == set(), "documented but not exported"
    assert set(exported) - set(documented) == set(), "exported but not documented"
    for name, (kind, labels) in exported.items():
        assert documented[name][0] == kind, f"{name}: type"
        assert set(documented[name][1]) == set(labels), f"{name}: labels"


def counterparts() -> dict[str, str]:
    """The "Counterparts" table of docs/metrics.md: metric here -> its counterpart cell."""
    text = METRICS_DOC.read_text(encoding="utf-8")
    section = text[text.index("## Counterparts in controller-runtime and ACK") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\|\s*`([a-z_:]+)`\s*\|([^|]*)\|", section, flags=re.MULTILINE)
    return {name: cell.strip() for name, cell in rows}


def test_metrics_doc_maps_the_conventional_counterparts() -> None:
    """Every reconcile, work-queue and outbound-API metric names its controller-runtime or ACK
    counterpart, under the same name after the prefix, and takes that counterpart's labels."""
    exported = project_metrics()
    table = counterparts()
    assert set(table) <= set(exported), "the table names metrics the code does not export"
    conventional = {
        name
        for name in exported
        if re.match(
            r"twilio_video_operator_(reconcile_|workqueue_|active_workers)|twilio_outbound_api_requests", name
        )
    }
    assert conventional - set(table) == set(), "conventional metrics without a counterpart row"
    for name, cell in table.items():
        if cell.startswith("none"):
            continue
        counterpart = re.search(r"`((?:ack_|controller_runtime_|workqueue_)[a-z_]+)`", cell)
        assert counterpart is not None, name
        other = counterpart.group(1)
        ours = name.removeprefix("twilio_video_operator_").removeprefix("twilio_")
        assert other.removeprefix("controller_runtime_").removeprefix("ack_") == ours, (name, other)
    assert set(exported["twilio_outbound_api_requests_error_total"].labels) == {
        "service",
        "op_id",
        "status_code",
    }
    assert set(exported["twilio_outbound_api_requests_total"].labels) == {"service", "op_type", "op_id"}


# --- the optional dashboard ConfigMap --------------------------------------------------------------

REQUIRED = {"publicBaseUrl": "https://video.example.com", "credentials": {"existingSecret": "creds"}}


def config_maps(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(copy.deepcopy(values), name="tvo", namespace="video-system")
    found: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if path.endswith(".yaml"):
            found.extend(doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "ConfigMap")
    return found


def test_dashboard_config_map_is_off_by_default() -> None:
    assert config_maps(REQUIRED) == []


def test_dashboard_config_map_carries_the_dashboard() -> None:
    values = {
        **REQUIRED,
        "grafana": {
            "dashboard": {
                "enabled": True,
                "namespace": "monitoring",
                "labels": {"grafana_dashboard": "1"},
                "annotations": {"grafana_folder": "Video"},
            }
        },
    }
    (config_map,) = config_maps(values)
    meta = config_map["metadata"]
    assert meta["namespace"] == "monitoring"
    assert meta["labels"]["grafana_dashboard"] == "1"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert meta["annotations"] == {"grafana_folder": "Video"}
    (content,) = config_map["data"].values()
    assert json.loads(content) == load_dashboard()


def test_dashboard_values_are_validated() -> None:
    with helm.Chart.load(CHART) as chart:
        bad = {**REQUIRED, "grafana": {"dashboard": {"enabled": "yes"}}}
        with pytest.raises(Exception, match="enabled"):
            chart.validate_schema(copy.deepcopy(bad))
        chart.validate_schema(copy.deepcopy({**REQUIRED, "grafana": {"dashboard": {"enabled": True}}}))
    report = helm.lint(
        CHART, {**REQUIRED, "grafana": {"dashboard": {"enabled": True}}}, strict=True, kube_version="v1.30.0"
    )
    assert report["errors"] == [], report
