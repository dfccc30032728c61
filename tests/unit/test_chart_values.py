"""The chart's values as users meet them: every schema property described (editors show the descriptions),
credential values refused anywhere with a message naming the value and why, and install.md's values table
covering every top-level value. Rendered with Helm's own engine (helm-python-sdk)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_rules import CHART, NAMESPACE, RELEASE, REQUIRED
from twilio_video_operator.settings import Settings, SettingsError, load_settings

helm = pytest.importorskip("helm_python")

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = CHART / "values.schema.json"
INSTALL_DOC = ROOT / "docs" / "install.md"


@pytest.fixture(scope="module")
def chart() -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any]) -> dict[str, str]:
    return dict(chart.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE))


# --- descriptions ------------------------------------------------------------------------------------


def declared_properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every property a schema declares, with its path: under ``properties`` of the root, of the
    definitions, of array items and of map values (conditional if/then/else stubs declare nothing)."""
    if not isinstance(node, dict):
        return
    for name, child in (node.get("properties") or {}).items():
        at = f"{path}.{name}" if path else name
        yield at, child
        yield from declared_properties(child, at)
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        yield from declared_properties(node.get(key), path + suffix)
    for name, definition in (node.get("definitions") or {}).items():
        yield from declared_properties(definition, f"#{name}")


def test_the_walk_finds_nested_properties() -> None:
    schema = {
        "properties": {"a": {"properties": {"b": {"description": "x"}}}},
        "definitions": {"d": {"properties": {"c": {}}}},
        "then": {"properties": {"ignored": {}}},
    }
    found = dict(declared_properties(schema))
    assert set(found) == {"a", "a.b", "#d.c"}


def test_every_schema_property_has_a_description() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    properties = list(declared_properties(schema))
    assert len(properties) >= 100
    undescribed = [path for path, node in properties if not str(node.get("description", "")).strip()]
    assert undescribed == []


# --- credential values -----------------------------------------------------------------------------------

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
API_SECRET = "aB3dEfGhIjKlMnOpQrStUvWxYz012345"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        pytest.param(
            {"extraEnv": [{"name": "EXTRA", "value": "x"}, {"name": "TWILIO_AUTH_TOKEN", "value": "t0k3n"}]},
            r"extraEnv\[1\] sets TWILIO_AUTH_TOKEN to a literal value: Twilio credentials are never chart "
            r"values .*credentials\.existingSecret.*valueFrom\.secretKeyRef",
            id="extra-env-literal",
        ),
        pytest.param(
            {"podAnnotations": {"example.com/token": AUTH_TOKEN}},
            r"podAnnotations\.example\.com/token looks like a Twilio Auth Token",
            id="auth-token-in-pod-annotations",
        ),
        pytest.param(
            {"podLabels": {"sid": ACCOUNT_SID}},
            r"podLabels\.sid holds a Twilio Account SID",
            id="account-sid-in-pod-labels",
        ),
        pytest.param(
            {"serviceAccount": {"annotations": {"TWILIO_API_SECRET": "hunter2"}}},
            r"serviceAccount\.annotations\.TWILIO_API_SECRET holds a value for a Twilio credential setting",
            id="credential-named-key",
        ),
        pytest.param(
            {"extraEnv": [{"name": "OTHER", "value": API_SECRET}]},
            r"extraEnv\[0\]\.value looks like a Twilio API key secret",
            id="api-secret-in-extra-env",
        ),
        pytest.param(
            {"ingress": {"enabled": True, "host": "v.example.com", "annotations": {"a": f"x-{ACCOUNT_SID}"}}},
            r"ingress\.annotations\.a holds a Twilio Account SID",
            id="sid-inside-a-longer-string",
        ),
    ],
)
def test_credential_values_are_refused_anywhere(chart: Any, values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=complaint):
        render(chart, {**REQUIRED, **values})


def test_credential_settings_from_secrets_and_key_names_render(chart: Any) -> None:
    values = {
        **REQUIRED,
        "credentials": {"existingSecret": "creds", "keys": {"apiSecret": "secret", "authToken": "token"}},
        "extraEnv": [
            {"name": "TWILIO_API_SECRET", "valueFrom": {"secretKeyRef": {"name": "other", "key": "secret"}}},
            {"name": "TWILIO_REGION", "value": "ie1"},
        ],
        "podAnnotations": {"checksum/config": "0" * 64, "owner": "video-team"},
    }
    rendered = render(chart, values)
    assert any(path.endswith("deployment.yaml") for path in rendered)
    assert all(not text.strip() for path, text in rendered.items() if path.endswith("credentials-guard.yaml"))


# --- install.md's values table ---------------------------------------------------------------------------


def documented_values() -> set[str]:
    """The value names in install.md's values table (first column, e.g. `ingress.*` or `a` / `b`)."""
    text = INSTALL_DOC.read_text(encoding="utf-8")
    table = text[text.index("## Values") :]
    names: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        names.update(re.findall(r"`([a-zA-Z][\w.{},*]*)`", first))
    return names


def test_install_values_table_lists_every_top_level_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    top_level = (set(values) | set(schema["properties"])) - {"global"}
    documented = {name.split(".")[0] for name in documented_values()}
    assert top_level - documented == set(), "values missing from docs/install.md's table"
    assert documented - top_level == set(), "install.md's table names values the chart does not have"


# --- LOG_LEVEL: the chart takes what the operator takes -------------------------------------------------


def operator_settings(level: str) -> Settings:
    return load_settings(
        LOG_LEVEL=level,
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="t",
        PUBLIC_BASE_URL="https://x",
    )


@pytest.mark.parametrize("level", ["info", "Info", "WARNING", "debug", "error"])
def test_log_level_in_any_case_as_the_operator_takes_it(chart: Any, level: str) -> None:
    """operations.md: LOG_LEVEL is DEBUG, INFO, WARNING or ERROR in any case; the chart agrees."""
    chart.validate_schema({**REQUIRED, "logLevel": level})
    rendered = render(chart, {**REQUIRED, "logLevel": level})
    deployment = next(
        doc
        for path, text in rendered.items()
        if path.endswith("deployment.yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    value = next(env["value"] for env in container["env"] if env["name"] == "LOG_LEVEL")
    assert value == level.upper()
    assert level.upper() == operator_settings(level).LOG_LEVEL


def test_log_level_other_words_are_refused_by_both(chart: Any) -> None:
    with pytest.raises(helm.HelmValuesError, match="logLevel"):
        chart.validate_schema({**REQUIRED, "logLevel": "verbose"})
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        operator_settings("verbose")
