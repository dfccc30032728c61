"""Annotations users put on the objects to steer the operator."""

from __future__ import annotations

from typing import Final

PREFIX: Final = "video.openclaw.io/"
#: ``"true"`` stops reconciling the object until removed.
PAUSED: Final = PREFIX + "paused"
#: Any new value forces a resync now.
RECONCILE_REQUESTED_AT: Final = PREFIX + "reconcile-requested-at"
#: SigningKeyRotation: any new value starts a rotation now.
ROTATE_REQUESTED_AT: Final = PREFIX + "rotate-requested-at"
