"""``GET /openapi/v2``, ``/openapi/v3`` and ``/openapi/v3/<group-version>`` answered as kube-openapi does.

Only JSON is served. A client that accepts nothing but the protobuf encodings (client-go's
``OpenAPISchema()`` asks for ``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``) gets a 406
with an empty body, which is the real handler's answer to a media type it does not serve.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp.web

from twilio_video_playground.kube.openapi import Document, OpenApiDocuments

JSON_RANGES = ("application/json", "application/*", "*/*")


def accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header admits JSON (an absent header does)."""
    if not accept.strip():
        return True
    for item in accept.split(","):
        media, _, parameters = item.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.strip().lower() in JSON_RANGES and quality > 0:
            return True
    return False


def _document_response(document: Document, requested_hash: str | None, path: str) -> aiohttp.web.Response:
    etag = f'"{document.hash}"'
    if requested_hash is not None and requested_hash != document.hash:
        return aiohttp.web.Response(
            status=301,
            headers={"Location": f"{path}?hash={document.hash}", "Etag": etag, "Vary": "Accept"},
            content_type="application/json",
        )
    cache = "public, immutable" if requested_hash is not None else "no-cache, private"
    return aiohttp.web.Response(
        body=document.body,
        content_type="application/json",
        headers={"Etag": etag, "Cache-Control": cache, "Vary": "Accept"},
    )


def serve_openapi(
    documents: OpenApiDocuments, path: str, params: Mapping[str, str], accept: str
) -> aiohttp.web.Response | None:
    """The answer to an OpenAPI path, or None when ``path`` is not one."""
    if path == "/openapi/v2":
        if not accepts_json(accept):
            return aiohttp.web.Response(status=406)
        return _document_response(documents.v2_document(), None, path)
    if path in ("/openapi/v3", "/openapi/v3/"):
        index = json.dumps(documents.v3_index(), separators=(",", ":")).encode()
        return aiohttp.web.Response(body=index, content_type="text/plain", charset="utf-8")
    if path.startswith("/openapi/v3/"):
        document = documents.v3_document(path.removeprefix("/openapi/v3/"))
        if document is None:
            return aiohttp.web.Response(status=404)
        if not accepts_json(accept):
            return aiohttp.web.Response(status=406)
        return _document_response(document, params.get("hash"), path)
    return None
