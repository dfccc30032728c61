"""kopf's settings as the runner builds them."""

from __future__ import annotations

import kopf

from twilio_video_operator.runner import FINALIZER, build_kopf_settings
from twilio_video_operator.settings import Settings

SETTINGS = Settings(
    TWILIO_ACCOUNT_SID="AC" + "0" * 32,
    TWILIO_AUTH_TOKEN="token",
    PUBLIC_BASE_URL="http://127.0.0.1:8080",
)


def essence_annotations(annotations: dict[str, str]) -> dict[str, str]:
    """The annotations kopf compares when it decides whether an object changed."""
    storage = build_kopf_settings(SETTINGS).persistence.diffbase_storage
    body = kopf.Body({"metadata": {"name": "r", "annotations": annotations}, "spec": {}})
    essence = storage.build(body=body)
    return dict(essence.get("metadata", {}).get("annotations", {}))


def test_user_annotations_of_our_group_count_as_changes() -> None:
    progress_storage = build_kopf_settings(SETTINGS).persistence.progress_storage
    marker = f"{progress_storage.prefix}/kopf-managed"
    annotations = {
        "video.openclaw.io/paused": "true",
        "video.openclaw.io/reconcile-requested-at": "2026-11-25T10:00:00Z",
        marker: "yes",
    }
    assert essence_annotations(annotations) == {
        "video.openclaw.io/paused": "true",
        "video.openclaw.io/reconcile-requested-at": "2026-11-25T10:00:00Z",
    }


def test_kopf_bookkeeping_stays_out_of_status() -> None:
    persistence = build_kopf_settings(SETTINGS).persistence
    assert isinstance(persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert persistence.finalizer == FINALIZER == "video.openclaw.io/finalizer"


def test_the_watch_timeout_is_sent_in_whole_seconds() -> None:
    """kopf sends ``timeoutSeconds`` as it is given; a real API server refuses ``300.0`` with a 400."""
    timeout = build_kopf_settings(SETTINGS).watching.server_timeout
    assert isinstance(timeout, int) and str(timeout).isdigit()


def test_kopf_keeps_no_handled_spec_for_videorooms_only() -> None:
    storage = build_kopf_settings(SETTINGS).persistence.diffbase_storage
    key = "kopf.video.openclaw.io/last-handled-configuration"

    def body(kind: str, annotations: dict[str, str] | None = None) -> kopf.Body:
        meta = {"name": "r", "generation": 2, "annotations": annotations or {}}
        return kopf.Body(
            {"apiVersion": "video.openclaw.io/v1alpha1", "kind": kind, "metadata": meta, "spec": {}}
        )

    room = body("VideoRoom", {key: '{"spec":{"old":1}}\n'})  # a stale annotation of an earlier version
    assert storage.fetch(body=room) == storage.build(body=room)  # kopf sees no change, ever
    patch = kopf.Patch()
    storage.store(body=room, patch=patch, essence=storage.build(body=room))
    assert not patch  # and writes nothing

    composition = body("Composition")
    assert storage.fetch(body=composition) is None  # other kinds keep kopf's change detection
    storage.store(body=composition, patch=patch, essence=storage.build(body=composition))
    assert key in patch["metadata"]["annotations"]
