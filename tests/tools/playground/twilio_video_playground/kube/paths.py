"""Parsing of Kubernetes API URL paths into what they address.

kmock's own parser treats ``/api/v1/namespaces/NAME`` as "anything in namespace NAME"; a real API server
treats it as the Namespace object NAME. This parser follows the real server's grammar::

    /api/v1                                   core version discovery
    /apis/GROUP                               group discovery
    /apis/GROUP/VERSION                       version discovery
    {prefix}/PLURAL[/NAME[/SUBRESOURCE]]      cluster-wide collection, cluster-scoped object
    {prefix}/namespaces/NS/PLURAL[/NAME[/SUBRESOURCE]]

where ``{prefix}`` is ``/api/v1`` or ``/apis/GROUP/VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Subresources of the Namespace object itself: /api/v1/namespaces/NAME/status is not a collection.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True)
class GroupPath:
    """``/apis/GROUP``: the discovery document of one API group."""

    group: str


@dataclass(frozen=True)
class ApiPath:
    """A version discovery path (``plural`` is None) or a resource path."""

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_api_path(path: str) -> GroupPath | ApiPath | None:
    """Parse a (percent-decoded) URL path; None for anything outside ``/api/v1`` and ``/apis``."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) == 2 and parts[0] == "apis":
        return GroupPath(parts[1])
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None

    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return ApiPath(group, version)
    if len(rest) > 3:
        return None
    plural = rest[0]
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) >= 3 else None
    return ApiPath(group, version, plural, namespace, name, subresource)
