"""The resource types the embedded API serves: built-ins and those registered by CRDs; discovery."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import kmock

from twilio_video_playground.kube.errors import FieldError
from twilio_video_playground.kube.events import core_to_events_v1, events_v1_to_core
from twilio_video_playground.kube.tables import Column, age_column, jsonpath_column, name_column
from twilio_video_playground.kube.validation import SchemaValidator

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
SUBRESOURCE_VERBS = ("get", "patch", "update")
METADATA_FIELDS = ("metadata.name", "metadata.namespace")
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Subresource:
    """How a subresource is served when it differs from ``status`` (get, patch and update of the parent's
    kind): e.g. ``serviceaccounts/token`` takes ``create`` of an ``authentication.k8s.io/v1`` TokenRequest."""

    verbs: tuple[str, ...] = SUBRESOURCE_VERBS
    kind: str = ""  # empty: the parent's kind
    group: str | None = None  # with version: the API of ``kind`` when it is not the parent's
    version: str | None = None


@dataclass(eq=False)
class ResourceType:
    """One served group/version/resource with what the server needs to know about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: frozenset[str] = frozenset()
    subresource_info: Mapping[str, Subresource] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    columns: list[Column] = field(default_factory=list)
    selectable_fields: tuple[str, ...] = METADATA_FIELDS
    crd_name: str | None = None  # set for custom resources
    storage_version: str = ""  # objects of all served versions live under this one
    storage_group: str | None = None  # when stored with another group's objects (events.k8s.io Events)
    # the served shape of a stored object and back, when they differ (events.k8s.io Events)
    view: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    unview: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.storage_version = self.storage_version or self.version
        if not self.columns:
            self.columns = [name_column(), age_column()]

    @property
    def custom(self) -> bool:
        return self.crd_name is not None

    @property
    def has_generation(self) -> bool:
        """Custom objects and CRDs carry ``metadata.generation``; most built-ins do not."""
        return self.custom or (self.group, self.plural) == (
            "apiextensions.k8s.io",
            "customresourcedefinitions",
        )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def storage_key(self) -> kmock.resource:
        """The key of this resource's objects in kmock's ``objects`` array."""
        group = self.group if self.storage_group is None else self.storage_group
        return kmock.resource(group, self.storage_version, self.plural)

    def subresource(self, name: str) -> Subresource:
        return self.subresource_info.get(name) or Subresource()

    @cached_property
    def validator(self) -> SchemaValidator | None:
        return SchemaValidator(self.schema) if self.schema else None

    def discovery_entries(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        for name in sorted(self.subresources):
            info = self.subresource(name)
            sub_entry: dict[str, Any] = {
                "name": f"{self.plural}/{name}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": info.kind or self.kind,
                "verbs": list(info.verbs),
            }
            if info.group is not None and info.version is not None:
                sub_entry.update(group=info.group, version=info.version)
            entries.append(sub_entry)
        return entries


def _data_count(obj: Mapping[str, Any]) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {}) + len(obj.get("stringData") or {})


def _event_object(obj: Mapping[str, Any]) -> str:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: Mapping[str, Any]) -> Any:
    metadata = obj.get("metadata") or {}
    return obj.get("lastTimestamp") or obj.get("eventTime") or metadata.get("creationTimestamp")


def _column(name: str, type_: str, getter: Any) -> Column:
    return Column(name, type_, getter)


def _role_ref(obj: Mapping[str, Any]) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _subjects_of_kind(kind: str) -> Any:
    def names(obj: Mapping[str, Any]) -> str:
        found = []
        for subject in obj.get("subjects") or []:
            if subject.get("kind") == kind:
                name = str(subject.get("name", ""))
                namespace = subject.get("namespace")
                found.append(f"{namespace}/{name}" if kind == "ServiceAccount" and namespace else name)
        return ", ".join(found)

    return names


