"""The HTTP face of the embedded API: a kmock ``KubernetesEmulator`` that serves like a real API server.

Requests first meet any reactions declared with kmock's DSL (``emulator['get /api/v1/...'] << 500``), so
tests can inject faults; everything else is served here from :class:`ObjectStore`, with discovery,
selectors, paging, Tables, watch streams and canonical ``Status`` errors.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal.rendering import ReactionMismatchError, StreamingError

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.bodies import read_delete_options, read_object, read_patch
from twilio_video_playground.kube.decoding import MAX_BODY_BYTES, DecodeError, parse_json
from twilio_video_playground.kube.errors import ApiError, qualified_resource
from twilio_video_playground.kube.fieldmanagers import (
    check_patch_options,
    manager_name,
    read_apply_configuration,
)
from twilio_video_playground.kube.openapi import OpenApiDocuments
from twilio_video_playground.kube.openapi_serving import serve_openapi
from twilio_video_playground.kube.patching import APPLY_PATCH, PATCH_TYPES
from twilio_video_playground.kube.paths import ApiPath, GroupPath, parse_api_path
from twilio_video_playground.kube.rbac import authorize
from twilio_video_playground.kube.registry import RBAC_GROUP, Registry, ResourceType
from twilio_video_playground.kube.reviews import (
    ANONYMOUS,
    SUPERUSER_GROUP,
    UNSECURED,
    AccessRule,
    UserInfo,
    review_access,
    review_own_access,
    review_token,
    validate_access_review,
)
from twilio_video_playground.kube.selectors import (
    FieldRequirement,
    Selection,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from twilio_video_playground.kube.serviceaccounts import ServiceAccountTokens
from twilio_video_playground.kube.store import ObjectStore
from twilio_video_playground.kube.tables import render_table
from twilio_video_playground.kube.watching import WatchStream

logger = logging.getLogger(__name__)

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public")
SERVER_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def request_verb(method: str, name: str | None, params: Mapping[str, str]) -> str:
    """The Kubernetes verb of a resource request (get, list, watch, create, update, patch, delete...)."""
    method = method.upper()
    if method == "GET":
        if params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return verbs.get(method, method.lower())


def _action(verb: str) -> kmock.action | None:
    actions = {
        "watch": kmock.action.WATCH,
        "get": kmock.action.FETCH,
        "list": kmock.action.LIST,
        "create": kmock.action.CREATE,
        "update": kmock.action.UPDATE,
        "patch": kmock.action.UPDATE,
        "delete": kmock.action.DELETE,
    }
    return actions.get(verb)


def _header(request: kmock.Request, name: str) -> str:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def _read_body(raw_request: aiohttp.web.BaseRequest) -> bytes:
    """The request body, or a 413 past the API server's limit (nothing more is read then)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await raw_request.content.read(65536):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"Request entity too large: limit is {MAX_BODY_BYTES}")
        chunks.append(chunk)
    return b"".join(chunks)


def _kmock_data(body: bytes) -> Any:
    """The decoded body for kmock's matching and assertions, when it is JSON this server would read."""
    try:
        return parse_json(body) if body else None
    except DecodeError:
        return None


