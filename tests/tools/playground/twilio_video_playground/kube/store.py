"""Object state with a real API server's write semantics, kept in kmock's ``objects`` array.

Every write is synchronous (no ``await`` inside), so it is atomic within the event loop: no locks.
Semantics: a global monotonically increasing ``resourceVersion``; ``uid``, ``creationTimestamp``,
``generation`` (custom objects and CRDs; +1 on spec changes only); 409 on stale resourceVersions; status
subresource separation; finalizers with ``deletionTimestamp``; ``generateName``; cascading deletion of
namespaces and CRDs; server-side pruning, defaulting and validation of custom objects; watch events with
a bounded per-resource history for resuming from a resourceVersion.
"""

from __future__ import annotations

import asyncio
import copy
import random
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kmock

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.admission import (
    NAME_ALPHABET,
    SERVER_FIELDS,
    admit_custom,
    check_name,
    check_no_new_finalizers,
    holders,
    is_crd,
    is_namespace,
    now_timestamp,
    prepare_builtin,
    spec_view,
)
from twilio_video_playground.kube.bodies import invalid_patch, patched_object_problem, shown_patch
from twilio_video_playground.kube.errors import ApiError, FieldError
from twilio_video_playground.kube.fieldmanagers import field_manager_for
from twilio_video_playground.kube.managedfields import (
    ConflictError,
    Entry,
    apply_conflict,
    decode_entries,
    encode_entries,
)
from twilio_video_playground.kube.patching import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchApplyError,
    PatchFormatError,
    PatchTooDeepError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from twilio_video_playground.kube.registry import (
    CRD_CLEANUP_FINALIZER,
    Registry,
    ResourceType,
    types_from_crd,
)
from twilio_video_playground.kube.selectors import Selection
from twilio_video_playground.kube.structured import MISSING

DEFAULT_MANAGER = "unknown"  # writes made without a request (CRDs loaded at start-up, namespaces)


class ExpiredError(Exception):
    """A watch asked to resume from a resourceVersion older than the kept event history."""


@dataclass
class WatchEvent:
    resource_version: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)
class Subscription:
    """One watcher's view: the initial objects or the replayed backlog, then live events."""

    key: kmock.resource
    initial: list[dict[str, Any]] | None
    backlog: list[WatchEvent]
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


@dataclass
class WriteResult:
    obj: dict[str, Any]
    dropped_fields: list[str] = field(default_factory=list)  # pruned unknown fields, for warnings


