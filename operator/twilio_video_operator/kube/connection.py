"""How the operator logs in to Kubernetes: one kubeconfig file, ``$KUBECONFIG`` / ``~/.kube/config``, or the
in-cluster service account, without the ``kubernetes`` or ``pykube`` client libraries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kopf
import yaml

LOGIN_PRIORITY = 100  # above kopf's own fallbacks, so the chosen kubeconfig always wins


def connection_from_kubeconfig(path: Path, *, trust_env: bool = False) -> kopf.ConnectionInfo:
    """Credentials of the current context of one kubeconfig file (token, basic or client certificate)."""
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise kopf.LoginError(f"cannot read kubeconfig {path}: {exc}") from None
    if not isinstance(config, dict):
        raise kopf.LoginError(f"kubeconfig {path} is not a mapping")
    context_name = config.get("current-context")
    if not context_name:
        raise kopf.LoginError(f"kubeconfig {path} has no current-context")

    def entry(section: str, name: str, inner: str) -> dict[str, Any]:
        for item in config.get(section) or []:
            if isinstance(item, dict) and item.get("name") == name:
                return dict(item.get(inner) or {})
        raise kopf.LoginError(f"kubeconfig {path} has no {section[:-1]} named {name!r}")

    context = entry("contexts", context_name, "context")
    cluster = entry("clusters", context.get("cluster", ""), "cluster")
    user = entry("users", context.get("user", ""), "user") if context.get("user") else {}
    if not cluster.get("server"):
        raise kopf.LoginError(f"kubeconfig {path}: cluster {context.get('cluster')!r} has no server")
    base = path.parent

    def relative(value: str | None) -> str | None:
        return str(base / value) if value else None

    return kopf.ConnectionInfo(
        server=cluster["server"],
        ca_path=relative(cluster.get("certificate-authority")),
        ca_data=cluster.get("certificate-authority-data"),
        insecure=cluster.get("insecure-skip-tls-verify"),
        certificate_path=relative(user.get("client-certificate")),
        certificate_data=user.get("client-certificate-data"),
        private_key_path=relative(user.get("client-key")),
        private_key_data=user.get("client-key-data"),
        username=user.get("username"),
        password=user.get("password"),
        token=user.get("token"),
        default_namespace=context.get("namespace"),
        proxy_url=cluster.get("proxy-url"),
        trust_env=trust_env,
        priority=LOGIN_PRIORITY,
    )


def resolve_connection(kubeconfig: Path | None, settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """How the operator logs in to Kubernetes: the given kubeconfig file, else ``$KUBECONFIG`` or
    ``~/.kube/config``, else the in-cluster service account. Raises :class:`kopf.LoginError`."""
    trust_env = settings.networking.trust_env
    if kubeconfig is not None:
        return connection_from_kubeconfig(kubeconfig, trust_env=trust_env)
    try:
        if os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().exists():
            found = kopf.login_with_kubeconfig(settings=settings)
        else:
            found = kopf.login_with_service_account(settings=settings)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise kopf.LoginError(f"unusable kubeconfig: {exc}") from None
    if found is None:
        raise kopf.LoginError("no kubeconfig ($KUBECONFIG, ~/.kube/config) and no in-cluster service account")
    return found
