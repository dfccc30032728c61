"""The official ``kubernetes`` Python client, as the end-to-end tests' independent view of the cluster.

The operator talks to Kubernetes with its own small client; a test that checked it with the same code
could not tell a bug in one from a bug in the other. The end-to-end harnesses read and write the custom
resources, Secrets, Namespaces and Events through this one instead, the client the Kubernetes project
ships, logged in with the same kubeconfig. It is synchronous, so each call runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

GROUP = "video.openclaw.io"
VERSION = "v1alpha1"


class OfficialClient:
    """Custom objects, Secrets, Namespaces and Events through the official client (async wrappers)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self.custom = k8s.CustomObjectsApi(self.api_client)
        self.core = k8s.CoreV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    def _plain(self, obj: Any) -> Any:
        """A typed answer as the API's JSON (camelCase keys), like the custom objects' answers."""
        return self.api_client.sanitize_for_serialization(obj)

    # --- custom objects ---------------------------------------------------------------------------

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return dict(
            await asyncio.to_thread(
                self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, dict(body)
            )
        )

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                await asyncio.to_thread(
                    self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch (the client sends one for a mapping body)."""
        return dict(
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                dict(patch),
            )
        )

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A merge patch of the status subresource."""
        return dict(
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": dict(status)},
            )
        )

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )

    async def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural
        )
        return list(found.get("items") or [])

    # --- core objects -----------------------------------------------------------------------------

    async def create_namespace(self, name: str) -> None:
        body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name))
        await asyncio.to_thread(self.core.create_namespace, body)

    async def create_secret(
        self, namespace: str, name: str, values: Mapping[str, str], *, labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
        body = k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name, labels=dict(labels or {})), data=data)
        created = await asyncio.to_thread(self.core.create_namespaced_secret, namespace, body)
        return dict(self._plain(created))

    async def put_secret(self, namespace: str, name: str, values: Mapping[str, str]) -> None:
        """Create the Secret with ``values``, or set them in the existing one."""
        data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
        try:
            await asyncio.to_thread(self.core.patch_namespaced_secret, name, namespace, {"data": data})
        except ApiException as exc:
            if exc.status != 404:
                raise
            await self.create_secret(namespace, name, values)

    async def issue_service_account_token(self, namespace: str, account: str, rule: Mapping[str, Any]) -> str:
        """A ServiceAccount, a Role with ``rule`` and its RoleBinding, and a token the API server issues
        for the account (TokenRequest)."""
        rbac = k8s.RbacAuthorizationV1Api(self.api_client)
        role = f"{account}-token-minter"
        account_body = k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name=account))
        await asyncio.to_thread(self.core.create_namespaced_service_account, namespace, account_body)
        role_body = {"metadata": {"name": role}, "rules": [dict(rule)]}
        await asyncio.to_thread(rbac.create_namespaced_role, namespace, role_body)
        binding = {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
        await asyncio.to_thread(rbac.create_namespaced_role_binding, namespace, binding)
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[]))
        issued = await asyncio.to_thread(
            self.core.create_namespaced_service_account_token, account, namespace, request
        )
        return str(issued.status.token)

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, decoded; ``None`` when there is no such Secret."""
        try:
            secret = await asyncio.to_thread(self.core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}

    async def events(self, namespace: str) -> list[dict[str, Any]]:
        found = await asyncio.to_thread(self.core.list_namespaced_event, namespace)
        return [dict(self._plain(item)) for item in found.items]
