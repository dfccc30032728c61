"""Where the repository is: the playground is installed editable from ``tests/tools/playground/``."""

from __future__ import annotations

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[4]
"""The root of the source checkout the playground runs from (``crds/``, ``examples/``, ``.cache/``)."""
