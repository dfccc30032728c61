"""The Kubernetes resources the operator reads and writes, and how their URLs are built."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from twilio_video_operator import API_GROUP, API_VERSION


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace is not None:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name is not None:
            parts.append(quote(name, safe=""))
            if subresource is not None:
                parts.append(subresource)
        return "/".join(parts)


VIDEOROOMS = Resource(API_GROUP, API_VERSION, "videorooms")
COMPOSITIONS = Resource(API_GROUP, API_VERSION, "compositions")
SIGNINGKEYROTATIONS = Resource(API_GROUP, API_VERSION, "signingkeyrotations")
SECRETS = Resource("", "v1", "secrets")
EVENTS = Resource("", "v1", "events")
TOKEN_REVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", namespaced=False)
SUBJECT_ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
