"""The chart ships the generated CRDs as templates: same content as crds/, plus labels and the keep policy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip("helm_python")

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "twilio-video-operator"
GENERATED = REPO / "crds"
CHART_COPIES = CHART / "files" / "crds"
REQUIRED: dict[str, Any] = {
    "publicBaseUrl": "https://video.example.com",
    "credentials": {"existingSecret": "twilio-credentials"},
}
KEEP = "helm.sh/resource-policy"

# A stand-in used only while crds/ is still empty, so the template itself is always exercised. It carries
# the YAML shapes a round trip through Helm's fromYaml/toYaml could damage: integers, floats, booleans,
# number-like strings, quotes in CEL rules, and multi-line text.
SAMPLE_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: samples.video.openclaw.io
  annotations:
    controller-gen.kubebuilder.io/version: "0.1"
spec:
  group: video.openclaw.io
  names: {kind: Sample, listKind: SampleList, plural: samples, singular: sample, shortNames: [smp],
          categories: [twilio]}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      additionalPrinterColumns:
        - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
      schema:
        openAPIV3Schema:
          type: object
          description: |
            A sample.
            On two lines.
          properties:
            spec:
              type: object
              x-kubernetes-validations:
                - rule: "!has(self.endTime) || self.endTime > self.startTime"
                  message: "endTime must be after startTime"
              properties:
                maxParticipants: {type: integer, minimum: 1, maximum: 50, default: 25}
                ratio: {type: number, default: 0.5}
                tag: {type: string, default: "010"}
                enabled: {type: boolean, default: true}
                size: {type: integer, maximum: 9007199254740991}
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
"""


def yaml_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.yaml"))}


def crd_objects(chart_dir: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(chart_dir) as chart:
        rendered = chart.render(values, name="tvo", namespace="video-system")
    return [
        doc
        for path, text in rendered.items()
        if path.endswith("templates/crds.yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def without_chart_additions(rendered: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """The rendered CRD minus the labels and annotation the chart adds (keys the source did not have)."""
    metadata = dict(rendered["metadata"])
    for field in ("labels", "annotations"):
        kept = {k: v for k, v in metadata.get(field, {}).items() if k in source["metadata"].get(field, {})}
        if kept or field in source["metadata"]:
            metadata[field] = kept
        else:
            metadata.pop(field, None)
    return {**rendered, "metadata": metadata}


@pytest.fixture
def chart_with_crds(tmp_path: Path) -> Iterator[Path]:
    """A copy of the chart whose files/crds holds the real CRDs, or the sample while there are none yet."""
    copy = tmp_path / "twilio-video-operator"
    shutil.copytree(CHART, copy)
    if not yaml_files(copy / "files" / "crds"):
        (copy / "files" / "crds" / "samples.yaml").write_text(SAMPLE_CRD)
    yield copy


def test_chart_copies_match_the_generated_crds() -> None:
    generated, copies = yaml_files(GENERATED), yaml_files(CHART_COPIES)
    hint = "charts/twilio-video-operator/files/crds/ differs from crds/: run `make crds`, which copies them"
    assert sorted(copies) == sorted(generated), hint
    for name, content in generated.items():
        assert copies[name] == content, f"{name}: {hint}"


def test_each_crd_file_holds_one_document() -> None:
    for name, content in yaml_files(CHART_COPIES).items():
        documents = [doc for doc in yaml.safe_load_all(content) if doc]
        assert len(documents) == 1, f"{name}: the CRD template renders one object per file"
        assert documents[0]["kind"] == "CustomResourceDefinition", name


def test_rendered_crds_equal_the_generated_ones() -> None:
    generated = {
        doc["metadata"]["name"]: doc
        for content in yaml_files(GENERATED).values()
        for doc in yaml.safe_load_all(content)
        if doc
    }
    if not generated:
        pytest.skip("crds/ holds no generated CRDs yet (`make crds` creates them)")
    rendered = {crd["metadata"]["name"]: crd for crd in crd_objects(CHART, REQUIRED)}
    assert sorted(rendered) == sorted(generated)
    for name, source in generated.items():
        assert without_chart_additions(rendered[name], source) == source, name


def test_crd_template_round_trips_every_file(chart_with_crds: Path) -> None:
    sources = {
        doc["metadata"]["name"]: doc
        for content in yaml_files(chart_with_crds / "files" / "crds").values()
        for doc in yaml.safe_load_all(content)
        if doc
    }
    rendered = {crd["metadata"]["name"]: crd for crd in crd_objects(chart_with_crds, REQUIRED)}
    assert sorted(rendered) == sorted(sources)
    for name, source in sources.items():
        assert without_chart_additions(rendered[name], source) == source, name


def test_crds_are_kept_and_labelled_by_default(chart_with_crds: Path) -> None:
    crds = crd_objects(chart_with_crds, REQUIRED)
    assert crds
    for crd in crds:
        assert crd["metadata"]["annotations"][KEEP] == "keep"
        labels = crd["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "tvo"
        assert "namespace" not in crd["metadata"]


def test_crds_keep_false_drops_the_annotation(chart_with_crds: Path) -> None:
    crds = crd_objects(chart_with_crds, {**REQUIRED, "crds": {"keep": False}})
    assert crds
    for crd in crds:
        assert KEEP not in crd["metadata"].get("annotations", {})


def test_crds_enabled_false_renders_no_crds(chart_with_crds: Path) -> None:
    assert crd_objects(chart_with_crds, {**REQUIRED, "crds": {"enabled": False}}) == []


def test_crds_pass_strict_lint(chart_with_crds: Path) -> None:
    report = helm.lint(chart_with_crds, dict(REQUIRED), strict=True, kube_version="v1.30.0")
    assert report["errors"] == [] and not [m for m in report["messages"] if m["severity"] >= 2], report