def rbac_types() -> list[ResourceType]:
    """Role, RoleBinding, ClusterRole and ClusterRoleBinding (``rbac.authorization.k8s.io/v1``), with the
    columns kubectl shows for them."""
    name = name_column()
    created = Column("Created At", "string", lambda o: (o.get("metadata") or {}).get("creationTimestamp"))
    binding_columns = [
        name,
        _column("Role", "string", _role_ref),
        age_column(),
        Column("Users", "string", _subjects_of_kind("User"), priority=1),
        Column("Groups", "string", _subjects_of_kind("Group"), priority=1),
        Column("ServiceAccounts", "string", _subjects_of_kind("ServiceAccount"), priority=1),
    ]
    return [
        ResourceType(RBAC_GROUP, "v1", "roles", "Role", namespaced=True, columns=[name, created]),
        ResourceType(
            RBAC_GROUP, "v1", "rolebindings", "RoleBinding", namespaced=True, columns=binding_columns
        ),
        ResourceType(
            RBAC_GROUP, "v1", "clusterroles", "ClusterRole", namespaced=False, columns=[name, created]
        ),
        ResourceType(
            RBAC_GROUP,
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            namespaced=False,
            columns=binding_columns,
        ),
    ]


def builtin_types() -> list[ResourceType]:
    """The built-in resources an operator and kubectl need."""
    name, age = name_column(), age_column()
    event_columns = [
        _column("Last Seen", "date", _event_last_seen),
        _column("Type", "string", lambda o: o.get("type")),
        _column("Reason", "string", lambda o: o.get("reason")),
        _column("Object", "string", _event_object),
        _column("Message", "string", lambda o: o.get("message") or o.get("note")),
    ]
    event_fields = (
        *METADATA_FIELDS,
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    )
    new_event_fields = (
        *METADATA_FIELDS,
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "reason",
        "reportingController",
        "type",
    )
    return [
        ResourceType(
            "",
            "v1",
            "namespaces",
            "Namespace",
            namespaced=False,
            verbs=tuple(verb for verb in ALL_VERBS if verb != "deletecollection"),  # as on a real server
            short_names=("ns",),
            subresources=frozenset({"status"}),
            columns=[name, _column("Status", "string", lambda o: (o.get("status") or {}).get("phase")), age],
            selectable_fields=(*METADATA_FIELDS, "status.phase"),
        ),
        ResourceType(
            "",
            "v1",
            "events",
            "Event",
            namespaced=True,
            short_names=("ev",),
            columns=event_columns,
            selectable_fields=event_fields,
        ),
        ResourceType(
            "",
            "v1",
            "secrets",
            "Secret",
            namespaced=True,
            columns=[
                name,
                _column("Type", "string", lambda o: o.get("type")),
                _column("Data", "integer", _data_count),
                age,
            ],
            selectable_fields=(*METADATA_FIELDS, "type"),
        ),
        ResourceType(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            namespaced=True,
            short_names=("cm",),
            columns=[name, _column("Data", "integer", _data_count), age],
        ),
        ResourceType(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            namespaced=True,
            short_names=("sa",),
            subresources=frozenset({"token"}),
            subresource_info={
                "token": Subresource(
                    verbs=CREATE_ONLY, kind="TokenRequest", group="authentication.k8s.io", version="v1"
                )
            },
            columns=[name, _column("Secrets", "integer", lambda o: len(o.get("secrets") or [])), age],
        ),
        ResourceType(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            namespaced=True,
            short_names=("ev",),
            columns=event_columns,
            selectable_fields=new_event_fields,
            storage_group="",
            view=core_to_events_v1,
            unview=events_v1_to_core,
        ),
        ResourceType(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            namespaced=True,
            columns=[
                name,
                _column("Holder", "string", lambda o: (o.get("spec") or {}).get("holderIdentity")),
                age,
            ],
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            subresources=frozenset({"status"}),
            columns=[
                name,
                Column("Created At", "string", lambda o: (o.get("metadata") or {}).get("creationTimestamp")),
            ],
        ),
        ResourceType(
            "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False, verbs=CREATE_ONLY
        ),
        ResourceType(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            namespaced=False,
            verbs=CREATE_ONLY,
        ),
        ResourceType(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            namespaced=False,
            verbs=CREATE_ONLY,
        ),
        *rbac_types(),
    ]


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key, highest priority first: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > non-Kubernetes names."""
    match = _KUBE_VERSION.match(version)
    if not match:
        return (3, 0, 0, version)
    stability = {None: 0, "beta": 1, "alpha": 2}[match.group(2)]
    return (stability, -int(match.group(1)), -int(match.group(3) or 0), version)


_SCHEMA_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_UNSUPPORTED_KEYWORDS = ("id", "additionalItems", "patternProperties", "definitions", "dependencies", "$ref")


def schema_problems(schema: Any, path: str) -> list[FieldError]:
    """What the API server's CRD validation refuses in an openAPIV3Schema, e.g. an unknown ``type``,
    ``$ref`` or ``items`` given as a list (the rules that keep schemas evaluable here)."""
    if not isinstance(schema, Mapping):
        return []
    problems: list[FieldError] = []
    kind = schema.get("type")
    if kind == "null":
        detail = "Forbidden: type cannot be set to null, use nullable as an alternative"
        problems.append(FieldError(f"{path}.type", "FieldValueForbidden", detail))
    elif kind and kind not in _SCHEMA_TYPES:
        supported = ", ".join(f'"{name}"' for name in _SCHEMA_TYPES)
        detail = f'Unsupported value: "{kind}": supported values: {supported}'
        problems.append(FieldError(f"{path}.type", "FieldValueNotSupported", detail))
    for keyword in _UNSUPPORTED_KEYWORDS:
        if schema.get(keyword):
            detail = f"Forbidden: {keyword} is not supported"
            problems.append(FieldError(f"{path}.{keyword}", "FieldValueForbidden", detail))
    items = schema.get("items")
    if isinstance(items, list) and items:
        detail = "Forbidden: items must be a schema object and not an array"
        problems.append(FieldError(f"{path}.items", "FieldValueForbidden", detail))
    children: list[tuple[str, Any]] = [(f"{path}.items", items), (f"{path}.not", schema.get("not"))]
    children.append((f"{path}.additionalProperties", schema.get("additionalProperties")))
    children += [
        (f"{path}.properties[{name}]", sub) for name, sub in (schema.get("properties") or {}).items()
    ]
    for keyword in ("allOf", "anyOf", "oneOf"):
        children += [
            (f"{path}.{keyword}[{index}]", sub) for index, sub in enumerate(schema.get(keyword) or [])
        ]
    for child_path, child in children:
        problems += schema_problems(child, child_path)
    return problems


def validate_crd(crd: Mapping[str, Any]) -> list[FieldError]:
    """The checks a real server makes that matter here: names, scope, versions, schema presence."""
    errors: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group") or "")
    plural = str(names.get("plural") or "")
    if not group:
        errors.append(FieldError("spec.group", "FieldValueRequired", "Required value"))
    if not plural:
        errors.append(FieldError("spec.names.plural", "FieldValueRequired", "Required value"))
    elif not _DNS_LABEL.match(plural):
        errors.append(
            FieldError(
                "spec.names.plural",
                "FieldValueInvalid",
                f'Invalid value: "{plural}": a lowercase RFC 1123 label is required',
            )
        )
    if not names.get("kind"):
        errors.append(FieldError("spec.names.kind", "FieldValueRequired", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(
            FieldError(
                "spec.scope",
                "FieldValueNotSupported",
                f'Unsupported value: "{spec.get("scope", "")}": supported values: "Cluster", "Namespaced"',
            )
        )
    name = str((crd.get("metadata") or {}).get("name") or "")
    if group and plural and name != f"{plural}.{group}":
        errors.append(
            FieldError(
                "metadata.name",
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        errors.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: null: must have exactly one version marked as storage version",
            )
        )
    elif sum(1 for version in versions if version.get("storage")) != 1:
        errors.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for index, version in enumerate(versions):
        if not version.get("name"):
            errors.append(FieldError(f"spec.versions[{index}].name", "FieldValueRequired", "Required value"))
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, Mapping):
            errors.append(
                FieldError(
                    f"spec.versions[{index}].schema.openAPIV3Schema",
                    "FieldValueRequired",
                    "Required value: schemas are required",
                )
            )
        errors += schema_problems(schema, f"spec.versions[{index}].schema.openAPIV3Schema")
    return errors


def types_from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a (validated) CRD."""
    spec = crd["spec"]
    names = spec["names"]
    versions = [version for version in spec["versions"] if version.get("served", True)]
    storage = next((v["name"] for v in spec["versions"] if v.get("storage")), spec["versions"][0]["name"])
    crd_name = str(crd["metadata"]["name"])
    result: list[ResourceType] = []
    for version in versions:
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        subresources = frozenset(
            key for key in (version.get("subresources") or {}) if key in ("status", "scale")
        )
        printer = version.get("additionalPrinterColumns")
        columns = [name_column(), *(jsonpath_column(c) for c in printer)] if printer else None
        selectable = tuple(
            str(item.get("jsonPath", "")).lstrip(".") for item in version.get("selectableFields") or []
        )
        result.append(
            ResourceType(
                group=str(spec["group"]),
                version=str(version["name"]),
                plural=str(names["plural"]),
                kind=str(names["kind"]),
                namespaced=spec["scope"] == "Namespaced",
                singular=str(names.get("singular") or ""),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources,
                schema=dict(schema) if isinstance(schema, Mapping) else None,
                columns=columns or [],
                selectable_fields=(*METADATA_FIELDS, *selectable),
                crd_name=crd_name,
                storage_version=str(storage),
            )
        )
    return result


