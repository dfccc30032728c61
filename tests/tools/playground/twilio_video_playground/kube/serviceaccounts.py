"""ServiceAccount tokens: the TokenRequest subresource (``kubectl create token``) and their TokenReview.

``POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`` issues a token for a ServiceAccount that exists,
as a real API server does: ``spec.expirationSeconds`` defaults to 3600 and may not be under 600,
``spec.audiences`` defaults to the API server's own audience, and ``spec.boundObjectRef`` may bind the
token to a Secret. The token is shaped like a JWT (HS256 with a key of this server; nobody else is meant to
verify it) but the server knows every token it issued: a TokenReview accepts one until it expires, its
ServiceAccount (or the Secret it is bound to) is deleted or replaced, and only for the audiences it was
issued for, answering with the user a real cluster gives ServiceAccounts.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twilio_video_playground.kube import errors
from twilio_video_playground.kube.errors import FieldError

# What a TokenReview without spec.audiences checks against, and what tokens are issued for by default:
# the API server's audience on most clusters (--api-audiences defaults to the service account issuer).
API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)
ISSUER = API_AUDIENCES[0]
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 2**32
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

# (kind, namespace, name) -> the uid of that object if it exists (kinds: ServiceAccount, Secret)
UidLookup = Callable[[str, str, str], str | None]


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_groups(namespace: str) -> list[str]:
    return ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]


def _timestamp(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    namespace: str
    name: str
    uid: str  # the ServiceAccount's
    audiences: tuple[str, ...]
    expires_at: float
    credential_id: str
    secret: tuple[str, str] | None = None  # (name, uid) of the Secret the token is bound to


class ServiceAccountTokens:
    """The tokens this server issued, by the SHA-256 of the token (the tokens themselves are not kept)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._issued: dict[str, IssuedToken] = {}

    def __len__(self) -> int:
        return len(self._issued)

    def issue(
        self,
        service_account: Mapping[str, Any],
        body: Any,
        now: float,
        lookup: UidLookup,
    ) -> dict[str, Any]:
        """The answered TokenRequest for ``service_account`` (an object in the store), or an ApiError."""
        metadata = service_account["metadata"]
        namespace, name = str(metadata["namespace"]), str(metadata["name"])
        if body is not None and not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        request = body or {}
        kind = request.get("kind")
        if kind not in (None, "", "TokenRequest"):
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind (TokenRequest)"
            )
        spec = dict(request.get("spec") or {})
        expiration = spec.get("expirationSeconds")
        if expiration is None:
            expiration = DEFAULT_EXPIRATION_SECONDS
        problems = []
        if isinstance(expiration, bool) or not isinstance(expiration, int):
            detail = f"Invalid value: {json.dumps(expiration)}: must be a whole number of seconds"
            problems.append(FieldError("spec.expirationSeconds", "FieldValueInvalid", detail))
        elif expiration < MIN_EXPIRATION_SECONDS:
            detail = f"Invalid value: {expiration}: may not specify a duration less than 10 minutes"
            problems.append(FieldError("spec.expirationSeconds", "FieldValueInvalid", detail))
        elif expiration > MAX_EXPIRATION_SECONDS:
            detail = f"Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds"
            problems.append(FieldError("spec.expirationSeconds", "FieldValueInvalid", detail))
        audiences = [str(audience) for audience in spec.get("audiences") or []] or list(API_AUDIENCES)
        if problems:
            raise errors.invalid("TokenRequest", "authentication.k8s.io", name, problems)
        secret = self._bound_secret(spec.get("boundObjectRef"), namespace, lookup)

        issued_at = int(now)
        token_id = str(uuid.uuid4())
        issued = IssuedToken(
            namespace=namespace,
            name=name,
            uid=str(metadata.get("uid", "")),
            audiences=tuple(audiences),
            expires_at=issued_at + int(expiration),
            credential_id=token_id,
            secret=secret,
        )
        token = self._sign(issued, issued_at)
        self._forget_expired(now)
        self._issued[_digest(token)] = issued
        spec.update(audiences=audiences, expirationSeconds=int(expiration))
        spec.setdefault("boundObjectRef", None)
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": _timestamp(issued.expires_at)},
        }

    def _bound_secret(self, ref: Any, namespace: str, lookup: UidLookup) -> tuple[str, str] | None:
        if not ref:
            return None
        if not isinstance(ref, dict):
            raise errors.bad_request("spec.boundObjectRef must be an object")
        kind, name, uid = str(ref.get("kind") or ""), str(ref.get("name") or ""), str(ref.get("uid") or "")
        if kind != "Secret":
            raise errors.bad_request(
                f"cannot bind token for object of kind {kind or '(none)'}: the embedded API binds tokens "
                "to Secrets only (it serves no Pods or Nodes)"
            )
        found = lookup("Secret", namespace, name) if name else None
        if found is None:
            raise errors.not_found("secrets", "", name)
        if uid and uid != found:
            raise errors.conflict(
                "secrets",
                "",
                name,
                f"the UID in the bound object reference ({uid}) does not match the object",
            )
        return (name, found)

    def _sign(self, issued: IssuedToken, issued_at: int) -> str:
        claims: dict[str, Any] = {
            "aud": list(issued.audiences),
            "exp": int(issued.expires_at),
            "iat": issued_at,
            "iss": ISSUER,
            "jti": issued.credential_id,
            "kubernetes.io": {
                "namespace": issued.namespace,
                "serviceaccount": {"name": issued.name, "uid": issued.uid},
                **({"secret": {"name": issued.secret[0], "uid": issued.secret[1]}} if issued.secret else {}),
            },
            "nbf": issued_at,
            "sub": service_account_user(issued.namespace, issued.name),
        }
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def _forget_expired(self, now: float) -> None:
        for digest in [digest for digest, issued in self._issued.items() if issued.expires_at <= now]:
            del self._issued[digest]

    def authenticate(
        self, token: str, audiences: Sequence[str], now: float, lookup: UidLookup
    ) -> tuple[dict[str, Any], list[str]] | str | None:
        """The user of a token this server issued and the audiences it is good for among ``audiences`` (empty:
        the API server's own); an error text if it no longer authenticates; None if it is not one of ours."""
        issued = self._issued.get(_digest(token))
        if issued is None:
            return None
        if now >= issued.expires_at:
            return "service account token has expired"
        if lookup("ServiceAccount", issued.namespace, issued.name) != issued.uid:
            return f"service account {issued.namespace}/{issued.name} has been deleted"
        if (
            issued.secret is not None
            and lookup("Secret", issued.namespace, issued.secret[0]) != issued.secret[1]
        ):
            return (
                f"the token is bound to secret {issued.namespace}/{issued.secret[0]}, which has been deleted"
            )
        wanted = list(audiences) or list(API_AUDIENCES)
        matching = [audience for audience in wanted if audience in issued.audiences]
        if not matching:
            return (
                f"token audiences {json.dumps(list(issued.audiences))} is invalid for the target audiences "
                f"{json.dumps(wanted)}"
            )
        user = {
            "username": service_account_user(issued.namespace, issued.name),
            "uid": issued.uid,
            "groups": service_account_groups(issued.namespace),
            "extra": {CREDENTIAL_ID: [f"JTI={issued.credential_id}"]},
        }
        return user, matching
