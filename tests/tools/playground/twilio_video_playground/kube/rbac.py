"""RBAC as a real API server evaluates it, over the Roles, ClusterRoles and their bindings in the store.

A request is allowed when a ClusterRoleBinding, or a RoleBinding in the request's namespace, binds a
subject matching the user (``User`` by name, ``Group`` by one of the user's groups, ``ServiceAccount`` as
``system:serviceaccount:<namespace>:<name>``) to a Role of that namespace or a ClusterRole with a rule
that allows it. Rules match like Kubernetes' (``k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers``):
``verbs``, ``apiGroups`` and ``resources`` by equality or ``*``, ``resource/subresource`` for
subresources (``*/subresource`` for a subresource of any resource), ``resourceNames`` exactly (an empty list
allows every name; a request without a name matches only an empty list), and ``nonResourceURLs`` by
equality or a trailing ``*`` (ClusterRoles bound by ClusterRoleBindings only). A binding whose role is
missing grants nothing. ``aggregationRule`` is not evaluated.

Writes of these objects are defaulted and validated as the real server does (see :func:`admit_rbac`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.errors import FieldError
from twilio_video_playground.kube.registry import RBAC_GROUP, ResourceType

SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


class RbacObjects(Protocol):
    """Read access to the RBAC objects (``plural`` is roles, rolebindings, clusterroles or
    clusterrolebindings; ``namespace`` None for the cluster-scoped ones)."""

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]: ...

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...


# --- evaluation -------------------------------------------------------------------------------------------


def _has(values: Iterable[Any], wanted: str) -> bool:
    return any(value == "*" or value == wanted for value in values)


def _resource_matches(rule_resources: Iterable[Any], combined: str, subresource: str) -> bool:
    for resource in rule_resources:
        if resource in ("*", combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attributes: Mapping[str, Any], *, resource_request: bool) -> bool:
    """Whether one PolicyRule allows a request (``attributes``: a SubjectAccessReview's
    ``resourceAttributes`` or ``nonResourceAttributes``)."""
    verb = str(attributes.get("verb") or "")
    if not _has(rule.get("verbs") or [], verb):
        return False
    if not resource_request:
        path = str(attributes.get("path") or "")
        return any(
            url == "*" or url == path or (str(url).endswith("*") and path.startswith(str(url)[:-1]))
            for url in rule.get("nonResourceURLs") or []
        )
    resource = str(attributes.get("resource") or "")
    subresource = str(attributes.get("subresource") or "")
    combined = f"{resource}/{subresource}" if subresource else resource
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("apiGroups") or [], str(attributes.get("group") or ""))
        and _resource_matches(rule.get("resources") or [], combined, subresource)
        and (not names or str(attributes.get("name") or "") in names)
    )


def subject_matches(
    subject: Mapping[str, Any], user: str, groups: Sequence[str], binding_namespace: str
) -> bool:
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return bool(name) and user == name
    if kind == "Group":
        return bool(name) and name in groups
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or binding_namespace)
        return bool(name and namespace) and user == f"system:serviceaccount:{namespace}:{name}"
    return False


def _describe_subject(subject: Mapping[str, Any]) -> str:
    if subject.get("kind") == "ServiceAccount" and subject.get("namespace"):
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace")}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def authorize(
    objects: RbacObjects,
    user: str,
    groups: Sequence[str],
    resource_attributes: Mapping[str, Any] | None,
    non_resource_attributes: Mapping[str, Any] | None,
) -> str | None:
    """Why RBAC allows the request (the reason a real API server gives), or None when it does not."""
    resource_request = resource_attributes is not None
    attributes = resource_attributes if resource_attributes is not None else non_resource_attributes or {}
    namespace = str(attributes.get("namespace") or "") if resource_request else ""
    candidates: list[tuple[str, dict[str, Any]]] = [
        ("ClusterRoleBinding", binding) for binding in objects.list("clusterrolebindings", None)
    ]
    if namespace:
        candidates += [("RoleBinding", binding) for binding in objects.list("rolebindings", namespace)]
    for binding_kind, binding in candidates:
        metadata = binding.get("metadata") or {}
        binding_namespace = str(metadata.get("namespace") or "")
        subject = next(
            (
                subject
                for subject in binding.get("subjects") or []
                if subject_matches(subject, user, groups, binding_namespace)
            ),
            None,
        )
        if subject is None:
            continue
        ref = binding.get("roleRef") or {}
        role_kind, role_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
        if role_kind == "ClusterRole":
            role = objects.get("clusterroles", None, role_name)
        elif role_kind == "Role" and binding_kind == "RoleBinding":
            role = objects.get("roles", binding_namespace, role_name)
        else:
            role = None
        if role is None:
            continue
        if any(
            rule_allows(rule, attributes, resource_request=resource_request)
            for rule in role.get("rules") or []
        ):
            where = (
                f"{metadata.get('name')}/{binding_namespace}" if binding_namespace else metadata.get("name")
            )
            return (
                f'RBAC: allowed by {binding_kind} "{where}" of {role_kind} "{role_name}" to '
                f"{_describe_subject(subject)}"
            )
    return None


# --- defaulting and validation of writes ------------------------------------------------------------------


def is_rbac(rt: ResourceType) -> bool:
    return rt.group == RBAC_GROUP


def _invalid(field: str, value: Any, message: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {message}")


def _required(field: str, message: str = "") -> FieldError:
    return FieldError(
        field, "FieldValueRequired", f"Required value: {message}" if message else "Required value"
    )


def _not_supported(field: str, value: Any, supported: Sequence[str]) -> FieldError:
    listed = ", ".join(json.dumps(item) for item in supported)
    return FieldError(
        field, "FieldValueNotSupported", f"Unsupported value: {json.dumps(value)}: supported values: {listed}"
    )


def _rule_problems(rules: Any, namespaced: bool) -> list[FieldError]:
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [_invalid("rules", rules, "must be a list of rules")]
    problems: list[FieldError] = []
    for index, rule in enumerate(rules):
        where = f"rules[{index}]"
        if not isinstance(rule, dict):
            problems.append(_invalid(where, rule, "must be an object"))
            continue
        if not rule.get("verbs"):
            problems.append(_required(f"{where}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs")
        if urls:
            if namespaced:
                message = "namespaced rules cannot apply to non-resource URLs"
                problems.append(_invalid(f"{where}.nonResourceURLs", urls, message))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                message = "rules cannot apply to both regular resources and non-resource URLs"
                problems.append(_invalid(f"{where}.nonResourceURLs", urls, message))
            continue
        if not rule.get("apiGroups"):
            problems.append(
                _required(f"{where}.apiGroups", "resource rules must supply at least one api group")
            )
        if not rule.get("resources"):
            problems.append(
                _required(f"{where}.resources", "resource rules must supply at least one resource")
            )
    return problems


def _binding_problems(
    obj: dict[str, Any], current: Mapping[str, Any] | None, namespaced: bool
) -> list[FieldError]:
    problems: list[FieldError] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        return [_required("roleRef")] if ref is None else [_invalid("roleRef", ref, "must be an object")]
    ref.setdefault("apiGroup", RBAC_GROUP)
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("apiGroup") != RBAC_GROUP:
        problems.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup"), [RBAC_GROUP]))
    if ref.get("kind") not in kinds:
        problems.append(_not_supported("roleRef.kind", ref.get("kind"), kinds))
    if not ref.get("name"):
        problems.append(_required("roleRef.name"))
    if current is not None and (current.get("roleRef") or {}) != ref:
        problems.append(_invalid("roleRef", ref, "cannot change roleRef"))
    subjects = obj.get("subjects")
    if subjects is None:
        return problems
    if not isinstance(subjects, list):
        return [*problems, _invalid("subjects", subjects, "must be a list of subjects")]
    for index, subject in enumerate(subjects):
        where = f"subjects[{index}]"
        if not isinstance(subject, dict):
            problems.append(_invalid(where, subject, "must be an object"))
            continue
        kind = subject.get("kind")
        if kind not in SUBJECT_KINDS:
            problems.append(_not_supported(f"{where}.kind", kind, SUBJECT_KINDS))
            continue
        if kind != "ServiceAccount":
            subject.setdefault("apiGroup", RBAC_GROUP)
        if not subject.get("name"):
            problems.append(_required(f"{where}.name"))
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                problems.append(_not_supported(f"{where}.apiGroup", subject.get("apiGroup"), [""]))
            if not namespaced and not subject.get("namespace"):
                problems.append(_required(f"{where}.namespace"))
        elif subject.get("apiGroup") != RBAC_GROUP:
            problems.append(_not_supported(f"{where}.apiGroup", subject.get("apiGroup"), [RBAC_GROUP]))
    return problems


def admit_rbac(rt: ResourceType, current: Mapping[str, Any] | None, obj: dict[str, Any]) -> None:
    """Default and validate a Role, ClusterRole, RoleBinding or ClusterRoleBinding being written (a 422
    ``Invalid`` like the real server's otherwise); ``roleRef`` cannot change once created."""
    if rt.plural in ("roles", "clusterroles"):
        problems = _rule_problems(obj.get("rules"), rt.namespaced)
    else:
        problems = _binding_problems(obj, current, rt.namespaced)
    if problems:
        raise errors.invalid(rt.kind, rt.group, str(obj["metadata"].get("name", "")), problems)
