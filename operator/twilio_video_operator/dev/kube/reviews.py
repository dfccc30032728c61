"""TokenReview and SubjectAccessReview answered from Python-configured tokens and access rules.

``allow_tokens`` maps a bearer token to a Kubernetes ``UserInfo`` dict (``username``, ``uid``,
``groups``, ``extra``). ``rbac_rules`` is a list of :class:`AccessRule`; a review is allowed when any rule
matches the subject (user or one of its groups) and the requested attributes, or when the subject is in
``system:masters`` (the superuser group, as in a real cluster). Nothing else is consulted.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twilio_video_operator.dev.kube.errors import FieldError

UserInfo = dict[str, Any]
SUPERUSER_GROUP = "system:masters"
ANONYMOUS: UserInfo = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
# kubectl sends no bearer token over plain HTTP; like the insecure port of old API servers, such requests
# act as a superuser (the embedded API authorizes nothing itself anyway).
UNSECURED: UserInfo = {"username": "system:unsecured", "groups": [SUPERUSER_GROUP, "system:authenticated"]}


def _matches(patterns: Iterable[str], value: str) -> bool:
    return any(pattern == "*" or pattern == value for pattern in patterns)


@dataclass(frozen=True)
class AccessRule:
    """One grant, shaped like an RBAC rule bound to subjects.

    ``resources`` follows RBAC: ``"videorooms"`` or ``"videorooms/token"`` for a subresource, ``"*"`` for
    any. An empty ``users`` and ``groups`` matches nobody; ``"*"`` in ``users`` matches everybody.
    ``non_resource_urls`` (e.g. ``"/healthz"``, ``"/metrics*"``) make the rule apply to non-resource
    requests only.
    """

    verbs: tuple[str, ...] = ("*",)
    api_groups: tuple[str, ...] = ("*",)
    resources: tuple[str, ...] = ("*",)
    namespaces: tuple[str, ...] = ("*",)
    names: tuple[str, ...] = ("*",)
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def applies_to(self, user: str, groups: Sequence[str]) -> bool:
        return "*" in self.users or user in self.users or bool(set(groups) & set(self.groups))

    def allows_resource(self, attributes: Mapping[str, Any]) -> bool:
        if self.non_resource_urls:
            return False
        resource = str(attributes.get("resource", ""))
        subresource = str(attributes.get("subresource", ""))
        full = f"{resource}/{subresource}" if subresource else resource
        namespace = str(attributes.get("namespace", ""))
        name = str(attributes.get("name", ""))
        return (
            _matches(self.verbs, str(attributes.get("verb", "")))
            and _matches(self.api_groups, str(attributes.get("group", "")))
            and _matches(self.resources, full)
            and (not namespace or _matches(self.namespaces, namespace))
            and (not name or _matches(self.names, name))
        )

    def allows_non_resource(self, attributes: Mapping[str, Any]) -> bool:
        path = str(attributes.get("path", ""))
        return _matches(self.verbs, str(attributes.get("verb", ""))) and any(
            url == path or (url.endswith("*") and path.startswith(url[:-1])) for url in self.non_resource_urls
        )


def review_token(body: Mapping[str, Any], allow_tokens: Mapping[str, UserInfo]) -> dict[str, Any]:
    """The answered TokenReview: authenticated with the token's user info, or not."""
    spec = dict(body.get("spec") or {})
    token = str(spec.get("token") or "")
    user = allow_tokens.get(token) if token else None
    status: dict[str, Any]
    if user is None:
        status = {"authenticated": False, "user": {}, "error": "invalid bearer token"}
    else:
        status = {"authenticated": True, "user": copy.deepcopy(dict(user))}
        if spec.get("audiences"):
            status["audiences"] = list(spec["audiences"])
    spec.pop("token", None)  # never echo the credential back
    return _answer(body, "TokenReview", "authentication.k8s.io/v1", spec, status)


def validate_access_review(body: Mapping[str, Any]) -> list[FieldError]:
    spec = body.get("spec") or {}
    errors: list[FieldError] = []
    if bool(spec.get("resourceAttributes")) == bool(spec.get("nonResourceAttributes")):
        detail = 'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be '
        detail += "specified"
        errors.append(FieldError("spec.resourceAttributes", "FieldValueInvalid", detail))
    if not spec.get("user") and not spec.get("groups"):
        detail = 'Invalid value: "": at least one of user or group must be specified'
        errors.append(FieldError("spec.user", "FieldValueInvalid", detail))
    return errors


def review_access(body: Mapping[str, Any], rules: Sequence[AccessRule]) -> dict[str, Any]:
    """The answered SubjectAccessReview (validate it first with :func:`validate_access_review`)."""
    spec = dict(body.get("spec") or {})
    user = str(spec.get("user") or "")
    groups = [str(group) for group in spec.get("groups") or []]
    resource_attributes = spec.get("resourceAttributes")
    non_resource_attributes = spec.get("nonResourceAttributes")
    if SUPERUSER_GROUP in groups:
        status = {"allowed": True, "reason": f"the {SUPERUSER_GROUP} group is allowed everything"}
        return _answer(body, "SubjectAccessReview", "authorization.k8s.io/v1", spec, status)
    for index, rule in enumerate(rules):
        if not rule.applies_to(user, groups):
            continue
        if resource_attributes and rule.allows_resource(resource_attributes):
            return _answer(body, "SubjectAccessReview", "authorization.k8s.io/v1", spec, _allowed(index))
        if non_resource_attributes and rule.allows_non_resource(non_resource_attributes):
            return _answer(body, "SubjectAccessReview", "authorization.k8s.io/v1", spec, _allowed(index))
    status = {"allowed": False, "reason": "no access rule allows this request"}
    return _answer(body, "SubjectAccessReview", "authorization.k8s.io/v1", spec, status)


def review_own_access(
    body: Mapping[str, Any], user: Mapping[str, Any], rules: Sequence[AccessRule]
) -> dict[str, Any]:
    """A SelfSubjectAccessReview: the SubjectAccessReview of the calling user (``kubectl auth can-i``)."""
    spec = dict(body.get("spec") or {})
    spec.update(user=user.get("username", ""), groups=list(user.get("groups") or []))
    answer = review_access({**body, "spec": spec}, rules)
    answer["kind"] = "SelfSubjectAccessReview"
    answer["spec"] = {key: value for key, value in answer["spec"].items() if key not in ("user", "groups")}
    return answer


def _allowed(index: int) -> dict[str, Any]:
    return {"allowed": True, "reason": f"allowed by access rule #{index}"}


def _answer(
    body: Mapping[str, Any], kind: str, api_version: str, spec: dict[str, Any], status: dict[str, Any]
) -> dict[str, Any]:
    metadata = copy.deepcopy(dict(body.get("metadata") or {}))
    return {"kind": kind, "apiVersion": api_version, "metadata": metadata, "spec": spec, "status": status}
