"""Validation of Recording Rules (error 53120) and Subscribe Rules."""

from __future__ import annotations

from typing import Any

from .core import TwilioError

RECORDING_RULES_ERROR = 53120
# Twilio's code for bad subscribe rules is not documented; the generic "bad request" code is used.
SUBSCRIBE_RULES_ERROR = 20001
MAX_RULES = 20
RULE_TYPES = ("include", "exclude")
RULE_KINDS = ("audio", "video", "data")
RULE_PRIORITIES = ("low", "standard", "high")


def _check(rules: Any, code: int, *, kinds: tuple[str, ...], extra: tuple[str, ...]) -> list[dict[str, Any]]:
    if not isinstance(rules, list) or not rules:
        raise TwilioError(400, code, "Rules must be a non-empty JSON array")
    if len(rules) > MAX_RULES:
        raise TwilioError(400, code, f"At most {MAX_RULES} rules are allowed")
    allowed = {"type", "all", "publisher", "track", "kind", *extra}
    cleaned: list[dict[str, Any]] = []
    for rule in rules:
        if not isinstance(rule, dict):
            raise TwilioError(400, code, "Each rule must be a JSON object")
        present = {key: value for key, value in rule.items() if value is not None}
        unknown = set(present) - allowed
        if unknown:
            raise TwilioError(400, code, f"Unknown rule field(s): {', '.join(sorted(unknown))}")
        if present.get("type") not in RULE_TYPES:
            raise TwilioError(400, code, "Each rule needs a type of include or exclude")
        if "all" in present:
            if present["all"] is not True:
                raise TwilioError(400, code, "all must be true")
            if set(present) - {"type", "all"}:
                raise TwilioError(400, code, "all may only be combined with type")
        elif not set(present) - {"type", "priority"}:
            raise TwilioError(400, code, "A rule needs all, publisher, track or kind")
        if "kind" in present and present["kind"] not in kinds:
            raise TwilioError(400, code, f"kind must be one of: {', '.join(kinds)}")
        for key in ("publisher", "track"):
            if key in present and (not isinstance(present[key], str) or not present[key]):
                raise TwilioError(400, code, f"{key} must be a non-empty string")
        if "priority" in present and present["priority"] not in RULE_PRIORITIES:
            raise TwilioError(400, code, f"priority must be one of: {', '.join(RULE_PRIORITIES)}")
        cleaned.append(present)
    return cleaned


def validate_recording_rules(rules: Any) -> list[dict[str, Any]]:
    """Rules as Twilio accepts them for RecordingRules; anything else is 400/53120."""
    return _check(rules, RECORDING_RULES_ERROR, kinds=("audio", "video"), extra=())


def validate_subscribe_rules(rules: Any) -> list[dict[str, Any]]:
    return _check(rules, SUBSCRIBE_RULES_ERROR, kinds=RULE_KINDS, extra=("priority",))
