"""TokenReview and SubjectAccessReview answers.

Tokens: ``allow_tokens`` maps a bearer token to a Kubernetes ``UserInfo`` dict (``username``, ``uid``,
``groups``, ``extra``); any other token is passed to an authenticator (the embedded API's: the
ServiceAccount tokens it issued).

Access: ``rbac_rules`` is a list of :class:`AccessRule`; a review is allowed when the subject is in
``system:masters`` (the superuser group, as in a real cluster), when any rule matches the subject (user or
one of its groups) and the requested attributes, or when an authorizer allows it (the embedded API's:
the RBAC objects in its store).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twilio_video_playground.kube.errors import FieldError

UserInfo = dict[str, Any]
SUPERUSER_GROUP = "system:masters"
ANONYMOUS: UserInfo = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
# kubectl sends no bearer token over plain HTTP; like the insecure port of old API servers, such requests
# act as a superuser (the embedded API authorizes nothing itself anyway).
UNSECURED: UserInfo = {"username": "system:unsecured", "groups": [SUPERUSER_GROUP, "system:authenticated"]}

# (token, audiences asked for) -> (user, audiences it is good for), an error text, or None (unknown token)
Authenticator = Callable[[str, Sequence[str]], tuple[UserInfo, list[str]] | str | None]
# (user, groups, resourceAttributes, nonResourceAttributes) -> the reason it is allowed, or None
Authorizer = Callable[[str, Sequence[str], Mapping[str, Any] | None, Mapping[str, Any] | None], str | None]


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


def review_token(
    body: Mapping[str, Any],
    allow_tokens: Mapping[str, UserInfo],
    authenticator: Authenticator | None = None,
) -> dict[str, Any]:
    """The answered TokenReview: authenticated with the token's user info, or not."""
    spec = dict(body.get("spec") or {})
    token = str(spec.get("token") or "")
    audiences = [str(audience) for audience in spec.get("audiences") or []]
    user = allow_tokens.get(token) if token else None
    found = authenticator(token, audiences) if token and user is None and authenticator else None
    status: dict[str, Any]
    if user is not None:
        status = {"authenticated": True, "user": copy.deepcopy(dict(user))}
        if audiences:
            status["audiences"] = audiences
    elif isinstance(found, tuple):
        status = {"authenticated": True, "user": copy.deepcopy(found[0]), "audiences": list(found[1])}
    else:
        error = f"[invalid bearer token, {found}]" if isinstance(found, str) else "invalid bearer token"
        status = {"authenticated": False, "user": {}, "error": error}
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


def review_access(
    body: Mapping[str, Any], rules: Sequence[AccessRule], authorizer: Authorizer | None = None
) -> dict[str, Any]:
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
    reason = authorizer(user, groups, resource_attributes, non_resource_attributes) if authorizer else None
    if reason is not None:
        status = {"allowed": True, "reason": reason}
        return _answer(body, "SubjectAccessReview", "authorization.k8s.io/v1", spec, status)
    status = {"allowed": False, "reason": "no access rule or RBAC binding allows this request"}
    return _answer(body, "SubjectAccessReview", "authorization.k8s.io/v1", spec, status)


def review_own_access(
    body: Mapping[str, Any],
    user: Mapping[str, Any],
    rules: Sequence[AccessRule],
    authorizer: Authorizer | None = None,
) -> dict[str, Any]:
    """A SelfSubjectAccessReview: the SubjectAccessReview of the calling user (``kubectl auth can-i``)."""
    spec = dict(body.get("spec") or {})
    spec.update(user=user.get("username", ""), groups=list(user.get("groups") or []))
    answer = review_access({**body, "spec": spec}, rules, authorizer)
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
