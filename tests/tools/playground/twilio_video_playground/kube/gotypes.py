"""The Go types built-in objects are decoded into, and the errors that typed decoding gives.

kube-apiserver decodes a body into the kind's Go struct before anything else looks at it; a JSON value of
the wrong type there is a 400, e.g. ``json: cannot unmarshal number into Go struct field
ObjectMeta.metadata.name of type string``: the innermost struct's name, the path of struct fields from the
top (map keys and list indexes are not part of it) and the Go type. ``null`` is accepted everywhere. The
first such error in document order is the one reported, except that types with their own decoders (times,
CRD schema unions) stop decoding at once. Only the fields this server reads or stores are described; the
others are accepted as they come.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twilio_video_playground.kube.decoding import DecodeError, go_base64_decode

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
_RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"
_RFC3339_MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"


class Immediate(Exception):
    """An error of a type with its own decoder: decoding stops there."""


@dataclass(frozen=True)
class GoType:
    """One Go type: ``go`` is how Go prints it (``map[string]string``, ``v1.ObjectMeta``)."""

    go: str


@dataclass(frozen=True)
class Scalar(GoType):
    json: str = "string"  # string, integer, number, boolean


@dataclass(frozen=True)
class Bytes(GoType):
    """``[]byte``: a base64 string."""


@dataclass(frozen=True)
class Time(GoType):
    """metav1.Time or MicroTime: an RFC 3339 string, parsed by its own decoder."""

    layout: str = _RFC3339_LAYOUT


@dataclass(frozen=True)
class Anything(GoType):
    """interface{}, RawExtension, apiextensions JSON: any value."""


@dataclass(frozen=True)
class ListOf(GoType):
    item: GoType = field(default_factory=lambda: Scalar("string"))


@dataclass(frozen=True)
class MapOf(GoType):
    value: GoType = field(default_factory=lambda: Scalar("string"))


@dataclass(frozen=True)
class Struct(GoType):
    """A struct; ``fields`` is filled in after creation for recursive types."""

    name: str = ""
    fields: dict[str, GoType] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class SchemaOrArray(GoType):
    """apiextensions' JSONSchemaPropsOrArray: a schema, a list of schemas, anything else ignored."""


@dataclass(frozen=True)
class SchemaOrBool(GoType):
    """apiextensions' JSONSchemaPropsOrBool: a boolean or a schema."""


STRING = Scalar("string")
INT32 = Scalar("int32", "integer")
INT64 = Scalar("int64", "integer")
FLOAT64 = Scalar("float64", "number")
BOOL = Scalar("bool", "boolean")
ANY = Anything("interface {}")
STRINGS = ListOf("[]string", STRING)
STRING_MAP = MapOf("map[string]string", STRING)
TIME = Time("v1.Time")
MICRO_TIME = Time("v1.MicroTime", _RFC3339_MICRO_LAYOUT)


def named(go: str, json_type: str = "string") -> Scalar:
    """A named scalar type such as ``v1.SecretType``."""
    return Scalar(go, json_type)


def struct(go: str, **fields: GoType) -> Struct:
    return Struct(go, go.rsplit(".", 1)[-1], {_json_name(name): kind for name, kind in fields.items()})


def _json_name(name: str) -> str:
    return {"schema_": "$schema", "ref": "$ref"}.get(name, name.replace("__", "-"))


