"""Generate the CustomResourceDefinitions from the pydantic models.

``python -m twilio_video_operator.crdgen DIR`` writes ``DIR/<plural>.video.openclaw.io.yaml``, one CRD per
file; ``--check`` only reports files that differ; ``--reference FILE`` also refreshes the generated field
tables in the CRD reference document.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from twilio_video_operator.models.common import model_problems
from twilio_video_operator.models.duration import DURATION_PATTERN
from twilio_video_operator.models.kinds import CATEGORIES, GROUP, KINDS, VERSION, KindInfo
from twilio_video_operator.models.structural import KEY_ORDER, Schema, model_schema
from twilio_video_operator.models.timestamps import EARLIEST, LATEST, TIMESTAMP_PATTERN

HEADER = "# Generated from the pydantic models by `make crds`; do not edit by hand.\n"


def openapi_schema(info: KindInfo) -> Schema:
    """The ``openAPIV3Schema`` of one kind."""
    spec = model_schema(info.spec_model, keep_defaults=True, path="spec")
    status = model_schema(info.status_model, keep_defaults=False, path="status")
    status["properties"]["kopf"] = {
        "description": "Bookkeeping of the kopf framework.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    spec_required = bool(model_problems(info.spec_model, {}))
    if not spec_required:  # an empty spec is valid: let Kubernetes fill in {} and the nested defaults
        spec = {**spec, "default": {}}
        spec = {key: spec[key] for key in KEY_ORDER if key in spec}
    schema: Schema = {
        "description": info.description,
        "type": "object",
        "properties": {
            "apiVersion": {"description": "API version of this object.", "type": "string"},
            "kind": {"description": "Kind of this object.", "type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if spec_required:
        schema["required"] = ["spec"]
    return schema


def build_crd(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/part-of": "twilio-video-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": info.list_kind,
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [column.to_crd() for column in info.printer_columns],
                    "schema": {"openAPIV3Schema": openapi_schema(info)},
                }
            ],
        },
    }


def build_crds() -> list[dict[str, Any]]:
    """The CRDs of all kinds, in registry order."""
    return [build_crd(info) for info in KINDS]


def crd_file_name(crd: Mapping[str, Any]) -> str:
    return f"{crd['metadata']['name']}.yaml"


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no anchors or aliases for repeated parts."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_crd(crd: Mapping[str, Any]) -> str:
    """Deterministic YAML text of one CRD."""
    body = yaml.dump(dict(crd), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    return HEADER + body


def expected_files() -> dict[str, str]:
    """File name -> content for every generated CRD."""
    return {crd_file_name(crd): render_crd(crd) for crd in build_crds()}


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected_files().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_crd_files(directory: Path) -> list[str]:
    """Names of generated files that are missing from ``directory`` or differ from the models."""
    stale = []
    for name, text in expected_files().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


# --- validating manifests against the generated schemas ---


# --- field reference tables for the docs ---


def _type_name(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if kind == "array":
        return "[]" + _type_name(node["items"])
    if kind == "string" and node.get("format") == "date-time":
        return "time"
    if kind == "string" and node.get("pattern") == DURATION_PATTERN:
        return "duration"
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    return str(kind)


_DURATION_LIMIT = re.compile(r"^duration\(self\) <= duration\('([^']+)'\)$")


def _zulu(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _allowed(node: Mapping[str, Any]) -> str:
    if node.get("pattern") == TIMESTAMP_PATTERN:
        return f"{_zulu(EARLIEST)}..{_zulu(LATEST)}"
    parts = []
    for rule in node.get("x-kubernetes-validations", []):
        limit = _DURATION_LIMIT.match(rule["rule"])
        if limit:
            parts.append(f"≤ {limit.group(1)}")
    if "enum" in node:
        parts.append(", ".join(f"`{value}`" for value in node["enum"] if value is not None))
    if "minimum" in node and "maximum" in node:
        parts.append(f"{node['minimum']}..{node['maximum']}")
    elif "minimum" in node:
        parts.append(f"≥ {node['minimum']}")
    elif "maximum" in node:
        parts.append(f"≤ {node['maximum']}")
    if "maxLength" in node:
        parts.append(f"length ≤ {node['maxLength']}")
    if "maxItems" in node:
        parts.append(f"≤ {node['maxItems']} items")
    if "maxProperties" in node:
        parts.append(f"≤ {node['maxProperties']} entries")
    if "pattern" in node and node["pattern"] != DURATION_PATTERN:
        parts.append(f"`{node['pattern']}`")
    return "; ".join(parts)


def _default_text(node: Mapping[str, Any]) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    return f"`{value if isinstance(value, str) else json.dumps(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _rows(node: Mapping[str, Any], path: str, required: bool, with_default: bool) -> Iterator[list[str]]:
    name = f"`{path}`" + (" *(required)*" if required else "")
    default = [_default_text(node)] if with_default else []
    yield [name, _type_name(node), *default, _allowed(node), node.get("description", "")]
    target = node["items"] if node.get("type") == "array" else node
    suffix = "[]" if node.get("type") == "array" else ""
    needed = set(target.get("required", []))
    for child, sub in target.get("properties", {}).items():
        yield from _rows(sub, f"{path}{suffix}.{child}", child in needed, with_default)


def _rules(node: Mapping[str, Any], path: str) -> Iterator[str]:
    for rule in node.get("x-kubernetes-validations", []):
        yield f"- `{path}`: {rule['message']} (`{rule['rule']}`)"
    if node.get("type") == "array":
        # The rules of each item; the API server names the item it refuses, e.g. `rules[0]`.
        yield from _rules(node["items"], f"{path}[]")
        return
    for name, sub in node.get("properties", {}).items():
        yield from _rules(sub, f"{path}.{name}")


def reference_section(crd: Mapping[str, Any]) -> str:
    """Markdown field tables (spec with defaults, status without) and the CEL rules of one CRD."""
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    lines = []
    for part, with_default in (("spec", True), ("status", False)):
        header = ["Field", "Type", *(["Default"] if with_default else []), "Allowed", "Description"]
        lines += ["", f"**{part}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        node = root["properties"][part]
        needed = set(node.get("required", []))
        for name, sub in node["properties"].items():
            rows = _rows(sub, name, name in needed, with_default)
            lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    rules = list(_rules(root["properties"]["spec"], "spec"))
    if rules:
        lines += [
            "",
            "**Validation rules** (CEL, checked by the API server; the operator re-checks them):",
            "",
        ]
        lines += rules
    return "\n".join(lines) + "\n"


def _markers(kind: str) -> tuple[str, str]:
    return f"<!-- BEGIN GENERATED: {kind} -->", f"<!-- END GENERATED: {kind} -->"


def update_reference(text: str, crds: Sequence[Mapping[str, Any]] | None = None) -> str:
    """``text`` with every generated section replaced by the current tables."""
    for crd in crds if crds is not None else build_crds():
        kind = crd["spec"]["names"]["kind"]
        begin, end = _markers(kind)
        head, found_begin, rest = text.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not (found_begin and found_end):
            raise ValueError(f"reference document lacks the markers {begin} ... {end}")
        text = f"{head}{begin}\n{reference_section(crd)}{end}{tail}"
    return text


# --- command line ---


def _refresh(path: Path, produce: Callable[[str], str], check: bool) -> bool:
    """Bring ``path`` up to date (or, with ``check``, only compare); return whether it was current."""
    current = path.read_text(encoding="utf-8")
    wanted = produce(current)
    if current != wanted and not check:
        path.write_text(wanted, encoding="utf-8")
    return current == wanted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twilio_video_operator.crdgen", description=__doc__)
    parser.add_argument("directory", type=Path, help="where the CRD files go (e.g. crds)")
    parser.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    parser.add_argument("--reference", type=Path, help="Markdown file whose generated tables to refresh")
    args = parser.parse_args(argv)
    ok = True
    if args.check:
        stale = stale_crd_files(args.directory)
        for name in stale:
            print(f"stale: {args.directory / name}", file=sys.stderr)
        ok = not stale
    else:
        for path in write_crds(args.directory):
            print(f"wrote {path}")
    if args.reference is not None:
        current = _refresh(args.reference, update_reference, args.check)
        if args.check and not current:
            print(f"stale: {args.reference}", file=sys.stderr)
            ok = False
        elif not current:
            print(f"wrote {args.reference}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
