"""Which Twilio unique names a namespace may use on the operator's shared account (pure).

On the operator's own Twilio account every tenant shares one space of room names, so a namespace owns the
names that start with ``<namespace>:`` (the default ``uniqueName`` of a VideoRoom is ``<namespace>:<name>``).
A cluster admin may grant a namespace more prefixes (``TENANT_NAME_PREFIXES``). On a tenant's own account
(``credentialsRef``) every name of that account is the tenant's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NAMESPACE_SEPARATOR = ":"


@dataclass(frozen=True)
class NameRule:
    """The unique-name prefixes one namespace may use; ``None`` prefixes: any name (its own account)."""

    namespace: str
    prefixes: tuple[str, ...] | None

    def allows(self, unique_name: str | None) -> bool:
        if self.prefixes is None:
            return True
        if not unique_name:
            return False
        return any(unique_name.startswith(prefix) for prefix in self.prefixes)

    def describe(self) -> str:
        """How the rule reads in a condition message."""
        if self.prefixes is None:
            return "any name of the namespace's own Twilio account"
        quoted = ", ".join(repr(prefix) for prefix in self.prefixes)
        return f"names starting with {quoted}"


def name_rule(
    namespace: str, *, shared_account: bool, extra_prefixes: Mapping[str, Sequence[str]] | None = None
) -> NameRule:
    """The rule for ``namespace``: its own prefix plus the admin's grants on the shared account."""
    if not shared_account:
        return NameRule(namespace, None)
    granted = tuple((extra_prefixes or {}).get(namespace, ()))
    own = f"{namespace}{NAMESPACE_SEPARATOR}"
    return NameRule(namespace, (own, *(prefix for prefix in granted if prefix and prefix != own)))