OBJECT_META = struct(
    "v1.ObjectMeta",
    name=STRING,
    generateName=STRING,
    namespace=STRING,
    selfLink=STRING,
    uid=named("types.UID"),
    resourceVersion=STRING,
    generation=INT64,
    creationTimestamp=TIME,
    deletionTimestamp=TIME,
    deletionGracePeriodSeconds=INT64,
    labels=STRING_MAP,
    annotations=STRING_MAP,
    ownerReferences=ListOf(
        "[]v1.OwnerReference",
        struct(
            "v1.OwnerReference",
            apiVersion=STRING,
            kind=STRING,
            name=STRING,
            uid=named("types.UID"),
            controller=BOOL,
            blockOwnerDeletion=BOOL,
        ),
    ),
    finalizers=STRINGS,
    managedFields=ListOf(
        "[]v1.ManagedFieldsEntry",
        struct(
            "v1.ManagedFieldsEntry",
            manager=STRING,
            operation=named("v1.ManagedFieldsOperationType"),
            apiVersion=STRING,
            time=TIME,
            fieldsType=STRING,
            fieldsV1=ANY,
            subresource=STRING,
        ),
    ),
)
OBJECT_REFERENCE = struct(
    "v1.ObjectReference",
    kind=STRING,
    namespace=STRING,
    name=STRING,
    uid=named("types.UID"),
    apiVersion=STRING,
    resourceVersion=STRING,
    fieldPath=STRING,
)
EVENT_SOURCE = struct("v1.EventSource", component=STRING, host=STRING)
EVENT_SERIES = struct("v1.EventSeries", count=INT32, lastObservedTime=MICRO_TIME)
LABEL_SELECTOR = struct(
    "v1.LabelSelector",
    matchLabels=STRING_MAP,
    matchExpressions=ListOf(
        "[]v1.LabelSelectorRequirement",
        struct(
            "v1.LabelSelectorRequirement",
            key=STRING,
            operator=named("v1.LabelSelectorOperator"),
            values=STRINGS,
        ),
    ),
)
RESOURCE_ATTRIBUTES = struct(
    "v1.ResourceAttributes",
    namespace=STRING,
    verb=STRING,
    group=STRING,
    version=STRING,
    resource=STRING,
    subresource=STRING,
    name=STRING,
    fieldSelector=ANY,
    labelSelector=ANY,
)
NON_RESOURCE_ATTRIBUTES = struct("v1.NonResourceAttributes", path=STRING, verb=STRING)
POLICY_RULES = ListOf(
    "[]v1.PolicyRule",
    struct(
        "v1.PolicyRule",
        verbs=STRINGS,
        apiGroups=STRINGS,
        resources=STRINGS,
        resourceNames=STRINGS,
        nonResourceURLs=STRINGS,
    ),
)
ROLE_BINDING_FIELDS: dict[str, GoType] = {
    "subjects": ListOf(
        "[]v1.Subject",
        struct("v1.Subject", kind=STRING, apiGroup=STRING, name=STRING, namespace=STRING),
    ),
    "roleRef": struct("v1.RoleRef", apiGroup=STRING, kind=STRING, name=STRING),
}

JSON_SCHEMA = Struct("v1.JSONSchemaProps", "JSONSchemaProps")
JSON_SCHEMA.fields.update(
    {
        _json_name(name): kind
        for name, kind in dict(
            id=STRING,
            schema_=named("v1.JSONSchemaURL"),
            ref=STRING,
            description=STRING,
            type=STRING,
            format=STRING,
            title=STRING,
            default=ANY,
            maximum=FLOAT64,
            exclusiveMaximum=BOOL,
            minimum=FLOAT64,
            exclusiveMinimum=BOOL,
            maxLength=INT64,
            minLength=INT64,
            pattern=STRING,
            maxItems=INT64,
            minItems=INT64,
            uniqueItems=BOOL,
            multipleOf=FLOAT64,
            enum=ListOf("[]v1.JSON", ANY),
            maxProperties=INT64,
            minProperties=INT64,
            required=STRINGS,
            items=SchemaOrArray("v1.JSONSchemaPropsOrArray"),
            allOf=ListOf("[]v1.JSONSchemaProps", JSON_SCHEMA),
            oneOf=ListOf("[]v1.JSONSchemaProps", JSON_SCHEMA),
            anyOf=ListOf("[]v1.JSONSchemaProps", JSON_SCHEMA),
            properties=MapOf("map[string]v1.JSONSchemaProps", JSON_SCHEMA),
            additionalProperties=SchemaOrBool("v1.JSONSchemaPropsOrBool"),
            patternProperties=MapOf("map[string]v1.JSONSchemaProps", JSON_SCHEMA),
            additionalItems=SchemaOrBool("v1.JSONSchemaPropsOrBool"),
            definitions=MapOf("v1.JSONSchemaDefinitions", JSON_SCHEMA),
            example=ANY,
            nullable=BOOL,
            x__kubernetes__preserve__unknown__fields=BOOL,
            x__kubernetes__embedded__resource=BOOL,
            x__kubernetes__int__or__string=BOOL,
            x__kubernetes__list__map__keys=STRINGS,
            x__kubernetes__list__type=STRING,
            x__kubernetes__map__type=STRING,
            x__kubernetes__validations=ListOf(
                "v1.ValidationRules",
                struct(
                    "v1.ValidationRule",
                    rule=STRING,
                    message=STRING,
                    messageExpression=STRING,
                    reason=named("v1.FieldValueErrorReason"),
                    fieldPath=STRING,
                    optionalOldSelf=BOOL,
                ),
            ),
        ).items()
    }
)
JSON_SCHEMA.fields["not"] = JSON_SCHEMA