class ObjectStore:
    def __init__(
        self,
        objects: kmock.ObjectsArray,
        registry: Registry,
        *,
        event_history: int = 10000,
        versions_kept: int = 20,
    ) -> None:
        self._objects = objects
        self._registry = registry
        self.event_history = event_history
        self.versions_kept = versions_kept
        self._resource_version = 100
        self._resource_version_at_start = self._resource_version
        self._logs: dict[kmock.resource, deque[WatchEvent]] = defaultdict(deque)
        # A watch may resume only from what happened since the store started (a real server's watch cache
        # starts at its first list): older resourceVersions are 410 Gone.
        self._log_floor: dict[kmock.resource, int] = defaultdict(lambda: self._resource_version_at_start)
        self._subscriptions: dict[kmock.resource, set[Subscription]] = defaultdict(set)

    # --- reading ------------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> str:
        return str(self._resource_version)

    def _key(
        self, rt: ResourceType, namespace: str | None, name: str
    ) -> tuple[kmock.resource, str | None, str]:
        return (rt.storage_key, namespace if rt.namespaced else None, name)

    def _stored(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored state, read-only (never mutate it: write a modified deep copy instead)."""
        key = self._key(rt, namespace, name)
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else obj.raw

    def present(self, rt: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of the object as served in the requested version."""
        if rt.view is not None:
            obj = rt.view(obj)
        result: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind}
        result.update((key, copy.deepcopy(value)) for key, value in obj.items() if key not in result)
        return result

    def served(self, rt: ResourceType, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        """The object in the shape selectors see for ``rt`` (without copying when it is the stored one)."""
        return obj if rt.view is None else rt.view(obj)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        stored = self._stored(rt, namespace, name)
        return None if stored is None else self.present(rt, stored)

    def _live(
        self, key: kmock.resource, namespace: str | None = None
    ) -> list[tuple[str | None, str, dict[str, Any]]]:
        found = []
        for (resource, obj_namespace, name), obj in self._objects.items():
            if resource == key and not obj.deleted and (namespace is None or obj_namespace == namespace):
                found.append((obj_namespace, name, obj.raw))
        found.sort(key=lambda item: (item[0] or "", item[1]))
        return found

    def list_objects(
        self, rt: ResourceType, namespace: str | None, selection: Selection
    ) -> list[dict[str, Any]]:
        return [
            self.present(rt, raw)
            for _, _, raw in self._live(rt.storage_key, namespace if rt.namespaced else None)
            if selection.matches(self.served(rt, raw))
        ]

    def peek_objects(self, rt: ResourceType, namespace: str | None) -> list[Mapping[str, Any]]:
        """The stored objects as served, without copying them: read-only, for a test that polls many
        objects without holding up the API's event loop with deep copies."""
        scope = namespace if rt.namespaced else None
        return [self.served(rt, raw) for _, _, raw in self._live(rt.storage_key, scope)]

    # --- creating -----------------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        strict: bool = False,
        manager: str = DEFAULT_MANAGER,
        applied: list[Entry] | None = None,
    ) -> WriteResult:
        """POST (or an apply that creates: ``applied`` holds its managedFields entries)."""
        obj = self._check_body(rt, body)
        metadata = obj["metadata"]
        if rt.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        name = metadata.get("name")
        if not name:
            prefix = metadata.get("generateName")
            if not prefix:
                detail = "Required value: name or generateName is required"
                raise errors.invalid(
                    rt.kind, rt.group, "", [FieldError("metadata.name", "FieldValueRequired", detail)]
                )
            name = self._generate_name(rt, namespace, str(prefix))
            metadata["name"] = name
        name = str(name)
        check_name(rt, name, str(metadata.get("generateName") or ""))
        if rt.namespaced and namespace is not None:
            self._check_namespace_open(rt, namespace, name)
        if rt.custom:
            self._check_crd_open(rt)
        if self._stored(rt, namespace, name) is not None:
            raise errors.already_exists(rt.plural, rt.group, name)

        for key in (*SERVER_FIELDS, "resourceVersion", "selfLink", "managedFields"):
            metadata.pop(key, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_timestamp()
        if rt.has_generation:
            metadata["generation"] = 1
        if rt.custom and "status" in rt.subresources:
            obj.pop("status", None)
        prepare_builtin(self._registry, rt, None, obj)
        dropped = admit_custom(rt, obj, name, strict=strict)
        if applied is None:
            applied = field_manager_for(rt).update(
                [],
                MISSING,
                obj,
                manager=manager,
                api_version=rt.api_version,
                subresource=None,
                now=now_timestamp(),
            )
        self._set_managed_fields(obj, applied)
        if dry_run:
            return WriteResult(self.present(rt, obj), dropped)
        metadata["resourceVersion"] = self._next_resource_version()
        self._put(rt, namespace, name, obj)
        self._emit(rt, "ADDED", obj, None)
        self._after_write(rt, obj)
        return WriteResult(self.present(rt, obj), dropped)

    def _check_body(self, rt: ResourceType, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind not in (None, "", rt.kind):
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        if api_version not in (None, "", rt.api_version):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        if not isinstance(obj.get("metadata") or {}, dict):
            raise errors.bad_request("metadata must be a JSON object")
        obj["metadata"] = obj.get("metadata") or {}
        if rt.unview is not None:
            obj = rt.unview(obj)
        group = rt.group if rt.storage_group is None else rt.storage_group
        obj["apiVersion"] = f"{group}/{rt.storage_version}" if group else rt.storage_version
        obj["kind"] = rt.kind
        return obj

    def _generate_name(self, rt: ResourceType, namespace: str | None, prefix: str) -> str:
        for _ in range(16):
            name = prefix[:58] + "".join(random.choices(NAME_ALPHABET, k=5))
            if self._stored(rt, namespace, name) is None:
                return name
        raise ApiError(500, f"could not generate a unique name from generateName {prefix!r}")

    def _namespace_type(self) -> ResourceType:
        namespace_type = self._registry.get("", "v1", "namespaces")
        assert namespace_type is not None
        return namespace_type

    def _check_namespace_open(self, rt: ResourceType, namespace: str, name: str) -> None:
        stored = self._stored(self._namespace_type(), None, namespace)
        if stored is None:
            raise errors.not_found("namespaces", "", namespace)
        if stored["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f'{errors.qualified_resource(rt.plural, rt.group)} "{name}" is forbidden: unable to create '
                f"new content in namespace {namespace} because it is being terminated",
                details={
                    "name": name,
                    "kind": rt.plural,
                    "group": rt.group,
                    "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}],
                },
            )

    def _check_crd_open(self, rt: ResourceType) -> None:
        crd_type = self._registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None and rt.crd_name is not None
        crd = self._stored(crd_type, None, rt.crd_name)
        if crd is not None and crd["metadata"].get("deletionTimestamp"):
            raise ApiError(405, "create not allowed while custom resource definition is terminating")

    # --- updating -----------------------------------------------------------------------------------------

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        manager: str = DEFAULT_MANAGER,
    ) -> WriteResult:
        """PUT: the body replaces the object (or only its status, on ``/status``)."""
        current = self._require(rt, namespace, name)
        new = self._check_body(rt, body)
        metadata = new["metadata"]
        if metadata.get("name") not in (None, "", name):
            raise errors.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and metadata.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        resource_version = metadata.get("resourceVersion")
        if resource_version in (None, ""):
            if rt.custom:
                detail = "Invalid value: 0: must be specified for an update"
                error = FieldError("metadata.resourceVersion", "FieldValueInvalid", detail)
                raise errors.invalid(
                    rt.plural, rt.group, name, [error]
                )  # the resource, as the real one words it
        elif str(resource_version) != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, rt.group, name)
        return self._update(
            rt, namespace, name, current, new, subresource, dry_run=dry_run, strict=strict, manager=manager
        )

    def patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        manager: str = DEFAULT_MANAGER,
        force: bool = False,
    ) -> WriteResult:
        if patch_type == APPLY_PATCH:
            return self._apply(
                rt,
                namespace,
                name,
                patch,
                subresource,
                dry_run=dry_run,
                strict=strict,
                manager=manager,
                force=force,
            )
        current = self._require(rt, namespace, name)
        base = self.present(rt, current)
        try:
            if patch_type == JSON_PATCH:
                patched = apply_json_patch(base, patch)
            elif patch_type == MERGE_PATCH:
                patched = apply_merge_patch(base, patch)
            else:
                patched = apply_strategic_merge_patch(base, patch)
        except PatchFormatError as exc:  # the document's shape was checked on reading: an operation's fault
            raise ApiError(422, str(exc)) from exc
        except PatchTooDeepError as exc:
            raise invalid_patch(shown_patch(patch_type, patch, exc.doc), str(exc)) from exc
        except PatchApplyError as exc:
            raise ApiError(422, str(exc)) from exc
        problem = patched_object_problem(patched, group=rt.group, kind=rt.kind, custom=rt.custom)
        if problem is not None:
            if patch_type == STRATEGIC_MERGE_PATCH and problem.startswith("illegal base64"):
                problem = f"error decoding from json: {problem}"  # the unstructured converter's words
            raise invalid_patch(shown_patch(patch_type, patch, patched), problem)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patched object is not a JSON object")
        resource_version = (patched.get("metadata") or {}).get("resourceVersion")
        if (
            resource_version not in (None, "")
            and str(resource_version) != current["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(rt.plural, rt.group, name)
        new = self._check_body(rt, patched)
        return self._update(
            rt, namespace, name, current, new, subresource, dry_run=dry_run, strict=strict, manager=manager
        )

    def _apply(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        config: dict[str, Any],
        subresource: str | None,
        *,
        dry_run: bool,
        strict: bool,
        manager: str,
        force: bool,
    ) -> WriteResult:
        """Server-side apply: merge ``config`` into the object (creating it if missing) as ``manager``."""
        metadata = config.get("metadata") or {}
        if metadata.get("name") not in (None, "", name):
            raise errors.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and metadata.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        resource_version = metadata.get("resourceVersion")
        current = self._stored(rt, namespace, name)
        fields = field_manager_for(rt)
        options = {
            "manager": manager,
            "api_version": rt.api_version,
            "subresource": subresource,
            "now": now_timestamp(),
        }
        if current is None:
            if subresource is not None:
                raise errors.not_found(rt.plural, rt.group, name)
            if resource_version not in (None, ""):
                raise errors.conflict(rt.plural, rt.group, name)
            config = {**config, "metadata": {**metadata, "name": name}}
            try:
                merged, entries = fields.apply([], MISSING, config, force=force, **options)  # type: ignore[arg-type]
            except ConflictError as exc:
                raise apply_conflict(exc) from exc
            return self.create(rt, namespace, merged, dry_run=dry_run, strict=strict, applied=entries)
        if (
            resource_version not in (None, "")
            and str(resource_version) != current["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(rt.plural, rt.group, name)
        live = self.present(rt, current)
        entries = decode_entries(current["metadata"].get("managedFields")) or []
        try:
            merged, entries = fields.apply(entries, live, config, force=force, **options)  # type: ignore[arg-type]
        except ConflictError as exc:
            raise apply_conflict(exc) from exc
        merged.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        new = self._check_body(rt, merged)
        return self._update(
            rt, namespace, name, current, new, subresource, dry_run=dry_run, strict=strict, applied=entries
        )

    def _set_managed_fields(self, obj: dict[str, Any], entries: list[Entry]) -> None:
        encoded = encode_entries(entries)
        if encoded:
            obj["metadata"]["managedFields"] = encoded
        else:
            obj["metadata"].pop("managedFields", None)

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        current = self._stored(rt, namespace, name)
        if current is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return current

    def _update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        current: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        *,
        dry_run: bool,
        strict: bool,
        manager: str = DEFAULT_MANAGER,
        applied: list[Entry] | None = None,
    ) -> WriteResult:
        old_metadata = current["metadata"]
        given = None if subresource is not None else decode_entries(new["metadata"].get("managedFields"))
        if subresource == "status":
            status_only = copy.deepcopy(current)
            if "status" in new:
                status_only["status"] = new["status"]
            else:
                status_only.pop("status", None)
            status_only["apiVersion"] = new["apiVersion"]
            new = status_only
        else:
            metadata = new["metadata"]
            for key in (*SERVER_FIELDS, "name", "namespace"):
                if key in old_metadata:
                    metadata[key] = copy.deepcopy(old_metadata[key])
                else:
                    metadata.pop(key, None)
            if "status" in rt.subresources:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            if old_metadata.get("deletionTimestamp"):
                check_no_new_finalizers(rt, name, old_metadata, metadata)
        prepare_builtin(self._registry, rt, current, new)
        dropped = admit_custom(rt, new, name, strict=strict)
        if rt.has_generation and subresource is None and spec_view(rt, current) != spec_view(rt, new):
            new["metadata"]["generation"] = int(old_metadata.get("generation") or 0) + 1
        new["metadata"]["resourceVersion"] = old_metadata["resourceVersion"]
        if applied is None:  # an update: its manager owns what it changed (on top of the given entries)
            base = given or decode_entries(old_metadata.get("managedFields")) or []
            applied = field_manager_for(rt).update(
                base,
                self.present(rt, current),
                self.present(rt, new),
                manager=manager,
                api_version=rt.api_version,
                subresource=subresource,
                now=now_timestamp(),
            )
        self._set_managed_fields(new, applied)
        if new == current:  # a no-op write changes nothing, not even the resourceVersion
            return WriteResult(self.present(rt, current), dropped)
        if dry_run:
            return WriteResult(self.present(rt, new), dropped)
        self._commit(rt, namespace, name, new, current)
        return WriteResult(self.present(rt, new), dropped)

    def _commit(
        self, rt: ResourceType, namespace: str | None, name: str, new: dict[str, Any], old: dict[str, Any]
    ) -> None:
        """Store a modified object; remove it if it is being deleted and nothing holds it any more."""
        new["metadata"]["resourceVersion"] = self._next_resource_version()
        self._put(rt, namespace, name, new)
        self._emit(rt, "MODIFIED", new, old)
        self._after_write(rt, new)
        if new["metadata"].get("deletionTimestamp") and not holders(rt, new):
            self._remove(rt, namespace, name)

    # --- deleting -----------------------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete or mark for deletion; returns the last state and whether the object is gone."""
        current = self._require(rt, namespace, name)
        metadata = current["metadata"]
        for field_name, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            expected = (preconditions or {}).get(field_name)
            if expected not in (None, "") and str(expected) != str(metadata.get(field_name)):
                why = (
                    f"Precondition failed: {label} in precondition: {expected}, "
                    f"{label} in object meta: {metadata.get(field_name)}"
                )
                raise errors.conflict(rt.plural, rt.group, name, why)
        if holders(rt, current):
            if metadata.get("deletionTimestamp"):
                return self.present(rt, current), False
            marked = copy.deepcopy(current)
            marked_metadata = marked["metadata"]
            marked_metadata["deletionTimestamp"] = now_timestamp()
            marked_metadata["deletionGracePeriodSeconds"] = 0
            if marked_metadata.get("generation"):
                marked_metadata["generation"] = int(marked_metadata["generation"]) + 1
            if is_namespace(rt):
                marked.setdefault("status", {})["phase"] = "Terminating"
            if dry_run:
                return self.present(rt, marked), False
            self._commit(rt, namespace, name, marked, current)
            self._cascade(rt, marked)
            remaining = self._stored(rt, namespace, name)
            return self.present(rt, remaining or marked), remaining is None
        if dry_run:
            return self.present(rt, current), True
        return self.present(rt, self._remove(rt, namespace, name)), True

    def _remove(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        final = copy.deepcopy(self._require(rt, namespace, name))
        final["metadata"]["resourceVersion"] = self._next_resource_version()
        key = self._key(rt, namespace, name)
        self._objects[key].history.append(final)
        self._objects[key].delete()
        self._emit(rt, "DELETED", final, None)
        if is_crd(rt):
            self._registry.remove_crd(name)
        if rt.namespaced and namespace is not None:
            self._finalize_namespace(namespace)
        if rt.crd_name is not None:
            self._finalize_crd(rt.crd_name)
        return final

    def _cascade(self, rt: ResourceType, obj: Mapping[str, Any]) -> None:
        """Deleting a namespace deletes its contents; deleting a CRD deletes its objects."""
        name = str(obj["metadata"]["name"])
        if is_namespace(rt):
            for resource_type in self._storage_types():
                for namespace, item_name, _ in self._live(resource_type.storage_key, name):
                    if self._stored(resource_type, namespace, item_name) is not None:
                        self.delete(resource_type, namespace, item_name)
            self._finalize_namespace(name)
        elif is_crd(rt):
            for resource_type in self._storage_types():
                if resource_type.crd_name == name:
                    for namespace, item_name, _ in self._live(resource_type.storage_key):
                        if self._stored(resource_type, namespace, item_name) is not None:
                            self.delete(resource_type, namespace, item_name)
            self._finalize_crd(name)

    def _storage_types(self) -> list[ResourceType]:
        """One served type per storage (objects of all versions of a CRD live in one place)."""
        unique: dict[kmock.resource, ResourceType] = {}
        for resource_type in self._registry.all():
            unique.setdefault(resource_type.storage_key, resource_type)
        return list(unique.values())

    def _finalize_namespace(self, namespace: str) -> None:
        namespace_type = self._namespace_type()
        stored = self._stored(namespace_type, None, namespace)
        if stored is None or not stored["metadata"].get("deletionTimestamp"):
            return
        if any(self._live(rt.storage_key, namespace) for rt in self._storage_types() if rt.namespaced):
            return
        if (stored.get("spec") or {}).get("finalizers"):
            finalized = copy.deepcopy(stored)
            finalized["spec"]["finalizers"] = []
            self._commit(namespace_type, None, namespace, finalized, stored)

    def _finalize_crd(self, crd_name: str) -> None:
        crd_type = self._registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        stored = self._stored(crd_type, None, crd_name)
        if stored is None or not stored["metadata"].get("deletionTimestamp"):
            return
        if any(self._live(rt.storage_key) for rt in self._storage_types() if rt.crd_name == crd_name):
            return
        finalizers = stored["metadata"].get("finalizers") or []
        if CRD_CLEANUP_FINALIZER in finalizers:
            finalized = copy.deepcopy(stored)
            finalized["metadata"]["finalizers"] = [f for f in finalizers if f != CRD_CLEANUP_FINALIZER]
            self._commit(crd_type, None, crd_name, finalized, stored)

    def _after_write(self, rt: ResourceType, obj: Mapping[str, Any]) -> None:
        if is_crd(rt) and not obj["metadata"].get("deletionTimestamp"):
            self._registry.replace_crd(str(obj["metadata"]["name"]), types_from_crd(obj))

    def apply_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a CRD directly (not over HTTP), e.g. when loading manifests at start-up."""
        crd_type = self._registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_type is not None
        name = str((crd.get("metadata") or {}).get("name") or "")
        current = self._stored(crd_type, None, name) if name else None
        if current is None:
            return self.create(crd_type, None, dict(crd)).obj
        body = copy.deepcopy(dict(crd))
        body.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.replace(crd_type, None, name, body).obj

    # --- storage and events -------------------------------------------------------------------------------

    def _next_resource_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    def _put(self, rt: ResourceType, namespace: str | None, name: str, obj: dict[str, Any]) -> None:
        key = self._key(rt, namespace, name)
        if key not in self._objects:
            self._objects[key] = obj
            return
        history = self._objects[key].history
        history.append(obj)
        if len(history) > self.versions_kept:
            del history[: len(history) - self.versions_kept]

    def _emit(
        self, rt: ResourceType, event_type: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        key = rt.storage_key
        event = WatchEvent(int(obj["metadata"]["resourceVersion"]), event_type, copy.deepcopy(obj), old)
        log = self._logs[key]
        log.append(event)
        if len(log) > self.event_history:
            self._log_floor[key] = log.popleft().resource_version
        for subscription in list(self._subscriptions[key]):
            subscription.queue.put_nowait(event)

    def subscribe(self, rt: ResourceType, since: int | None) -> Subscription:
        """Start watching: from now with the current objects (``since`` None), or resuming after ``since``."""
        key = rt.storage_key
        if since is None:
            subscription = Subscription(key, [copy.deepcopy(raw) for _, _, raw in self._live(key)], [])
        else:
            if since < self._log_floor[key]:
                raise ExpiredError(f"too old resource version: {since} ({self._log_floor[key]})")
            subscription = Subscription(key, None, [e for e in self._logs[key] if e.resource_version > since])
        self._subscriptions[key].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions[subscription.key].discard(subscription)

    def close_watches(self) -> None:
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.queue.put_nowait(None)
