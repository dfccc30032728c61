"""JSON logging for the operator process, with redaction of secret values in every record.

Each record becomes one JSON object per line: ``time``, ``level``, ``logger``, ``message``, then any
``extra`` fields (``namespace``, ``name``, ``kind``, ``twilio_request_id``, ...) and ``exception``.
Python reserves ``name`` on a log record for the logger, so pass an object's name as ``object_name``
(:func:`object_fields` builds the three fields); kopf's per-object records get them automatically.

Before a record reaches any handler (the JSON stream or kopf's Kubernetes Event poster), the
:class:`RedactingFilter` replaces every value registered with :func:`register_secret`, anything shaped like
a JWT and the credentials of ``Authorization: Basic/Bearer`` headers with ``[REDACTED]``, and phone numbers
and email addresses (notification recipients; kopf's debug records dump whole objects) with ``[CONTACT]``.
Events carry the message alone (:class:`EventFormatter`): a traceback stays in the operator's own log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import SecretStr

MASK = "[REDACTED]"
MIN_SECRET_LENGTH = 4

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_AUTHORIZATION = re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?\s*(?:basic|bearer)\s+)[^\s\"',;}]+")
_BARE_SCHEME = re.compile(r"(?i)\b((?:basic|bearer)\s+)[A-Za-z0-9+/=._~-]{20,}")
# Contact addresses (notification recipients, identities that are phone numbers or email addresses): kopf's
# debug records dump whole objects, spec.notifications included.
_PHONE = re.compile(r"(?<![\w+])(?:whatsapp:)?\+[1-9][0-9]{7,14}(?![0-9])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
CONTACT_MASK = "[CONTACT]"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Attributes kopf puts on its per-object records; ``k8s_ref`` is mapped to namespace/name/kind instead.
_KOPF_ATTRS = frozenset({"k8s_ref", "k8s_skip", "settings"})

OBJECT_NAME_FIELD = "object_name"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_pattern: re.Pattern[str] | None = None


def register_secret(value: str | SecretStr | None) -> None:
    """Mask ``value`` wherever it appears in a log record from now on (empty or tiny values are ignored)."""
    global _secrets_pattern
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text or len(text) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        if text in _secrets:
            return
        _secrets.add(text)
        ordered = sorted(_secrets, key=len, reverse=True)  # longest first: a secret may contain another
        _secrets_pattern = re.compile("|".join(re.escape(secret) for secret in ordered))


def forget_secrets() -> None:
    """Drop every registered secret (for tests and for a process that re-reads its credentials)."""
    global _secrets_pattern
    with _secrets_lock:
        _secrets.clear()
        _secrets_pattern = None


def redact(text: str) -> str:
    """``text`` with registered secrets, JWTs and Authorization credentials replaced by ``[REDACTED]``."""
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _JWT.sub(MASK, text)
    text = _AUTHORIZATION.sub(lambda match: match.group(1) + MASK, text)
    return _BARE_SCHEME.sub(lambda match: match.group(1) + MASK, text)


def mask_contacts(text: str) -> str:
    """``text`` with phone numbers (E.164, ``whatsapp:`` ones) and email addresses replaced by
    ``[CONTACT]``: what log records must not carry besides secrets."""
    return _EMAIL.sub(CONTACT_MASK, _PHONE.sub(CONTACT_MASK, text))


def _redact_for_log(value: Any) -> Any:
    redacted = redact_value(value)
    if isinstance(redacted, str):
        return mask_contacts(redacted)
    if isinstance(redacted, Mapping):
        return {key: _redact_for_log(item) for key, item in redacted.items()}
    if isinstance(redacted, list):
        return [_redact_for_log(item) for item in redacted]
    return redacted


def redact_value(value: Any) -> Any:
    """Redact strings inside ``value`` (nested dicts, lists and tuples included); other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {key: redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def object_fields(
    *, namespace: str | None = None, name: str | None = None, kind: str | None = None
) -> dict[str, str]:
    """``extra=`` fields naming a Kubernetes object; logged as ``namespace``, ``name`` and ``kind``."""
    fields = {"namespace": namespace, OBJECT_NAME_FIELD: name, "kind": kind}
    return {key: value for key, value in fields.items() if value}


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so that no handler after it can see a secret: the rendered message,
    the ``extra`` fields and the exception text are redacted; the record is never dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what can be shown
            message = f"{record.msg} {record.args!r}"
        record.msg = mask_contacts(redact(message))
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and key not in _KOPF_ATTRS:
                setattr(record, key, _redact_for_log(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_contacts(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, "_redacted", True)  # noqa: B010 - a private marker, not a typed attribute
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        reference = getattr(record, "k8s_ref", None)
        if isinstance(reference, Mapping):
            for field in ("namespace", "name", "kind"):
                if reference.get(field):
                    entry[field] = reference[field]
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in _KOPF_ATTRS and not key.startswith("_"):
                entry["name" if key == OBJECT_NAME_FIELD else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class EventFormatter(logging.Formatter):
    """The text of a Kubernetes Event: the record's message without the exception's traceback or a stack.

    Whoever may read the object's Events would otherwise see the operator's code paths and local values.
    """

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


_REDACTION = RedactingFilter()
_EVENT_FORMAT = EventFormatter()
_HANDLER_NAME = "twilio-video-operator-json"


def install_redaction() -> None:
    """Redact records of kopf's per-object logger before its Kubernetes Event poster sees them, and have
    that poster (the handler kopf attaches to this logger) post the message without a traceback.

    Idempotent. Logger filters do not apply to records propagated from child loggers, so the stream
    handler of :func:`setup_logging` carries the same filter for everything else.
    """
    objects_logger = logging.getLogger("kopf.objects")
    if _REDACTION not in objects_logger.filters:
        objects_logger.addFilter(_REDACTION)
    for handler in objects_logger.handlers:
        handler.setFormatter(_EVENT_FORMAT)


def setup_logging(level: str = "INFO", *, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record, as redacted JSON lines, to ``stream`` (stderr by default) at ``level``.

    Idempotent: a handler installed by an earlier call is replaced, not duplicated.
    """
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_REDACTION)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log repeats every probe and scrape; keep it for debugging only.
    logging.getLogger("aiohttp.access").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    )
    install_redaction()
    return handler
