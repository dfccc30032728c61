"""Prometheus metrics of the operator process, registered in prometheus-client's default registry.

Naming scheme:

- one prefix per subsystem: ``twilio_`` for calls the operator makes to Twilio (the gateway); other
  subsystems add their own prefix here (for example ``twilio_video_operator_`` for reconciles);
- counters end in ``_total``, durations are histograms in seconds ending in ``_seconds``, gauges are plain
  nouns;
- labels have a small, fixed set of values (operation ids, HTTP status codes, service names). Room names,
  SIDs, identities, namespaces and credential fingerprints are never labels.

The objects below are plain module-level metrics so that any module can import and update them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Literal, get_args

from prometheus_client import Counter, Gauge, Histogram

# --- Outbound Twilio API calls (one sample per HTTP request, retries and extra pages included) ---

TWILIO_OUTBOUND_API_REQUESTS = Counter(
    "twilio_outbound_api_requests_total",
    "HTTP requests sent to Twilio, by Twilio service, operation type and spec operationId.",
    ["service", "op_type", "op_id"],
)

# ACK's ack_outbound_api_requests_error_total, with its labels.
TWILIO_OUTBOUND_API_ERRORS = Counter(
    "twilio_outbound_api_requests_error_total",
    "Twilio requests that failed, by Twilio service, spec operationId and status: HTTP status >= 400, or "
    "'network'/'timeout' when no response arrived. Expected outcomes such as a 404 on a lookup count too.",
    ["service", "op_id", "status_code"],
)

TWILIO_OUTBOUND_API_REQUEST_DURATION = Histogram(
    "twilio_outbound_api_request_duration_seconds",
    "Time from sending a Twilio request to reading its whole response (excludes waiting for a slot).",
    ["op_id"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

TWILIO_THROTTLED_REQUESTS = Counter(
    "twilio_throttled_requests_total",
    "Twilio requests answered with HTTP 429 (error 20429, too many concurrent requests).",
    ["op_id"],
)

TWILIO_OUTBOUND_API_RETRIES = Counter(
    "twilio_outbound_api_retries_total",
    "Operations the gateway retried after a transient failure, by the reason of the retry.",
    ["op_id", "reason"],
)

TWILIO_INFLIGHT_REQUESTS = Gauge(
    "twilio_inflight_requests",
    "Twilio requests in flight right now (slots taken from the process-wide concurrency cap).",
)

TWILIO_CONCURRENCY_LIMIT = Gauge(
    "twilio_concurrency_limit",
    "Twilio requests allowed in flight right now: TWILIO_MAX_CONCURRENCY, lowered after 429s to what Twilio "
    "allowed and probed back up while Twilio does not throttle.",
)

TWILIO_CIRCUIT_STATE = Gauge(
    "twilio_circuit_state",
    "Circuit breaker state per Twilio service: 0 closed, 1 half-open, 2 open.",
    ["service"],
)

# --- Signing keys and the token service ---
#
# The two signing-key gauges carry the object's ``namespace`` and ``name``: one series per
# SigningKeyRotation (a handful per cluster, removed when the object goes away), as cert-manager does for
# certificate expiry. Every other label below has a fixed set of values.

SIGNING_KEY_ROTATIONS = Counter(
    "twilio_video_operator_signing_key_rotations_total",
    "Signing key rotation steps by result: succeeded (a new key became active) or failed (an attempt "
    "that will be retried after a backoff).",
    ["result"],
)

SIGNING_KEY_AGE = Gauge(
    "twilio_video_operator_signing_key_age_seconds",
    "Seconds since the active key of a SigningKeyRotation became active.",
    ["namespace", "name"],
)

SIGNING_KEY_NEXT_ROTATION = Gauge(
    "twilio_video_operator_signing_key_next_rotation_timestamp_seconds",
    "Unix time at which the next rotation of a SigningKeyRotation is due.",
    ["namespace", "name"],
)

ACCESS_TOKENS_MINTED = Counter(
    "twilio_video_operator_access_tokens_minted_total",
    "Access Tokens minted, by channel (http: POST /v1/token, cli: the token command) and signing key "
    "source (rotation: a SigningKeyRotation's active key, operator: the operator's default key).",
    ["channel", "key_source"],
)

ACCESS_TOKEN_REQUESTS_DENIED = Counter(
    "twilio_video_operator_access_token_requests_denied_total",
    "Token requests answered with an error, by reason (the error field of the answer).",
    ["reason"],
)

ACCESS_TOKEN_REQUEST_DURATION = Histogram(
    "twilio_video_operator_access_token_request_duration_seconds",
    "Time to answer POST /v1/token, whatever the outcome.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

# --- Liveness ---

LAST_RECONCILE_TIMESTAMP = Gauge(
    "twilio_video_operator_last_reconcile_timestamp_seconds",
    "Unix time at which the operator last finished reconciling an object of this kind, whatever the "
    "result (set with set_to_current_time() at the end of every reconcile, resyncs included). A value "
    "that stops moving while objects exist means the operator no longer reconciles.",
    ["kind"],
)

# --- Compositions: status callbacks, the processing watchdog and media delivery ---

COMPOSITION_CALLBACKS = Counter(
    "twilio_video_operator_composition_callbacks_total",
    "Verified composition callbacks processed, by outcome: applied (the status moved), stale (late or "
    "repeated news), unknown (no Composition object has that SID), malformed (bad field values).",
    ["outcome"],
)

COMPOSITIONS_STALLED = Gauge(
    "twilio_video_operator_composition_stalled",
    "Compositions still enqueued or processing at Twilio longer than their stalledAfter (alert when > 0).",
)

COMPOSITIONS_BY_STATUS = Gauge(
    "twilio_video_operator_compositions",
    "Composition objects known to this operator, by composition status (enqueued, processing, completed, "
    "failed, deleted, none).",
    ["composition_status"],
)

COMPOSITION_PROCESSING_TIMEOUTS = Counter(
    "twilio_video_operator_composition_processing_timeouts_total",
    "Times a Composition was marked Stalled because Twilio did not finish it within stalledAfter.",
)

DELIVERIES = Counter(
    "twilio_video_operator_deliveries_total",
    "Media deliveries attempted, by outcome: Uploaded, AlreadyPresent, or the failure reason "
    "(BucketNotFound, AccessDenied, InvalidCredentials, StorageUnavailable, SourceUnavailable, ...).",
    ["outcome"],
)

DELIVERY_BYTES = Counter(
    "twilio_video_operator_delivery_bytes_total",
    "Bytes of media uploaded to object storage by completed deliveries.",
)

DELIVERY_DURATION = Histogram(
    "twilio_video_operator_delivery_duration_seconds",
    "Time one successful delivery took, from the first storage request to the tagged object.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)

# --- Reconciles of the operator's custom resources (controller-runtime names under our prefix) ---
# ``kind`` is the resource kind (VideoRoom, Composition, SigningKeyRotation).

RECONCILE_TOTAL = Counter(
    "twilio_video_operator_reconcile_total",
    "Reconciles by kind and result: success, requeue_after (success with a timed return), error "
    "(will be retried), stalled (stopped until the spec or credentials change) or paused.",
    ["kind", "result"],
)

RECONCILE_ERRORS = Counter(
    "twilio_video_operator_reconcile_errors_total",
    "Reconciles that ended in an error, retryable or not.",
    ["kind"],
)

RECONCILE_TIME = Histogram(
    "twilio_video_operator_reconcile_time_seconds",
    "Time one reconcile worked (from holding its object's lock), Twilio and Kubernetes calls included.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

# --- Work queues: reconciles waiting for their object's lock (or a parallelism cap) and working ---
# controller-runtime's workqueue and worker figures, by kind instead of controller name.

WORKQUEUE_DEPTH = Gauge(
    "twilio_video_operator_workqueue_depth",
    "Reconciles waiting to start: for the object's lock (another reconcile of it runs) or, for timed "
    "VideoRoom reconciles, for a free slot of the parallel reconcile cap.",
    ["kind"],
)

WORKQUEUE_ADDS = Counter(
    "twilio_video_operator_workqueue_adds",
    "Reconciles asked for (entered the queue), whatever became of them.",
    ["kind"],
)

WORKQUEUE_QUEUE_DURATION = Histogram(
    "twilio_video_operator_workqueue_queue_duration_seconds",
    "Time a reconcile waited in the queue before it started working.",
    ["kind"],
    buckets=(0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0),
)

WORKQUEUE_LONGEST_WAITING = Gauge(
    "twilio_video_operator_workqueue_longest_waiting_seconds",
    "How long the reconcile waiting longest has been waiting right now (0 when none waits).",
    ["kind"],
)

WORKQUEUE_LONGEST_RUNNING = Gauge(
    "twilio_video_operator_workqueue_longest_running_processor_seconds",
    "How long the reconcile working longest has been working right now (0 when none works).",
    ["kind"],
)

ACTIVE_WORKERS = Gauge(
    "twilio_video_operator_active_workers",
    "Reconciles working right now.",
    ["kind"],
)

# --- Objects of every kind by condition, as the API server holds them ---

OBJECTS_BY_CONDITION = Gauge(
    "twilio_video_operator_objects",
    "Objects of each kind by condition (Ready, Stalled, Paused) and its status (True, False, Unknown: "
    "absent). Every object counts once per condition; Paused is the video.openclaw.io/paused annotation.",
    ["kind", "condition", "status"],
)

OLDEST_STALL = Gauge(
    "twilio_video_operator_oldest_stall_timestamp_seconds",
    "Unix time at which the longest-stalled object of the kind became Stalled (the lastTransitionTime of "
    "its Stalled=True condition). No series while no object of the kind is stalled.",
    ["kind"],
)


def export_object_count(kind: str, condition: str, status: str, count: int) -> None:
    OBJECTS_BY_CONDITION.labels(kind, condition, status).set(count)


def export_oldest_stall(kind: str, since: float | None) -> None:
    if since is not None:
        OLDEST_STALL.labels(kind).set(since)
        return
    with contextlib.suppress(KeyError):  # no series yet
        OLDEST_STALL.remove(kind)


# --- VideoRoom ---

VIDEOROOMS_BY_STATUS = Gauge(
    "twilio_video_operator_videorooms",
    "VideoRoom objects known to this operator, by room status (Scheduled, in-progress, completed, failed, "
    "none).",
    ["room_status"],
)

PARTICIPANT_SECONDS = Counter(
    "twilio_video_operator_participant_seconds_total",
    "Participant time reported by participant-disconnected callbacks (ParticipantDuration), by room type.",
    ["room_type"],
)

# --- Twilio status callbacks received on the operator's HTTP server ---
# ``endpoint`` is the callback route's short name (room-events, composition-events).

WEBHOOKS_RECEIVED = Counter(
    "twilio_video_operator_webhooks_received_total",
    "Status callback requests received, before any check.",
    ["endpoint"],
)

WEBHOOKS_REJECTED = Counter(
    "twilio_video_operator_webhooks_rejected_total",
    "Status callback requests refused, by reason: method, too_large, malformed, not_leader (a handed-off "
    "callback reached a replica that does not lead), unknown_account, signature, overloaded.",
    ["endpoint", "reason"],
)

WEBHOOKS_DUPLICATES = Counter(
    "twilio_video_operator_webhooks_duplicates_total",
    "Status callbacks accepted but dropped because the same event was already queued (Twilio retries).",
    ["endpoint"],
)

WEBHOOK_QUEUE_DEPTH = Gauge(
    "twilio_video_operator_webhook_queue_depth",
    "Status callbacks accepted and waiting to be processed.",
    ["endpoint"],
)

WEBHOOKS_LATE = Counter(
    "twilio_video_operator_webhooks_late_total",
    "Verified status callbacks about an object that no longer exists (deleted before Twilio's last "
    "events arrived): expected, and dropped.",
    ["endpoint"],
)

MODERATION_ACTIONS = Counter(
    "twilio_video_operator_moderation_actions_total",
    "Moderation actions recorded with an Event: muted or unmuted (spec.moderation.mutedIdentities).",
    ["action"],
)

SUBSCRIBE_RULES_SET = Counter(
    "twilio_video_operator_subscribe_rules_set_total",
    "Participants whose Twilio subscribe rules the operator set to enforce mutes, by trigger: reconcile "
    "(a mute changed, a new session, a resync) or participant-connected (a participant joined).",
    ["trigger"],
)

VERIFICATIONS = Counter(
    "twilio_video_operator_token_verifications_total",
    "Token requests for rooms with access.verification, by result: cached (this replica remembers a check "
    "passed within the TTL), pass (the request's verificationPass shows one), approved (Twilio Verify "
    "approved the code), refused (a 403) or error (Verify could not be asked).",
    ["result"],
)

NOTIFICATIONS_SENT = Counter(
    "twilio_video_operator_notifications_sent_total",
    "Session notifications Twilio or SendGrid accepted (or a look-up found sent), by channel (sms, "
    "whatsapp, email, studio) and event (reminder, recordingAvailable, compositionFailed).",
    ["channel", "event"],
)

NOTIFICATIONS_FAILED = Counter(
    "twilio_video_operator_notifications_failed_total",
    "Session notifications refused for good (a 4xx: bad address, unknown service or template) or not sent "
    "because the namespace may not use their sender on the operator's account, by channel and event. "
    "Transient failures are retried and not counted here.",
    ["channel", "event"],
)

NOTIFICATION_LOOKUPS = Counter(
    "twilio_video_operator_notification_lookups_total",
    "Look-ups of notifications whose outcome was unknown (a lost answer, a restart), by channel and result: "
    "found (it had been sent; not sent again) or not_found (sent now, or cancelled when no longer due).",
    ["channel", "result"],
)

NOTIFICATION_DELIVERY_FAILURES = Counter(
    "twilio_video_operator_notification_delivery_failures_total",
    "Text and WhatsApp notifications the Messaging status callback reported failed or undelivered, by "
    "channel and event.",
    ["channel", "event"],
)

ROOM_ENDED_CONFIRMATIONS = Counter(
    "twilio_video_operator_room_ended_confirmations_total",
    "room-ended callbacks for a room the operator had in progress, confirmed with one FetchRoom before "
    "status says it ended.",
)

# --- High availability (leader election through a Lease; see kube/leader.py) ---

TWILIO_FENCED_REQUESTS = Counter(
    "twilio_fenced_requests_total",
    "Twilio creates, updates and deletes not sent because this replica no longer led when their turn came.",
    ["operation"],
)

LEADER = Gauge(
    "twilio_video_operator_leader",
    "1 while this replica reconciles (holds the leader Lease, or runs without leader election), else 0.",
)

LEADER_TRANSITIONS = Counter(
    "twilio_video_operator_leader_transitions_total",
    "Times this replica became leader (acquired) or stopped leading (lost, released).",
    ["transition"],
)

WEBHOOKS_HANDED_OFF = Counter(
    "twilio_video_operator_webhooks_handed_off_total",
    "Verified callbacks a follower passed to the leader, by result: delivered, or refused by the leader "
    "(dropped).",
    ["endpoint", "result"],
)


# --- Series created at 0 when the operator starts ---
#
# A counter series born with the value 1 hides that first count from rate() and increase(), which need two
# samples: the first reconcile error or rejected callback after a restart would go unseen by the alerts.
# So every counter whose labels take a small fixed set of values is created at 0 before anything counts.
# Counters keyed by Twilio operation, notification channel or failure reason start with their first count.

WebhookRejection = Literal[
    "method", "too_large", "malformed", "not_leader", "unknown_account", "signature", "overloaded"
]
HandoffResult = Literal["delivered", "refused", "expired"]
RotationResult = Literal["succeeded", "failed"]
CompositionCallbackOutcome = Literal["applied", "stale", "unknown", "malformed"]
LeaderTransition = Literal["acquired", "lost", "released"]
VerificationResult = Literal["cached", "pass", "approved", "refused", "error"]

FIXED_LABEL_VALUES: dict[Counter, tuple[str, ...]] = {
    WEBHOOKS_REJECTED: get_args(WebhookRejection),
    WEBHOOKS_HANDED_OFF: get_args(HandoffResult),
    SIGNING_KEY_ROTATIONS: get_args(RotationResult),
    COMPOSITION_CALLBACKS: get_args(CompositionCallbackOutcome),
    LEADER_TRANSITIONS: get_args(LeaderTransition),
    VERIFICATIONS: get_args(VerificationResult),
}
"""The values of the last label of each counter above; a unit test holds every literal the code counts
with to these sets."""

ENDPOINT_KEYED = (WEBHOOKS_REJECTED, WEBHOOKS_HANDED_OFF)
"""Counters of ``FIXED_LABEL_VALUES`` whose first label is the callback endpoint."""

ENDPOINT_COUNTERS = (WEBHOOKS_RECEIVED, WEBHOOKS_DUPLICATES)
"""Counters labelled by callback endpoint only."""


def create_fixed_series(*, kinds: Iterable[str], results: Iterable[str], endpoints: Iterable[str]) -> None:
    """Create at 0 every series of the counters with fixed labels: reconciles by ``kinds`` and their
    ``results``, callbacks by ``endpoints``, and the counters of ``FIXED_LABEL_VALUES``. Idempotent."""
    results, endpoints = tuple(results), tuple(endpoints)
    for kind in kinds:
        RECONCILE_ERRORS.labels(kind)
        WORKQUEUE_ADDS.labels(kind)
        for result in results:
            RECONCILE_TOTAL.labels(kind, result)
    for counter, values in FIXED_LABEL_VALUES.items():
        prefixes = [(endpoint,) for endpoint in endpoints] if counter in ENDPOINT_KEYED else [()]
        for prefix in prefixes:
            for value in values:
                counter.labels(*prefix, value)
    for endpoint in endpoints:
        for counter in ENDPOINT_COUNTERS:
            counter.labels(endpoint)
