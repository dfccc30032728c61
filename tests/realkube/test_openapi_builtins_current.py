"""``openapi_builtins.json`` (the built-in schemas the embedded API serves in its OpenAPI documents) matches
what the real kube-apiserver publishes; rewrite it with ``tests/realkube/refresh_openapi_builtins.py``."""

from __future__ import annotations

import json

from refresh_openapi_builtins import collect

from real_kube import RealKube
from twilio_video_playground.kube.openapi_data import BUILTINS_FILE


def test_the_builtin_schemas_are_the_real_servers(real_kube: RealKube) -> None:
    stored = json.loads(BUILTINS_FILE.read_text(encoding="utf-8"))
    assert collect(real_kube) == stored, "run tests/realkube/refresh_openapi_builtins.py"
