"""The notification executor and the message status callbacks, against in-memory fakes of Kubernetes,
Twilio and SendGrid: intent before send, look-up before a second send, failures in status and Events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import RetryableError, TerminalError
from twilio_video_operator.gateway.notify import Sent
from twilio_video_operator.gateway.sendgrid import Mail
from twilio_video_operator.models.notifications import Notifications, recorded_notifications
from twilio_video_operator.reconcilers.credentials import SecretData
from twilio_video_operator.reconcilers.notification_callbacks import MessageStatusSink, parse_message_callback
from twilio_video_operator.reconcilers.notification_executor import Notifier, Target
from twilio_video_operator.reconcilers.notification_plan import Occurrence, plan_notifications
from twilio_video_operator.reconcilers.notification_render import Session
from twilio_video_operator.reconcilers.shared_services import SharedServices, refused_senders

NOW = datetime(2030, 5, 1, 14, 40, tzinfo=UTC)
UID = "uid-1"
ACCOUNT = "AC" + "1" * 32
PHONE = "+15551230001"
EMAIL = "attendee@example.com"
OCCURRENCE = Occurrence("reminder", "2030-05-01T15:00:00Z", {"startTime": "2030-05-01T15:00:00Z"})
CREDS = CredentialSet.from_mapping(
    {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY": "SK" + "2" * 32, "TWILIO_API_SECRET": "s" * 32}
)


def spec(*recipients: dict[str, str]) -> Notifications:
    return Notifications.model_validate(
        {
            "messaging": {"serviceSid": "MG" + "a" * 32},
            "email": {
                "templateId": "d-" + "b" * 32,
                "from": "events@example.com",
                "apiKeySecretRef": {"name": "sg"},
            },
            "recipients": list(recipients) or [{"phone": PHONE}],
        }
    )


class World:
    """Kubernetes (one object's status, Secrets, Events), Twilio and SendGrid, with a log of every call."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.secrets: dict[str, dict[str, str]] = {"sg": {"SENDGRID_API_KEY": "SG.key-value"}}
        self.events: list[tuple[str, str, str]] = []
        self.calls: list[str] = []
        self.messages: list[tuple[str, str]] = []  # (to, body)
        self.mail: list[Mail] = []
        self.fail_next: Exception | None = None
        self.lose_next_answer = False

    # Kubernetes port
    async def read_secret(self, namespace: str, name: str) -> SecretData | None:
        data = self.secrets.get(name)
        return SecretData("1", data) if data is not None else None

    async def patch_notifications(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        self.calls.append("patch")
        notes = self.status.setdefault("notifications", {})
        for key, value in patch.items():
            if key == "records":
                records = notes.setdefault("records", {})
                for ref, fields in value.items():
                    if fields is None:
                        records.pop(ref, None)
                    else:
                        merged = {**records.get(ref, {}), **fields}
                        records[ref] = {k: v for k, v in merged.items() if v is not None}
            elif value is None:
                notes.pop(key, None)
            else:
                notes[key] = value

    async def post_event(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        self.events.append((type, reason, message))

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"uid": UID, "namespace": namespace, "name": name}, "status": self.status}

    # Twilio
    async def send_message(
        self, *, to: str, service_sid: str, body: str, status_callback: str | None = None
    ) -> Sent:
        self.calls.append("send")
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.messages.append((to, body))
        if self.lose_next_answer:
            self.lose_next_answer = False
            raise RetryableError("lost", operation="CreateMessage", status=502, maybe_applied=True)
        return Sent(f"SM{len(self.messages):032d}", "accepted")

    async def find_message(self, *, to: str | None, marker: str, since: datetime) -> Sent | None:
        self.calls.append("find" if to is not None else "find-any")
        for number, (sent_to, body) in enumerate(self.messages, start=1):
            if to in (None, sent_to) and marker in body:
                return Sent(f"SM{number:032d}")
        return None

    async def start_execution(self, **_: Any) -> Sent:
        raise AssertionError("no Studio recipient here")

    async def find_execution(self, **_: Any) -> Sent | None:
        raise AssertionError("no Studio recipient here")

    # SendGrid
    async def send(self, mail: Mail) -> str | None:
        self.calls.append("mail")
        self.mail.append(mail)
        return "msg-1"

    async def find(self, arg_name: str, arg_value: str) -> str | None:
        self.calls.append("find-mail")
        return next(("msg-1" for mail in self.mail if mail.custom_args.get(arg_name) == arg_value), None)


#: The operator's own account is another one: CREDS are a tenant's, which may use any sender.
TENANT_ACCOUNT = SharedServices("AC" + "9" * 32, {})


def notifier(world: World, clock: list[datetime], services: SharedServices = TENANT_ACCOUNT) -> Notifier:
    return Notifier(world, lambda creds: world, lambda key: world, clock=lambda: clock[0], services=services)


async def run(
    world: World,
    notes: Notifications | None,
    clock: list[datetime],
    services: SharedServices = TENANT_ACCOUNT,
    occurrences: tuple[Occurrence, ...] = (OCCURRENCE,),
) -> datetime | None:
    """One pass as the controllers make it: plan from status (refusing what ``services`` refuses), run."""
    records, unreadable = recorded_notifications(world.status.get("notifications"))
    refused = refused_senders(services, "team", notes, CREDS.account_sid)
    plan = plan_notifications(notes, list(occurrences), records, unreadable, uid=UID, refused=refused)
    target = Target("VideoRoom", "team", "webinar", UID, {"metadata": {"name": "webinar"}})
    session = Session("VideoRoom", "team", "webinar", "Webinar")
    retry_text = (world.status.get("notifications") or {}).get("retryAt")
    retry_at = datetime.fromisoformat(retry_text.replace("Z", "+00:00")) if retry_text else None
    return await notifier(world, clock, services).run(
        target, notes, session, plan, creds=CREDS, retry_at=retry_at
    )


def only_record(world: World) -> dict[str, Any]:
    records = world.status["notifications"]["records"]
    assert len(records) == 1
    return dict(next(iter(records.values())))


async def test_the_intent_is_recorded_before_the_send() -> None:
    world, clock = World(), [NOW]
    assert await run(world, spec(), clock) is None
    assert world.calls == ["patch", "send", "patch"]
    record = only_record(world)
    assert record["state"] == "Sent" and record["sid"] == "SM" + "1".rjust(32, "0")
    assert record["accountSid"] == ACCOUNT and record["recipient"] == 0 and record["channel"] == "sms"
    assert PHONE not in str(world.status) and world.events[-1][1] == "NotificationSent"
    assert await run(world, spec(), clock) is None  # nothing more to do
    assert len(world.messages) == 1


async def test_a_lost_answer_is_looked_up_and_never_sent_twice() -> None:
    world, clock = World(), [NOW]
    world.lose_next_answer = True
    retry = await run(world, spec(), clock)
    assert retry == NOW + timedelta(seconds=5)
    record = only_record(world)
    assert record["state"] == "Pending" and record["attempts"] == 1 and record["errorCode"] == 502
    assert world.status["notifications"]["retryAt"] == "2030-05-01T14:40:05Z"

    clock[0] = NOW + timedelta(seconds=6)
    world.calls.clear()
    assert await run(world, spec(), clock) is None
    assert world.calls == ["find", "patch"]  # found: not sent again
    assert len(world.messages) == 1 and only_record(world)["state"] == "Sent"
    assert "retryAt" not in world.status["notifications"]


async def test_a_pending_intent_that_never_reached_twilio_is_sent_after_the_look_up() -> None:
    world, clock = World(), [NOW]
    world.fail_next = RetryableError("down", operation="CreateMessage", status=None, maybe_applied=True)
    await run(world, spec(), clock)
    assert world.messages == [] and only_record(world)["state"] == "Pending"
    world.calls.clear()
    await run(world, spec(), clock)
    assert world.calls == ["find", "send", "patch"] and len(world.messages) == 1
    assert only_record(world)["state"] == "Sent"


async def test_a_refusal_is_recorded_as_failed_with_a_warning_that_names_no_address() -> None:
    world, clock = World(), [NOW]
    world.fail_next = TerminalError(
        f"Invalid 'To' Phone Number: {PHONE}", operation="CreateMessage", status=400, code=21211
    )
    assert await run(world, spec(), clock) is None
    record = only_record(world)
    assert record["state"] == "Failed" and record["errorCode"] == 21211
    assert world.events == [
        (
            "Warning",
            "NotificationFailed",
            "The reminder notification to recipient 0 (sms) was refused: Terminal, code 21211, HTTP 400.",
        )
    ]
    await run(world, spec(), clock)
    assert world.calls.count("send") == 1  # never again


async def test_email_waits_for_its_secret() -> None:
    world, clock = World(), [NOW]
    world.secrets.clear()
    notes = spec({"email": EMAIL}, {"phone": PHONE})
    retry = await run(world, notes, clock)
    assert retry is not None and len(world.messages) == 1 and world.mail == []
    assert [e[1] for e in world.events] == ["NotificationBlocked", "NotificationSent"]
    world.secrets["sg"] = {"SENDGRID_API_KEY": "SG.key-value"}
    clock[0] = retry
    assert await run(world, notes, clock) is None
    assert len(world.mail) == 1 and world.mail[0].to == EMAIL
    assert world.mail[0].custom_args["notification_ref"] in world.status["notifications"]["records"]
    assert world.mail[0].data["event"] == "reminder"


def callback_path(ref: str, uid: str = UID) -> str:
    return f"/twilio/message-events?kind=VideoRoom&namespace=team&name=webinar&uid={uid}&ref={ref}"


async def test_delivery_failures_reported_by_the_status_callback_show_in_status_and_events() -> None:
    world, clock = World(), [NOW]
    await run(world, spec(), clock)
    ref, record = next(iter(world.status["notifications"]["records"].items()))
    sink = MessageStatusSink(world)
    params = {"MessageSid": record["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    callback = parse_message_callback(ACCOUNT, params, callback_path(ref))
    assert callback is not None and await sink.apply(callback)
    assert only_record(world)["deliveryStatus"] == "undelivered"
    assert only_record(world)["deliveryErrorCode"] == 30003
    assert world.events[-1] == (
        "Warning",
        "NotificationUndelivered",
        "The reminder sms message to recipient 0 was undelivered (Twilio error 30003).",
    )
    late = parse_message_callback(ACCOUNT, {**params, "MessageStatus": "sent"}, callback_path(ref))
    assert late is not None and await sink.apply(late)
    assert only_record(world)["deliveryStatus"] == "undelivered"  # an earlier status arriving late


async def test_a_callback_of_another_account_or_message_changes_nothing() -> None:
    world, clock = World(), [NOW]
    await run(world, spec(), clock)
    ref, record = next(iter(world.status["notifications"]["records"].items()))
    sink = MessageStatusSink(world)
    params = {"MessageSid": record["sid"], "MessageStatus": "failed", "ErrorCode": "30008"}
    for account, fields, path in (
        ("AC" + "9" * 32, params, callback_path(ref)),
        (ACCOUNT, {**params, "MessageSid": "SM" + "9" * 32}, callback_path(ref)),
        (ACCOUNT, params, callback_path(ref, uid="another-uid")),
        (ACCOUNT, params, callback_path("n-unknown")),
    ):
        callback = parse_message_callback(account, fields, path)
        assert callback is not None and not await sink.apply(callback)
    assert "deliveryStatus" not in only_record(world)
    assert parse_message_callback(ACCOUNT, params, "/twilio/message-events") is None


SERVICE = "MG" + "a" * 32
#: CREDS are the operator's own account here, and namespace "team" is granted nothing on it.
OPERATOR_ACCOUNT = SharedServices(ACCOUNT, {"*": {"messaging": ("*",)}, "team": {}})


async def test_a_sender_the_namespace_may_not_use_on_the_operators_account_is_never_called() -> None:
    world, clock = World(), [NOW]
    notes = spec({"phone": PHONE}, {"email": EMAIL})
    assert await run(world, notes, clock, OPERATOR_ACCOUNT) is None
    assert world.messages == [] and "find" not in world.calls and "send" not in world.calls
    records = world.status["notifications"]["records"].values()
    by_channel = {record["channel"]: record for record in records}
    assert by_channel["sms"]["state"] == "Failed" and by_channel["sms"]["reason"] == "SenderNotAllowed"
    assert by_channel["email"]["state"] == "Sent"  # the tenant's own SendGrid key: not restricted
    [refusal] = [event for event in world.events if event[0] == "Warning"]
    assert refusal[1] == "SenderNotAllowed"
    assert f"Messaging Service {SERVICE} is not one namespace team may use" in refusal[2]
    assert "TENANT_TWILIO_SERVICES" in refusal[2] and PHONE not in refusal[2]

    world.calls.clear()
    world.events.clear()
    assert await run(world, notes, clock, OPERATOR_ACCOUNT) is None
    assert world.calls == [] and world.events == []  # refused once, not again at every reconcile

    granted = SharedServices(ACCOUNT, {"team": {"messaging": (SERVICE,)}})
    await run(world, notes, clock, granted)
    assert len(world.messages) == 1 and world.calls.count("send") == 1
    sms = next(r for r in world.status["notifications"]["records"].values() if r["channel"] == "sms")
    assert sms["state"] == "Sent" and "reason" not in sms
    await run(world, notes, clock, granted)
    assert len(world.messages) == 1


async def test_a_pending_notification_to_a_refused_sender_is_not_looked_up() -> None:
    world, clock = World(), [NOW]
    world.fail_next = RetryableError("down", operation="CreateMessage", status=None, maybe_applied=True)
    await run(world, spec(), clock)
    assert only_record(world)["state"] == "Pending"
    world.calls.clear()
    await run(world, spec(), clock, OPERATOR_ACCOUNT)
    assert "find" not in world.calls and "send" not in world.calls
    assert only_record(world)["state"] == "Failed" and only_record(world)["reason"] == "SenderNotAllowed"


async def test_a_pending_notification_of_a_removed_recipient_is_looked_up_once_then_settled() -> None:
    other = "+15551230009"
    world, clock = World(), [NOW]
    world.lose_next_answer = True  # the first recipient's message went out; its answer was lost
    world.fail_next = None
    both = spec({"phone": PHONE}, {"phone": other})
    await run(world, both, clock)
    states = {
        record["recipient"]: record["state"] for record in world.status["notifications"]["records"].values()
    }
    assert states == {0: "Pending", 1: "Sent"} and len(world.messages) == 2

    world.calls.clear()
    clock[0] = NOW + timedelta(minutes=1)
    only_other = spec({"phone": other})
    assert await run(world, only_other, clock) is None
    assert world.calls == ["find-any", "patch"]  # the address is gone: the account's messages
    removed = next(r for r in world.status["notifications"]["records"].values() if r["recipient"] == 0)
    assert removed["state"] == "Sent" and removed["sid"] == "SM" + "1".rjust(32, "0")
    assert len(world.messages) == 2

    world, clock = World(), [NOW]
    world.fail_next = RetryableError("down", operation="CreateMessage", status=None, maybe_applied=True)
    await run(world, spec({"phone": PHONE}), clock)
    assert world.messages == [] and only_record(world)["state"] == "Pending"
    world.calls.clear()
    world.events.clear()
    await run(world, spec({"email": EMAIL}), clock)  # the phone recipient replaced by an email one
    sms = next(r for r in world.status["notifications"]["records"].values() if r["channel"] == "sms")
    assert sms["state"] == "Cancelled" and sms["reason"] == "RecipientRemoved"
    assert world.messages == [] and world.calls.count("find-any") == 1 and "send" not in world.calls
    assert ("Normal", "NotificationCancelled") in {(event[0], event[1]) for event in world.events}
    assert all(PHONE not in event[2] for event in world.events)
    world.calls.clear()
    await run(world, spec({"email": EMAIL}), clock)
    assert "find-any" not in world.calls  # looked up once


async def test_a_pending_reminder_whose_time_passed_is_cancelled_when_not_found() -> None:
    world, clock = World(), [NOW]
    world.fail_next = RetryableError("down", operation="CreateMessage", status=None, maybe_applied=True)
    await run(world, spec(), clock)
    world.calls.clear()
    await run(world, spec(), clock, occurrences=())  # the session started: the reminder is no longer due
    assert world.calls == ["find", "patch"]  # the recipient is still there: searched by its address
    assert only_record(world)["state"] == "Cancelled" and only_record(world)["reason"] == "NoLongerDue"
    assert world.messages == []


async def test_pending_records_are_settled_without_a_call_when_the_section_is_gone() -> None:
    world, clock = World(), [NOW]
    world.fail_next = RetryableError("down", operation="CreateMessage", status=None, maybe_applied=True)
    await run(world, spec(), clock)
    world.calls.clear()
    await run(world, None, clock)  # spec.notifications removed
    assert world.calls == ["patch"]
    assert only_record(world)["state"] == "Cancelled" and only_record(world)["reason"] == "RecipientRemoved"