CRD_SPEC = struct(
    "v1.CustomResourceDefinitionSpec",
    group=STRING,
    names=struct(
        "v1.CustomResourceDefinitionNames",
        plural=STRING,
        singular=STRING,
        shortNames=STRINGS,
        kind=STRING,
        listKind=STRING,
        categories=STRINGS,
    ),
    scope=named("v1.ResourceScope"),
    versions=ListOf(
        "[]v1.CustomResourceDefinitionVersion",
        struct(
            "v1.CustomResourceDefinitionVersion",
            name=STRING,
            served=BOOL,
            storage=BOOL,
            deprecated=BOOL,
            deprecationWarning=STRING,
            schema=struct("v1.CustomResourceValidation", openAPIV3Schema=JSON_SCHEMA),
            subresources=struct(
                "v1.CustomResourceSubresources",
                status=struct("v1.CustomResourceSubresourceStatus"),
                scale=struct(
                    "v1.CustomResourceSubresourceScale",
                    specReplicasPath=STRING,
                    statusReplicasPath=STRING,
                    labelSelectorPath=STRING,
                ),
            ),
            additionalPrinterColumns=ListOf(
                "[]v1.CustomResourceColumnDefinition",
                struct(
                    "v1.CustomResourceColumnDefinition",
                    name=STRING,
                    type=STRING,
                    format=STRING,
                    description=STRING,
                    priority=INT32,
                    jsonPath=STRING,
                ),
            ),
            selectableFields=ListOf("[]v1.SelectableField", struct("v1.SelectableField", jsonPath=STRING)),
        ),
    ),
    conversion=ANY,
    preserveUnknownFields=BOOL,
)


def _kind(go: str, **fields: GoType) -> Struct:
    """A top-level kind: TypeMeta's fields, metadata and ``fields``."""
    return struct(go, apiVersion=STRING, kind=STRING, metadata=OBJECT_META, **fields)


SECRET_FIELDS: dict[str, GoType] = {
    "immutable": BOOL,
    "data": MapOf("map[string][]uint8", Bytes("[]uint8")),
    "stringData": STRING_MAP,
    "type": named("v1.SecretType"),
}