class StoreRbacObjects:
    """The RBAC objects of the store, for :func:`twilio_video_playground.kube.rbac.authorize`."""

    def __init__(self, store: ObjectStore, registry: Registry) -> None:
        self._store = store
        self._registry = registry

    def _type(self, plural: str) -> ResourceType:
        resource_type = self._registry.get(RBAC_GROUP, "v1", plural)
        assert resource_type is not None
        return resource_type

    def list(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        return self._store.list_objects(self._type(plural), namespace, Selection(namespace=namespace))

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._store.get(self._type(plural), namespace, name)


@attrs.define(kw_only=True)
class KubernetesApiEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator completed with the behaviour of a real API server."""

    allow_tokens: dict[str, UserInfo] = attrs.field(factory=dict)
    rbac_rules: list[AccessRule] = attrs.field(factory=list)
    requests_kept: int = 1000
    server_address: str = "127.0.0.1:443"
    clock: Callable[[], float] = time.time  # when ServiceAccount tokens are issued and expire
    request_counts: Counter[tuple[str, str]] = attrs.field(factory=Counter, init=False)
    registry: Registry = attrs.field(init=False)
    store: ObjectStore = attrs.field(init=False)
    openapi: OpenApiDocuments = attrs.field(init=False)
    service_account_tokens: ServiceAccountTokens = attrs.field(factory=ServiceAccountTokens, init=False)
    _rbac_objects: StoreRbacObjects = attrs.field(init=False)
    _serial: int = attrs.field(default=0, init=False)
    _stopping: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.registry = Registry(self.resources)
        self.store = ObjectStore(self.objects, self.registry)
        self.openapi = OpenApiDocuments(self.registry)
        self._rbac_objects = StoreRbacObjects(self.store, self.registry)
        namespace_type = self.registry.get("", "v1", "namespaces")
        assert namespace_type is not None
        for namespace in INITIAL_NAMESPACES:
            self.store.create(namespace_type, None, {"metadata": {"name": namespace}})

    # --- authentication and authorization ---------------------------------------------------------------

    def _uid_of(self, kind: str, namespace: str, name: str) -> str | None:
        plural = {"ServiceAccount": "serviceaccounts", "Secret": "secrets"}[kind]
        resource_type = self.registry.get("", "v1", plural)
        assert resource_type is not None
        found = self.store.get(resource_type, namespace, name)
        return str(found["metadata"].get("uid", "")) if found is not None else None

    def authenticate(
        self, token: str, audiences: Sequence[str] = ()
    ) -> tuple[UserInfo, list[str]] | str | None:
        """A ServiceAccount token this server issued: its user and the audiences it is good for among
        ``audiences`` (empty: the API server's own), an error text when it no longer authenticates, or None
        for a token this server never issued."""
        return self.service_account_tokens.authenticate(token, audiences, self.clock(), self._uid_of)

    def authorize(
        self,
        user: str,
        groups: Sequence[str],
        resource_attributes: Mapping[str, Any] | None,
        non_resource_attributes: Mapping[str, Any] | None,
    ) -> str | None:
        """Why the RBAC objects in the store allow the request, or None."""
        return authorize(self._rbac_objects, user, groups, resource_attributes, non_resource_attributes)

    def _user_of(self, request: kmock.Request) -> UserInfo:
        """Who sends ``request``: an ``allow_tokens`` user or the ServiceAccount of an issued token;
        anonymous for other tokens; a superuser without credentials (see :data:`UNSECURED`). A superuser
        may impersonate (``Impersonate-User``/``Impersonate-Group``: ``kubectl auth can-i --as``)."""
        credentials = _header(request, "Authorization")
        user = UNSECURED
        if credentials:
            token = credentials.removeprefix("Bearer ").strip()
            found = self.authenticate(token) if token not in self.allow_tokens else None
            user = self.allow_tokens.get(token) or (found[0] if isinstance(found, tuple) else ANONYMOUS)
        impersonated = _header(request, "Impersonate-User")
        if not impersonated:
            return user
        if SUPERUSER_GROUP not in (user.get("groups") or []):
            raise ApiError(
                403,
                f'users "{impersonated}" is forbidden: User "{user.get("username", "")}" cannot impersonate '
                'resource "users" in API group "" at the cluster scope',
            )
        raw = request._raw_request
        groups = list(raw.headers.getall("Impersonate-Group", [])) if raw is not None else []
        service_account = impersonated.split(":")
        if not groups and len(service_account) == 4 and impersonated.startswith("system:serviceaccount:"):
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{service_account[2]}"]
        if "system:authenticated" not in groups:
            groups.append("system:authenticated")
        return {"username": impersonated, "groups": groups}

    def open_watches(self) -> None:
        """Let watch streams run (again) until :meth:`stop_watches`."""
        self._stopping = False

    def stop_watches(self) -> None:
        """End every open watch stream (before the HTTP server shuts down)."""
        self._stopping = True
        self.store.close_watches()

    # --- request intake (kmock's path parser treats /api/v1/namespaces/X as "namespace X") -------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            body = await _read_body(raw_request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        parsed = parse_api_path(raw_request.path)
        params = dict(raw_request.query)
        path = parsed if isinstance(parsed, ApiPath) else None
        verb = request_verb(raw_request.method, path.name if path else None, params)
        if path is not None and path.plural:
            resource_name = qualified_resource(path.plural, path.group)
            resource_name += f"/{path.subresource}" if path.subresource else ""
            self.request_counts[(verb, resource_name)] += 1
        else:
            self.request_counts[(raw_request.method.lower(), raw_request.path)] += 1
        data = _kmock_data(body)
        request = kmock.Request(
            id=self._serial,
            raw_request=raw_request,
            method=raw_request.method,
            url=raw_request.url,
            params=params,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            body=body,
            text=body.decode("utf-8", "replace"),
            data=data,
            action=_action(verb) if path is not None and path.plural else None,
            resource=kmock.resource(path.group, path.version, path.plural) if path is not None else None,
            namespace=path.namespace if path else None,
            name=path.name if path else None,
            subresource=path.subresource if path else None,
        )
        self._serial += 1
        self._requests.append(request)
        if len(self._requests) > 2 * self.requests_kept:
            del self._requests[: -self.requests_kept]
        try:
            response: aiohttp.web.StreamResponse = await self._handle(request)
            return response
        except StreamingError as exc:  # a DSL reaction's stream failed after its headers were sent
            raw_response: aiohttp.web.StreamResponse = exc.args[0]
            cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            await self._stream_error(cause, raw_response)
            await raw_response.write_eof()
            return raw_response
        except Exception as exc:  # incl. exceptions fed to DSL reactions, e.g. kmock.KubernetesError
            if not isinstance(exc, ApiError | kmock.KubernetesError):
                logger.exception("Internal error while serving %s %s", raw_request.method, raw_request.path)
            if self._errors:
                self._errors[-1].append(exc)
            return await self._render_error(exc)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        reacted = await self._react(request)
        if reacted is not None:
            return reacted
        try:
            return await self._emulate(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, ApiError):
            return _json(exc.status(), exc.code)
        if isinstance(exc, kmock.KubernetesError):
            error = ApiError(exc.status, exc.message or repr(exc), reason=exc.reason)
            return _json(error.status(), error.code)
        return _json(ApiError(500, repr(exc)).status(), 500)

    async def _react(self, request: kmock.Request) -> aiohttp.web.StreamResponse | None:
        """Serve a request from a kmock DSL reaction of normal or higher priority, if one matches."""
        payloads = [p for p in self._payloads if not p.priorities or p.priorities[0] != -math.inf]
        if not payloads:
            return None
        depth = max(len(p.priorities) for p in payloads)
        ordered = sorted(
            payloads, key=lambda p: tuple(-x for x in p.priorities) + (0,) * (depth - len(p.priorities))
        )
        for payload in ordered:
            if request in payload._source and not payload._disabled.is_set():
                try:
                    response: aiohttp.web.StreamResponse = await payload(request)
                    return response
                except ReactionMismatchError:
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None

    # --- routing ------------------------------------------------------------------------------------------

    async def _emulate(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path
        method = str(request.method.value).upper()
        parsed = parse_api_path(path)
        if isinstance(parsed, ApiPath) and parsed.plural is not None:
            resource_type = self.registry.get(parsed.group, parsed.version, parsed.plural)
            if resource_type is None:
                raise errors.path_not_found()
            return await self._emulate_resource(request, resource_type, parsed)
        if method != "GET":
            if path in ("/", "/version", "/version/", "/api", "/apis") or parsed is not None:
                raise errors.method_not_allowed()
            raise errors.path_not_found()
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        served = serve_openapi(self.openapi, path, request.params, _header(request, "Accept"))
        if served is not None:
            return served
        document = self._discovery(path, parsed)
        if document is None:
            raise errors.path_not_found()
        return _json(document)

    def _discovery(self, path: str, parsed: GroupPath | ApiPath | None) -> dict[str, Any] | None:
        if path in ("", "/"):
            paths = {"/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"}
            paths.update(("/openapi/v2", "/openapi/v3", "/openapi/v3/"))
            for group in self.registry.groups():
                paths.add(f"/apis/{group}")
                paths.update(f"/apis/{group}/{version}" for version in self.registry.versions_of(group))
            return {"paths": sorted(paths)}
        if path in ("/version", "/version/"):
            return dict(SERVER_VERSION)
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                ],
            }
        if path == "/apis":
            return self.registry.api_group_list()
        if isinstance(parsed, GroupPath):
            return self.registry.api_group(parsed.group) if parsed.group in self.registry.groups() else None
        if isinstance(parsed, ApiPath):
            return self.registry.api_resource_list(parsed.group, parsed.version)
        return None

    async def _emulate_resource(
        self, request: kmock.Request, rt: ResourceType, path: ApiPath
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        verb = request_verb(str(request.method.value), path.name, params)
        if path.namespace is not None and not rt.namespaced:
            raise errors.path_not_found()
        if path.name is not None and rt.namespaced and path.namespace is None:
            raise errors.path_not_found()
        if path.subresource is not None:
            if path.subresource not in rt.subresources:
                raise errors.path_not_found()
            if verb not in rt.subresource(path.subresource).verbs:
                raise errors.method_not_allowed()
            if (rt.group, rt.plural, path.subresource) == ("", "serviceaccounts", "token"):
                return self._create_token(request, rt, path)
        elif verb not in rt.verbs:
            raise errors.method_not_allowed()
        if verb in ("list", "watch", "deletecollection"):
            selection = self._selection(rt, path, params)
            if verb == "list":
                return self._emulate_list(request, rt, path.namespace, selection)
            if verb == "watch":
                return await self._emulate_watch(request, rt, selection)
            return self._emulate_delete_collection(request, rt, path.namespace, selection)
        if verb == "get":
            assert path.name is not None
            obj = self.store.get(rt, path.namespace, path.name)
            if obj is None:
                raise errors.not_found(rt.plural, rt.group, path.name)
            if self._wants_table(request):
                return _json(self._table(request, rt, [obj], obj["metadata"].get("resourceVersion", "")))
            return _json(obj)
        return self._emulate_write(request, rt, path, verb)

    # --- writes -------------------------------------------------------------------------------------------

    def _emulate_write(
        self, request: kmock.Request, rt: ResourceType, path: ApiPath, verb: str
    ) -> aiohttp.web.Response:
        params = request.params
        content_type = _header(request, "Content-Type")
        dry_run = params.get("dryRun") == "All"
        validation = params.get("fieldValidation", "Warn")
        strict = validation == "Strict"
        manager = manager_name(params.get("fieldManager"), _header(request, "User-Agent"))
        body: Any = None
        if verb in ("create", "update"):
            kind = rt.subresource(path.subresource).kind if path.subresource else rt.kind
            body = read_object(
                request.body,
                content_type,
                group=rt.group,
                version=rt.version,
                kind=kind or rt.kind,
                custom=rt.custom,
            )
        if verb == "create":
            if path.name is not None:
                raise errors.method_not_allowed()
            if (rt.group, rt.plural) == ("authentication.k8s.io", "tokenreviews"):
                return _json(review_token(body, self.allow_tokens, self.authenticate), 201)
            if (rt.group, rt.plural) == ("authorization.k8s.io", "subjectaccessreviews"):
                problems = validate_access_review(body)
                if problems:
                    raise errors.invalid(rt.kind, rt.group, "", problems)
                return _json(review_access(body, self.rbac_rules, self.authorize), 201)
            if (rt.group, rt.plural) == ("authorization.k8s.io", "selfsubjectaccessreviews"):
                user = self._user_of(request)
                return _json(review_own_access(body, user, self.rbac_rules, self.authorize), 201)
            if rt.namespaced and path.namespace is None:
                raise errors.method_not_allowed()
            result = self.store.create(
                rt, path.namespace, body, dry_run=dry_run, strict=strict, manager=manager
            )
            return _json(result.obj, 201, self._warnings(result.dropped_fields, validation))
        if path.name is None:
            raise errors.method_not_allowed()
        if verb == "update":
            result = self.store.replace(
                rt,
                path.namespace,
                path.name,
                body,
                subresource=path.subresource,
                dry_run=dry_run,
                strict=strict,
                manager=manager,
            )
            return _json(result.obj, 200, self._warnings(result.dropped_fields, validation))
        if verb == "patch":
            patch_type = content_type.split(";")[0].strip().lower()
            if patch_type not in PATCH_TYPES:
                raise ApiError(
                    415,
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"{', '.join(PATCH_TYPES)}",
                )
            force = check_patch_options(patch_type, params)
            if patch_type == APPLY_PATCH:
                kind = rt.subresource(path.subresource).kind if path.subresource else rt.kind
                patch = read_apply_configuration(request.body, rt, kind or rt.kind)
            else:
                patch = read_patch(request.body, patch_type)
            existed = self.store.get(rt, path.namespace, path.name) is not None
            result = self.store.patch(
                rt,
                path.namespace,
                path.name,
                patch_type,
                patch,
                subresource=path.subresource,
                dry_run=dry_run,
                strict=strict,
                manager=manager,
                force=force,
            )
            code = 200 if existed else 201
            return _json(result.obj, code, self._warnings(result.dropped_fields, validation))
        if verb == "delete":
            options = read_delete_options(request.body, content_type)
            dry_run = dry_run or "All" in (options.get("dryRun") or [])
            obj, gone = self.store.delete(
                rt, path.namespace, path.name, preconditions=options.get("preconditions"), dry_run=dry_run
            )
            if gone and not rt.custom and rt.plural not in ("namespaces", "customresourcedefinitions"):
                details = {"name": path.name, "kind": rt.plural, "uid": obj["metadata"].get("uid", "")}
                if rt.group:
                    details["group"] = rt.group
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
                return _json({**status, "details": details})
            return _json(obj)
        raise errors.method_not_allowed()

    def _create_token(self, request: kmock.Request, rt: ResourceType, path: ApiPath) -> aiohttp.web.Response:
        """``POST .../serviceaccounts/NAME/token``: a TokenRequest for an existing ServiceAccount."""
        assert path.name is not None and path.namespace is not None
        service_account = self.store.get(rt, path.namespace, path.name)
        if service_account is None:
            raise errors.not_found(rt.plural, rt.group, path.name)
        body = read_object(
            request.body,
            _header(request, "Content-Type"),
            group="authentication.k8s.io",
            version="v1",
            kind="TokenRequest",
            custom=False,
        )
        answer = self.service_account_tokens.issue(service_account, body, self.clock(), self._uid_of)
        return _json(answer, 201)

    def _warnings(self, dropped: list[str], validation: str) -> dict[str, str] | None:
        if not dropped or validation != "Warn":
            return None
        return {"Warning": ", ".join(f'299 - "unknown field \\"{field}\\""' for field in dropped)}

    def _emulate_delete_collection(
        self, request: kmock.Request, rt: ResourceType, namespace: str | None, selection: Selection
    ) -> aiohttp.web.Response:
        options = read_delete_options(request.body, _header(request, "Content-Type"))
        dry_run = request.params.get("dryRun") == "All" or "All" in (options.get("dryRun") or [])
        deleted = []
        for obj in self.store.list_objects(rt, namespace, selection):
            metadata = obj["metadata"]
            if self.store.get(rt, metadata.get("namespace"), metadata["name"]) is not None:
                deleted.append(
                    self.store.delete(rt, metadata.get("namespace"), metadata["name"], dry_run=dry_run)[0]
                )
        metadata = {"resourceVersion": self.store.resource_version}
        return _json(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata, "items": deleted}
        )

    # --- reads --------------------------------------------------------------------------------------------

    def _selection(self, rt: ResourceType, path: ApiPath, params: Mapping[str, str]) -> Selection:
        try:
            labels = parse_label_selector(params.get("labelSelector", ""))
            fields = parse_field_selector(
                params.get("fieldSelector", ""), rt.selectable_fields, custom=rt.custom
            )
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        if path.name is not None:  # a watch on a single object: /.../NAME?watch=true
            fields.append(FieldRequirement("metadata.name", "=", path.name))
        return Selection(namespace=path.namespace, labels=tuple(labels), fields=tuple(fields))

    def _wants_table(self, request: kmock.Request) -> bool:
        accept = _header(request, "Accept").replace(" ", "")
        return "as=Table" in accept and "g=meta.k8s.io" in accept

    def _table(
        self, request: kmock.Request, rt: ResourceType, objects: list[dict[str, Any]], resource_version: str
    ) -> dict[str, Any]:
        include = request.params.get("includeObject", "Metadata")
        return render_table(rt.columns, objects, include_object=include, resource_version=resource_version)

    def _emulate_list(
        self, request: kmock.Request, rt: ResourceType, namespace: str | None, selection: Selection
    ) -> aiohttp.web.Response:
        params = request.params
        resource_version = self.store.resource_version
        items = self.store.list_objects(rt, namespace, selection)
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        token = params.get("continue")
        if token:
            start = self._decode_continue(token)
            items = [item for item in items if _sort_key(item) > start]
        try:
            limit = int(params.get("limit") or 0)
        except ValueError as exc:
            raise errors.bad_request(f"invalid limit: {params.get('limit')!r}") from exc
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            position = json.dumps({"rv": resource_version, "start": list(_sort_key(items[-1]))})
            metadata["continue"] = base64.urlsafe_b64encode(position.encode()).decode()
            metadata["remainingItemCount"] = remaining
        if self._wants_table(request):
            table = self._table(request, rt, items, resource_version)
            table["metadata"].update({k: v for k, v in metadata.items() if k != "resourceVersion"})
            return _json(table)
        return _json(
            {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": metadata, "items": items}
        )

    def _decode_continue(self, token: str) -> tuple[str, str]:
        try:
            start = json.loads(base64.urlsafe_b64decode(token.encode()))["start"]
            return (str(start[0]), str(start[1]))
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            raise errors.bad_request("continue key is not valid") from exc

    async def _emulate_watch(
        self, request: kmock.Request, rt: ResourceType, selection: Selection
    ) -> aiohttp.web.StreamResponse:
        params = request.params
        raw_request = request._raw_request
        assert raw_request is not None
        since_text = params.get("resourceVersion", "")
        try:
            since = int(since_text) if since_text not in ("", "0") else None
            # decimals are accepted (kopf sends "300.0" for a float timeout; a real server wants an integer)
            duration = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
            if duration is not None and not (math.isfinite(duration) and duration >= 0):
                raise ValueError(f"invalid timeoutSeconds: {params['timeoutSeconds']!r}")
        except ValueError as exc:
            raise errors.bad_request(f"invalid watch parameters: {exc}") from exc
        as_table = self._wants_table(request)
        columns_sent = False

        def render(obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal columns_sent
            if not as_table:
                return obj
            table = self._table(request, rt, [obj], obj["metadata"].get("resourceVersion", ""))
            if columns_sent:  # kubectl get -w: the column definitions come with the first row only
                table["columnDefinitions"] = []
            columns_sent = True
            return table

        stream = WatchStream(
            self.store,
            rt,
            selection,
            render=render,
            stopping=lambda: self._stopping,
            duration=duration,
            initial_events_bookmark=params.get("sendInitialEvents") == "true",
        )
        return await stream.serve(raw_request, since)


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
