"""Write the playground's ``twilio_video_playground/kube/openapi_builtins.json``: the OpenAPI schemas of the
built-in kinds the embedded API serves (and the meta types they use) and the descriptions of the query and
path parameters, as the real kube-apiserver of ``tests/kube-apiserver`` publishes them.

Run it after changing the Kubernetes release or the built-in kinds the embedded API serves::

    .venv/bin/python tests/realkube/refresh_openapi_builtins.py

``tests/realkube/test_openapi_builtins_current.py`` fails when the file no longer matches the real server.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from real_kube import RealKube, locate_binary, running
from twilio_video_playground.kube.openapi import schema_closure
from twilio_video_playground.kube.openapi_data import BUILTINS_FILE, builtin_kinds

# Meta types every generated document refers to from its paths.
META_SCHEMAS = (
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
)
# The query parameters of the operations the embedded API describes.
QUERY_PARAMETERS = (
    "allowWatchBookmarks",
    "continue",
    "dryRun",
    "fieldManager",
    "fieldSelector",
    "fieldValidation",
    "force",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "pretty",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "shardSelector",
    "timeoutSeconds",
    "watch",
)


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def closure(roots: set[str], schemas: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The named schemas and every schema they refer to, sorted by name (a stable file)."""
    return dict(sorted(schema_closure(sorted(roots), schemas, prefix).items()))


def kind_schemas(schemas: dict[str, Any], wanted: set[tuple[str, str, str]]) -> set[str]:
    names = set()
    for name, schema in schemas.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk["group"], gvk["version"], gvk["kind"]) in wanted:
                names.add(name)
    return names


def parameters(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The query parameters the generated paths use, and the ``namespace`` path parameter, by name."""
    found: dict[str, Any] = {}
    for document in documents:
        for path_item in document["paths"].values():
            candidates = list(path_item.get("parameters") or [])
            for operation in path_item.values():
                if isinstance(operation, dict):
                    candidates += operation.get("parameters") or []
            for parameter in candidates:
                if parameter.get("in") == "query" and parameter["name"] in QUERY_PARAMETERS:
                    found.setdefault(parameter["name"], parameter)
                elif parameter.get("in") == "path" and parameter["name"] == "namespace":
                    found.setdefault("namespace", parameter)
    return dict(sorted(found.items()))


def collect(kube: RealKube) -> dict[str, Any]:
    kinds = builtin_kinds()
    wanted = {(g, v, k) for g, v, k in kinds} | {(g, v, f"{k}List") for g, v, k in kinds}
    documents = []
    schemas: dict[str, Any] = {}
    for group, version in sorted({(g, v) for g, v, _ in kinds}):
        status, document, _ = kube.request("GET", f"/openapi/v3/{gv_path(group, version)}")
        assert status == 200, (group, version, status)
        documents.append(document)
        schemas.update(document["components"]["schemas"])
    roots = kind_schemas(schemas, wanted) | set(META_SCHEMAS)
    v3 = closure(roots, schemas, "#/components/schemas/")
    status, swagger, _ = kube.request("GET", "/openapi/v2")
    assert status == 200, status
    v2 = closure(roots, swagger["definitions"], "#/definitions/")
    status, version_info, _ = kube.request("GET", "/version")
    return {
        "source": f"kube-apiserver {version_info['gitVersion']} (tests/kube-apiserver)",
        "v3": {"schemas": v3, "parameters": parameters(documents)},
        "v2": {"definitions": v2},
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir, running(locate_binary(), Path(workdir)) as kube:
        data = collect(kube)
    BUILTINS_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {BUILTINS_FILE} ({BUILTINS_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