# (group, kind) -> the Go struct its objects are decoded into
KINDS: dict[tuple[str, str], Struct] = {
    ("", "Namespace"): _kind(
        "v1.Namespace",
        spec=struct("v1.NamespaceSpec", finalizers=ListOf("[]v1.FinalizerName", named("v1.FinalizerName"))),
        status=struct(
            "v1.NamespaceStatus",
            phase=named("v1.NamespacePhase"),
            conditions=ListOf(
                "[]v1.NamespaceCondition",
                struct(
                    "v1.NamespaceCondition",
                    type=named("v1.NamespaceConditionType"),
                    status=named("v1.ConditionStatus"),
                    lastTransitionTime=TIME,
                    reason=STRING,
                    message=STRING,
                ),
            ),
        ),
    ),
    ("", "Secret"): _kind("v1.Secret", **SECRET_FIELDS),
    ("", "ConfigMap"): _kind(
        "v1.ConfigMap",
        immutable=BOOL,
        data=STRING_MAP,
        binaryData=MapOf("map[string][]uint8", Bytes("[]uint8")),
    ),
    ("", "ServiceAccount"): _kind(
        "v1.ServiceAccount",
        secrets=ListOf("[]v1.ObjectReference", OBJECT_REFERENCE),
        imagePullSecrets=ListOf("[]v1.LocalObjectReference", struct("v1.LocalObjectReference", name=STRING)),
        automountServiceAccountToken=BOOL,
    ),
    ("", "Event"): _kind(
        "v1.Event",
        involvedObject=OBJECT_REFERENCE,
        reason=STRING,
        message=STRING,
        source=EVENT_SOURCE,
        firstTimestamp=TIME,
        lastTimestamp=TIME,
        count=INT32,
        type=STRING,
        eventTime=MICRO_TIME,
        series=EVENT_SERIES,
        action=STRING,
        related=OBJECT_REFERENCE,
        reportingComponent=STRING,
        reportingInstance=STRING,
    ),
    ("events.k8s.io", "Event"): _kind(
        "v1.Event",
        eventTime=MICRO_TIME,
        series=EVENT_SERIES,
        reportingController=STRING,
        reportingInstance=STRING,
        action=STRING,
        reason=STRING,
        regarding=OBJECT_REFERENCE,
        related=OBJECT_REFERENCE,
        note=STRING,
        type=STRING,
        deprecatedSource=EVENT_SOURCE,
        deprecatedFirstTimestamp=TIME,
        deprecatedLastTimestamp=TIME,
        deprecatedCount=INT32,
    ),
    ("coordination.k8s.io", "Lease"): _kind(
        "v1.Lease",
        spec=struct(
            "v1.LeaseSpec",
            holderIdentity=STRING,
            leaseDurationSeconds=INT32,
            acquireTime=MICRO_TIME,
            renewTime=MICRO_TIME,
            leaseTransitions=INT32,
            strategy=named("v1.CoordinatedLeaseStrategy"),
            preferredHolder=STRING,
        ),
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _kind(
        "v1.CustomResourceDefinition", spec=CRD_SPEC, status=ANY
    ),
    ("authentication.k8s.io", "TokenReview"): _kind(
        "v1.TokenReview", spec=struct("v1.TokenReviewSpec", token=STRING, audiences=STRINGS), status=ANY
    ),
    ("authentication.k8s.io", "TokenRequest"): _kind(
        "v1.TokenRequest",
        spec=struct(
            "v1.TokenRequestSpec",
            audiences=STRINGS,
            # a 422 from the TokenRequest checks here when not an integer (the API server's decoder says 400)
            expirationSeconds=ANY,
            boundObjectRef=struct(
                "v1.BoundObjectReference",
                kind=STRING,
                apiVersion=STRING,
                name=STRING,
                uid=named("types.UID"),
            ),
        ),
        status=ANY,
    ),
    ("authorization.k8s.io", "SubjectAccessReview"): _kind(
        "v1.SubjectAccessReview",
        spec=struct(
            "v1.SubjectAccessReviewSpec",
            resourceAttributes=RESOURCE_ATTRIBUTES,
            nonResourceAttributes=NON_RESOURCE_ATTRIBUTES,
            user=STRING,
            groups=STRINGS,
            extra=MapOf("map[string]v1.ExtraValue", ListOf("v1.ExtraValue", STRING)),
            uid=STRING,
        ),
        status=ANY,
    ),
    ("authorization.k8s.io", "SelfSubjectAccessReview"): _kind(
        "v1.SelfSubjectAccessReview",
        spec=struct(
            "v1.SelfSubjectAccessReviewSpec",
            resourceAttributes=RESOURCE_ATTRIBUTES,
            nonResourceAttributes=NON_RESOURCE_ATTRIBUTES,
        ),
        status=ANY,
    ),
    ("rbac.authorization.k8s.io", "Role"): _kind("v1.Role", rules=POLICY_RULES),
    ("rbac.authorization.k8s.io", "ClusterRole"): _kind(
        "v1.ClusterRole",
        rules=POLICY_RULES,
        aggregationRule=struct(
            "v1.AggregationRule", clusterRoleSelectors=ListOf("[]v1.LabelSelector", LABEL_SELECTOR)
        ),
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): _kind("v1.RoleBinding", **ROLE_BINDING_FIELDS),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _kind(
        "v1.ClusterRoleBinding", **ROLE_BINDING_FIELDS
    ),
}
DELETE_OPTIONS = struct(
    "v1.DeleteOptions",
    apiVersion=STRING,
    kind=STRING,
    gracePeriodSeconds=INT64,
    preconditions=struct("v1.Preconditions", uid=named("types.UID"), resourceVersion=STRING),
    orphanDependents=BOOL,
    propagationPolicy=named("v1.DeletionPropagation"),
    dryRun=STRINGS,
)
# custom objects: only their ObjectMeta is decoded into a type, on its own (``ObjectMeta.name``)
CUSTOM_OBJECT = Struct("", "", {"metadata": OBJECT_META})
JSON_PATCH_OPERATIONS = ListOf(
    "[]handlers.jsonPatchOp",
    Struct(
        "handlers.jsonPatchOp", "jsonPatchOp", {"op": STRING, "path": STRING, "from": STRING, "value": ANY}
    ),
)
PATCH_MAP = MapOf("map[string]interface {}", ANY)


def json_kind(value: Any) -> str:
    """How Go names a JSON value's kind in type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass
class _Decoder:
    error: str | None = None
    struct_name: str = ""
    fields: list[str] = field(default_factory=list)

    def type_error(self, value: Any, go_type: GoType, detail: str = "") -> None:
        if self.error is not None:
            return
        what = json_kind(value) + detail
        if self.struct_name or self.fields:
            where = f"{self.struct_name}.{'.'.join(self.fields)}"
            self.error = f"json: cannot unmarshal {what} into Go struct field {where} of type {go_type.go}"
        else:
            self.error = f"json: cannot unmarshal {what} into Go value of type {go_type.go}"

    def save(self, message: str) -> None:
        if self.error is None:
            self.error = message

    def decode(self, value: Any, go_type: GoType) -> None:
        if value is None or isinstance(go_type, Anything):
            return
        if isinstance(go_type, Scalar):
            self._scalar(value, go_type)
        elif isinstance(go_type, Bytes):
            if not isinstance(value, str):
                self.type_error(value, go_type)
                return
            try:
                go_base64_decode(value)
            except DecodeError as exc:
                self.save(str(exc))
        elif isinstance(go_type, Time):
            _check_time(value, go_type)
        elif isinstance(go_type, ListOf):
            if not isinstance(value, list):
                self.type_error(value, go_type)
                return
            for item in value:
                self.decode(item, go_type.item)
        elif isinstance(go_type, MapOf):
            if not isinstance(value, dict):
                self.type_error(value, go_type)
                return
            for item in value.values():
                self.decode(item, go_type.value)
        elif isinstance(go_type, Struct):
            self._struct(value, go_type)
        elif isinstance(go_type, SchemaOrArray):
            if isinstance(value, dict):
                _decode_alone(value, JSON_SCHEMA)
            elif isinstance(value, list):
                _decode_alone(value, ListOf("[]v1.JSONSchemaProps", JSON_SCHEMA))
        elif isinstance(go_type, SchemaOrBool):
            if isinstance(value, dict):
                _decode_alone(value, JSON_SCHEMA)
            elif not isinstance(value, bool):
                raise Immediate("boolean or JSON schema expected")

    def _scalar(self, value: Any, go_type: Scalar) -> None:
        if go_type.json == "string":
            if not isinstance(value, str):
                self.type_error(value, go_type)
        elif go_type.json == "boolean":
            if not isinstance(value, bool):
                self.type_error(value, go_type)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            self.type_error(value, go_type)
        elif go_type.json == "integer":
            low, high = _INT_RANGES.get(go_type.go, _INT_RANGES["int64"])
            if isinstance(value, float) or not low <= value <= high:
                self.type_error(value, go_type, f" {value}")

    def _struct(self, value: Any, go_type: Struct) -> None:
        if not isinstance(value, dict):
            self.type_error(value, go_type)
            return
        for key, item in value.items():
            kind = go_type.fields.get(key)
            if kind is None:
                continue
            saved = (self.struct_name, len(self.fields))
            self.fields.append(key)
            self.struct_name = go_type.name
            self.decode(item, kind)
            self.struct_name = saved[0]
            del self.fields[saved[1] :]


def _decode_alone(value: Any, go_type: GoType) -> None:
    """A nested decode by a type's own decoder (fresh field path); its first error stops everything."""
    decoder = _Decoder()
    decoder.decode(value, go_type)
    if decoder.error is not None:
        raise Immediate(decoder.error)


def _check_time(value: Any, go_type: Time) -> None:
    if not isinstance(value, str):
        raise Immediate(f"json: cannot unmarshal {json_kind(value)} into Go value of type string")
    if _RFC3339.match(value):
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return
        except ValueError:
            pass
    raise Immediate(f'parsing time "{value}" as "{go_type.layout}": cannot parse "{value}" as "2006"')


def decode_error(value: Any, go_type: GoType) -> str | None:
    """The error Go's typed decoding of ``value`` into ``go_type`` gives, or None."""
    decoder = _Decoder()
    try:
        decoder.decode(value, go_type)
    except Immediate as exc:
        return str(exc)
    return decoder.error


def kind_type(group: str, kind: str) -> Struct | None:
    return KINDS.get((group, kind))


def object_meta_error(obj: Mapping[str, Any]) -> str | None:
    """The error decoding a custom object's metadata on its own gives (``ObjectMeta.name``), or None."""
    if "metadata" not in obj:
        return None
    return decode_error(obj["metadata"], OBJECT_META)
