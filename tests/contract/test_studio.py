"""Studio v2 Flows and Executions through the official twilio client, checked against twilio_studio_v2.json.

Flows come from the Studio API or ``POST /_emulator/studio/flows``; an Execution keeps its Parameters in
its Context (``flow.data``), stays active for the flow's execution time and blocks a second one for the same
contact (409/20409) meanwhile. ``GET /_emulator/studio/executions`` lists what was triggered.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_compositions_support import advance
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

ControlCall = Any
DEFINITION = {
    "description": "Session notice",
    "states": [{"name": "Trigger", "type": "trigger", "transitions": [], "properties": {}}],
    "initial_state": "Trigger",
    "flags": {"allow_concurrent_calls": True},
}
CONTACT = "+15551250001"
SENDER = "+15005550006"


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def control_flow(emulator_control: ControlCall, **body: Any) -> str:
    answer = emulator_control("POST", "studio/flows", body)
    assert answer.status == 201, answer.body
    return str(answer.body["sid"])


def test_an_execution_carries_its_parameters(twilio_client: Client, emulator_control: ControlCall) -> None:
    flow = twilio_client.studio.v2.flows.create(
        friendly_name="Recording available", status="published", definition=DEFINITION
    )
    assert flow.sid.startswith("FW") and flow.status == "published" and flow.revision == 1
    assert flow.definition == DEFINITION
    parameters = {"room": "webinar", "link": "https://example.com/r/1"}
    execution = twilio_client.studio.v2.flows(flow.sid).executions.create(
        to=CONTACT, from_=SENDER, parameters=parameters
    )
    assert execution.sid.startswith("FN") and execution.status == "active"
    assert execution.contact_channel_address == CONTACT and execution.flow_sid == flow.sid
    context = twilio_client.studio.v2.flows(flow.sid).executions(execution.sid).execution_context().fetch()
    assert context.context["flow"]["data"] == parameters
    assert context.context["trigger"]["request"]["parameters"] == parameters

    (listed,) = emulator_control("GET", f"studio/executions?flowSid={flow.sid}").body["executions"]
    assert listed["sid"] == execution.sid and listed["parameters"] == parameters
    assert (listed["to"], listed["from"], listed["status"]) == (CONTACT, SENDER, "active")


def test_one_active_execution_per_contact(
    twilio_client: Client, emulator: Any, emulator_control: ControlCall
) -> None:
    flow_sid = control_flow(emulator_control, friendlyName="Reminder", executionSeconds=30)
    executions = twilio_client.studio.v2.flows(flow_sid).executions
    first = executions.create(to=CONTACT, from_=SENDER)
    error = rest_error(lambda: executions.create(to=CONTACT, from_=SENDER))
    assert (error.status, error.code) == (409, 20409)
    other = executions.create(to="+15551250002", from_=SENDER)
    assert other.contact_sid != first.contact_sid

    advance(emulator_control, 31)
    assert executions(first.sid).fetch().status == "ended"
    again = executions.create(to=CONTACT, from_=SENDER)
    assert again.contact_sid == first.contact_sid and again.sid != first.sid
    ended = executions(again.sid).update(status="ended")
    assert ended.status == "ended"
    assert executions.create(to=CONTACT, from_=SENDER).status == "active"
    assert [e.sid for e in executions.list(status="ended")] == [again.sid, other.sid, first.sid]
    assert len(executions.list()) == 4


def test_a_flow_of_zero_execution_seconds_never_blocks(
    twilio_client: Client, emulator_control: ControlCall
) -> None:
    flow_sid = control_flow(emulator_control, executionSeconds=0)
    executions = twilio_client.studio.v2.flows(flow_sid).executions
    sids = {executions.create(to=CONTACT, from_=SENDER, parameters={"n": n}).sid for n in range(3)}
    assert len(sids) == 3
    recorded = emulator_control("GET", f"studio/executions?to=%2B15551250001&flowSid={flow_sid}").body
    assert [e["parameters"] for e in recorded["executions"]] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_flows_are_per_account(
    twilio_client: Client, subaccount_client: Client, subaccount: Any, emulator_control: ControlCall
) -> None:
    tenant_flow = control_flow(emulator_control, accountSid=subaccount.account_sid, friendlyName="Tenant")
    main_flow = twilio_client.studio.v2.flows.create(
        friendly_name="Main", status="draft", definition=DEFINITION
    )
    assert [f.sid for f in subaccount_client.studio.v2.flows.list()] == [tenant_flow]
    assert [f.sid for f in twilio_client.studio.v2.flows.list()] == [main_flow.sid]
    error = rest_error(
        lambda: subaccount_client.studio.v2.flows(main_flow.sid).executions.create(to=CONTACT, from_=SENDER)
    )
    assert (error.status, error.code) == (404, 20404)
    execution = subaccount_client.studio.v2.flows(tenant_flow).executions.create(to=CONTACT, from_=SENDER)
    assert execution.account_sid == subaccount.account_sid
    scoped = emulator_control("GET", f"studio/executions?accountSid={subaccount.account_sid}").body
    assert [e["sid"] for e in scoped["executions"]] == [execution.sid]
    subaccount_client.studio.v2.flows(tenant_flow).delete()
    assert emulator_control("GET", "studio/executions").body["executions"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"friendlyName": ""},
        {"definition": []},
        {"status": "live"},
        {"executionSeconds": -1},
        {"executionSeconds": True},
        {"accountSid": "AC" + "0" * 32},
    ],
)
def test_control_flow_refusals(emulator_control: ControlCall, body: dict[str, Any]) -> None:
    answer = emulator_control("POST", "studio/flows", body)
    assert answer.status in (400, 404) and answer.body["code"] in (20001, 20404)


def test_studio_api_refusals(twilio_client: Client, emulator_control: ControlCall) -> None:
    flows = twilio_client.studio.v2.flows
    assert rest_error(lambda: flows.create(friendly_name="x", status="live", definition={})).status == 400
    flow_sid = control_flow(emulator_control)
    executions = flows(flow_sid).executions
    assert (
        rest_error(lambda: executions.create(to=CONTACT, from_=SENDER, parameters=json.dumps([1]))).status
        == 400
    )
    error = rest_error(lambda: executions("FN" + "0" * 32).fetch())
    assert (error.status, error.code) == (404, 20404)
