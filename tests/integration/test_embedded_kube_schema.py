"""Custom objects are pruned, defaulted and validated against their CRD's openAPIV3Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_embedded_kube_support import API_VERSION, WIDGETS, api, widget

from twilio_video_playground.kube import EmbeddedKubernetes

REPO = Path(__file__).resolve().parents[2]
VIDEOROOM_CRD = REPO / "crds" / "videorooms.video.openclaw.io.yaml"
VIDEOROOMS = "/apis/video.openclaw.io/v1alpha1/namespaces/default/videorooms"


def causes(status: dict[str, Any]) -> dict[str, str]:
    return {cause["field"]: cause["message"] for cause in status["details"]["causes"]}


async def test_invalid_object_is_rejected_naming_the_field(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, status = await http.post(WIDGETS, widget("w1", size=51))
        assert code == 422
        assert status["kind"] == "Status" and status["status"] == "Failure" and status["reason"] == "Invalid"
        assert status["message"] == (
            'Widget.test.openclaw.io "w1" is invalid: spec.size: Invalid value: 51: '
            "spec.size in body should be less than or equal to 50"
        )
        assert status["details"]["causes"] == [
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 51: spec.size in body should be less than or equal to 50",
                "field": "spec.size",
            }
        ]
        assert status["details"]["group"] == "test.openclaw.io" and status["details"]["kind"] == "Widget"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"mode": "huge"}, "spec.mode", 'Unsupported value: "huge": supported values: "small", "large"'),
        (
            {"size": "ten"},
            "spec.size",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        (
            {"size": 0},
            "spec.size",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        (
            {"color": "Red1"},
            "spec.color",
            "Invalid value: \"Red1\": spec.color in body should match '^[a-z]+$'",
        ),
        ({"note": "x" * 11}, "spec.note", "Too long: may not be more than 10 bytes"),
        ({"tags": ["a", "b", "c"]}, "spec.tags", "Too many: 3: must have at most 2 items"),
        (
            {"port": 1.5},
            "spec.port",
            'Invalid value: "number": spec.port in body must be of type integer,string: "number"',
        ),
        (
            {"labels": {"k": 1}},
            "spec.labels.k",
            'Invalid value: "integer": spec.labels.k in body must be of type string: "integer"',
        ),
    ],
)
async def test_schema_keywords(
    kube: EmbeddedKubernetes, spec: dict[str, Any], field: str, message: str
) -> None:
    async with api(kube) as http:
        code, status = await http.post(WIDGETS, widget("w1", **spec))
        assert code == 422
        assert causes(status) == {field: message}


async def test_required_and_several_errors_at_once(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        body = {
            "apiVersion": API_VERSION,
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"mode": "x"},
        }
        code, status = await http.post(WIDGETS, body)
        assert code == 422
        assert causes(status) == {
            "spec.mode": 'Unsupported value: "x": supported values: "small", "large"',
            "spec.size": "Required value",
        }
        assert status["message"].startswith('Widget.test.openclaw.io "w1" is invalid: [spec.mode: ')


async def test_nullable_int_or_string_and_preserved_fields(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, obj = await http.post(
            WIDGETS, widget("w1", note=None, port="http", extra={"any": {"thing": 1}})
        )
        assert code == 201, obj
        assert obj["spec"]["note"] is None and obj["spec"]["port"] == "http"
        assert obj["spec"]["extra"] == {"any": {"thing": 1}}
        code, obj = await http.post(WIDGETS, widget("w2", port=8080, mode=None))
        assert code == 201 and obj["spec"]["port"] == 8080
        assert obj["spec"]["mode"] == "small"  # a null for a non-nullable field takes the default


async def test_defaults_and_pruning(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        code, obj = await http.post(WIDGETS, widget("w1", unknown=1, limits={"memory": 3}))
        assert code == 201
        assert obj["spec"] == {"size": 1, "mode": "small", "limits": {"cpu": 2}}
        warning = http.last_headers.get("Warning", "")
        assert 'unknown field \\"spec.unknown\\"' in warning and "spec.limits.memory" in warning
        _, obj = await http.patch(f"{WIDGETS}/w1", {"spec": {"mode": None}})
        assert obj["spec"]["mode"] == "small"  # defaulted again on update
        code, status = await http.post(WIDGETS, widget("w2", unknown=1), params={"fieldValidation": "Strict"})
        assert (code, status["reason"]) == (400, "BadRequest")
        assert 'unknown field "spec.unknown"' in status["message"]


async def test_status_writes_are_validated(kube: EmbeddedKubernetes) -> None:
    async with api(kube) as http:
        await http.post(WIDGETS, widget("w1"))
        code, status = await http.patch(f"{WIDGETS}/w1/status", {"status": {"phase": 5}})
        assert code == 422 and "status.phase" in causes(status)


@pytest.mark.skipif(
    not VIDEOROOM_CRD.exists(), reason="crds/videorooms.video.openclaw.io.yaml is not generated"
)
@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        (
            {"maxParticipants": 51},
            "spec.maxParticipants",
            "spec.maxParticipants in body should be less than or equal to",
        ),
        ({"type": "huge"}, "spec.type", 'Unsupported value: "huge"'),
        ({"maxParticipants": "ten"}, "spec.maxParticipants", "must be of type integer"),
    ],
)
async def test_invalid_videoroom_is_rejected(
    kube: EmbeddedKubernetes, spec: dict[str, Any], field: str, fragment: str
) -> None:
    async with api(kube, with_widgets=False) as http:
        body = {
            "apiVersion": "video.openclaw.io/v1alpha1",
            "kind": "VideoRoom",
            "metadata": {"name": "r1"},
            "spec": spec,
        }
        code, status = await http.post(VIDEOROOMS, body)
        assert (code, status["reason"]) == (422, "Invalid")
        assert status["message"].startswith('VideoRoom.video.openclaw.io "r1" is invalid: ')
        assert field in causes(status) and fragment in causes(status)[field]
        assert f"{field}: " in status["message"]