class Registry:
    """All served resource types, kept in sync with kmock's ``resources`` array for discovery."""

    def __init__(self, kmock_resources: kmock.ResourcesArray) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._kmock_resources = kmock_resources
        self.revision = 0  # changes whenever the served types change (OpenAPI documents are rebuilt)
        for resource_type in builtin_types():
            self.add(resource_type)

    def add(self, resource_type: ResourceType) -> None:
        key = (resource_type.group, resource_type.version, resource_type.plural)
        self._types[key] = resource_type
        self.revision += 1
        self._kmock_resources[kmock.resource(*key)] = kmock.ResourceInfo(
            namespaced=resource_type.namespaced,
            kind=resource_type.kind,
            singular=resource_type.singular,
            verbs=set(resource_type.verbs),
            shortnames=set(resource_type.short_names),
            categories=set(resource_type.categories),
            subresources=set(resource_type.subresources),
        )

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        removed = [rt for rt in self._types.values() if rt.crd_name == crd_name]
        for resource_type in removed:
            key = (resource_type.group, resource_type.version, resource_type.plural)
            del self._types[key]
            del self._kmock_resources[kmock.resource(*key)]
        self.revision += 1
        return removed

    def replace_crd(self, crd_name: str, resource_types: Iterable[ResourceType]) -> None:
        self.remove_crd(crd_name)
        for resource_type in resource_types:
            self.add(resource_type)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def find(self, api_version: str, plural: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self.get(group, version, plural)

    def owner_of(self, group: str, plural: str) -> str | None:
        """The CRD that serves group/plural, if any (also used to detect name clashes)."""
        for resource_type in self._types.values():
            if (resource_type.group, resource_type.plural) == (group, plural):
                return resource_type.crd_name or ""
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def versions_of(self, group: str) -> list[str]:
        versions = {rt.version for rt in self._types.values() if rt.group == group}
        return sorted(versions, key=version_priority)

    def groups(self) -> list[str]:
        return sorted({rt.group for rt in self._types.values() if rt.group})

    def api_group(self, group: str) -> dict[str, Any]:
        versions = [
            {"groupVersion": f"{group}/{version}", "version": version} for version in self.versions_of(group)
        ]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": versions,
            "preferredVersion": versions[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = [self.api_group(group) for group in self.groups()]
        for group in groups:
            del group["kind"], group["apiVersion"]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [rt for rt in self._types.values() if (rt.group, rt.version) == (group, version)]
        if not types and group:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [
                entry for rt in sorted(types, key=lambda t: t.plural) for entry in rt.discovery_entries()
            ],
        }
