"""The counters created at 0 at start (``metrics.FIXED_LABEL_VALUES``) are counted only with the values
declared for them, and every declared value is counted somewhere: a zero series of a value the code never
counts would mislead, and a value counted but not declared would be born at 1 and hide from rate()."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import get_args

from prometheus_client import REGISTRY

from twilio_video_operator import metrics

PACKAGE = Path(metrics.__file__).resolve().parent
COUNTER_NAMES = {
    name: counter
    for name, counter in vars(metrics).items()
    if isinstance(counter, metrics.Counter) and counter in metrics.FIXED_LABEL_VALUES
}


def literal_values(node: ast.expr) -> list[str] | None:
    """The strings an argument can be: a literal, or either branch of a conditional of literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = literal_values(node.body), literal_values(node.orelse)
        return body + orelse if body is not None and orelse is not None else None
    return None


def counted_values() -> tuple[dict[str, set[str]], list[str]]:
    """Per counter name, the literal values of its last label in ``metrics.NAME.labels(...)`` calls of the
    operator; and the calls whose last label is not a literal."""
    found: dict[str, set[str]] = defaultdict(set)
    unchecked: list[str] = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            target = node.func.value
            if node.func.attr != "labels" or not isinstance(target, ast.Attribute):
                continue
            if target.attr not in COUNTER_NAMES or not node.args:
                continue
            values = literal_values(node.args[-1])
            if values is None:
                unchecked.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
            else:
                found[target.attr].update(values)
    return found, unchecked


def rejection_reasons() -> set[str]:
    """The reasons the callback endpoint refuses with (``_Rejected(status, reason, message)``)."""
    tree = ast.parse((PACKAGE / "webhooks" / "endpoint.py").read_text())
    return {
        node.args[1].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_Rejected"
        and isinstance(node.args[1], ast.Constant)
    }


def test_every_fixed_counter_is_counted_with_exactly_its_declared_values() -> None:
    found, unchecked = counted_values()
    # The rejected-callback counter takes its reason from the exception; every other call names a literal.
    assert [spot for spot in unchecked if not spot.startswith("webhooks/endpoint.py")] == []
    found["WEBHOOKS_REJECTED"] |= rejection_reasons()
    for name, counter in COUNTER_NAMES.items():
        assert found[name] == set(metrics.FIXED_LABEL_VALUES[counter]), name


def test_the_rejection_reasons_are_the_declared_ones() -> None:
    assert rejection_reasons() == set(get_args(metrics.WebhookRejection))


def test_creating_the_fixed_series_twice_shows_each_once_at_zero() -> None:
    # A kind and an endpoint of their own, so the series start at 0 whatever ran before in this process;
    # removed afterwards, so nothing else sees them.
    kind, endpoint, results = "TestOnlyKind", "test-only-endpoint", ("success", "error")
    try:
        for _ in range(2):
            metrics.create_fixed_series(kinds=(kind,), results=results, endpoints=(endpoint,))
        value = REGISTRY.get_sample_value
        assert value("twilio_video_operator_reconcile_total", {"kind": kind, "result": "error"}) == 0.0
        assert value("twilio_video_operator_reconcile_errors_total", {"kind": kind}) == 0.0
        rejected = {"endpoint": endpoint, "reason": "overloaded"}
        assert value("twilio_video_operator_webhooks_rejected_total", rejected) == 0.0
        handed_off = {"endpoint": endpoint, "result": "expired"}
        assert value("twilio_video_operator_webhooks_handed_off_total", handed_off) == 0.0
        assert value("twilio_video_operator_signing_key_rotations_total", {"result": "succeeded"}) is not None
    finally:
        for counter in (metrics.RECONCILE_ERRORS, metrics.WORKQUEUE_ADDS):
            counter.remove(kind)
        for result in results:
            metrics.RECONCILE_TOTAL.remove(kind, result)
        for counter in metrics.ENDPOINT_COUNTERS:
            counter.remove(endpoint)
        for reason in get_args(metrics.WebhookRejection):
            metrics.WEBHOOKS_REJECTED.remove(endpoint, reason)
        for handoff in get_args(metrics.HandoffResult):
            metrics.WEBHOOKS_HANDED_OFF.remove(endpoint, handoff)
