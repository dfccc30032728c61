"""Studio v2: Flows and their Executions (REST API trigger), per account.

No widget runs: an Execution records its ``To``, ``From`` and ``Parameters`` (in its Context, under
``flow.data`` where Studio puts them) and stays ``active`` for its flow's ``execution_seconds`` (default
:data:`EXECUTION_SECONDS`, set per flow by the control API) on the emulator clock, or until
``UpdateExecution Status=ended``. While a contact has an active Execution on a Flow, a new one for that
contact is refused with 409/20409, as Studio does. Flows come from the Studio API or the control API.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from .auth import account_of, principal_of
from .control_json import account_filter, json_object, matching, query_filters
from .core import (
    STATE_KEY,
    EmulatorState,
    TwilioError,
    add_route,
    iso,
    new_sid,
    paginate_v1,
    param_date,
    param_enum,
    read_params,
)
from .owned_records import (
    OwnedRoutes,
    install_store,
    installed_store,
    required_param,
    resource_not_found,
)

STUDIO_KEY = "studio"
EXECUTION_SECONDS = 10.0
MAX_EXECUTION_SECONDS = 86400.0
# What the control API gives a flow without a definition: Studio's empty flow, a trigger and nothing else.
MINIMAL_DEFINITION: dict[str, Any] = {
    "description": "A New Flow",
    "states": [
        {
            "name": "Trigger",
            "type": "trigger",
            "transitions": [
                {"event": "incomingMessage"},
                {"event": "incomingCall"},
                {"event": "incomingRequest"},
            ],
            "properties": {"offset": {"x": 0, "y": 0}},
        }
    ],
    "initial_state": "Trigger",
    "flags": {"allow_concurrent_calls": True},
}
FLOW_STATUSES = ("draft", "published")
EXECUTION_STATUSES = ("active", "ended")
MAX_FRIENDLY_NAME = 255


@dataclass
class Flow:
    sid: str
    account_sid: str
    friendly_name: str
    status: str
    definition: dict[str, Any]
    date_created: datetime
    date_updated: datetime | None = None
    revision: int = 1
    commit_message: str | None = None
    execution_seconds: float = EXECUTION_SECONDS


@dataclass
class Execution:
    sid: str
    account_sid: str
    flow_sid: str
    contact_sid: str
    to: str
    from_: str
    parameters: dict[str, Any]
    flow_version: int
    date_created: datetime
    date_updated: datetime
    initiated_by: str | None = None
    status: str = "active"
    ends_at: datetime | None = None


@dataclass
class StudioStore:
    state: EmulatorState
    flows: dict[str, Flow] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    # (account SID, contact address) -> FC SID: a contact keeps its SID across executions.
    contacts: dict[str, str] = field(default_factory=dict)

    def contact_sid(self, account_sid: str, address: str) -> str:
        return self.contacts.setdefault(f"{account_sid} {address}", new_sid("FC"))

    def refresh(self, execution: Execution) -> Execution:
        """End an execution whose run time is over (checked when it is looked at)."""
        ends_at = execution.ends_at
        if execution.status == "active" and ends_at is not None and self.state.clock.now() >= ends_at:
            execution.status = "ended"
            execution.date_updated = ends_at
        return execution

    def dump(self) -> dict[str, Any]:
        return {
            "flows": [asdict(flow) for flow in self.flows.values()],
            "executions": [asdict(execution) for execution in self.executions.values()],
            "contacts": dict(self.contacts),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.flows = {raw["sid"]: Flow(**raw) for raw in data.get("flows", [])}
        self.executions = {raw["sid"]: Execution(**raw) for raw in data.get("executions", [])}
        self.contacts = dict(data.get("contacts", {}))


def studio_of(state: EmulatorState) -> StudioStore:
    return installed_store(state, STUDIO_KEY, StudioStore)


def _json_param(params: MultiMapping[str], name: str) -> dict[str, Any] | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise TwilioError(400, 20001, f"{name} must be a JSON object")
    return value


# -------------------------------------------------------------------------------------------- flows


def render_flow(state: EmulatorState, flow: Flow) -> dict[str, Any]:
    url = state.url(f"/v2/Flows/{flow.sid}")
    return {
        "sid": flow.sid,
        "account_sid": flow.account_sid,
        "author_sid": None,
        "friendly_name": flow.friendly_name,
        "definition": flow.definition,
        "status": flow.status,
        "revision": flow.revision,
        "commit_message": flow.commit_message,
        "valid": True,
        "errors": [],
        "warnings": [],
        # Twilio's incoming-trigger URL; the emulator does not serve it.
        "webhook_url": f"https://webhooks.twilio.com/v1/Accounts/{flow.account_sid}/Flows/{flow.sid}",
        "date_created": iso(flow.date_created),
        "date_updated": iso(flow.date_updated) if flow.date_updated is not None else None,
        "url": url,
        "links": {
            "test_users": f"{url}/TestUsers",
            "revisions": f"{url}/Revisions",
            "executions": f"{url}/Executions",
        },
    }


async def create_flow(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    params = await read_params(request)
    name = required_param(params, "FriendlyName")
    if len(name) > MAX_FRIENDLY_NAME:
        raise TwilioError(400, 20001, f"FriendlyName must be at most {MAX_FRIENDLY_NAME} characters")
    required_param(params, "Status")
    status = param_enum(params, "Status", FLOW_STATUSES, code=20001, default="draft")
    definition = _json_param(params, "Definition")
    if definition is None:
        raise TwilioError(400, 20001, "Missing required parameter Definition in the post body")
    flow = Flow(
        sid=new_sid("FW"),
        account_sid=account_of(request),
        friendly_name=name,
        status=status,
        definition=definition,
        date_created=state.clock.now(),
        commit_message=params.get("CommitMessage") or None,
    )
    studio_of(state).flows[flow.sid] = flow
    return web.json_response(render_flow(state, flow), status=201)


def _drop_executions(state: EmulatorState, flow: Flow) -> None:
    executions = studio_of(state).executions
    for sid in [sid for sid, item in executions.items() if item.flow_sid == flow.sid]:
        del executions[sid]


FLOWS = OwnedRoutes(lambda state: studio_of(state).flows, render_flow, "flows", _drop_executions)


# --------------------------------------------------------------------------------------- executions


def render_execution(state: EmulatorState, execution: Execution) -> dict[str, Any]:
    url = state.url(f"/v2/Flows/{execution.flow_sid}/Executions/{execution.sid}")
    return {
        "sid": execution.sid,
        "account_sid": execution.account_sid,
        "flow_sid": execution.flow_sid,
        "contact_channel_address": execution.to,
        "contact_sid": execution.contact_sid,
        "flow_version": execution.flow_version,
        "context": {},
        "status": execution.status,
        "date_created": iso(execution.date_created),
        "date_updated": iso(execution.date_updated),
        "initiated_by": execution.initiated_by,
        "url": url,
        "links": {"steps": f"{url}/Steps", "execution_context": f"{url}/Context"},
    }


def execution_context(execution: Execution) -> dict[str, Any]:
    return {
        "flow": {
            "flow_sid": execution.flow_sid,
            "sid": execution.sid,
            "channel": {"address": execution.to},
            "data": execution.parameters,
            "variables": {},
        },
        "trigger": {
            "request": {"from": execution.from_, "to": execution.to, "parameters": execution.parameters}
        },
        "widgets": {},
    }


async def create_execution(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = studio_of(state)
    flow = FLOWS.lookup(request, "FlowSid")
    params = await read_params(request)
    to, sender = required_param(params, "To"), required_param(params, "From")
    parameters = _json_param(params, "Parameters") or {}
    for other in store.executions.values():
        if other.flow_sid == flow.sid and other.to == to and store.refresh(other).status == "active":
            raise TwilioError(
                409,
                20409,
                f"Execution {other.sid} is already active for this contact. "
                "End the active Execution before creating a new one.",
            )
    now = state.clock.now()
    principal = principal_of(request)
    execution = Execution(
        sid=new_sid("FN"),
        account_sid=flow.account_sid,
        flow_sid=flow.sid,
        contact_sid=store.contact_sid(flow.account_sid, to),
        to=to,
        from_=sender,
        parameters=parameters,
        flow_version=flow.revision,
        date_created=now,
        date_updated=now,
        initiated_by=principal.key.sid if principal.key is not None else principal.account_sid,
        ends_at=now + timedelta(seconds=flow.execution_seconds),
    )
    store.executions[execution.sid] = execution
    return web.json_response(render_execution(state, execution), status=201)


async def list_executions(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = studio_of(state)
    flow = FLOWS.lookup(request, "FlowSid")
    query = request.query
    since, until = param_date(query, "DateCreatedFrom"), param_date(query, "DateCreatedTo")
    status = param_enum(query, "status", EXECUTION_STATUSES, code=20001)
    records = []
    for execution in reversed(store.executions.values()):
        store.refresh(execution)
        if execution.flow_sid != flow.sid or (status is not None and execution.status != status):
            continue
        if (since and execution.date_created < since) or (until and execution.date_created > until):
            continue
        records.append(render_execution(state, execution))
    return web.json_response(paginate_v1(request, records, "executions"))


def _execution(state: EmulatorState, request: web.Request, name: str = "Sid") -> Execution:
    store = studio_of(state)
    flow = FLOWS.lookup(request, "FlowSid")
    execution = store.executions.get(request.match_info[name])
    if execution is None or execution.flow_sid != flow.sid:
        raise resource_not_found(request)
    return store.refresh(execution)


async def fetch_execution(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response(render_execution(state, _execution(state, request)))


async def update_execution(request: web.Request) -> web.Response:
    """Only ``Status=ended`` means something: it ends an active execution (an ended one stays ended)."""
    state = request.app[STATE_KEY]
    execution = _execution(state, request)
    params = await read_params(request)
    required_param(params, "Status")
    status = param_enum(params, "Status", ("ended",), code=20001, default="ended")
    if execution.status != status:
        execution.status = status
        execution.date_updated = state.clock.now()
    return web.json_response(render_execution(state, execution))


async def delete_execution(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    execution = _execution(state, request)
    del studio_of(state).executions[execution.sid]
    return web.Response(status=204)


async def fetch_context(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    execution = _execution(state, request, "ExecutionSid")
    path = f"/v2/Flows/{execution.flow_sid}/Executions/{execution.sid}/Context"
    return web.json_response(
        {
            "account_sid": execution.account_sid,
            "context": execution_context(execution),
            "flow_sid": execution.flow_sid,
            "execution_sid": execution.sid,
            "url": state.url(path),
        }
    )


# ------------------------------------------------------------------------------------------- control


async def control_create_flow(request: web.Request) -> web.Response:
    """``{"friendlyName"?, "accountSid"?, "definition"?, "status"?, "executionSeconds"?}``: a flow to
    trigger, without going through the Studio API."""
    state = request.app[STATE_KEY]
    body = await json_object(request)
    name = body.get("friendlyName", "emulator flow")
    definition = body.get("definition", MINIMAL_DEFINITION)
    status = body.get("status", "published")
    seconds = body.get("executionSeconds", EXECUTION_SECONDS)
    if not isinstance(name, str) or not name or len(name) > MAX_FRIENDLY_NAME:
        raise TwilioError(400, 20001, f"friendlyName must be a string of 1 to {MAX_FRIENDLY_NAME} characters")
    if not isinstance(definition, dict):
        raise TwilioError(400, 20001, "definition must be a JSON object")
    if status not in FLOW_STATUSES:
        raise TwilioError(400, 20001, f"status must be one of: {', '.join(FLOW_STATUSES)}")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= MAX_EXECUTION_SECONDS
    ):
        raise TwilioError(
            400, 20001, f"executionSeconds must be a number from 0 to {MAX_EXECUTION_SECONDS:g}"
        )
    flow = Flow(
        sid=new_sid("FW"),
        account_sid=account_filter(state, body.get("accountSid")) or state.account_sid,
        friendly_name=name,
        status=status,
        definition=definition,
        date_created=state.clock.now(),
        execution_seconds=float(seconds),
    )
    studio_of(state).flows[flow.sid] = flow
    return web.json_response(
        {
            "sid": flow.sid,
            "accountSid": flow.account_sid,
            "friendlyName": flow.friendly_name,
            "status": flow.status,
            "executionSeconds": flow.execution_seconds,
        },
        status=201,
    )


async def control_executions(request: web.Request) -> web.Response:
    """Every execution (oldest first) with its To, From and Parameters; ``?accountSid=``, ``?flowSid=``
    and ``?to=`` filter."""
    state = request.app[STATE_KEY]
    store = studio_of(state)
    filters = query_filters(state, request.query, ("accountSid", "flowSid", "to"))
    views = [
        {
            "sid": execution.sid,
            "accountSid": execution.account_sid,
            "flowSid": execution.flow_sid,
            "to": execution.to,
            "from": execution.from_,
            "parameters": execution.parameters,
            "status": store.refresh(execution).status,
            "dateCreated": iso(execution.date_created),
        }
        for execution in store.executions.values()
    ]
    return web.json_response({"executions": matching(views, filters)})


def install(app: web.Application, state: EmulatorState) -> None:
    install_store(state, STUDIO_KEY, StudioStore(state))
    add_route(app, "POST", "/v2/Flows", create_flow, "CreateFlow")
    add_route(app, "GET", "/v2/Flows", FLOWS.list, "ListFlow")
    add_route(app, "GET", "/v2/Flows/{Sid}", FLOWS.fetch, "FetchFlow")
    add_route(app, "DELETE", "/v2/Flows/{Sid}", FLOWS.delete, "DeleteFlow")
    executions = "/v2/Flows/{FlowSid}/Executions"
    add_route(app, "POST", executions, create_execution, "CreateExecution")
    add_route(app, "GET", executions, list_executions, "ListExecution")
    add_route(app, "GET", executions + "/{Sid}", fetch_execution, "FetchExecution")
    add_route(app, "POST", executions + "/{Sid}", update_execution, "UpdateExecution")
    add_route(app, "DELETE", executions + "/{Sid}", delete_execution, "DeleteExecution")
    add_route(app, "GET", executions + "/{ExecutionSid}/Context", fetch_context, "FetchExecutionContext")
    app.router.add_post("/_emulator/studio/flows", control_create_flow)
    app.router.add_get("/_emulator/studio/executions", control_executions)
