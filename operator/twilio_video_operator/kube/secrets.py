"""Reading a Secret object's values."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any


def decode_secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's ``data`` (base64) and ``stringData`` as text; undecodable entries are left out."""
    decoded: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    for key, value in (secret.get("stringData") or {}).items():
        decoded[key] = str(value)
    return decoded
