"""SendGrid v3 Transactional Templates, the part a sender needs: create, list and fetch templates, and add
versions (the active one gives a dynamic template's subject)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .core import STATE_KEY
from .sendgrid_core import (
    SendGridError,
    SendGridKey,
    Template,
    TemplateVersion,
    add_sendgrid_route,
    authenticate,
    error_item,
    json_body,
    sendgrid_of,
)

MAX_TEMPLATE_NAME = 100
MAX_PAGE_SIZE = 200
GENERATIONS = ("legacy", "dynamic")


def _sendgrid_time(when: datetime) -> str:
    """SendGrid's template timestamps: ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_version(version: TemplateVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "template_id": version.template_id,
        "active": version.active,
        "name": version.name,
        "subject": version.subject,
        "html_content": version.html_content,
        "plain_content": version.plain_content,
        "generate_plain_content": True,
        "editor": "code",
        "thumbnail_url": "",
        "updated_at": _sendgrid_time(version.updated_at),
    }


def render_template(template: Template) -> dict[str, Any]:
    return {
        "id": template.id,
        "name": template.name,
        "generation": template.generation,
        "updated_at": _sendgrid_time(template.updated_at),
        "versions": [render_version(version) for version in template.versions],
    }


async def _object_body(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise SendGridError(400, [error_item("Bad Request")])
    return body


async def create_template(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    key = authenticate(request, "templates.create")
    body = await _object_body(request)
    name = body.get("name")
    generation = body.get("generation", "legacy")
    if not isinstance(name, str) or not name or len(name) > MAX_TEMPLATE_NAME:
        message = f"name is required and at most {MAX_TEMPLATE_NAME} characters"
        raise SendGridError(400, [error_item(message, "name")])
    if generation not in GENERATIONS:
        raise SendGridError(400, [error_item("generation must be legacy or dynamic", "generation")])
    template_id = f"d-{uuid.uuid4().hex}" if generation == "dynamic" else str(uuid.uuid4())
    template = Template(template_id, key.account_sid, name, generation, state.clock.now())
    sendgrid_of(state).templates[template.id] = template
    return web.json_response(render_template(template), status=201)


def _template(request: web.Request, key: SendGridKey) -> Template:
    template = sendgrid_of(request.app[STATE_KEY]).templates.get(request.match_info["template_id"])
    if template is None or template.account_sid != key.account_sid:
        raise SendGridError(404, [error_item("resource not found")])
    return template


async def fetch_template(request: web.Request) -> web.Response:
    key = authenticate(request, "templates.read")
    return web.json_response(render_template(_template(request, key)))


async def list_templates(request: web.Request) -> web.Response:
    """``?generations=legacy,dynamic`` (default legacy, as SendGrid) and ``?page_size=`` (1..200)."""
    state = request.app[STATE_KEY]
    key = authenticate(request, "templates.read")
    generations = set(request.query.get("generations", "legacy").split(","))
    try:
        page_size = int(request.query.get("page_size", str(MAX_PAGE_SIZE)))
    except ValueError:
        page_size = 0
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise SendGridError(
            400, [error_item(f"page_size must be between 1 and {MAX_PAGE_SIZE}", "page_size")]
        )
    result = [
        render_template(template)
        for template in sendgrid_of(state).templates.values()
        if template.account_sid == key.account_sid and template.generation in generations
    ][:page_size]
    return web.json_response(
        {"result": result, "_metadata": {"self": state.url(request.path_qs), "count": len(result)}}
    )


async def create_version(request: web.Request) -> web.Response:
    """``{"name", "subject", "html_content"?, "plain_content"?, "active"?: 0 | 1}``; an active version
    replaces the template's active one (the first version is active anyway)."""
    state = request.app[STATE_KEY]
    key = authenticate(request, "templates.versions.create")
    template = _template(request, key)
    body = await _object_body(request)
    name, subject = body.get("name"), body.get("subject")
    if not isinstance(name, str) or not name:
        raise SendGridError(400, [error_item("name is required", "name")])
    if not isinstance(subject, str) or not subject:
        raise SendGridError(400, [error_item("subject is required", "subject")])
    active = 1 if body.get("active") == 1 or not template.versions else 0
    if active:
        for version in template.versions:
            version.active = 0
    now = state.clock.now()
    html, plain = body.get("html_content"), body.get("plain_content")
    version = TemplateVersion(
        id=str(uuid.uuid4()),
        template_id=template.id,
        name=name,
        subject=subject,
        html_content=html if isinstance(html, str) else None,
        plain_content=plain if isinstance(plain, str) else None,
        active=active,
        updated_at=now,
    )
    template.versions.append(version)
    template.updated_at = now
    return web.json_response(render_version(version), status=201)


def install_routes(app: web.Application) -> None:
    add_sendgrid_route(app, "POST", "/v3/templates", create_template, "CreateTemplate")
    add_sendgrid_route(app, "GET", "/v3/templates", list_templates, "ListTemplates")
    add_sendgrid_route(app, "GET", "/v3/templates/{template_id}", fetch_template, "FetchTemplate")
    add_sendgrid_route(app, "POST", "/v3/templates/{template_id}/versions", create_version, "CreateVersion")
