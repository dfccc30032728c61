"""Which namespaces one operator release reconciles: its shard of the cluster's tenants.

``WATCH_NAMESPACES`` names namespaces (or globs such as ``team-*``); ``WATCH_NAMESPACE_SELECTOR``
is a label selector of namespaces, resolved here to the names that match it now. With both, a namespace must
match both. kopf then watches exactly those namespaces, so a release never sees, let alone changes, an
object of another shard. The runner looks again every :data:`RESOLVE_INTERVAL` seconds and restarts the
reconciler when the set changed (a namespace labelled or unlabelled).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from twilio_video_operator.kube.client import KubeClient
from twilio_video_operator.kube.resources import NAMESPACES

RESOLVE_INTERVAL = 10.0


def matches_patterns(namespace: str, patterns: Sequence[str]) -> bool:
    """Whether ``namespace`` matches one of ``patterns`` (names or globs such as ``team-*``); no patterns
    match every namespace."""
    return not patterns or any(fnmatch.fnmatchcase(namespace, pattern) for pattern in patterns)


def namespaces_to_list(patterns: Sequence[str]) -> list[str | None]:
    """What to list to see every namespace ``patterns`` match: each named namespace, or all of them
    (``None``) when there is no pattern or a pattern is a glob; filter the items with
    :func:`matches_patterns`."""
    if not patterns or any(any(char in pattern for char in "*?[") for pattern in patterns):
        return [None]
    return list(patterns)


async def shard_namespaces(kube: KubeClient, selector: str, patterns: Sequence[str] = ()) -> list[str]:
    """The namespaces labelled to match ``selector`` that also match ``patterns``, sorted."""
    found = await kube.list(NAMESPACES, label_selector=selector)
    names = {str((item.get("metadata") or {}).get("name") or "") for item in found}
    return sorted(name for name in names if name and matches_patterns(name, patterns))
